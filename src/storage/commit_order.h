/*-------------------------------------------------------------------------
 *
 * commit_order.h
 *	  The commit order of the transactions a tick found.
 *
 * IDENTIFICATION
 *	  src/storage/commit_order.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_COMMIT_ORDER_H
#define TXM_COMMIT_ORDER_H

#include "utils/hsearch.h"

#include "src/base/shmem.h"

typedef struct TxmCommitOrder
{
	HTAB	   *ends;			/* virtual xid -> the end of its commit record */
	TxmDbSlot  *slot;			/* NULL: no ring (no shared memory) */
	uint64		base;			/* the instance's id base */
	uint64		ring_upto;		/* where the ring was read up to */
} TxmCommitOrder;

extern void txm_commit_order_read(TxmCommitOrder *co, TxmDbSlot *slot, uint64 base);
extern void txm_commit_order_complete(TxmCommitOrder *co, uint64 *xids, int n);
extern bool txm_commit_order_lookup(const TxmCommitOrder *co, uint64 xid, XLogRecPtr *commit_end);
extern void txm_commit_order_end(TxmCommitOrder *co);

#endif							/* TXM_COMMIT_ORDER_H */
