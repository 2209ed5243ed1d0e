/*-------------------------------------------------------------------------
 *
 * checkback.h
 *	  Check-backs of half messages nobody resolved.
 *
 * IDENTIFICATION
 *	  src/engine/checkback.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_CHECKBACK_H
#define TXM_CHECKBACK_H

#include "src/engine/stats.h"

/*
 * When a half message h of topic t is due for a check-back, in SQL: its
 * first check waits its own check_after (since 1.1) or the topic's.
 */
#define TXM_CHECK_DUE_1_0 \
	"coalesce(h.last_check_at + t.check_interval, h.sent_at + t.check_after)"
#define TXM_CHECK_DUE \
	"coalesce(h.last_check_at + t.check_interval," \
	" h.sent_at + coalesce(h.check_after, t.check_after))"

/* tx_message.check_timeout */
extern int	txm_check_timeout;

extern int	txm_due_checks(bool with_functions, int limit, int64 **ids);
extern bool txm_check_one(int64 msg_id, bool with_functions, TxmMaintStats *stats);

#endif							/* TXM_CHECKBACK_H */
