/*-------------------------------------------------------------------------
 *
 * log.h
 *	  Message ids, and the rows a message is stored as before it is
 *	  consumed: the log, delayed messages, half messages.
 *
 * IDENTIFICATION
 *	  src/storage/log.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_LOG_H
#define TXM_LOG_H

#include "utils/timestamp.h"

/* the prefix of the logical decoding messages of change data capture */
#define TXM_CDC_PREFIX "tx_message"

extern int64 txm_next_pos(void);
extern void txm_forget_pos(void);
extern int64 txm_log_insert(int32 topic_id, int64 msg_id, TimestampTz sent_at,
							TimestampTz deliver_at, const Datum *cols, const bool *isnull);
extern int64 txm_log_insert_at(int64 pos, int32 topic_id, int64 msg_id, TimestampTz sent_at,
							   TimestampTz deliver_at, const Datum *cols, const bool *isnull);
extern void txm_log_insert_many(int32 topic_id, TimestampTz sent_at, int n,
								const Datum *keys, const bool *key_nulls,
								Datum tags, bool tags_null, Datum headers, bool headers_null,
								const Datum *payloads, int64 *positions);
extern void txm_delayed_insert(int64 msg_id, int32 topic_id, TimestampTz sent_at,
							   TimestampTz deliver_at, const Datum *cols, const bool *isnull);
extern void txm_half_insert(int64 msg_id, int32 topic_id, TimestampTz sent_at,
							const Datum *cols, const bool *isnull, Interval *check_after);
extern void txm_no_half_message(int64 msg_id) pg_attribute_noreturn();
extern int32 txm_half_topic(int64 msg_id);
extern bool txm_resolve_half(int64 msg_id, bool commit, const char *resolved_by);

#endif							/* TXM_LOG_H */
