/*-------------------------------------------------------------------------
 *
 * failures.h
 *	  Deliveries that failed: retries waiting for their next attempt, and
 *	  dead letters with their notification.
 *
 * IDENTIFICATION
 *	  src/storage/failures.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_FAILURES_H
#define TXM_FAILURES_H

#include "utils/timestamp.h"

#include "src/base/subcache.h"
#include "src/storage/stream.h"

extern void txm_retry_insert(const TxmSub *sub, const TxmMsg *m, Interval *delay,
							 const char *error);
extern void txm_dead_letter(const TxmSub *sub, int64 msg_id, TimestampTz sent_at,
							const Datum *cols, const bool *isnull, int32 attempts,
							const char *reason, const char *last_error,
							TimestampTz first_failed_at);
extern void txm_dead_letter_half(int64 msg_id, const char *topic, const char *key,
								 const char *last_error);

#endif							/* TXM_FAILURES_H */
