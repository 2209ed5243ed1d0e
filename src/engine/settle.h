/*-------------------------------------------------------------------------
 *
 * settle.h
 *	  Finishing deliveries: ack, nack, extending leases.
 *
 * IDENTIFICATION
 *	  src/engine/settle.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_SETTLE_H
#define TXM_SETTLE_H

#include "utils/timestamp.h"

#include "src/base/subcache.h"

extern int	txm_ack(TxmSub *subs, int nsubs, const int64 *ids, int n);
extern int	txm_ack_received(TxmSub *subs, int nsubs, const bool *pull);
extern const char *txm_nack(TxmSub *subs, int nsubs, int64 msg_id, const char *error,
							Interval *retry_in);
extern int	txm_extend(TxmSub *subs, int nsubs, const int64 *ids, int n, TimestampTz until);

#endif							/* TXM_SETTLE_H */
