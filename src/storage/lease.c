/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Lease rows and subscription watermarks.
 *
 * A receive records one lease row per block it claims from: which of the
 * block's positions it covers, which of those are done (acked, filtered
 * out, or moved to retries), and until when it holds them.  An ack sets
 * bits in the done bitmap: a HOT update of one row per batch.  A
 * subscription's watermark (sub_state.done_seq) says that every position
 * below it is finished; the lease rows of finished blocks are deleted as it
 * moves.  The receive and the ack are the hot path, so their rows are read
 * and written directly (spi.c's txm_insert_row and txm_update_row), with
 * the attribute numbers of catalog.h.
 *
 * IDENTIFICATION
 *	  src/storage/lease.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/storage/lease.h"

void
txm_lease_rels_open(TxmLeaseRels *r)
{
	const TxmCatalog *c = txm_catalog();

	r->leases = table_open(c->leases, AccessShareLock);
	r->leases_idx = index_open(c->leases_pkey, AccessShareLock);
	r->state = table_open(c->sub_state, AccessShareLock);
	r->state_idx = index_open(c->sub_state_pkey, AccessShareLock);
}

void
txm_lease_rels_close(TxmLeaseRels *r)
{
	index_close(r->state_idx, NoLock);
	table_close(r->state, NoLock);
	index_close(r->leases_idx, NoLock);
	table_close(r->leases, NoLock);
}

/* The lease rows of one block of a subscription, read with snap. */
int
txm_read_block_leases(const TxmLeaseRels *r, int32 sub_id, int64 block, Snapshot snap,
					  TxmLeaseRow **rows)
{
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *ts = table_slot_create(r->leases, NULL);
	int			n = 0;
	int			cap = 4;

	*rows = palloc(sizeof(TxmLeaseRow) * cap);
	ScanKeyInit(&keys[0], Anum_leases_pkey_sub_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(sub_id));
	ScanKeyInit(&keys[1], Anum_leases_pkey_block, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(block));
	scan = index_beginscan(r->leases, r->leases_idx, snap, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, ts))
	{
		bool		isnull;
		TxmLeaseRow *row;

		if (n >= cap)
		{
			cap *= 2;
			*rows = repalloc(*rows, sizeof(TxmLeaseRow) * cap);
		}
		row = &(*rows)[n++];
		row->first_off = DatumGetInt16(slot_getattr(ts, Anum_leases_first_off, &isnull));
		txm_bits_from_datum(slot_getattr(ts, Anum_leases_covered, &isnull), &row->covered);
		txm_bits_from_datum(slot_getattr(ts, Anum_leases_done, &isnull), &row->done);
		row->lease_until = DatumGetTimestampTz(slot_getattr(ts, Anum_leases_lease_until, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	return n;
}

/*
 * A subscription's watermark, read with the snapshot its lease rows are
 * read with: the worker moves the watermark and deletes the leases below it
 * in one transaction, so only a common snapshot sees a consistent pair.
 */
int64
txm_read_done_seq(const TxmLeaseRels *r, int32 sub_id, Snapshot snap)
{
	IndexScanDesc scan;
	ScanKeyData key;
	TupleTableSlot *ts = table_slot_create(r->state, NULL);
	int64		seq = 0;

	ScanKeyInit(&key, Anum_sub_state_pkey_sub_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(sub_id));
	scan = index_beginscan(r->state, r->state_idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, ts))
	{
		bool		isnull;

		seq = DatumGetInt64(slot_getattr(ts, Anum_sub_state_done_seq, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	return seq;
}

/* Record a claim: one lease row, visible to the rest of the current command. */
void
txm_insert_lease(int32 sub_id, int64 block, int16 first_off, const TxmBlockBits *covered,
				 const TxmBlockBits *done, Datum keys, bool keys_null, TimestampTz lease_until)
{
	Relation	rel = table_open(txm_catalog()->leases, RowExclusiveLock);
	Datum		values[Natts_leases];
	bool		nulls[Natts_leases];

	Assert(RelationGetDescr(rel)->natts == Natts_leases);
	memset(nulls, 0, sizeof(nulls));
	values[Anum_leases_sub_id - 1] = Int32GetDatum(sub_id);
	values[Anum_leases_block - 1] = Int64GetDatum(block);
	values[Anum_leases_first_off - 1] = Int16GetDatum(first_off);
	values[Anum_leases_covered - 1] = txm_bits_datum(covered);
	values[Anum_leases_done - 1] = txm_bits_datum(done);
	values[Anum_leases_keys - 1] = keys;
	nulls[Anum_leases_keys - 1] = keys_null;
	values[Anum_leases_lease_until - 1] = TimestampTzGetDatum(lease_until);
	values[Anum_leases_leased_at - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[Anum_leases_holder - 1] = Int32GetDatum(MyProcPid);
	txm_insert_row(rel, values, nulls);
	table_close(rel, NoLock);
	/* make the lease visible to the fresh snapshots of this same call */
	CommandCounterIncrement();
}

/*
 * Mark positions of one lease done.  Returns how many were pending, i.e.
 * how many this call finished; the row lock makes concurrent acks of the
 * same message count once.
 */
int
txm_finish_in_lease(int32 sub_id, int64 block, int16 first_off, const TxmBlockBits *mask)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->leases, RowExclusiveLock);
	Relation	idx = index_open(c->leases_pkey, RowExclusiveLock);
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	IndexScanDesc scan;
	ScanKeyData keys[3];
	ItemPointerData tid;
	bool		found;
	int			n = 0;

	ScanKeyInit(&keys[0], Anum_leases_pkey_sub_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(sub_id));
	ScanKeyInit(&keys[1], Anum_leases_pkey_block, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(block));
	ScanKeyInit(&keys[2], Anum_leases_pkey_first_off, BTEqualStrategyNumber, F_INT2EQ,
				Int16GetDatum(first_off));
	scan = index_beginscan(rel, idx, snap, 3, 0);
	index_rescan(scan, keys, 3, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, ts);
	index_endscan(scan);

	/*
	 * Lock the newest version, waiting for a concurrent ack or expiry: the
	 * row lock is what makes concurrent acks of one message count once.
	 */
	if (found)
	{
		TM_FailureData tmfd;

		tid = ts->tts_tid;
		found = table_tuple_lock(rel, &tid, snap, ts, GetCurrentCommandId(false),
								 LockTupleNoKeyExclusive, LockWaitBlock,
								 TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd) == TM_Ok;
	}
	if (found)
	{
		bool		isnull;
		TxmBlockBits covered;
		TxmBlockBits done;

		txm_bits_from_datum(slot_getattr(ts, Anum_leases_covered, &isnull), &covered);
		txm_bits_from_datum(slot_getattr(ts, Anum_leases_done, &isnull), &done);
		for (int i = 0; i < TXM_BLOCK_BYTES; i++)
		{
			uint8		newly = mask->b[i] & covered.b[i] & ~done.b[i];

			n += pg_popcount((const char *) &newly, 1);
			done.b[i] |= newly;
		}
		if (n > 0)
		{
			Datum		values[Natts_leases];
			bool		nulls[Natts_leases];
			bool		replace[Natts_leases];
			HeapTuple	oldtup = ExecFetchSlotHeapTuple(ts, false, NULL);
			HeapTuple	newtup;

			memset(replace, 0, sizeof(replace));
			memset(nulls, 0, sizeof(nulls));
			replace[Anum_leases_done - 1] = true;
			values[Anum_leases_done - 1] = txm_bits_datum(&done);
			newtup = heap_modify_tuple(oldtup, RelationGetDescr(rel), values, nulls, replace);
			txm_update_row(rel, &tid, newtup);
			heap_freetuple(newtup);
			/* the next look-up of this call sees the new version */
			CommandCounterIncrement();
		}
	}
	ExecDropSingleTupleTableSlot(ts);
	UnregisterSnapshot(snap);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return n;
}

/*
 * Move a subscription's watermark from old_seq to seq (if higher: it only
 * moves forward, even when two processes advance it at once) and delete the
 * lease rows it has passed.  Returns the watermark now stored.
 */
int64
txm_store_done_seq(int32 sub_id, int64 old_seq, int64 seq)
{
	static const char *state_sql =
		"UPDATE tx_message.sub_state SET done_seq = greatest(done_seq, $2), updated_at = now()"
		" WHERE sub_id = $1 RETURNING done_seq";
	/* the leases of finished blocks, and the finished ones of the watermark's block */
	static const char *delete_sql =
		"DELETE FROM tx_message.leases WHERE sub_id = $1"
		"   AND (block < $2 OR (block = $2 AND strpos(substr(covered::text, $3 + 1), '1') = 0))";
	Oid			types[3] = {INT4OID, INT8OID, INT4OID};
	Datum		values[3];
	bool		isnull;

	values[0] = Int32GetDatum(sub_id);
	SPI_connect();
	if (seq > old_seq)
	{
		values[1] = Int64GetDatum(seq);
		if (txm_spi_exec(state_sql, 2, types, values, NULL, 1) == 1)
			seq = DatumGetInt64(txm_spi_value(0, 1, &isnull));
	}
	values[1] = Int64GetDatum(seq / TXM_BLOCK);
	values[2] = Int32GetDatum((int32) (seq % TXM_BLOCK));
	txm_spi_exec(delete_sql, 3, types, values, NULL, 0);
	SPI_finish();
	return seq;
}

/* keeps the position locks apart from the claim and handler locks and from user advisory locks */
#define TXM_POSITION_LOCK_FIELD4	0x7470	/* "tp" */

/*
 * Lock a subscription's position for the rest of the transaction: tx_seek
 * moves it (ExclusiveLock) while nothing advances its watermark from what
 * it read before (ShareLock).  A heavyweight lock, not a row lock: the
 * worker takes it every cycle, and an idle subscription stays unwritten.
 */
void
txm_lock_sub_position(int32 sub_id, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) sub_id, 0, TXM_POSITION_LOCK_FIELD4);
	(void) LockAcquire(&tag, mode, false, false);
}

/*
 * Put a subscription at position seq: every position below it finished,
 * every one from it on waiting, no lease and no retry left (tx_seek).  The
 * caller holds the position lock and has done SPI_connect().
 */
void
txm_reset_position(int32 sub_id, int64 seq)
{
	static const char *leases_sql = "DELETE FROM tx_message.leases WHERE sub_id = $1";
	static const char *retries_sql = "DELETE FROM tx_message.retries_data WHERE sub_id = $1";
	static const char *state_sql =
		"UPDATE tx_message.sub_state SET done_seq = $2, updated_at = now() WHERE sub_id = $1";
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];

	values[0] = Int32GetDatum(sub_id);
	values[1] = Int64GetDatum(seq);
	/* one statement each: the retries an expiry moves leases to while we wait are seen */
	txm_spi_exec(leases_sql, 1, types, values, NULL, 0);
	txm_spi_exec(retries_sql, 1, types, values, NULL, 0);
	if (txm_spi_exec(state_sql, 2, types, values, NULL, 0) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("subscription %d has no watermark in tx_message.sub_state", sub_id)));
}
