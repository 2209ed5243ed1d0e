/*-------------------------------------------------------------------------
 *
 * claim.h
 *	  Claiming messages for a consumer group: due retries, then each
 *	  subscription's stream.
 *
 * IDENTIFICATION
 *	  src/engine/claim.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_CLAIM_H
#define TXM_CLAIM_H

#include "access/xact.h"
#include "nodes/pg_list.h"

#include "src/base/subcache.h"
#include "src/engine/deliveries.h"

extern List *txm_claim(TxmSub *subs, int nsubs, const bool *pull, int need, Interval *lease);
extern void txm_claim_xact_callback(XactEvent event);

#endif							/* TXM_CLAIM_H */
