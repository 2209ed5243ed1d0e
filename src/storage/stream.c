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
#include "utils/snapmgr.h"
#include "utils/varbit.h"

#include "src/base/catalog.h"
#include "src/base/packed.h"
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
 * The log positions of the slice in ts, into out (room for TXM_BLOCK, or
 * NULL to count them only): from positions, or from packed where a 1.1
 * ticker left positions NULL.  Returns how many.
 */
static int
slice_positions(TupleTableSlot *ts, int64 *out)
{
	bool		isnull;
	Datum		d = slot_getattr(ts, Anum_slices_positions, &isnull);
	ArrayType  *arr;
	int			n;

	if (isnull)
	{
		d = slot_getattr(ts, Anum_slices_packed, &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a slice of topic %d holds no positions",
							DatumGetInt32(slot_getattr(ts, Anum_slices_topic_id, &isnull)))));
		return txm_unpack_positions(DatumGetByteaPP(d), out, TXM_BLOCK);
	}
	arr = DatumGetArrayTypeP(d);
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (n > TXM_BLOCK || ARR_ELEMTYPE(arr) != INT8OID || array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid positions of a slice"),
				 errdetail("A slice holds at most %d positions, none of them NULL.", TXM_BLOCK)));
	if (out != NULL)
		memcpy(out, ARR_DATA_PTR(arr), sizeof(int64) * n);
	return n;
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
		int64		data[TXM_BLOCK];
		int			n = slice_positions(ts, data);

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

/* Copy a log row, whose columns are where l says, into m. */
static void
msg_from_row(TxmMsg *m, int64 pos, const TxmLogLayout *l, Relation rel, TupleTableSlot *ts)
{
	HeapTuple	tup = ExecCopySlotHeapTuple(ts);
	Datum		values[Natts_log];
	bool		nulls[Natts_log];

	heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
	m->found = true;
	m->topic_id = DatumGetInt32(values[l->topic_id - 1]);
	m->sent_at = DatumGetTimestampTz(values[l->sent_at - 1]);
	m->msg_id = nulls[l->msg_id - 1] ? pos : DatumGetInt64(values[l->msg_id - 1]);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		m->cols[k] = values[l->cols[k] - 1];
		m->isnull[k] = nulls[l->cols[k] - 1];
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
fetch_from_table(Relation rel, const TxmLogLayout *l, Relation idx, Snapshot snap,
				 const int64 *sorted, int n, const int *order, TxmMsg *msgs)
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
			msg_from_row(m, pos, l, rel, ts);
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
		txm_check_log_snapshot(s, snap);
		idx = index_open(c->log_pos[s], AccessShareLock);
		fetch_from_table(rel, c->log_layout[s], idx, snap, sorted, n, order, msgs);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	pfree(order);
	pfree(sorted);
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
#define HEAD_SQL(POSITIONS) \
		"SELECT greatest((SELECT s.first_seq + cardinality(" POSITIONS ") FROM tx_message.slices s" \
		"                  WHERE s.topic_id = $1 ORDER BY s.first_seq DESC LIMIT 1), t.retired_seq)" \
		"  FROM tx_message.topics t WHERE t.topic_id = $1"
	static const char *head_sql[2] = {HEAD_SQL(TXM_SLICE_POSITIONS_1_0), HEAD_SQL(TXM_SLICE_POSITIONS_1_1)};
	static const char *oldest_sql =
		"SELECT coalesce((SELECT first_seq FROM tx_message.slices"
		"                  WHERE topic_id = $1 ORDER BY first_seq LIMIT 1), retired_seq)"
		"  FROM tx_message.topics WHERE topic_id = $1";
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;

	hold_retention();
	values[0] = Int32GetDatum(topic_id);
	if (txm_spi_exec_latest(earliest ? oldest_sql : head_sql[txm_catalog()->v1_1], 1, types, values, NULL, 1) == 0)
		return 0;
	return DatumGetInt64(txm_spi_value(0, 1, &isnull));
}

/*
 * Finding a slice by the tick that made it, or by when: the slices of a
 * topic are made by serialized ticks, so their tick ids grow with
 * first_seq, and so do their times as long as the clock does not go back
 * (slices that the update from 1.0 dated after their tick or first message
 * may not quite); a bisection over first_seq (an index descent per step,
 * some forty for the longest stream) finds the first slice past a tick or
 * a time, and lands near it where the times do not grow.  That keeps
 * slices with a single index, which every tick writes to once per topic it
 * saw.
 */
typedef struct SliceProbe
{
	Relation	rel;
	Relation	idx;
	TupleTableSlot *ts;
	Snapshot	snap;
	int32		topic_id;
	bool		with_time;		/* the database is at 1.1: created_at exists */
} SliceProbe;

typedef struct SliceInfo
{
	int64		first_seq;
	int			npositions;
	int64		tick_id;
	TimestampTz created_at;
} SliceInfo;

static void
probe_open(SliceProbe *p, int32 topic_id, Snapshot snap)
{
	const TxmCatalog *c = txm_catalog();

	p->rel = table_open(c->slices, AccessShareLock);
	p->idx = index_open(c->slices_pkey, AccessShareLock);
	p->ts = table_slot_create(p->rel, NULL);
	p->snap = snap;
	p->topic_id = topic_id;
	p->with_time = c->v1_1;
}

static void
probe_close(SliceProbe *p)
{
	ExecDropSingleTupleTableSlot(p->ts);
	index_close(p->idx, AccessShareLock);
	table_close(p->rel, AccessShareLock);
}

/*
 * The topic's first slice with first_seq >= from (forward), or its last
 * slice (backward, from ignored), left in p->ts.  false if there is none.
 */
static bool
probe_slice(SliceProbe *p, int64 from, ScanDirection dir, SliceInfo *si)
{
	IndexScanDesc scan;
	ScanKeyData keys[2];
	int			nkeys = 1;
	bool		found;

	ScanKeyInit(&keys[0], Anum_slices_pkey_topic_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(p->topic_id));
	if (dir == ForwardScanDirection)
		ScanKeyInit(&keys[nkeys++], Anum_slices_pkey_first_seq, BTGreaterEqualStrategyNumber,
					F_INT8GE, Int64GetDatum(from));
	scan = index_beginscan(p->rel, p->idx, p->snap, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	found = index_getnext_slot(scan, dir, p->ts);
	if (found)
	{
		bool		isnull;

		si->first_seq = DatumGetInt64(slot_getattr(p->ts, Anum_slices_first_seq, &isnull));
		si->npositions = slice_positions(p->ts, NULL);
		si->tick_id = DatumGetInt64(slot_getattr(p->ts, Anum_slices_tick_id, &isnull));
		si->created_at = p->with_time
			? DatumGetTimestampTz(slot_getattr(p->ts, Anum_slices_created_at, &isnull))
			: DT_NOBEGIN;
	}
	index_endscan(scan);
	return found;
}

/* Has the stream reached the tick or the time asked for at this slice? */
typedef struct SliceGoal
{
	bool		by_time;
	int64		tick_id;
	TimestampTz t;
} SliceGoal;

static bool
reached(const SliceGoal *goal, const SliceInfo *si)
{
	return goal->by_time ? si->created_at >= goal->t : si->tick_id >= goal->tick_id;
}

/*
 * The first slice of the topic at which the goal is reached, left in
 * p->ts.  false if no slice reaches it.
 */
static bool
first_slice_reaching(SliceProbe *p, const SliceGoal *goal, SliceInfo *si)
{
	SliceInfo	first;
	SliceInfo	last;
	int64		lo;
	int64		hi;

	if (!probe_slice(p, PG_INT64_MIN, ForwardScanDirection, &first))
		return false;
	if (reached(goal, &first))
	{
		*si = first;
		return true;
	}
	if (!probe_slice(p, 0, BackwardScanDirection, &last) || !reached(goal, &last))
		return false;

	/*
	 * The smallest x in (first, last] whose first slice at or after x
	 * reaches the goal: that slice is the one asked for.
	 */
	lo = first.first_seq + 1;
	hi = last.first_seq;
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;
		SliceInfo	at;

		if (!probe_slice(p, mid, ForwardScanDirection, &at))
			elog(ERROR, "no slice of topic %d from %lld on", p->topic_id, (long long) mid);
		if (reached(goal, &at))
			hi = mid;
		else
			lo = at.first_seq + 1;
	}
	if (!probe_slice(p, lo, ForwardScanDirection, si))
		elog(ERROR, "no slice of topic %d from %lld on", p->topic_id, (long long) lo);
	return true;
}

/* The end of the topic's last slice, read with the probe's snapshot; 0 if none. */
static int64
last_slice_end(SliceProbe *p)
{
	SliceInfo	last;

	return probe_slice(p, 0, BackwardScanDirection, &last) ? last.first_seq + last.npositions : 0;
}

/*
 * First free position of a topic's stream, read with snap: the end of its
 * last slice, or where retention last sealed it (retired_seq) if that is
 * further: a truncation deletes the slices of its table below the sealed
 * heads, which may be a topic's last slices while an earlier one, of a
 * newer table (a transaction that began in the older table committed
 * after one that began in the newer), stays.
 */
int64
txm_stream_head(int32 topic_id, Snapshot snap)
{
	SliceProbe	p;
	int64		head;
	int64		retired;

	probe_open(&p, topic_id, snap);
	head = last_slice_end(&p);
	probe_close(&p);
	if (txm_topic_retired_seq(topic_id, &retired))
		head = Max(head, retired);
	return head;
}

/*
 * The position in a topic's stream of the log position pos, which the tick
 * tick_id made deliverable, read with snap.  -1 if that tick gave the topic
 * no such position (it was trimmed, or pos is not the topic's).
 */
int64
txm_stream_seq_in_tick(int32 topic_id, int64 tick_id, int64 pos, Snapshot snap)
{
	SliceProbe	p;
	SliceGoal	goal = {false, tick_id, 0};
	SliceInfo	si;
	int64		seq = -1;

	probe_open(&p, topic_id, snap);
	if (first_slice_reaching(&p, &goal, &si))
	{
		while (si.tick_id == tick_id && seq < 0)
		{
			int64		positions[TXM_BLOCK];
			int			n = slice_positions(p.ts, positions);

			for (int i = 0; i < n; i++)
				if (positions[i] == pos)
				{
					seq = si.first_seq + i;
					break;
				}
			if (seq < 0 && !probe_slice(&p, si.first_seq + si.npositions, ForwardScanDirection, &si))
				break;
		}
	}
	probe_close(&p);
	return seq;
}

/*
 * The first position of a topic's stream committed at or after t: the
 * first slice the ticker made at or after t (slices.created_at, since 1.1),
 * or the head if none was.  A time before what retention keeps gives the
 * oldest position kept.
 */
int64
txm_stream_seq_at(int32 topic_id, TimestampTz t)
{
	int64		retired;
	int64		seq;
	Snapshot	snap;
	SliceProbe	p;
	SliceGoal	goal = {true, 0, t};
	SliceInfo	si;

	if (!txm_catalog()->v1_1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("positions by time need version 1.1 of the extension tx_message"),
				 errhint("Run ALTER EXTENSION tx_message UPDATE.")));
	hold_retention();
	if (!txm_topic_retired_seq(topic_id, &retired))
		return 0;
	snap = RegisterSnapshot(GetLatestSnapshot());
	probe_open(&p, topic_id, snap);
	if (first_slice_reaching(&p, &goal, &si))
		seq = si.first_seq;
	else
		seq = last_slice_end(&p);
	probe_close(&p);
	UnregisterSnapshot(snap);
	return Max(seq, retired);
}
