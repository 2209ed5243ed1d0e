/*-------------------------------------------------------------------------
 *
 * claim_retries.h
 *	  Claiming due retries for a consumer group.
 *
 * IDENTIFICATION
 *	  src/engine/claim_retries.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_CLAIM_RETRIES_H
#define TXM_CLAIM_RETRIES_H

#include "nodes/pg_list.h"

#include "src/base/subcache.h"
#include "src/engine/deliveries.h"

extern int	txm_claim_retries(TxmSub *subs, int nsubs, const bool *pull, int need,
							  const TimestampTz *lease_until, List **out);

#endif							/* TXM_CLAIM_RETRIES_H */
