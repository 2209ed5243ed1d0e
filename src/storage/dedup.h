/*-------------------------------------------------------------------------
 *
 * dedup.h
 *	  Idempotent sends: which stored message holds a topic's dedup key.
 *
 * IDENTIFICATION
 *	  src/storage/dedup.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_DEDUP_H
#define TXM_DEDUP_H

#include "utils/timestamp.h"

extern int64 txm_dedup_claim(int32 topic_id, Datum key, int64 msg_id, TimestampTz sent_at);

#endif							/* TXM_DEDUP_H */
