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
 * The transactions found are put in commit order using the commit ring
 * (shmem.c); those not in the ring (after a restart or a ring overflow, or
 * COMMIT PREPARED) follow in xid order.  Each topic's messages are appended
 * to its dense position stream as slices of at most TXM_BLOCK positions that
 * never cross a block boundary, and the tick's snapshot is stored.  Ticks
 * that find nothing write nothing.
 *
 * Ticks are serialized by an ExclusiveLock on tx_message.ticks, so the
 * worker and tx_run_maintenance() can both tick.  The previous snapshot is
 * kept in memory across empty ticks, and only adopted when the transaction
 * that took it commits.
 *
 * IDENTIFICATION
 *	  src/tick.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
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

#include "tx_message.h"

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
	uint64		rank;			/* commit order */
	int64		pos;
	int32		topic_id;
	int16		slot;
} TickMessage;

typedef struct TopicHead
{
	int32		topic_id;		/* hash key */
	int64		next_seq;
	bool		exists;
} TopicHead;

typedef struct RingRank
{
	uint64		xid;			/* hash key */
	uint64		rank;
} RingRank;

/*
 * The last snapshot this process ticked at, and the durable tick it follows
 * (its id and its snapshot's xmax, to recognize it).
 */
static PgSnapshotData *mem_prev = NULL;
static int64 mem_prev_tick = -1;
static uint64 mem_prev_tick_xmax = 0;

/*
 * ... and what becomes of them when the current transaction commits.  A
 * tick made in a subtransaction that rolls back is forgotten with it.
 */
static PgSnapshotData *pending_prev = NULL;
static int64 pending_prev_tick = -1;
static uint64 pending_prev_tick_xmax = 0;
static int	pending_level = 0;

static void
forget_pending(void)
{
	if (pending_prev)
		pfree(pending_prev);
	pending_prev = NULL;
}

void
txm_tick_xact_callback(XactEvent event)
{
	if (event == XACT_EVENT_COMMIT && pending_prev != NULL)
	{
		if (mem_prev)
			pfree(mem_prev);
		mem_prev = pending_prev;
		mem_prev_tick = pending_prev_tick;
		mem_prev_tick_xmax = pending_prev_tick_xmax;
		pending_prev = NULL;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		forget_pending();
}

void
txm_tick_subxact_callback(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();

	if (pending_prev == NULL || pending_level < level)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_pending();
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		pending_level = level - 1;
}

static uint64
widen_xid(TransactionId xid, FullTransactionId next)
{
	uint32		epoch = EpochFromFullTransactionId(next);

	if (!TransactionIdIsNormal(xid))
		return (uint64) xid;
	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return U64FromFullTransactionId(FullTransactionIdFromEpochAndXid(epoch, xid));
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

/*
 * The 64-bit form of an MVCC snapshot, allocated in TopMemoryContext.
 *
 * The ticking transaction's own xid, if it has one (tx_run_maintenance()
 * called in a transaction that wrote), counts as in progress: its messages
 * are left to the first tick after it commits.  Slicing them now would either
 * miss what it sends after this tick, or slice them twice.
 */
static PgSnapshotData *
snapshot_64(Snapshot snap)
{
	FullTransactionId next = ReadNextFullTransactionId();
	FullTransactionId own = GetTopFullTransactionIdIfAny();
	PgSnapshotData *s;

	s = MemoryContextAllocZero(TopMemoryContext, PG_SNAPSHOT_SIZE(snap->xcnt + 1));
	s->xmin = widen_xid(snap->xmin, next);
	s->xmax = widen_xid(snap->xmax, next);
	s->nxip = 0;
	for (uint32 i = 0; i < snap->xcnt; i++)
		s->xip[s->nxip++] = widen_xid(snap->xip[i], next);
	if (FullTransactionIdIsValid(own) && U64FromFullTransactionId(own) < s->xmax)
	{
		s->xip[s->nxip++] = U64FromFullTransactionId(own);
		if (U64FromFullTransactionId(own) < s->xmin)
			s->xmin = U64FromFullTransactionId(own);
	}
	if (s->nxip > 1)
	{
		uint32		n = 1;

		qsort(s->xip, s->nxip, sizeof(uint64), cmp_u64);
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
	return bsearch(&xid, s->xip, s->nxip, sizeof(uint64), cmp_u64) != NULL;
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
		Datum		d;

		tick_id = DatumGetInt64(slot_getattr(ts, 1, &isnull));
		d = slot_getattr(ts, 2, &isnull);
		if (snapshot)
		{
			struct varlena *v = PG_DETOAST_DATUM(d);

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

/* Lowest xid with a message in the log, or InvalidFullTransactionId. */
static uint64
oldest_logged_xid(Snapshot snap)
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
			uint64		xid = TXM_POS_XID(DatumGetInt64(slot_getattr(ts, 1, &isnull)));

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
	if (*tick_id >= 0 && *tick_id == mem_prev_tick && mem_prev != NULL &&
		durable != NULL && durable->xmax == mem_prev_tick_xmax)
	{
		pfree(durable);
		prev = MemoryContextAlloc(TopMemoryContext, VARSIZE(mem_prev));
		memcpy(prev, mem_prev, VARSIZE(mem_prev));
		return prev;
	}
	if (durable != NULL && durable->xmax <= now->xmax)
		return durable;

	/* no usable tick: a snapshot that sees nothing from the oldest message on */
	if (durable)
		pfree(durable);
	prev = MemoryContextAllocZero(TopMemoryContext, PG_SNAPSHOT_SIZE(0));
	prev->xmax = oldest_logged_xid(snap);
	if (prev->xmax == 0 || prev->xmax > now->xmax)
		prev->xmax = now->xmin;
	prev->xmin = prev->xmax;
	SET_VARSIZE(prev, PG_SNAPSHOT_SIZE(0));
	if (*tick_id < 0)
		*tick_id = 0;
	return prev;
}

/* Collect the visible messages with pos in [lo, hi) of every log table. */
static void
scan_range(Relation *rels, Relation *idxs, Snapshot snap, TupleTableSlot **slots,
		   int64 lo, int64 hi, TickMessage **msgs, int *n, int *cap)
{
	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		IndexScanDesc scan;
		ScanKeyData keys[2];

		ScanKeyInit(&keys[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(lo));
		ScanKeyInit(&keys[1], 1, BTLessStrategyNumber, F_INT8LT, Int64GetDatum(hi));
		scan = index_beginscan(rels[i], idxs[i], snap, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slots[i]))
		{
			bool		isnull;

			if (*n >= *cap)
			{
				*cap *= 2;
				*msgs = repalloc_huge(*msgs, sizeof(TickMessage) * *cap);
			}
			(*msgs)[*n].pos = DatumGetInt64(slot_getattr(slots[i], 1, &isnull));
			(*msgs)[*n].topic_id = DatumGetInt32(slot_getattr(slots[i], 2, &isnull));
			(*msgs)[*n].slot = i;
			(*n)++;
		}
		index_endscan(scan);
	}
}

static int
cmp_tick_message(const void *a, const void *b)
{
	const TickMessage *x = a;
	const TickMessage *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/*
 * First free position of a topic's stream: the end of its last slice or,
 * once retention truncated every slice, the position it stopped at.
 */
static int64
topic_head(int32 topic_id, Snapshot snap)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->slices, AccessShareLock);
	Relation	idx = index_open(c->slices_pkey, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData key;
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	int64		head = 0;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(topic_id));
	scan = index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, ts))
	{
		bool		isnull;
		ArrayType  *positions;

		positions = DatumGetArrayTypeP(slot_getattr(ts, 5, &isnull));
		head = DatumGetInt64(slot_getattr(ts, 2, &isnull)) +
			ArrayGetNItems(ARR_NDIM(positions), ARR_DIMS(positions));
	}
	else
	{
		static const char *retired_sql =
			"SELECT retired_seq FROM tx_message.topics WHERE topic_id = $1";
		Oid			types[1] = {INT4OID};
		Datum		values[1];
		bool		isnull;

		values[0] = Int32GetDatum(topic_id);
		if (txm_spi_exec_latest(retired_sql, 1, types, values, NULL, 1) == 1)
			head = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return head;
}

static void
insert_slice(int32 topic_id, int64 first_seq, int64 tick_id, int16 slots,
			 const int64 *positions, int n)
{
	static const char *sql =
		"INSERT INTO tx_message.slices (topic_id, first_seq, tick_id, slots, positions)"
		" VALUES ($1, $2, $3, $4, $5)";
	Oid			types[5] = {INT4OID, INT8OID, INT8OID, INT2OID, INT8ARRAYOID};
	Datum		values[5];
	Datum	   *elems = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(positions[i]);
	values[0] = Int32GetDatum(topic_id);
	values[1] = Int64GetDatum(first_seq);
	values[2] = Int64GetDatum(tick_id);
	values[3] = Int16GetDatum(slots);
	values[4] = PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	txm_spi_exec(sql, 5, types, values, NULL, 0);
	pfree(elems);
}

/*
 * Append a topic's messages (already in commit order) to its stream.
 * Slices end at block boundaries so that a claim block is made of whole
 * slices.
 */
static void
append_to_stream(int32 topic_id, int64 *head, int64 tick_id,
				 TickMessage *msgs, int n)
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
		insert_slice(topic_id, first, tick_id, slots, positions, take);
		*head += take;
		i += take;
	}
	pfree(positions);
}

static void
insert_tick(int64 tick_id, PgSnapshotData *snapshot)
{
	static const char *sql =
		"INSERT INTO tx_message.ticks (tick_id, snapshot, created_at) VALUES ($1, $2, now())";
	Oid			types[2] = {INT8OID, PG_SNAPSHOTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(tick_id);
	values[1] = PointerGetDatum(snapshot);
	txm_spi_exec(sql, 2, types, values, NULL, 0);
}

/* xid -> commit rank, from the ring entries not yet ticked */
static HTAB *
ring_ranks(TxmDbSlot *dbslot, uint64 *ring_head)
{
	HTAB	   *ranks;
	HASHCTL		ctl;
	uint64	   *entries;
	uint64		first;
	uint64		from;
	int			n;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(RingRank);
	ctl.hcxt = CurrentMemoryContext;
	ranks = hash_create("tx_message commit ranks", 256, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	*ring_head = 0;
	if (dbslot == NULL)
		return ranks;

	SpinLockAcquire(&dbslot->mutex);
	from = dbslot->ring_ticked;
	SpinLockRelease(&dbslot->mutex);
	entries = palloc(sizeof(uint64) * TXM_RING_SIZE);
	*ring_head = txm_ring_read(dbslot, from, entries, &n, &first);
	for (int i = 0; i < n; i++)
	{
		bool		found;
		RingRank   *r;

		if (entries[i] == 0)
			continue;
		r = hash_search(ranks, &entries[i], HASH_ENTER, &found);
		if (!found)
			r->rank = first + i;
	}
	pfree(entries);
	return ranks;
}

/*
 * Run one tick in the current transaction.  Returns the number of messages
 * made deliverable, or -1 if wait is false and another tick is running.
 * *ring_upto receives the ring position that is covered once the current
 * transaction commits.
 */
int64
txm_tick(bool wait, uint64 *ring_upto)
{
	const TxmCatalog *c = txm_catalog();
	TxmDbSlot  *dbslot = txm_my_slot();
	Snapshot	snap;
	PgSnapshotData *now;
	PgSnapshotData *prev;
	int64		prev_tick;
	uint64		prev_tick_xmax;
	HTAB	   *ranks;
	Relation	rels[TXM_LOG_SLOTS];
	Relation	idxs[TXM_LOG_SLOTS];
	TupleTableSlot *slots[TXM_LOG_SLOTS];
	TickMessage *msgs;
	int			nmsgs = 0;
	int			cap = 256;
	int			total;
	uint64		lo;

	if (wait)
		LockRelationOid(c->ticks, ExclusiveLock);
	else if (!ConditionalLockRelationOid(c->ticks, ExclusiveLock))
		return -1;

	/*
	 * Read the ring before taking the snapshot: every entry read belongs to
	 * a transaction that the snapshot sees as committed.
	 */
	ranks = ring_ranks(dbslot, ring_upto);
	snap = RegisterSnapshot(GetLatestSnapshot());
	now = snapshot_64(snap);
	prev = previous_snapshot(snap, now, &prev_tick, &prev_tick_xmax);

	msgs = palloc(sizeof(TickMessage) * cap);
	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		rels[i] = table_open(c->log[i], AccessShareLock);
		idxs[i] = index_open(c->log_pos[i], AccessShareLock);
		slots[i] = table_slot_create(rels[i], NULL);
	}

	/* transactions in progress at the previous tick that have finished */
	for (uint32 i = 0; i < prev->nxip; i++)
	{
		uint64		xid = prev->xip[i];

		if (in_xip(now, xid) || xid >= now->xmax)
			continue;
		scan_range(rels, idxs, snap, slots, (int64) (xid << TXM_POS_SHIFT),
				   (int64) ((xid + 1) << TXM_POS_SHIFT), &msgs, &nmsgs, &cap);
	}
	/* xids started since, split around those still in progress */
	lo = prev->xmax;
	for (uint32 i = 0; i <= now->nxip; i++)
	{
		uint64		hi = (i < now->nxip) ? now->xip[i] : now->xmax;

		if (hi < lo)
			continue;
		if (hi > lo)
			scan_range(rels, idxs, snap, slots, (int64) (lo << TXM_POS_SHIFT),
					   (int64) (hi << TXM_POS_SHIFT), &msgs, &nmsgs, &cap);
		lo = hi + 1;
	}

	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		ExecDropSingleTupleTableSlot(slots[i]);
		index_close(idxs[i], AccessShareLock);
		table_close(rels[i], AccessShareLock);
	}

	total = nmsgs;
	if (nmsgs > 0)
	{
		HASHCTL		ctl;
		HTAB	   *heads;
		int64		tick_id = prev_tick + 1;
		int			start;

		/* commit order: ringed transactions first, in ring order */
		for (int i = 0; i < nmsgs; i++)
		{
			uint64		xid = TXM_POS_XID(msgs[i].pos);
			RingRank   *r = hash_search(ranks, &xid, HASH_FIND, NULL);

			msgs[i].rank = r ? r->rank : (UINT64CONST(1) << 62) + xid;
		}
		qsort(msgs, nmsgs, sizeof(TickMessage), cmp_tick_message);

		/* append each topic's messages, stable in commit order */
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(TopicHead);
		ctl.hcxt = CurrentMemoryContext;
		heads = hash_create("tx_message topic heads", 16, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		SPI_connect();
		start = 0;
		while (start < nmsgs)
		{
			int32		topic_id = msgs[start].topic_id;
			int			end = start;
			int			n = 0;
			TickMessage *run;
			TopicHead  *h;
			bool		found;

			/* gather this topic's messages from here on */
			run = palloc(sizeof(TickMessage) * (nmsgs - start));
			for (int i = start; i < nmsgs; i++)
				if (msgs[i].topic_id == topic_id)
					run[n++] = msgs[i];
			h = hash_search(heads, &topic_id, HASH_ENTER, &found);
			if (!found)
			{
				h->exists = txm_topic_name(topic_id) != NULL;
				h->next_seq = h->exists ? topic_head(topic_id, snap) : 0;
			}
			/* messages of a dropped topic are simply never delivered */
			if (h->exists)
				append_to_stream(topic_id, &h->next_seq, tick_id, run, n);
			pfree(run);
			/* drop the handled topic from the rest of the array */
			for (int i = start; i < nmsgs; i++)
				if (msgs[i].topic_id != topic_id)
					msgs[end++] = msgs[i];
			nmsgs = end;
		}
		insert_tick(tick_id, now);
		SPI_finish();
		prev_tick = tick_id;
		prev_tick_xmax = now->xmax;
		if (dbslot)
			txm_count(&dbslot->delivered, (uint64) total);
	}

	/* adopt the new snapshot when this transaction commits */
	forget_pending();
	pending_prev = now;
	pending_prev_tick = prev_tick;
	pending_prev_tick_xmax = prev_tick_xmax;
	pending_level = GetCurrentTransactionNestLevel();
	pfree(prev);
	UnregisterSnapshot(snap);
	hash_destroy(ranks);
	pfree(msgs);
	return total;
}
