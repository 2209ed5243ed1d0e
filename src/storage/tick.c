/*-------------------------------------------------------------------------
 *
 * tick.c
 *	  The ticker: turn committed log rows into per-topic position streams.
 *
 * A tick compares a fresh snapshot S_now with the previous tick's S_prev
 * (PgQ's batch rule, see pgq.batch_event_sql):
 *
 *	  committed since S_prev = { x in xip(S_prev) : x not in xip(S_now) }
 *							 + [xmax(S_prev), xmax(S_now)) - xip(S_now)
 *
 * and finds their messages through the log's only index, on
 * pos = (xid << 20) | n: one range probe per finished xip member, one range
 * scan (split around transactions still in progress) over the new xids.
 * Heap tuples are read with S_now, which drops aborted transactions and
 * rolled-back savepoints.  A producer that began early and commits late is
 * thus found by the first tick after its commit, whatever its xid, and a
 * transaction held open anywhere in the cluster costs one probe per tick.
 *
 * The transactions found are put in commit order, the order of their
 * commit records (commit_order.c, from the commit ring of shmem_ring.c);
 * those not in the ring come first, in xid order: they committed before a
 * restart emptied the ring, or so long before the tick that the ring
 * wrapped over their entries.  Each topic's messages are appended to its dense position stream
 * as slices of at most TXM_BLOCK positions that never cross a block
 * boundary, and the tick's snapshot is stored.  Ticks that find nothing
 * write nothing.
 *
 * Ticks are serialized by an ExclusiveLock on tx_message.ticks, so the
 * worker, tx_run_maintenance() and receivers without a worker can all tick.
 * The previous snapshot is kept in memory across empty ticks, and only
 * adopted when the transaction that took it commits; that commit also tells
 * waiting receivers how far the ring is ticked (shmem_xact.c).
 *
 * IDENTIFICATION
 *	  src/storage/tick.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/packed.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/storage/commit_order.h"
#include "src/storage/lineage.h"
#include "src/storage/stream.h"
#include "src/storage/tick.h"

/* pg_snapshot's on-disk layout (utils/adt/xid8funcs.c) */
typedef struct PgSnapshotData
{
	int32		vl_len_;
	uint32		nxip;
	uint64		xmin;
	uint64		xmax;
	uint64		xip[FLEXIBLE_ARRAY_MEMBER];
} PgSnapshotData;

#define PG_SNAPSHOT_SIZE(nxip) (offsetof(PgSnapshotData, xip) + sizeof(uint64) * (nxip))

typedef struct TickMessage
{
	uint64		rank;			/* commit order, within its class */
	int64		pos;
	int32		topic_id;
	int16		slot;
	uint8		rank_class;		/* TickRankClass */
} TickMessage;

/* The classes of commit order, in order (order_by_commit). */
typedef enum TickRankClass
{
	TICK_RESTORED,				/* below the id floor: by id */
	TICK_UNRINGED,				/* by xid */
	TICK_RINGED					/* by the end of the commit record */
} TickRankClass;

/* The messages a tick found, growing as the scans go. */
typedef struct TickFound
{
	TickMessage *msgs;
	int			n;
	int			cap;
} TickFound;

/*
 * The last snapshot this process ticked at, and the durable tick it follows
 * (its id and its snapshot's xmax, to recognize it) ...
 */
static struct
{
	PgSnapshotData *snapshot;
	int64		tick_id;
	uint64		tick_xmax;
} mem_prev = {NULL, -1, 0};

/*
 * ... and the first free position of each topic this backend's ticks
 * appended to, as of mem_prev's tick (mem_heads_tick; -1: none known), in
 * the slices table mem_heads_rel.  While that tick is the last one, they
 * are the topics' heads: only ticks append slices, and each writes a ticks
 * row; retention removes slices below the heads only (and sets
 * retired_seq to a head it sealed); a dropped topic's id is not given
 * again by the same tables (a new CREATE EXTENSION makes new ones).  A
 * tick then reads no slice to find where a topic it saw before goes on.
 * Entries are only ever for topics that had messages, at most
 * TXM_HEADS_MAX.
 */
typedef struct TopicHead
{
	int32		topic_id;		/* hash key */
	bool		known;			/* next_seq is a committed tick's */
	int64		next_seq;
} TopicHead;

#define TXM_HEADS_MAX 65536

static HTAB *mem_heads = NULL;
static int64 mem_heads_tick = -1;
static Oid	mem_heads_rel = InvalidOid;

/*
 * The heads a tick moved: their entries (made during the tick, where an
 * error is allowed) and new values, set when its transaction commits,
 * which must not fail.  The running tick's go to pending's when it ends.
 */
typedef struct HeadMoves
{
	TopicHead **entries;		/* in mem_heads */
	int64	   *seqs;
	int			n;
	int			max;
} HeadMoves;

static HeadMoves tick_moves = {NULL, NULL, 0, 0};

/*
 * The deepest transaction nest level that ran a tick, 0 if none: the abort
 * of that level (or of the transaction) forgets every head, whatever the
 * tick did before it failed.
 */
static int	ticked_level = 0;

/*
 * ... and what becomes of them when the current transaction commits.  A
 * tick made in a subtransaction that rolls back is forgotten with it.
 */
static struct
{
	PgSnapshotData *snapshot;
	int64		tick_id;
	uint64		tick_xmax;
	int			level;
	HeadMoves	moves;
} pending = {NULL, -1, 0, 0, {NULL, NULL, 0, 0}};

static void
forget_pending_snapshot(void)
{
	if (pending.snapshot)
		pfree(pending.snapshot);
	pending.snapshot = NULL;
}

static void
forget_pending(void)
{
	forget_pending_snapshot();
	pending.moves.n = 0;
}

/*
 * Forget every head known: they may no longer be the last tick's.  Frees
 * only, so that an abort may call it.
 */
static void
forget_heads(void)
{
	if (mem_heads != NULL)
		hash_destroy(mem_heads);
	mem_heads = NULL;
	mem_heads_tick = -1;
	mem_heads_rel = InvalidOid;
	/* their entries went with the table */
	pending.moves.n = 0;
	tick_moves.n = 0;
}

static void
remember_move(HeadMoves *m, TopicHead *entry, int64 seq)
{
	if (m->n == m->max)
	{
		m->max = Max(64, m->max * 2);
		if (m->entries == NULL)
		{
			m->entries = MemoryContextAlloc(TopMemoryContext, sizeof(TopicHead *) * m->max);
			m->seqs = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * m->max);
		}
		else
		{
			m->entries = repalloc(m->entries, sizeof(TopicHead *) * m->max);
			m->seqs = repalloc(m->seqs, sizeof(int64) * m->max);
		}
	}
	m->entries[m->n] = entry;
	m->seqs[m->n] = seq;
	m->n++;
}

/* At commit: allocates nothing. */
static void
adopt_heads(void)
{
	if (mem_heads == NULL)
		return;
	for (int i = 0; i < pending.moves.n; i++)
	{
		pending.moves.entries[i]->next_seq = pending.moves.seqs[i];
		pending.moves.entries[i]->known = true;
	}
	pending.moves.n = 0;
	mem_heads_tick = pending.tick_id;
}

void
txm_tick_xact_callback(XactEvent event)
{
	if (event == XACT_EVENT_COMMIT && pending.snapshot != NULL)
	{
		if (mem_prev.snapshot)
			pfree(mem_prev.snapshot);
		mem_prev.snapshot = pending.snapshot;
		mem_prev.tick_id = pending.tick_id;
		mem_prev.tick_xmax = pending.tick_xmax;
		pending.snapshot = NULL;
		adopt_heads();
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
	{
		forget_pending();
		if (ticked_level > 0)
			forget_heads();
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		ticked_level = 0;
}

void
txm_tick_subxact_callback(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();

	if (ticked_level >= level &&
		(event == SUBXACT_EVENT_ABORT_SUB || event == SUBXACT_EVENT_COMMIT_SUB))
	{
		/* whatever a failed tick did to the heads, they are not trusted again */
		if (event == SUBXACT_EVENT_ABORT_SUB)
			forget_heads();
		ticked_level = level - 1;
	}
	if (pending.snapshot == NULL || pending.level < level)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_pending();
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		pending.level = level - 1;
}

/*
 * The 64-bit form of an MVCC snapshot in virtual xids (plus the id base, as
 * message ids have them), allocated in TopMemoryContext.
 *
 * The ticking transaction's own xid, if it has one (tx_run_maintenance()
 * called in a transaction that wrote), counts as in progress: its messages
 * are left to the first tick after it commits.  Slicing them now would either
 * miss what it sends after this tick, or slice them twice.
 */
static PgSnapshotData *
snapshot_64(Snapshot snap, uint64 base)
{
	FullTransactionId next = ReadNextFullTransactionId();
	FullTransactionId own = GetTopFullTransactionIdIfAny();
	PgSnapshotData *s;

	s = MemoryContextAllocZero(TopMemoryContext, PG_SNAPSHOT_SIZE(snap->xcnt + 1));
	s->xmin = txm_widen_xid(snap->xmin, next) + base;
	s->xmax = txm_widen_xid(snap->xmax, next) + base;
	s->nxip = 0;
	for (uint32 i = 0; i < snap->xcnt; i++)
		s->xip[s->nxip++] = txm_widen_xid(snap->xip[i], next) + base;
	if (FullTransactionIdIsValid(own) && U64FromFullTransactionId(own) + base < s->xmax)
	{
		uint64		own_xid = U64FromFullTransactionId(own) + base;

		s->xip[s->nxip++] = own_xid;
		if (own_xid < s->xmin)
			s->xmin = own_xid;
	}
	if (s->nxip > 1)
	{
		uint32		n = 1;

		qsort(s->xip, s->nxip, sizeof(uint64), txm_cmp_xid64);
		for (uint32 i = 1; i < s->nxip; i++)
			if (s->xip[i] != s->xip[n - 1])
				s->xip[n++] = s->xip[i];
		s->nxip = n;
	}
	SET_VARSIZE(s, PG_SNAPSHOT_SIZE(s->nxip));
	return s;
}

static bool
in_xip(const PgSnapshotData *s, uint64 xid)
{
	return bsearch(&xid, s->xip, s->nxip, sizeof(uint64), txm_cmp_xid64) != NULL;
}

/* The newest durable tick, or -1 when there is none. */
static int64
last_tick(Snapshot snap, PgSnapshotData **snapshot)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->ticks, AccessShareLock);
	Relation	idx = index_open(c->ticks_pkey, AccessShareLock);
	IndexScanDesc scan;
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	int64		tick_id = -1;

	scan = index_beginscan(rel, idx, snap, 0, 0);
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, ts))
	{
		bool		isnull;

		tick_id = DatumGetInt64(slot_getattr(ts, Anum_ticks_tick_id, &isnull));
		if (snapshot)
		{
			struct varlena *v = PG_DETOAST_DATUM(slot_getattr(ts, Anum_ticks_snapshot, &isnull));

			*snapshot = MemoryContextAlloc(TopMemoryContext, VARSIZE(v));
			memcpy(*snapshot, v, VARSIZE(v));
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return tick_id;
}

/* Lowest xid with a message in the log, or 0. */
static uint64
oldest_logged_xid(void)
{
	const TxmCatalog *c = txm_catalog();
	uint64		oldest = 0;

	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		Relation	rel = table_open(c->log[i], AccessShareLock);
		Relation	idx = index_open(c->log_pos[i], AccessShareLock);
		IndexScanDesc scan = index_beginscan(rel, idx, SnapshotAny, 0, 0);
		TupleTableSlot *ts = table_slot_create(rel, NULL);

		index_rescan(scan, NULL, 0, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, ts))
		{
			bool		isnull;
			uint64		xid = TXM_POS_XID(DatumGetInt64(slot_getattr(ts, Anum_log_pos, &isnull)));

			if (oldest == 0 || xid < oldest)
				oldest = xid;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(ts);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	return oldest;
}

/*
 * The snapshot to diff against.  Without any tick (new installation, or the
 * ticks were lost), everything in the log from its oldest xid on is new.
 */
static PgSnapshotData *
previous_snapshot(Snapshot snap, const PgSnapshotData *now, int64 *tick_id,
				  uint64 *tick_xmax)
{
	PgSnapshotData *durable = NULL;
	PgSnapshotData *prev;

	*tick_id = last_tick(snap, &durable);
	*tick_xmax = durable ? durable->xmax : 0;
	if (*tick_id >= 0 && *tick_id == mem_prev.tick_id && mem_prev.snapshot != NULL &&
		durable != NULL && durable->xmax == mem_prev.tick_xmax)
	{
		/* the last tick is this backend's: so are the heads it knows */
		if (mem_heads_tick != *tick_id || mem_heads_rel != txm_catalog()->slices)
			forget_heads();
		pfree(durable);
		prev = MemoryContextAlloc(TopMemoryContext, VARSIZE(mem_prev.snapshot));
		memcpy(prev, mem_prev.snapshot, VARSIZE(mem_prev.snapshot));
		return prev;
	}
	forget_heads();
	if (durable != NULL && durable->xmax <= now->xmax)
		return durable;

	/* no usable tick: a snapshot that sees nothing from the oldest message on */
	if (durable)
		pfree(durable);
	prev = MemoryContextAllocZero(TopMemoryContext, PG_SNAPSHOT_SIZE(0));
	prev->xmax = oldest_logged_xid();
	if (prev->xmax == 0 || prev->xmax > now->xmax)
		prev->xmax = now->xmin;
	prev->xmin = prev->xmax;
	SET_VARSIZE(prev, PG_SNAPSHOT_SIZE(0));
	if (*tick_id < 0)
		*tick_id = 0;
	return prev;
}

/* The log tables, open for one tick's scans. */
typedef struct LogScan
{
	Relation	rels[TXM_LOG_SLOTS];
	Relation	idxs[TXM_LOG_SLOTS];
	TupleTableSlot *slots[TXM_LOG_SLOTS];
	AttrNumber	topic_id[TXM_LOG_SLOTS];	/* where each table has its topic_id */
	Snapshot	snap;
} LogScan;

/* Collect the visible messages with pos in [lo, hi) of every log table. */
static void
scan_range(LogScan *ls, int64 lo, int64 hi, TickFound *found)
{
	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		IndexScanDesc scan;
		ScanKeyData keys[2];

		ScanKeyInit(&keys[0], Anum_log_pos_idx_pos, BTGreaterEqualStrategyNumber, F_INT8GE,
					Int64GetDatum(lo));
		ScanKeyInit(&keys[1], Anum_log_pos_idx_pos, BTLessStrategyNumber, F_INT8LT,
					Int64GetDatum(hi));
		scan = index_beginscan(ls->rels[i], ls->idxs[i], ls->snap, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, ls->slots[i]))
		{
			TickMessage *m;
			bool		isnull;

			if (found->n >= found->cap)
			{
				found->cap *= 2;
				found->msgs = repalloc_huge(found->msgs, sizeof(TickMessage) * found->cap);
			}
			m = &found->msgs[found->n++];
			m->pos = DatumGetInt64(slot_getattr(ls->slots[i], Anum_log_pos, &isnull));
			m->topic_id = DatumGetInt32(slot_getattr(ls->slots[i], ls->topic_id[i], &isnull));
			m->slot = i;
		}
		index_endscan(scan);
	}
}

/* The messages of the transactions that committed between prev and now. */
static void
collect_committed(Snapshot snap, const PgSnapshotData *prev, const PgSnapshotData *now,
				  TickFound *found)
{
	const TxmCatalog *c = txm_catalog();
	LogScan		ls;
	uint64		lo;

	ls.snap = snap;
	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		ls.rels[i] = table_open(c->log[i], AccessShareLock);
		txm_check_log_snapshot(i, snap);
		ls.idxs[i] = index_open(c->log_pos[i], AccessShareLock);
		ls.slots[i] = table_slot_create(ls.rels[i], NULL);
		ls.topic_id[i] = c->log_layout[i]->topic_id;
	}

	/* transactions in progress at the previous tick that have finished */
	for (uint32 i = 0; i < prev->nxip; i++)
	{
		uint64		xid = prev->xip[i];

		if (in_xip(now, xid) || xid >= now->xmax)
			continue;
		scan_range(&ls, (int64) (xid << TXM_POS_SHIFT), (int64) ((xid + 1) << TXM_POS_SHIFT),
				   found);
	}
	/* xids started since, split around those still in progress */
	lo = prev->xmax;
	for (uint32 i = 0; i <= now->nxip; i++)
	{
		uint64		hi = (i < now->nxip) ? now->xip[i] : now->xmax;

		if (hi < lo)
			continue;
		if (hi > lo)
			scan_range(&ls, (int64) (lo << TXM_POS_SHIFT), (int64) (hi << TXM_POS_SHIFT), found);
		lo = hi + 1;
	}

	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		ExecDropSingleTupleTableSlot(ls.slots[i]);
		index_close(ls.idxs[i], AccessShareLock);
		table_close(ls.rels[i], AccessShareLock);
	}
}

/* By topic, then in commit order within each topic. */
static int
cmp_tick_message(const void *a, const void *b)
{
	const TickMessage *x = a;
	const TickMessage *y = b;

	if (x->topic_id != y->topic_id)
		return x->topic_id < y->topic_id ? -1 : 1;
	if (x->rank_class != y->rank_class)
		return x->rank_class < y->rank_class ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/*
 * Commit order: the messages of a restored dump not ticked where it was
 * taken (below the id floor) first, by id; then the transactions without
 * a commit ring entry, which committed before those with one, by xid; then
 * those with one, in the order of their commit records (commit_order.c).
 * The messages are sorted topic
 * by topic, each topic's in that order: one sort, whatever the number of
 * topics a tick sees.
 */
static void
order_by_commit(TickMessage *msgs, int n, TxmCommitOrder *co, uint64 floor)
{
	uint64	   *missing = NULL;
	int			nmissing = 0;
	uint64		last = 0;
	XLogRecPtr	end;

	/* a transaction's messages are found together: look each up once */
	for (int i = 0; i < n; i++)
	{
		uint64		xid = TXM_POS_XID(msgs[i].pos);

		if (xid < floor || (i > 0 && xid == last))
			continue;
		last = xid;
		if (txm_commit_order_lookup(co, xid, &end))
			continue;
		if (missing == NULL)
			missing = palloc(sizeof(uint64) * n);
		if (nmissing == 0 || missing[nmissing - 1] != xid)
			missing[nmissing++] = xid;
	}
	if (nmissing > 0)
	{
		txm_commit_order_complete(co, missing, nmissing);
		pfree(missing);
	}

	for (int i = 0; i < n; i++)
	{
		uint64		xid = TXM_POS_XID(msgs[i].pos);

		if (xid < floor)
		{
			msgs[i].rank_class = TICK_RESTORED;
			msgs[i].rank = xid;
		}
		else if (txm_commit_order_lookup(co, xid, &end))
		{
			msgs[i].rank_class = TICK_RINGED;
			msgs[i].rank = end;
		}
		else
		{
			msgs[i].rank_class = TICK_UNRINGED;
			msgs[i].rank = xid;
		}
	}
	qsort(msgs, n, sizeof(TickMessage), cmp_tick_message);
}

/*
 * A tick's slices rows go straight into the table and its indexes (spi.c's
 * batch inserter, opened once per tick, which writes them to the heap a
 * page at a time): with thousands of busy topics a tick writes thousands
 * of them, and an INSERT statement each cost several times the row.  A
 * topic's head is read before its own rows are kept, so rows not written
 * yet are never looked for.
 */
typedef struct SliceWriter
{
	TxmInserter ins;
	int64		tick_id;
	TimestampTz created_at;		/* what tx_seek by time looks up (since 1.1) */
} SliceWriter;

static void
insert_slice(SliceWriter *w, int32 topic_id, int64 first_seq, int16 slots,
			 const int64 *positions, int n)
{
	Datum		values[Natts_slices];
	bool		nulls[Natts_slices];
	void	   *list;

	memset(nulls, 0, sizeof(nulls));
	values[Anum_slices_topic_id - 1] = Int32GetDatum(topic_id);
	values[Anum_slices_first_seq - 1] = Int64GetDatum(first_seq);
	values[Anum_slices_tick_id - 1] = Int64GetDatum(w->tick_id);
	values[Anum_slices_slots - 1] = Int16GetDatum(slots);
	/* a database still at 1.0 has neither created_at nor packed: the row stops before them */
	values[Anum_slices_created_at - 1] = TimestampTzGetDatum(w->created_at);
	if (RelationGetDescr(w->ins.rel)->natts >= Anum_slices_packed)
	{
		list = txm_pack_positions(positions, n);
		nulls[Anum_slices_positions - 1] = true;
		values[Anum_slices_packed - 1] = PointerGetDatum(list);
	}
	else
	{
		Datum	   *elems = palloc(sizeof(Datum) * n);

		for (int i = 0; i < n; i++)
			elems[i] = Int64GetDatum(positions[i]);
		list = construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		values[Anum_slices_positions - 1] = PointerGetDatum(list);
		pfree(elems);
	}
	txm_inserter_insert(&w->ins, values, nulls);
	pfree(list);
}

/*
 * Append a topic's messages (already in commit order) to its stream.
 * Slices end at block boundaries so that a claim block is made of whole
 * slices.
 */
static void
append_to_stream(SliceWriter *w, int32 topic_id, int64 *head,
				 const TickMessage *msgs, int n)
{
	int64	   *positions = palloc(sizeof(int64) * TXM_BLOCK);
	int			i = 0;

	while (i < n)
	{
		int64		first = *head;
		int			room = TXM_BLOCK - (int) (first % TXM_BLOCK);
		int			take = Min(room, n - i);
		int16		slots = 0;

		for (int j = 0; j < take; j++)
		{
			positions[j] = msgs[i + j].pos;
			slots |= (int16) (1 << msgs[i + j].slot);
		}
		insert_slice(w, topic_id, first, slots, positions, take);
		*head += take;
		i += take;
	}
	pfree(positions);
}

/*
 * Append the messages found (sorted by order_by_commit) to their topics'
 * streams, topic by topic.  Messages of a dropped topic are simply never
 * delivered.
 */
static void
append_streams(const TickMessage *msgs, int nmsgs, int64 tick_id, TimestampTz tick_at,
			   Snapshot snap)
{
	SliceWriter w;
	Relation	rel = table_open(txm_catalog()->slices, RowExclusiveLock);
	int			start = 0;
	int			ntopics = 0;

	/* (sorted by topic) */
	for (int i = 0; i < nmsgs; i++)
		if (i == 0 || msgs[i].topic_id != msgs[i - 1].topic_id)
			ntopics++;
	/* start afresh rather than remember more than TXM_HEADS_MAX heads */
	if (mem_heads != NULL && hash_get_num_entries(mem_heads) + ntopics > TXM_HEADS_MAX)
		forget_heads();
	/* a tick of more topics than that reads every head */
	if (mem_heads == NULL && ntopics <= TXM_HEADS_MAX)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(TopicHead);
		ctl.hcxt = TopMemoryContext;
		mem_heads = hash_create("tx_message topic heads", 256, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		mem_heads_rel = RelationGetRelid(rel);
	}
	txm_inserter_open_batch(&w.ins, rel);
	w.tick_id = tick_id;
	w.created_at = tick_at;
	while (start < nmsgs)
	{
		int32		topic_id = msgs[start].topic_id;
		int			end = start;

		while (end < nmsgs && msgs[end].topic_id == topic_id)
			end++;
		if (txm_topic_name(topic_id) != NULL)
		{
			TopicHead  *entry = NULL;
			bool		found = false;
			int64		head;

			if (mem_heads != NULL)
			{
				entry = hash_search(mem_heads, &topic_id, HASH_ENTER, &found);
				if (!found)
					entry->known = false;
			}
			head = entry != NULL && entry->known
				? entry->next_seq : txm_stream_head(topic_id, snap);
			append_to_stream(&w, topic_id, &head, msgs + start, end - start);
			if (entry != NULL)
				remember_move(&tick_moves, entry, head);
		}
		start = end;
	}
	txm_inserter_close(&w.ins);
	table_close(rel, NoLock);
}

/* The tick's row carries the time of its slices (what tx_trace shows). */
static void
insert_tick(int64 tick_id, PgSnapshotData *snapshot, TimestampTz tick_at)
{
	static const char *sql =
		"INSERT INTO tx_message.ticks (tick_id, snapshot, created_at) VALUES ($1, $2, $3)";
	Oid			types[3] = {INT8OID, PG_SNAPSHOTOID, TIMESTAMPTZOID};
	Datum		values[3];

	values[0] = Int64GetDatum(tick_id);
	values[1] = PointerGetDatum(snapshot);
	values[2] = TimestampTzGetDatum(tick_at);
	txm_spi_exec(sql, 3, types, values, NULL, 0);
}

/*
 * A restored dump is taken over before its log is ticked in this id space.
 * False if a producer holds that up: tick later.
 */
static bool
take_over_first(void)
{
	if (!txm_instance()->restore_pending)
		return true;
	if (!txm_take_over_restore(true))
		return false;
	/* the streams are the dump's now */
	forget_heads();
	return true;
}

/*
 * Run one tick in the current transaction.  Returns the number of messages
 * made deliverable, or -1 if wait is false and another tick is running (0
 * or -1 also while a restore loads the database, or while a producer holds
 * up taking one over).
 * When the current transaction commits, the commit ring counts as ticked up
 * to what this tick read of it.
 */
int64
txm_tick(bool wait)
{
	const TxmCatalog *c = txm_catalog();
	TxmDbSlot  *dbslot = txm_my_slot();
	Snapshot	snap;
	PgSnapshotData *now;
	PgSnapshotData *prev;
	int64		prev_tick;
	uint64		prev_tick_xmax;
	TxmCommitOrder order;
	TickFound	found;
	const TxmInstance *inst;

	if (wait)
		LockRelationOid(c->ticks, ExclusiveLock);
	else if (!ConditionalLockRelationOid(c->ticks, ExclusiveLock))
		return -1;

	if (!take_over_first())
	{
		UnlockRelationOid(c->ticks, ExclusiveLock);
		return wait ? 0 : -1;
	}
	inst = txm_instance();

	/*
	 * Read the ring before taking the snapshot: every entry read belongs to
	 * a transaction that the snapshot sees as committed.
	 */
	txm_commit_order_read(&order, dbslot, inst->id_base);
	snap = RegisterSnapshot(GetLatestSnapshot());

	/*
	 * Not over part of a dump (a restore with -j may load the log before
	 * lineage and the ticks): a restoring backend is marked before its rows
	 * commit, so if this snapshot sees any, the restore is seen loading.
	 */
	if (txm_restore_in_progress())
	{
		UnregisterSnapshot(snap);
		txm_commit_order_end(&order);
		UnlockRelationOid(c->ticks, ExclusiveLock);
		return wait ? 0 : -1;
	}
	ticked_level = Max(ticked_level, GetCurrentTransactionNestLevel());
	tick_moves.n = 0;
	now = snapshot_64(snap, inst->id_base);
	prev = previous_snapshot(snap, now, &prev_tick, &prev_tick_xmax);

	found.cap = 256;
	found.n = 0;
	found.msgs = palloc(sizeof(TickMessage) * found.cap);
	collect_committed(snap, prev, now, &found);
	if (found.n > 0)
	{
		TimestampTz tick_at = GetCurrentTimestamp();

		order_by_commit(found.msgs, found.n, &order, inst->id_floor);
		SPI_connect();
		append_streams(found.msgs, found.n, prev_tick + 1, tick_at, snap);
		insert_tick(prev_tick + 1, now, tick_at);
		SPI_finish();
		prev_tick++;
		prev_tick_xmax = now->xmax;
		txm_count(TXM_COUNTER_DELIVERED, (uint64) found.n);
	}

	/*
	 * Adopt the new snapshot and heads, and tell receivers, when this
	 * transaction commits.  An earlier tick of this transaction moved heads
	 * from a tick that is not this one's previous tick: they go.
	 */
	forget_pending_snapshot();
	{
		HeadMoves	spare = pending.moves;

		pending.moves = tick_moves;
		tick_moves = spare;
		tick_moves.n = 0;
	}
	pending.snapshot = now;
	pending.tick_id = prev_tick;
	pending.tick_xmax = prev_tick_xmax;
	pending.level = GetCurrentTransactionNestLevel();
	txm_at_commit_ring_ticked(order.ring_upto);

	pfree(prev);
	UnregisterSnapshot(snap);
	txm_commit_order_end(&order);
	pfree(found.msgs);
	return found.n;
}

/*
 * Did this transaction tick?  It then holds the tick lock until it ends,
 * and nobody else can tick meanwhile.
 */
bool
txm_tick_lock_held(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, txm_catalog()->ticks);
	return LockHeldByMe(&tag, ExclusiveLock);
}

/*
 * Make everything committed before now into the topics (their
 * txm_topic_bit, or TXM_ALL_TOPICS) deliverable: wait for the worker's tick
 * (none if nothing is unticked there), or, with no worker serving this
 * database, tick in this transaction (unless someone else is ticking);
 * kind says how soon (TxmWaiterKind).  strict makes sure of it, for
 * tx_subscribe's 'now', which must leave out every message committed before
 * it: it waits longer for the worker (ticking here would hold the tick lock
 * until the caller commits, and stop the worker's ticks meanwhile), and
 * only when the worker does not tick for ten seconds, or without a worker,
 * waits for whoever ticks and ticks here after them.
 */
void
txm_sync_ticks(bool strict, uint64 topics, TxmWaiterKind kind)
{
	TxmDbSlot  *slot = txm_my_slot();

	/* after a tick of our own, the worker cannot tick before we commit */
	if (slot && txm_worker_running(slot) && !txm_tick_lock_held())
	{
		if (txm_wait_for_ticks(strict ? 10000 : 1000, topics, kind) || !strict)
			return;
	}
	(void) txm_tick(strict);
}
