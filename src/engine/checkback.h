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

/* tx_message.check_timeout */
extern int	txm_check_timeout;

extern int	txm_due_checks(bool with_functions, int limit, int64 **ids);
extern bool txm_check_one(int64 msg_id, bool with_functions, TxmMaintStats *stats);

#endif							/* TXM_CHECKBACK_H */
