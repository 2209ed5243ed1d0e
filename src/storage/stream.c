/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  Reading a topic's position stream and the log rows it points to.
 *
 * The ticker (tick.c) appends each topic's committed messages to a dense
 * stream of positions, stored as slices of at most TXM_BLOCK positions
 * that never cross a block boundary.  Consumers read the stream block by
 * block: which positions exist, which log rows they are, and the rows
 * themselves.
 *
 * IDENTIFICATION
 *	  src/storage/stream.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/varbit.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/storage/stream.h"

bool
txm_bits_empty(const TxmBlockBits *m)
{
	for (int i = 0; i < TXM_BLOCK_BYTES; i++)
		if (m->b[i])
			return false;
	return true;
}

/* The bit varying(TXM_BLOCK) form the lease rows store. */
Datum
txm_bits_datum(const TxmBlockBits *m)
{
	VarBit	   *v = palloc0(VARBITTOTALLEN(TXM_BLOCK));

	SET_VARSIZE(v, VARBITTOTALLEN(TXM_BLOCK));
	VARBITLEN(v) = TXM_BLOCK;
	memcpy(VARBITS(v), m->b, sizeof(m->b));
	return VarBitPGetDatum(v);
}

void
txm_bits_from_datum(Datum d, TxmBlockBits *m)
{
	VarBit	   *v = DatumGetVarBitP(d);

	memset(m, 0, sizeof(TxmBlockBits));
	memcpy(m->b, VARBITS(v), Min(VARBITBYTES(v), (int) sizeof(m->b)));
}

/*
 * Read the slices of one block of a topic's stream.  Returns false if the
 * block holds no position yet.
 */
bool
txm_read_block_slices(int32 topic_id, int64 block, Snapshot snap, TxmBlockSlices *bs)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->slices, AccessShareLock);
	Relation	idx = index_open(c->slices_pkey, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData keys[3];
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	int64		start = block * TXM_BLOCK;
	int			navail = 0;

	memset(&bs->avail, 0, sizeof(TxmBlockBits));
	bs->slots = 0;
	ScanKeyInit(&keys[0], Anum_slices_pkey_topic_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(topic_id));
	ScanKeyInit(&keys[1], Anum_slices_pkey_first_seq, BTGreaterEqualStrategyNumber, F_INT8GE,
				Int64GetDatum(start));
	ScanKeyInit(&keys[2], Anum_slices_pkey_first_seq, BTLessStrategyNumber, F_INT8LT,
				Int64GetDatum(start + TXM_BLOCK));
	scan = index_beginscan(rel, idx, snap, 3, 0);
	index_rescan(scan, keys, 3, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, ts))
	{
		bool		isnull;
		int64		first = DatumGetInt64(slot_getattr(ts, Anum_slices_first_seq, &isnull));
		ArrayType  *positions = DatumGetArrayTypeP(slot_getattr(ts, Anum_slices_positions, &isnull));
		int			n = ArrayGetNItems(ARR_NDIM(positions), ARR_DIMS(positions));
		int64	   *data = (int64 *) ARR_DATA_PTR(positions);

		bs->slots |= DatumGetInt16(slot_getattr(ts, Anum_slices_slots, &isnull));
		for (int i = 0; i < n; i++)
		{
			int			off = (int) (first - start) + i;

			if (off < 0 || off >= TXM_BLOCK)
				continue;
			bs->pos[off] = data[i];
			txm_bit_set(&bs->avail, off);
			navail++;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	bs->full = txm_bit_get(&bs->avail, TXM_BLOCK - 1);
	return navail > 0;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* Copy a log row into m. */
static void
msg_from_row(TxmMsg *m, int64 pos, Relation rel, TupleTableSlot *ts)
{
	HeapTuple	tup = ExecCopySlotHeapTuple(ts);
	Datum		values[Natts_log];
	bool		nulls[Natts_log];

	heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
	m->found = true;
	m->topic_id = DatumGetInt32(values[Anum_log_topic_id - 1]);
	m->sent_at = DatumGetTimestampTz(values[Anum_log_sent_at - 1]);
	m->msg_id = nulls[Anum_log_msg_id - 1] ? pos : DatumGetInt64(values[Anum_log_msg_id - 1]);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		m->cols[k] = values[Anum_log_key - 1 + k];
		m->isnull[k] = nulls[Anum_log_key - 1 + k];
	}
}

/*
 * Read the log rows at the given positions of one log table.
 *
 * A batch's positions are mostly neighbours in the log's index, so the
 * index is walked in order from the first wanted position, reading keys from
 * the index tuples and the heap only for wanted ones.  After
 * TXM_FETCH_MAX_SKIP unwanted entries in a row (other topics' messages), the
 * scan descends again to the next wanted position.  An "= ANY (array)" scan
 * would descend from the root once per position.
 */
#define TXM_FETCH_MAX_SKIP 32

static void
fetch_from_table(Relation rel, Relation idx, Snapshot snap, const int64 *sorted, int n,
				 const int *order, TxmMsg *msgs)
{
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	int			next = 0;		/* first wanted position not yet passed */

	scan = index_beginscan(rel, idx, snap, 2, 0);
	scan->xs_want_itup = true;
	while (next < n)
	{
		int			skipped = 0;
		bool		reseek = false;
		ItemPointer tid;

		ScanKeyInit(&keys[0], Anum_log_pos_idx_pos, BTGreaterEqualStrategyNumber, F_INT8GE,
					Int64GetDatum(sorted[next]));
		ScanKeyInit(&keys[1], Anum_log_pos_idx_pos, BTLessEqualStrategyNumber, F_INT8LE,
					Int64GetDatum(sorted[n - 1]));
		index_rescan(scan, keys, 2, NULL, 0);
		while (!reseek && (tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			int64		pos = DatumGetInt64(index_getattr(scan->xs_itup, Anum_log_pos_idx_pos,
														  scan->xs_itupdesc, &isnull));
			TxmMsg	   *m;

			while (next < n && sorted[next] < pos)
				next++;
			if (next >= n)
				break;
			if (sorted[next] != pos)
			{
				/* another topic's message: walk on, or descend again */
				reseek = ++skipped > TXM_FETCH_MAX_SKIP;
				continue;
			}
			skipped = 0;
			m = &msgs[order[next]];
			if (m->found || !index_fetch_heap(scan, ts))
				continue;
			msg_from_row(m, pos, rel, ts);
		}
		if (!reseek)
			break;				/* the range is exhausted */
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
}

/*
 * Read the log rows at msgs[i].pos (from the log tables in the slots mask,
 * all of them if 0) into msgs.  Rows that are gone (truncated by retention)
 * are left !found.
 */
void
txm_fetch_messages(TxmMsg *msgs, int n, int16 slots, Snapshot snap)
{
	const TxmCatalog *c = txm_catalog();
	int64	   *sorted;
	int		   *order;

	if (n == 0)
		return;
	sorted = palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		sorted[i] = msgs[i].pos;
		msgs[i].found = false;
	}
	qsort(sorted, n, sizeof(int64), cmp_int64);

	/* rank in sorted -> index in msgs */
	order = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		int64	   *hit = bsearch(&msgs[i].pos, sorted, n, sizeof(int64), cmp_int64);

		order[hit - sorted] = i;
	}

	for (int s = 0; s < TXM_LOG_SLOTS; s++)
	{
		Relation	rel;
		Relation	idx;

		if (slots != 0 && (slots & (1 << s)) == 0)
			continue;
		rel = table_open(c->log[s], AccessShareLock);
		idx = index_open(c->log_pos[s], AccessShareLock);
		fetch_from_table(rel, idx, snap, sorted, n, order, msgs);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	pfree(order);
	pfree(sorted);
}

/*
 * First free position of a topic's stream, read with snap: the end of its
 * last slice or, once retention truncated every slice, the position it
 * stopped at.  The caller has done SPI_connect().
 */
int64
txm_stream_head(int32 topic_id, Snapshot snap)
{
	static const char *retired_sql =
		"SELECT retired_seq FROM tx_message.topics WHERE topic_id = $1";
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->slices, AccessShareLock);
	Relation	idx = index_open(c->slices_pkey, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData key;
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	int64		head = 0;
	bool		isnull;

	ScanKeyInit(&key, Anum_slices_pkey_topic_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(topic_id));
	scan = index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, ts))
	{
		ArrayType  *positions = DatumGetArrayTypeP(slot_getattr(ts, Anum_slices_positions, &isnull));

		head = DatumGetInt64(slot_getattr(ts, Anum_slices_first_seq, &isnull)) +
			ArrayGetNItems(ARR_NDIM(positions), ARR_DIMS(positions));
	}
	else
	{
		Oid			types[1] = {INT4OID};
		Datum		values[1];

		values[0] = Int32GetDatum(topic_id);
		if (txm_spi_exec_latest(retired_sql, 1, types, values, NULL, 1) == 1)
			head = DatumGetInt64(txm_spi_value(0, 1, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return head;
}

/*
 * A watermark about to be set from the slices read now must not point below
 * what retention keeps when it commits: hold every log table in
 * AccessShareLock to the end of the transaction (retention truncates one
 * only with a conditional AccessExclusiveLock, and looks at the watermarks
 * again at its next pass), and read the slices with a fresh snapshot, so
 * that a truncation that committed before is seen whatever the isolation
 * level.
 */
static void
hold_retention(void)
{
	const TxmCatalog *c = txm_catalog();

	for (int i = 0; i < TXM_LOG_SLOTS; i++)
		LockRelationOid(c->log[i], AccessShareLock);
}

/*
 * Where a new subscription starts, or a seek goes: at the topic's head
 * ('now'), or at the oldest position still retained ('earliest').  The
 * caller has done SPI_connect().
 */
int64
txm_stream_start(int32 topic_id, bool earliest)
{
	static const char *head_sql =
		"SELECT coalesce((SELECT first_seq + cardinality(positions) FROM tx_message.slices"
		"                  WHERE topic_id = $1 ORDER BY first_seq DESC LIMIT 1), retired_seq)"
		"  FROM tx_message.topics WHERE topic_id = $1";
	static const char *oldest_sql =
		"SELECT coalesce((SELECT first_seq FROM tx_message.slices"
		"                  WHERE topic_id = $1 ORDER BY first_seq LIMIT 1), retired_seq)"
		"  FROM tx_message.topics WHERE topic_id = $1";
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;

	hold_retention();
	values[0] = Int32GetDatum(topic_id);
	if (txm_spi_exec_latest(earliest ? oldest_sql : head_sql, 1, types, values, NULL, 1) == 0)
		return 0;
	return DatumGetInt64(txm_spi_value(0, 1, &isnull));
}

/*
 * The first position of a topic's stream committed at or after t: the
 * first slice the ticker made at or after t (slices.created_at, since 1.1;
 * it grows with first_seq, ticks being serialized), or the head if none
 * was.  A time before what retention keeps gives the oldest position kept.
 * The caller has done SPI_connect().
 */
int64
txm_stream_seq_at(int32 topic_id, TimestampTz t)
{
	static const char *sql =
		"SELECT greatest(coalesce((SELECT first_seq FROM tx_message.slices"
		"                           WHERE topic_id = $1 AND created_at >= $2"
		"                           ORDER BY created_at, first_seq LIMIT 1),"
		"                         (SELECT first_seq + cardinality(positions) FROM tx_message.slices"
		"                           WHERE topic_id = $1 ORDER BY first_seq DESC LIMIT 1),"
		"                         retired_seq), retired_seq)"
		"  FROM tx_message.topics WHERE topic_id = $1";
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;

	if (!txm_catalog()->v1_1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("positions by time need version 1.1 of the extension tx_message"),
				 errhint("Run ALTER EXTENSION tx_message UPDATE.")));
	hold_retention();
	values[0] = Int32GetDatum(topic_id);
	values[1] = TimestampTzGetDatum(t);
	if (txm_spi_exec_latest(sql, 2, types, values, NULL, 1) == 0)
		return 0;
	return DatumGetInt64(txm_spi_value(0, 1, &isnull));
}
