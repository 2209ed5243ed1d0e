/*-------------------------------------------------------------------------
 *
 * lease.h
 *	  Lease rows (one per received batch) and subscription watermarks, read
 *	  and written directly.
 *
 * IDENTIFICATION
 *	  src/storage/lease.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_LEASE_H
#define TXM_LEASE_H

#include "storage/lockdefs.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "src/storage/stream.h"

/* A lease row of one block, as read. */
typedef struct TxmLeaseRow
{
	int16		first_off;
	TxmBlockBits covered;
	TxmBlockBits done;
	TimestampTz lease_until;
} TxmLeaseRow;

/*
 * The relations a claim reads, opened once per call before any LWLock is
 * taken: with them open, the claim's critical section never waits for a
 * heavyweight lock.  The locks are kept to the end of the transaction.
 */
typedef struct TxmLeaseRels
{
	Relation	leases;
	Relation	leases_idx;
	Relation	state;
	Relation	state_idx;
} TxmLeaseRels;

extern void txm_lease_rels_open(TxmLeaseRels *r);
extern void txm_lease_rels_close(TxmLeaseRels *r);
extern int	txm_read_block_leases(const TxmLeaseRels *r, int32 sub_id, int64 block,
								  Snapshot snap, TxmLeaseRow **rows);
extern int64 txm_read_done_seq(const TxmLeaseRels *r, int32 sub_id, Snapshot snap);
extern void txm_insert_lease(int32 sub_id, int64 block, int16 first_off,
							 const TxmBlockBits *covered, const TxmBlockBits *done,
							 Datum keys, bool keys_null, TimestampTz lease_until);
extern int	txm_finish_in_lease(int32 sub_id, int64 block, int16 first_off,
								const TxmBlockBits *mask);
extern int64 txm_store_done_seq(int32 sub_id, int64 old_seq, int64 seq);
extern void txm_lock_sub_position(int32 sub_id, LOCKMODE mode);
extern void txm_reset_position(int32 sub_id, int64 seq);

#endif							/* TXM_LEASE_H */
