/*-------------------------------------------------------------------------
 *
 * consume.c
 *	  Consumers: tx_receive, tx_ack, tx_nack, tx_extend_lease, and the
 *	  per-subscription housekeeping (lease expiry, watermarks).
 *
 * Each topic has a dense, commit-ordered position stream (tick.c); a
 * subscription consumes it in blocks of TXM_BLOCK positions.  To claim, a
 * receiver takes a transaction-scoped lock on (subscription, block) without
 * waiting -- a busy block is being claimed by another receiver, so it moves
 * on -- reads the block's lease rows with a fresh snapshot, takes the first
 * free positions and records them in ONE lease row: a bitmap of the
 * positions it covers, a bitmap of those done, and a deadline.  Competing
 * consumers therefore never share a row and never wait for each other, and
 * the success path costs one insert (receive) and one HOT update (ack) per
 * batch; message rows are only read.  A receive that rolls back leaves no
 * lease, so its positions are simply free again.
 *
 * Anything that fails is handled per message: a nack, an expired lease or a
 * redrive puts a self-contained copy of the message in tx_message.retries,
 * which also serves as the lease of its redelivery.  Attempt number
 * max_retries + 1 failing moves it to tx_message.dead_letters.
 *
 * Ordered subscriptions take one more lock, on the subscription, so their
 * claims are serialized; a message is taken only if no message with its key
 * is pending in a lease or in retries.  A blocked message stays free, ahead
 * of the later messages of its key.
 *
 * Receivers start scanning at a hint kept in shared memory (the lowest
 * position that may be free) and fall back to the watermark; neither is
 * needed for correctness, only for speed: correctness comes from the locks
 * and the lease rows.
 *
 * IDENTIFICATION
 *	  src/consume.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_bitutils.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varbit.h"

#include "tx_message.h"

PG_FUNCTION_INFO_V1(tx_receive);
PG_FUNCTION_INFO_V1(tx_ack);
PG_FUNCTION_INFO_V1(tx_ack_one);
PG_FUNCTION_INFO_V1(tx_nack);
PG_FUNCTION_INFO_V1(tx_extend_lease);

#define TXM_MAX_RECEIVE		100000
#define TXM_ORDERED_LOCK	UINT64CONST(0xFFFFFFFF)
#define TXM_LOCK_FIELD4		0x7478	/* "tx": keeps our locks apart from user advisory locks */
#define SESSION_CACHE_MAX	200000

/* A block's positions as a bitmap: bit i is position block * TXM_BLOCK + i. */
typedef struct BlockBits
{
	uint8		b[TXM_BLOCK / 8];
} BlockBits;

static inline bool
bit_get(const BlockBits *m, int off)
{
	return (m->b[off >> 3] & (0x80 >> (off & 7))) != 0;
}

static inline void
bit_set(BlockBits *m, int off)
{
	m->b[off >> 3] |= (0x80 >> (off & 7));
}

static bool
bits_empty(const BlockBits *m)
{
	for (int i = 0; i < TXM_BLOCK / 8; i++)
		if (m->b[i])
			return false;
	return true;
}

static Datum
bits_datum(const BlockBits *m)
{
	VarBit	   *v = palloc0(VARBITTOTALLEN(TXM_BLOCK));

	SET_VARSIZE(v, VARBITTOTALLEN(TXM_BLOCK));
	VARBITLEN(v) = TXM_BLOCK;
	memcpy(VARBITS(v), m->b, sizeof(m->b));
	return VarBitPGetDatum(v);
}

static void
bits_from_datum(Datum d, BlockBits *m)
{
	VarBit	   *v = DatumGetVarBitP(d);

	memset(m, 0, sizeof(BlockBits));
	memcpy(m->b, VARBITS(v), Min(VARBITBYTES(v), (int) sizeof(m->b)));
}

/* The slices of one block of a topic's stream. */
typedef struct BlockSlices
{
	BlockBits	avail;			/* positions that exist */
	int64		pos[TXM_BLOCK];
	int16		slots;			/* log tables holding them */
	bool		full;			/* all TXM_BLOCK positions exist */
} BlockSlices;

typedef struct LeaseRow
{
	int16		first_off;
	BlockBits	covered;
	BlockBits	done;
	TimestampTz lease_until;
	Datum	   *keys;			/* ordered subscriptions: key per offset, or NULL */
	bool	   *key_nulls;
} LeaseRow;

/* Where this session last received a message: lets tx_ack find it fast, and tell old deliveries from new ones. */
typedef struct SessionKey
{
	int64		msg_id;
	int32		sub_id;
} SessionKey;

typedef struct SessionEntry
{
	SessionKey	key;
	bool		from_retry;
	int64		block;
	int16		first_off;
	int16		off;
	int32		attempt;
} SessionEntry;

static HTAB *session_deliveries = NULL;

/* deliveries remembered by the current transaction, with their nesting level */
typedef struct XactDelivery
{
	SessionKey	key;
	int			nest_level;
} XactDelivery;

static List *xact_deliveries = NIL;
static void session_forget(int32 sub_id, int64 msg_id);
static void registry_release(int min_level);
static void registry_promote(int level);

/* claims of the current transaction, to lower hints again if it aborts */
typedef struct XactClaim
{
	int32		sub_id;
	int64		seq;
	int			nest_level;
} XactClaim;

static List *xact_claims = NIL;
static bool broadcast_at_commit = false;
static bool maintenance_at_commit = false;

/*
 * A transaction that wrote nothing but what tx_receive() writes (leases,
 * expired leases moved to retries, the watermark) commits asynchronously:
 * if a crash loses it, its messages are simply delivered again, as after an
 * expired lease.  receive_wal_end is the end of WAL when the last receive
 * returned; any other write moves it, and the commit is synchronous again.
 */
static bool receive_only = false;
static XLogRecPtr receive_wal_end = InvalidXLogRecPtr;
static TimestampTz last_expiry_scan = 0;

/*----------
 * Hints in shared memory
 *----------
 */

static TxmHint *
hint_for(TxmDbSlot *slot, int32 sub_id, bool create)
{
	int			start = (int) ((uint32) sub_id % TXM_HINTS);

	for (int i = 0; i < TXM_HINTS; i++)
	{
		TxmHint    *h = &slot->hints[(start + i) % TXM_HINTS];

		if (h->sub_id == sub_id)
			return h;
		if (h->sub_id == 0)
		{
			if (!create)
				return NULL;
			h->sub_id = sub_id;
			h->claim_from = 0;
			h->next_expiry = 0;
			h->retry_due = 0;
			h->retry_version = 0;
			return h;
		}
	}
	return NULL;
}

static int64
hint_claim_from(int32 sub_id)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;
	int64		seq = 0;

	if (slot == NULL)
		return 0;
	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, false);
	if (h)
		seq = h->claim_from;
	SpinLockRelease(&slot->mutex);
	return seq;
}

/*
 * A claimer read the hint as hint_read and found every position from there
 * (or from the watermark, if higher) up to next_free claimed.  Move the hint
 * to next_free, unless it was lowered meanwhile: a receive that aborted
 * lowers it to the positions it gave back.
 */
static void
hint_after_claim(int32 sub_id, int64 hint_read, int64 next_free)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, true);
	if (h && h->claim_from >= hint_read && h->claim_from < next_free)
		h->claim_from = next_free;
	SpinLockRelease(&slot->mutex);
}

static void
hint_lower(TxmDbSlot *slot, int32 sub_id, int64 seq)
{
	TxmHint    *h;

	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, false);
	if (h && h->claim_from > seq)
		h->claim_from = seq;
	SpinLockRelease(&slot->mutex);
}

static void
hint_expiry_min(int32 sub_id, TimestampTz t)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, true);
	if (h && (h->next_expiry == 0 || t < h->next_expiry))
		h->next_expiry = t;
	SpinLockRelease(&slot->mutex);
}

static void
hint_expiry_set(int32 sub_id, TimestampTz t)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, true);
	if (h)
		h->next_expiry = t;
	SpinLockRelease(&slot->mutex);
}

/*
 * May a lease of this subscription have expired?  Without shared memory
 * there are no hints: look at most ten times a second per backend.
 */
static bool
expiry_possible(int32 sub_id, TimestampTz now, bool local_turn)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;
	bool		possible = true;

	if (slot == NULL)
		return local_turn;
	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, false);
	if (h && h->next_expiry != 0 && h->next_expiry > now)
		possible = false;
	if (h && h->next_expiry == 0)
		possible = true;
	SpinLockRelease(&slot->mutex);
	return possible;
}

/*
 * Retries: a receive skips the look-up in tx_message.retries while the hint
 * says none is due yet.  Every statement that inserts or updates retries
 * (trigger retries_written) makes the transaction reset all hints of the
 * database to "look now" when it commits -- not before, or a reader could
 * set the hint again without seeing the row -- and bump retry_version, so
 * that a reader that computed the next due time meanwhile throws its result
 * away.  Retries are the rare path; the common one stays free of look-ups.
 */
static bool retries_written = false;

static void
hint_retry_reset(TxmDbSlot *slot)
{
	SpinLockAcquire(&slot->mutex);
	for (int i = 0; i < TXM_HINTS; i++)
	{
		TxmHint    *h = &slot->hints[i];

		if (h->sub_id == 0)
			continue;
		h->retry_due = 0;
		h->retry_version++;
	}
	SpinLockRelease(&slot->mutex);
}

/* tx_message._retries_written(): statement trigger on tx_message.retries */
PG_FUNCTION_INFO_V1(tx_message_retries_written);
Datum
tx_message_retries_written(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tx_message._retries_written() must be called as a trigger")));
	retries_written = true;
	return PointerGetDatum(NULL);
}

/*
 * May a retry of one of the pulled subscriptions be due?  Records the hint
 * versions for hint_retry_set().
 */
static bool
retries_possible(const TxmSub *subs, int nsubs, const bool *pull, TimestampTz now,
				 uint32 *versions)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		possible = false;

	/* this transaction wrote retries (expired leases, say): the hints do not know yet */
	if (slot == NULL || retries_written)
		return true;
	SpinLockAcquire(&slot->mutex);
	for (int i = 0; i < nsubs; i++)
	{
		TxmHint    *h;

		if (!pull[i])
			continue;
		h = hint_for(slot, subs[i].sub_id, true);
		versions[i] = h ? h->retry_version : 0;
		if (h == NULL || h->retry_due == 0 || h->retry_due <= now)
			possible = true;
	}
	SpinLockRelease(&slot->mutex);
	return possible;
}

static void
hint_retry_set(int32 sub_id, uint32 version, TimestampTz due)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;

	/*
	 * Look again within a second regardless: a retry written by a prepared
	 * transaction resets no hint when COMMIT PREPARED runs elsewhere.
	 */
	due = Min(due, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000));
	SpinLockAcquire(&slot->mutex);
	h = hint_for(slot, sub_id, false);
	if (h && h->retry_version == version)
		h->retry_due = due;
	SpinLockRelease(&slot->mutex);
}

/*----------
 * Transaction callbacks
 *----------
 */

void
txm_broadcast_at_commit(void)
{
	broadcast_at_commit = true;
}

void
txm_request_maintenance_at_commit(void)
{
	maintenance_at_commit = true;
}

void
txm_consume_xact_callback(XactEvent event)
{
	TxmDbSlot  *slot;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (xact_claims != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has received messages"),
						 errhint("Receive and acknowledge messages outside prepared transactions.")));
			break;
		case XACT_EVENT_PRE_COMMIT:
			if (receive_only && XactLastRecEnd == receive_wal_end)
				(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_LOCAL, true, 0, false);
			break;
		case XACT_EVENT_COMMIT:
			/* our leases are visible now: withdraw the claims that stood for them */
			registry_release(0);
			slot = txm_my_slot();
			if (slot && broadcast_at_commit)
				ConditionVariableBroadcast(&slot->cv);
			if (slot && maintenance_at_commit)
				txm_request_maintenance();
			if (slot && retries_written)
				hint_retry_reset(slot);
			break;
		case XACT_EVENT_ABORT:
			/* the leases of this transaction vanished: their positions are free again */
			registry_release(0);
			{
				ListCell   *lc;

				foreach(lc, xact_deliveries)
				{
					XactDelivery *xd = lfirst(lc);

					session_forget(xd->key.sub_id, xd->key.msg_id);
				}
			}
			slot = txm_my_slot();
			if (slot && xact_claims != NIL)
			{
				ListCell   *lc;

				foreach(lc, xact_claims)
				{
					XactClaim  *c = lfirst(lc);

					hint_lower(slot, c->sub_id, c->seq);
				}
				ConditionVariableBroadcast(&slot->cv);
			}
			break;
		default:
			break;
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		list_free_deep(xact_claims);
		xact_claims = NIL;
		list_free_deep(xact_deliveries);
		xact_deliveries = NIL;
		broadcast_at_commit = false;
		maintenance_at_commit = false;
		retries_written = false;
		receive_only = false;
	}
}

void
txm_consume_subxact_callback(SubXactEvent event)
{
	TxmDbSlot  *slot;
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;
	bool		any = false;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* what the subtransaction did now belongs to its parent */
		registry_promote(level);
		foreach(lc, xact_claims)
		{
			XactClaim  *c = lfirst(lc);

			if (c->nest_level >= level)
				c->nest_level = level - 1;
		}
		foreach(lc, xact_deliveries)
		{
			XactDelivery *xd = lfirst(lc);

			if (xd->nest_level >= level)
				xd->nest_level = level - 1;
		}
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	registry_release(level);
	foreach(lc, xact_deliveries)
	{
		XactDelivery *xd = lfirst(lc);

		if (xd->nest_level >= level)
			session_forget(xd->key.sub_id, xd->key.msg_id);
	}
	if (xact_claims == NIL)
		return;
	slot = txm_my_slot();
	foreach(lc, xact_claims)
	{
		XactClaim  *c = lfirst(lc);

		if (c->nest_level >= level)
		{
			if (slot)
				hint_lower(slot, c->sub_id, c->seq);
			any = true;
		}
	}
	if (slot && any)
		ConditionVariableBroadcast(&slot->cv);
}

static void
remember_claim(int32 sub_id, int64 seq)
{
	/* freed by the transaction callbacks, which run outside any transaction memory */
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	XactClaim  *c = palloc(sizeof(XactClaim));

	c->sub_id = sub_id;
	c->seq = seq;
	c->nest_level = GetCurrentTransactionNestLevel();
	xact_claims = lappend(xact_claims, c);
	MemoryContextSwitchTo(old);
}

/*----------
 * Reading slices, leases and messages
 *----------
 */

static bool
read_block_slices(int32 topic_id, int64 block, Snapshot snap, BlockSlices *bs)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->slices, AccessShareLock);
	Relation	idx = index_open(c->slices_pkey, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData keys[3];
	TupleTableSlot *ts = table_slot_create(rel, NULL);
	int64		start = block * TXM_BLOCK;
	int			navail = 0;

	memset(&bs->avail, 0, sizeof(BlockBits));
	bs->slots = 0;
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(topic_id));
	ScanKeyInit(&keys[1], 2, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(start));
	ScanKeyInit(&keys[2], 2, BTLessStrategyNumber, F_INT8LT, Int64GetDatum(start + TXM_BLOCK));
	scan = index_beginscan(rel, idx, snap, 3, 0);
	index_rescan(scan, keys, 3, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, ts))
	{
		bool		isnull;
		int64		first = DatumGetInt64(slot_getattr(ts, 2, &isnull));
		ArrayType  *positions = DatumGetArrayTypeP(slot_getattr(ts, 5, &isnull));
		int			n = ArrayGetNItems(ARR_NDIM(positions), ARR_DIMS(positions));
		int64	   *data = (int64 *) ARR_DATA_PTR(positions);

		bs->slots |= DatumGetInt16(slot_getattr(ts, 4, &isnull));
		for (int i = 0; i < n; i++)
		{
			int			off = (int) (first - start) + i;

			if (off < 0 || off >= TXM_BLOCK)
				continue;
			bs->pos[off] = data[i];
			bit_set(&bs->avail, off);
			navail++;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	bs->full = bit_get(&bs->avail, TXM_BLOCK - 1);
	return navail > 0;
}

/*
 * The relations a claim reads, opened once per call before any LWLock is
 * taken: with them open, the claim's critical section never waits for a
 * heavyweight lock.  The locks are kept to the end of the transaction.
 */
typedef struct ClaimRels
{
	Relation	leases;
	Relation	leases_idx;
	Relation	state;
	Relation	state_idx;
} ClaimRels;

static void
claim_rels_open(ClaimRels *r)
{
	const TxmCatalog *c = txm_catalog();

	r->leases = table_open(c->leases, AccessShareLock);
	r->leases_idx = index_open(c->leases_pkey, AccessShareLock);
	r->state = table_open(c->sub_state, AccessShareLock);
	r->state_idx = index_open(c->sub_state_pkey, AccessShareLock);
}

static void
claim_rels_close(ClaimRels *r)
{
	index_close(r->state_idx, NoLock);
	table_close(r->state, NoLock);
	index_close(r->leases_idx, NoLock);
	table_close(r->leases, NoLock);
}

static int
read_block_leases(const ClaimRels *r, int32 sub_id, int64 block, Snapshot snap, LeaseRow **rows)
{
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *ts = table_slot_create(r->leases, NULL);
	int			n = 0;
	int			cap = 4;

	*rows = palloc(sizeof(LeaseRow) * cap);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(sub_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(block));
	scan = index_beginscan(r->leases, r->leases_idx, snap, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, ts))
	{
		bool		isnull;
		Datum		keysd;
		LeaseRow   *row;

		if (n >= cap)
		{
			cap *= 2;
			*rows = repalloc(*rows, sizeof(LeaseRow) * cap);
		}
		row = &(*rows)[n++];
		row->first_off = DatumGetInt16(slot_getattr(ts, 3, &isnull));
		bits_from_datum(slot_getattr(ts, 4, &isnull), &row->covered);
		bits_from_datum(slot_getattr(ts, 5, &isnull), &row->done);
		row->lease_until = DatumGetTimestampTz(slot_getattr(ts, 7, &isnull));
		keysd = slot_getattr(ts, 6, &isnull);
		row->keys = NULL;
		row->key_nulls = NULL;
		if (!isnull)
		{
			int			nk;

			deconstruct_array(DatumGetArrayTypePCopy(keysd), TEXTOID, -1, false,
							  TYPALIGN_INT, &row->keys, &row->key_nulls, &nk);
			if (nk < TXM_BLOCK)
				row->keys = NULL;
		}
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
static int64
read_done_seq(const ClaimRels *r, int32 sub_id, Snapshot snap)
{
	IndexScanDesc scan;
	ScanKeyData key;
	TupleTableSlot *ts = table_slot_create(r->state, NULL);
	int64		seq = 0;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(sub_id));
	scan = index_beginscan(r->state, r->state_idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, ts))
	{
		bool		isnull;

		seq = DatumGetInt64(slot_getattr(ts, 2, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
	return seq;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * Read the log rows at the given positions (from the log tables in the
 * slots mask) into msgs, which come in the caller's order.  Rows that are
 * gone (truncated by retention) are left !found.
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

		ScanKeyInit(&keys[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(sorted[next]));
		ScanKeyInit(&keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(sorted[n - 1]));
		index_rescan(scan, keys, 2, NULL, 0);
		while (!reseek && (tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			int64		pos = DatumGetInt64(index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull));
			TxmMsg	   *m;
			HeapTuple	tup;
			Datum		values[9];
			bool		nulls[9];

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
			tup = ExecCopySlotHeapTuple(ts);
			heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
			m->found = true;
			m->topic_id = DatumGetInt32(values[1]);
			m->sent_at = DatumGetTimestampTz(values[2]);
			m->msg_id = nulls[3] ? pos : DatumGetInt64(values[3]);
			for (int k = 0; k < 4; k++)
			{
				m->cols[k] = values[5 + k];
				m->isnull[k] = nulls[5 + k];
			}
		}
		if (!reseek)
			break;				/* the range is exhausted */
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(ts);
}

static void
fetch_messages(TxmMsg *msgs, int n, int16 slots, Snapshot snap)
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

static bool
tags_match(const TxmSub *sub, const TxmMsg *m)
{
	ArrayType  *tags;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (sub->ntags < 0)
		return true;
	if (m->isnull[1])
		return false;
	tags = DatumGetArrayTypeP(m->cols[1]);
	deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *tag;

		if (nulls[i])
			continue;
		tag = TextDatumGetCString(elems[i]);
		for (int j = 0; j < sub->ntags; j++)
			if (strcmp(tag, sub->tags[j]) == 0)
				return true;
	}
	return false;
}

/*
 * Lock (subscription, block) for this transaction, without waiting.
 * Claimers that publish their claims in shared memory take it in share mode,
 * claimers without shared memory (the library not preloaded in their
 * process, or no slot yet) exclusively: so the two kinds never claim in the
 * same block at once.
 */
static bool
try_lock(int32 sub_id, uint64 block, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) sub_id, (uint32) block, TXM_LOCK_FIELD4);
	return LockAcquire(&tag, mode, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
session_remember(const TxmSub *sub, const TxmDelivery *d)
{
	SessionKey	key;
	SessionEntry *e;
	bool		found;

	if (session_deliveries == NULL || hash_get_num_entries(session_deliveries) > SESSION_CACHE_MAX)
	{
		HASHCTL		ctl;

		if (session_deliveries)
			hash_destroy(session_deliveries);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(SessionKey);
		ctl.entrysize = sizeof(SessionEntry);
		ctl.hcxt = TopMemoryContext;
		session_deliveries = hash_create("tx_message deliveries", 1024, &ctl,
										 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.msg_id = d->msg.msg_id;
	key.sub_id = sub->sub_id;
	e = hash_search(session_deliveries, &key, HASH_ENTER, &found);
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		XactDelivery *xd = palloc(sizeof(XactDelivery));

		xd->key = key;
		xd->nest_level = GetCurrentTransactionNestLevel();
		xact_deliveries = lappend(xact_deliveries, xd);
		MemoryContextSwitchTo(old);
	}
	e->from_retry = d->from_retry;
	e->block = d->block;
	e->first_off = d->first_off;
	e->off = d->off;
	e->attempt = d->attempt;
}

static SessionEntry *
session_lookup(int32 sub_id, int64 msg_id)
{
	SessionKey	key;

	if (session_deliveries == NULL)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.msg_id = msg_id;
	key.sub_id = sub_id;
	return hash_search(session_deliveries, &key, HASH_FIND, NULL);
}

static void
session_forget(int32 sub_id, int64 msg_id)
{
	SessionKey	key;

	if (session_deliveries == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.msg_id = msg_id;
	key.sub_id = sub_id;
	hash_search(session_deliveries, &key, HASH_REMOVE, NULL);
}

/*----------
 * Claims
 *----------
 */

/* Columns of tx_message.leases */
#define LEASE_NATTS 9
#define Anum_lease_covered 4
#define Anum_lease_done 5

static void
insert_lease(int32 sub_id, int64 block, int16 first_off, const BlockBits *covered,
			 const BlockBits *done, Datum keys, bool keys_null, TimestampTz lease_until)
{
	Relation	rel = table_open(txm_catalog()->leases, RowExclusiveLock);
	Datum		values[LEASE_NATTS];
	bool		nulls[LEASE_NATTS];

	Assert(RelationGetDescr(rel)->natts == LEASE_NATTS);
	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(sub_id);
	values[1] = Int64GetDatum(block);
	values[2] = Int16GetDatum(first_off);
	values[3] = bits_datum(covered);
	values[4] = bits_datum(done);
	values[5] = keys;
	nulls[5] = keys_null;
	values[6] = TimestampTzGetDatum(lease_until);
	values[7] = TimestampTzGetDatum(GetCurrentTimestamp());	/* leased_at */
	values[8] = Int32GetDatum(MyProcPid);	/* holder */
	txm_insert_row(rel, values, nulls);
	table_close(rel, NoLock);
	/* make the lease visible to the fresh snapshots of this same call */
	CommandCounterIncrement();
}

static void
add_delivery(List **out, int sub_index, const TxmMsg *m, int32 attempt,
			 TimestampTz lease_until, bool from_retry, int64 block, int16 off)
{
	TxmDelivery   *d = palloc0(sizeof(TxmDelivery));

	d->sub_index = sub_index;
	d->msg = *m;
	d->attempt = attempt;
	d->lease_until = lease_until;
	d->from_retry = from_retry;
	d->block = block;
	d->off = off;
	*out = lappend(*out, d);
}

/*
 * The registry of open claims (shared memory): a claim's lease row is
 * invisible to other transactions until it commits, so the claim is also
 * published here, under the slot's claim lock, until its transaction ends.
 * A claimer reads the registry first and takes its snapshot second, both
 * under that lock; an entry is removed only after its transaction's commit
 * became visible.  So every claim is seen either in the registry or as a
 * committed lease.
 */
typedef struct OwnClaim
{
	TxmDbSlot  *slot;
	int			index;
	int			nest_level;
} OwnClaim;

static List *own_claims = NIL;

/* Positions of a block claimed by open transactions.  Caller holds the claim lock. */
static void
registry_taken(TxmDbSlot *slot, int32 sub_id, int64 block, BlockBits *taken)
{
	TxmClaim   *claims = txm_slot_claims(slot);

	for (int i = 0; i < txm_shared->claims_per_slot; i++)
	{
		if (claims[i].sub_id != sub_id || claims[i].block != block)
			continue;
		for (int k = 0; k < TXM_BLOCK / 8; k++)
			taken->b[k] |= claims[i].covered[k];
	}
}

/* Publish a claim.  Caller holds the claim lock.  False if the registry is full. */
static bool
registry_add(TxmDbSlot *slot, int32 sub_id, int64 block, const BlockBits *covered)
{
	TxmClaim   *claims = txm_slot_claims(slot);

	for (int i = 0; i < txm_shared->claims_per_slot; i++)
	{
		MemoryContext old;
		OwnClaim   *own;

		if (claims[i].sub_id != 0)
			continue;
		claims[i].sub_id = sub_id;
		claims[i].block = block;
		claims[i].pgprocno = MyProc->pgprocno;
		memcpy(claims[i].covered, covered->b, sizeof(covered->b));
		old = MemoryContextSwitchTo(TopMemoryContext);
		own = palloc(sizeof(OwnClaim));
		own->slot = slot;
		own->index = i;
		own->nest_level = GetCurrentTransactionNestLevel();
		own_claims = lappend(own_claims, own);
		MemoryContextSwitchTo(old);
		return true;
	}
	return false;
}

/*
 * Withdraw this backend's claims made at nesting level min_level or deeper.
 * Runs in transaction callbacks, so it allocates nothing.
 */
static void
registry_release(int min_level)
{
	ListCell   *lc;

	foreach(lc, own_claims)
	{
		OwnClaim   *own = lfirst(lc);

		if (own->nest_level < min_level)
			continue;
		LWLockAcquire(txm_claim_lock(own->slot), LW_EXCLUSIVE);
		txm_slot_claims(own->slot)[own->index].sub_id = 0;
		LWLockRelease(txm_claim_lock(own->slot));
		pfree(own);
		own_claims = foreach_delete_current(own_claims, lc);
	}
}

/* A subtransaction committed: its claims now belong to its parent. */
static void
registry_promote(int level)
{
	ListCell   *lc;

	foreach(lc, own_claims)
	{
		OwnClaim   *own = lfirst(lc);

		if (own->nest_level >= level)
			own->nest_level = level - 1;
	}
}

/* free = avail minus what leases cover minus what lies below done_seq */
static void
free_positions(const BlockSlices *bs, const LeaseRow *rows, int nrows,
			   const BlockBits *inflight, int64 block_start, int64 done_seq,
			   BlockBits *free_bits)
{
	*free_bits = bs->avail;
	for (int off = 0; off < TXM_BLOCK; off++)
	{
		bool		taken = block_start + off < done_seq ||
			(inflight && bit_get(inflight, off));

		for (int r = 0; r < nrows && !taken; r++)
			taken = bit_get(&rows[r].covered, off);
		if (taken)
			free_bits->b[off >> 3] &= ~(0x80 >> (off & 7));
	}
}

/*
 * Claim up to need messages of one (unordered) subscription from its
 * stream.  Returns how many were delivered.
 *
 * For each block: find the free positions and read their messages (and
 * match tags) without holding anything; then decide, cover positions in
 * order up to need wanted messages, publish the claim, and insert its lease
 * row.  Deciding happens under the slot's claim lock, after reading the
 * open claims and then taking the snapshot that the watermark and the
 * leases are read with; or, without shared memory, under an exclusive
 * transaction-scoped lock on the block.
 */
static int
claim_stream(const TxmSub *sub, int sub_index, int need, TimestampTz lease_until,
			 List **out)
{
	TxmDbSlot  *slot = txm_my_slot();
	ClaimRels	rels;
	Snapshot	snap;
	int64		hint_read = hint_claim_from(sub->sub_id);
	int64		done_seq;
	int64		block;
	int			got = 0;
	int			retries_left = 8;

	claim_rels_open(&rels);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = read_done_seq(&rels, sub->sub_id, snap);
	UnregisterSnapshot(snap);
	block = Max(done_seq, hint_read) / TXM_BLOCK;

	while (got < need)
	{
		BlockSlices bs;
		LeaseRow   *rows;
		int			nrows;
		BlockBits	inflight;
		BlockBits	free_bits;
		BlockBits	covered;
		BlockBits	done;
		TxmMsg	   *msgs;
		bool	   *wanted;
		int		   *offs;
		int			nmsgs = 0;
		int			first_off = -1;
		int			next_free = -1;
		int			delivered_before = list_length(*out);
		int64		block_start = block * TXM_BLOCK;
		bool		registered = true;

		CHECK_FOR_INTERRUPTS();

		/* a first look, without any lock */
		memset(&inflight, 0, sizeof(inflight));
		if (slot)
		{
			LWLockAcquire(txm_claim_lock(slot), LW_SHARED);
			registry_taken(slot, sub->sub_id, block, &inflight);
			LWLockRelease(txm_claim_lock(slot));
		}
		snap = RegisterSnapshot(GetLatestSnapshot());
		if (!read_block_slices(sub->topic_id, block, snap, &bs))
		{
			UnregisterSnapshot(snap);
			break;
		}
		done_seq = read_done_seq(&rels, sub->sub_id, snap);
		nrows = read_block_leases(&rels, sub->sub_id, block, snap, &rows);
		free_positions(&bs, rows, nrows, &inflight, block_start, done_seq, &free_bits);
		if (bits_empty(&free_bits))
		{
			UnregisterSnapshot(snap);
			if (!bs.full)
				break;
			hint_after_claim(sub->sub_id, hint_read, block_start + TXM_BLOCK);
			block++;
			continue;
		}

		/* read the candidates and match their tags; a tag filter needs them all */
		msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
		offs = palloc(sizeof(int) * TXM_BLOCK);
		wanted = palloc(sizeof(bool) * TXM_BLOCK);
		for (int off = 0; off < TXM_BLOCK; off++)
		{
			if (!bit_get(&free_bits, off))
				continue;
			if (sub->ntags < 0 && nmsgs >= need - got + 16)
				break;
			msgs[nmsgs].pos = bs.pos[off];
			offs[nmsgs++] = off;
		}
		fetch_messages(msgs, nmsgs, bs.slots, snap);
		UnregisterSnapshot(snap);
		for (int i = 0; i < nmsgs; i++)
			wanted[i] = msgs[i].found && tags_match(sub, &msgs[i]);

		/* decide */
		if (!try_lock(sub->sub_id, (uint64) block, slot ? ShareLock : ExclusiveLock))
		{
			pfree(msgs);
			pfree(offs);
			pfree(wanted);
			if (!bs.full)
				break;
			block++;
			continue;
		}
		if (slot)
		{
			LWLockAcquire(txm_claim_lock(slot), LW_EXCLUSIVE);
			memset(&inflight, 0, sizeof(inflight));
			registry_taken(slot, sub->sub_id, block, &inflight);
		}
		snap = RegisterSnapshot(GetLatestSnapshot());
		done_seq = read_done_seq(&rels, sub->sub_id, snap);
		nrows = read_block_leases(&rels, sub->sub_id, block, snap, &rows);
		UnregisterSnapshot(snap);
		free_positions(&bs, rows, nrows, slot ? &inflight : NULL, block_start, done_seq, &free_bits);

		memset(&covered, 0, sizeof(covered));
		memset(&done, 0, sizeof(done));
		for (int i = 0; i < nmsgs; i++)
		{
			int			off = offs[i];

			if (!bit_get(&free_bits, off))
				continue;		/* someone else was quicker */
			if (got >= need)
			{
				next_free = off;
				break;
			}
			bit_set(&covered, off);
			if (first_off < 0)
				first_off = off;
			if (!wanted[i])
				bit_set(&done, off);	/* gone, or not for this group */
			else
			{
				add_delivery(out, sub_index, &msgs[i], 1, lease_until, false, block, (int16) off);
				got++;
			}
		}
		if (first_off >= 0 && slot)
			registered = registry_add(slot, sub->sub_id, block, &covered);
		if (slot)
			LWLockRelease(txm_claim_lock(slot));
		if (!registered)
		{
			/* no room to publish the claim: leave the block to others for now */
			while (list_length(*out) > delivered_before)
				*out = list_delete_last(*out);
			got = list_length(*out);
			pfree(msgs);
			pfree(offs);
			pfree(wanted);
			ereport(LOG,
					(errmsg("tx_message claim registry is full"),
					 errhint("Open receiving transactions hold claims until they end.")));
			break;
		}

		if (first_off >= 0)
		{
			insert_lease(sub->sub_id, block, (int16) first_off, &covered, &done,
						 (Datum) 0, true, lease_until);
			remember_claim(sub->sub_id, block_start + first_off);
			hint_expiry_min(sub->sub_id, lease_until);
			/* tell the deliveries of this block which lease holds them */
			for (int k = delivered_before; k < list_length(*out); k++)
				((TxmDelivery *) list_nth(*out, k))->first_off = (int16) first_off;
		}
		if (next_free < 0)
		{
			/* is anything left free in this block? */
			for (int off = 0; off < TXM_BLOCK; off++)
				if (bit_get(&free_bits, off) && !bit_get(&covered, off))
				{
					next_free = off;
					break;
				}
		}
		pfree(msgs);
		pfree(offs);
		pfree(wanted);
		if (next_free >= 0)
		{
			hint_after_claim(sub->sub_id, hint_read, block_start + next_free);
			/* free positions we did not read yet, or others took ours: look again */
			if (got < need && retries_left-- > 0)
				continue;
			break;
		}
		if (!bs.full)
			break;
		hint_after_claim(sub->sub_id, hint_read, block_start + TXM_BLOCK);
		block++;
	}
	claim_rels_close(&rels);
	return got;
}

/*
 * Keys that must not be delivered now to an ordered subscription: those of
 * messages pending in its leases or waiting in its retries.  Read with a
 * fresh snapshot, whatever the caller's isolation level: ordered claimers
 * are serialized, and each must see what the previous one committed.
 */
static HTAB *
blocked_keys(const TxmSub *sub, int64 done_seq)
{
	static const char *lease_sql =
		"SELECT covered, done, keys FROM tx_message.leases"
		" WHERE sub_id = $1 AND block >= $2 AND keys IS NOT NULL";
	static const char *retry_sql =
		"SELECT DISTINCT key FROM tx_message.retries WHERE sub_id = $1 AND key IS NOT NULL";
	HASHCTL		ctl;
	HTAB	   *keys;
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];
	int			n;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN * 4;
	ctl.entrysize = NAMEDATALEN * 4;
	ctl.hcxt = CurrentMemoryContext;
	keys = hash_create("tx_message blocked keys", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	values[0] = Int32GetDatum(sub->sub_id);
	values[1] = Int64GetDatum(done_seq / TXM_BLOCK);
	SPI_connect();
	n = txm_spi_exec_latest(lease_sql, 2, types, values, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		BlockBits	covered;
		BlockBits	done;
		Datum	   *elems;
		bool	   *nulls;
		int			nk;
		HeapTuple	row = SPI_tuptable->vals[i];

		bits_from_datum(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull), &covered);
		bits_from_datum(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull), &done);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nk);
		for (int off = 0; off < Min(nk, TXM_BLOCK); off++)
			if (bit_get(&covered, off) && !bit_get(&done, off) && !nulls[off])
				hash_search(keys, text_to_cstring(DatumGetTextPP(elems[off])), HASH_ENTER, NULL);
	}
	n = txm_spi_exec_latest(retry_sql, 1, types, values, NULL, 0);
	for (int i = 0; i < n; i++)
		hash_search(keys, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
					HASH_ENTER, NULL);
	SPI_finish();
	return keys;
}

/*
 * Ordered subscriptions: per key, in commit order, one at a time.  Claims
 * are serialized by a lock on the subscription; messages whose key is
 * pending elsewhere (or was skipped earlier in this scan) are left free.
 * Like unordered claims, they take the block in share mode and publish
 * their claims, so that both kinds (a subscription may change) never take
 * the same positions.
 */
static int
claim_ordered(const TxmSub *sub, int sub_index, int need, TimestampTz lease_until,
			  List **out)
{
	TxmDbSlot  *slot = txm_my_slot();
	ClaimRels	rels;
	Snapshot	snap;
	int64		done_seq;
	HTAB	   *blocked;
	int64		block;
	int			got = 0;
	int			scanned = 0;
	int			lookahead = Max(need * 10, 4 * TXM_BLOCK);

	if (!try_lock(sub->sub_id, TXM_ORDERED_LOCK, ExclusiveLock))
		return 0;				/* another receiver is claiming for this subscription */
	claim_rels_open(&rels);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = read_done_seq(&rels, sub->sub_id, snap);
	UnregisterSnapshot(snap);
	blocked = blocked_keys(sub, done_seq);
	block = done_seq / TXM_BLOCK;

	while (got < need && scanned < lookahead)
	{
		BlockSlices bs;
		LeaseRow   *rows;
		int			nrows;
		BlockBits	inflight;
		BlockBits	free_bits;
		TxmMsg	   *msgs;
		int		   *offs;
		int			nmsgs = 0;
		BlockBits	covered;
		BlockBits	done;
		Datum	   *keyvals;
		bool	   *keynulls;
		int			first_off = -1;
		int64		block_start = block * TXM_BLOCK;
		int			delivered_before = list_length(*out);
		bool		registered = true;

		CHECK_FOR_INTERRUPTS();
		snap = RegisterSnapshot(GetLatestSnapshot());
		if (!read_block_slices(sub->topic_id, block, snap, &bs))
		{
			UnregisterSnapshot(snap);
			break;
		}
		msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
		offs = palloc(sizeof(int) * TXM_BLOCK);
		for (int off = 0; off < TXM_BLOCK; off++)
		{
			if (!bit_get(&bs.avail, off) || block_start + off < done_seq)
				continue;
			msgs[nmsgs].pos = bs.pos[off];
			offs[nmsgs] = off;
			nmsgs++;
		}
		fetch_messages(msgs, nmsgs, bs.slots, snap);
		UnregisterSnapshot(snap);

		if (!try_lock(sub->sub_id, (uint64) block, slot ? ShareLock : ExclusiveLock))
		{
			pfree(msgs);
			pfree(offs);
			break;				/* a claimer without shared memory is in this block */
		}
		memset(&inflight, 0, sizeof(inflight));
		if (slot)
		{
			LWLockAcquire(txm_claim_lock(slot), LW_EXCLUSIVE);
			registry_taken(slot, sub->sub_id, block, &inflight);
		}
		snap = RegisterSnapshot(GetLatestSnapshot());
		nrows = read_block_leases(&rels, sub->sub_id, block, snap, &rows);
		UnregisterSnapshot(snap);
		free_positions(&bs, rows, nrows, slot ? &inflight : NULL, block_start, done_seq, &free_bits);

		memset(&covered, 0, sizeof(covered));
		memset(&done, 0, sizeof(done));
		keyvals = palloc0(sizeof(Datum) * TXM_BLOCK);
		keynulls = palloc(sizeof(bool) * TXM_BLOCK);
		for (int i = 0; i < TXM_BLOCK; i++)
			keynulls[i] = true;
		for (int i = 0; i < nmsgs && got < need; i++)
		{
			int			off = offs[i];
			char	   *key;
			bool		found;

			if (!bit_get(&free_bits, off))
				continue;		/* claimed already */
			scanned++;
			if (!msgs[i].found || !tags_match(sub, &msgs[i]))
			{
				bit_set(&covered, off);
				bit_set(&done, off);
				continue;
			}
			if (!msgs[i].isnull[0])
			{
				key = TextDatumGetCString(msgs[i].cols[0]);
				if (strlen(key) >= NAMEDATALEN * 4)
					key[NAMEDATALEN * 4 - 1] = '\0';
				hash_search(blocked, key, HASH_ENTER, &found);
				if (found)
					continue;	/* its key is busy: wait, and keep later ones behind it */
				keyvals[off] = msgs[i].cols[0];
				keynulls[off] = false;
			}
			/* (a message without a key has no order to keep) */
			bit_set(&covered, off);
			add_delivery(out, sub_index, &msgs[i], 1, lease_until, false, block, (int16) off);
			got++;
		}
		for (int off = 0; off < TXM_BLOCK; off++)
			if (bit_get(&covered, off))
			{
				first_off = off;
				break;
			}
		if (first_off >= 0 && slot)
			registered = registry_add(slot, sub->sub_id, block, &covered);
		if (slot)
			LWLockRelease(txm_claim_lock(slot));
		if (!registered)
		{
			while (list_length(*out) > delivered_before)
				*out = list_delete_last(*out);
			got = list_length(*out);
			pfree(msgs);
			pfree(offs);
			ereport(LOG,
					(errmsg("tx_message claim registry is full"),
					 errhint("Open receiving transactions hold claims until they end.")));
			break;
		}
		if (first_off >= 0)
		{
			int			dims[1] = {TXM_BLOCK};
			int			lbs[1] = {1};
			ArrayType  *keyarr = construct_md_array(keyvals, keynulls, 1, dims, lbs,
													TEXTOID, -1, false, TYPALIGN_INT);

			insert_lease(sub->sub_id, block, (int16) first_off, &covered, &done,
						 PointerGetDatum(keyarr), false, lease_until);
			remember_claim(sub->sub_id, block_start + first_off);
			hint_expiry_min(sub->sub_id, lease_until);
			for (int k = delivered_before; k < list_length(*out); k++)
				((TxmDelivery *) list_nth(*out, k))->first_off = (int16) first_off;
		}
		pfree(msgs);
		pfree(offs);
		if (!bs.full)
			break;
		block++;
	}
	hash_destroy(blocked);
	claim_rels_close(&rels);
	return got;
}

/*
 * Deliver due retries (and expired retry leases) of the given
 * subscriptions.  A retry whose lease expired on its last allowed attempt
 * goes to the dead letters instead.
 */
static int
claim_retries(TxmSub *subs, int nsubs, const bool *pull, int need,
			  const TimestampTz *lease_until, List **out)
{
	static const char *due_sql =
		"SELECT sub_id, msg_id, topic_id, sent_at, key, tags, headers, payload,"
		"       attempt, state, first_failed_at"
		"  FROM tx_message.retries WHERE sub_id = ANY ($1) AND due_at <= clock_timestamp()"
		" ORDER BY due_at, msg_id LIMIT $2 FOR UPDATE SKIP LOCKED";
	static const char *lease_sql =
		"UPDATE tx_message.retries"
		"   SET state = 'leased', attempt = attempt + 1, due_at = $3, leased_at = clock_timestamp(), holder = $4"
		" WHERE sub_id = $1 AND msg_id = $2";
	static const char *delete_sql =
		"DELETE FROM tx_message.retries WHERE sub_id = $1 AND msg_id = $2";
	static const char *next_due_sql =
		"SELECT min(due_at) FROM tx_message.retries WHERE sub_id = $1";
	Oid			types[4] = {INT4ARRAYOID, INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		values[4];
	Datum	   *ids = palloc(sizeof(Datum) * nsubs);
	uint32	   *versions = palloc0(sizeof(uint32) * nsubs);
	int			nids = 0;
	int			n;
	int			got = 0;
	SPITupleTable *rows;
	MemoryContext outer = CurrentMemoryContext;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
			ids[nids++] = Int32GetDatum(subs[i].sub_id);
	if (nids == 0)
		return 0;
	if (!retries_possible(subs, nsubs, pull, GetCurrentTimestamp(), versions))
		return 0;
	values[0] = PointerGetDatum(construct_array(ids, nids, INT4OID, 4, true, TYPALIGN_INT));
	values[1] = Int32GetDatum(need);
	SPI_connect();
	n = txm_spi_exec(due_sql, 2, types, values, NULL, 0);
	rows = SPI_tuptable;
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = rows->vals[i];
		TupleDesc	desc = rows->tupdesc;
		bool		isnull;
		int32		sub_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		int			si = -1;
		TxmMsg			m;
		int32		attempt = DatumGetInt32(SPI_getbinval(row, desc, 9, &isnull));
		char	   *state = SPI_getvalue(row, desc, 10);
		Oid			ktypes[4] = {INT4OID, INT8OID, TIMESTAMPTZOID, INT4OID};
		Datum		kvalues[4];

		for (int k = 0; k < nsubs; k++)
			if (subs[k].sub_id == sub_id)
				si = k;
		if (si < 0)
			continue;
		memset(&m, 0, sizeof(m));
		m.found = true;
		m.msg_id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		m.pos = m.msg_id;
		m.topic_id = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		m.sent_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull));
		for (int k = 0; k < 4; k++)
		{
			m.cols[k] = SPI_getbinval(row, desc, 5 + k, &m.isnull[k]);
			if (!m.isnull[k])
				m.cols[k] = SPI_datumTransfer(m.cols[k], false, -1);
		}
		kvalues[0] = Int32GetDatum(sub_id);
		kvalues[1] = Int64GetDatum(m.msg_id);
		if (strcmp(state, "leased") == 0 && attempt >= subs[si].max_retries + 1)
		{
			/* its last lease expired: a crashed consumer, or a poison message */
			TimestampTz first = DatumGetTimestampTz(SPI_getbinval(row, desc, 11, &isnull));

			txm_spi_exec(delete_sql, 2, ktypes, kvalues, NULL, 0);
			txm_dead_letter(&subs[si], m.msg_id, m.sent_at, m.cols[0], m.cols[1],
							m.cols[2], m.cols[3], m.isnull, attempt,
							"max_retries exceeded", "lease expired", first);
			continue;
		}
		kvalues[2] = TimestampTzGetDatum(lease_until[si]);
		kvalues[3] = Int32GetDatum(MyProcPid);
		txm_spi_exec(lease_sql, 4, ktypes, kvalues, NULL, 0);
		{
			/* the delivery outlives this SPI connection */
			MemoryContext spi = MemoryContextSwitchTo(outer);

			add_delivery(out, si, &m, attempt + 1, lease_until[si], true, 0, 0);
			MemoryContextSwitchTo(spi);
		}
		got++;
	}

	/*
	 * All that was due is taken: note when the next one falls due, read with
	 * a snapshot newer than the hint versions.  Not after writing retries
	 * here: the commit resets the hints anyway.
	 */
	if (n < need && txm_my_slot() != NULL && !retries_written)
	{
		for (int i = 0; i < nsubs; i++)
		{
			Oid			ntypes[1] = {INT4OID};
			Datum		nvalues[1];
			bool		isnull;
			Datum		d;

			if (!pull[i])
				continue;
			nvalues[0] = Int32GetDatum(subs[i].sub_id);
			txm_spi_exec_latest(next_due_sql, 1, ntypes, nvalues, NULL, 1);
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			hint_retry_set(subs[i].sub_id, versions[i], isnull ? DT_NOEND : DatumGetTimestampTz(d));
		}
	}
	SPI_finish();
	return got;
}

/*
 * Leases of a subscription whose deadline passed: their pending messages
 * move to retries (attempt 1 failed), or to the dead letters when no retry
 * is allowed.  The lease is then done.
 */
int
txm_expire_leases(const TxmSub *sub)
{
	static const char *expired_sql =
		"SELECT block, first_off, covered, done FROM tx_message.leases"
		" WHERE sub_id = $1 AND lease_until < clock_timestamp() AND done <> covered"
		" ORDER BY lease_until LIMIT 100 FOR UPDATE SKIP LOCKED";
	static const char *retry_sql =
		"INSERT INTO tx_message.retries"
		" (sub_id, msg_id, topic_id, sent_at, key, tags, headers, payload, attempt, state,"
		"  due_at, last_error, first_failed_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, 'waiting', clock_timestamp(), 'lease expired', clock_timestamp())"
		" ON CONFLICT (sub_id, msg_id) DO NOTHING";
	static const char *done_sql =
		"UPDATE tx_message.leases SET done = covered"
		" WHERE sub_id = $1 AND block = $2 AND first_off = $3";
	static const char *next_sql =
		"SELECT min(lease_until) FROM tx_message.leases"
		" WHERE sub_id = $1 AND lease_until >= clock_timestamp() AND done <> covered";
	Oid			types[3] = {INT4OID, INT8OID, INT2OID};
	Datum		values[3];
	int			n;
	int			moved = 0;
	SPITupleTable *rows;
	bool		isnull;
	Datum		next;

	values[0] = Int32GetDatum(sub->sub_id);
	SPI_connect();
	n = txm_spi_exec(expired_sql, 1, types, values, NULL, 0);
	rows = SPI_tuptable;
	for (int i = 0; i < n; i++)
	{
		int64		block = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
		int16		first_off = DatumGetInt16(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));
		BlockBits	covered;
		BlockBits	done;
		BlockSlices bs;
		TxmMsg		   *msgs;
		int			nmsgs = 0;
		Snapshot	snap;

		bits_from_datum(SPI_getbinval(rows->vals[i], rows->tupdesc, 3, &isnull), &covered);
		bits_from_datum(SPI_getbinval(rows->vals[i], rows->tupdesc, 4, &isnull), &done);
		snap = RegisterSnapshot(GetLatestSnapshot());
		read_block_slices(sub->topic_id, block, snap, &bs);
		msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
		for (int off = 0; off < TXM_BLOCK; off++)
			if (bit_get(&covered, off) && !bit_get(&done, off) && bit_get(&bs.avail, off))
				msgs[nmsgs++].pos = bs.pos[off];
		fetch_messages(msgs, nmsgs, bs.slots, snap);
		UnregisterSnapshot(snap);
		for (int k = 0; k < nmsgs; k++)
		{
			if (!msgs[k].found)
				continue;
			if (sub->max_retries < 1)
				txm_dead_letter(sub, msgs[k].msg_id, msgs[k].sent_at, msgs[k].cols[0],
								msgs[k].cols[1], msgs[k].cols[2], msgs[k].cols[3],
								msgs[k].isnull, 1, "max_retries exceeded", "lease expired",
								GetCurrentTimestamp());
			else
			{
				Oid			rtypes[8] = {INT4OID, INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
				TEXTARRAYOID, JSONBOID, JSONBOID};
				Datum		rvalues[8];
				char		rnulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

				rvalues[0] = Int32GetDatum(sub->sub_id);
				rvalues[1] = Int64GetDatum(msgs[k].msg_id);
				rvalues[2] = Int32GetDatum(msgs[k].topic_id);
				rvalues[3] = TimestampTzGetDatum(msgs[k].sent_at);
				for (int c = 0; c < 4; c++)
				{
					rvalues[4 + c] = msgs[k].cols[c];
					rnulls[4 + c] = msgs[k].isnull[c] ? 'n' : ' ';
				}
				txm_spi_exec(retry_sql, 8, rtypes, rvalues, rnulls, 0);
			}
			moved++;
		}
		values[1] = Int64GetDatum(block);
		values[2] = Int16GetDatum(first_off);
		txm_spi_exec(done_sql, 3, types, values, NULL, 0);
		pfree(msgs);
	}
	/* the next deadline of this subscription's leases */
	txm_spi_exec(next_sql, 1, types, values, NULL, 1);
	next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	hint_expiry_set(sub->sub_id, isnull ? DT_NOEND : DatumGetTimestampTz(next));
	SPI_finish();
	if (moved > 0)
		broadcast_at_commit = true;
	return moved;
}

/*
 * Advance a subscription's watermark over finished positions and delete
 * the leases of finished blocks.  Returns the new watermark.  The watermark
 * only moves forward, even when two processes advance it at once.
 */
int64
txm_advance_watermark(const TxmSub *sub)
{
	static const char *state_sql =
		"UPDATE tx_message.sub_state SET done_seq = greatest(done_seq, $2), updated_at = now()"
		" WHERE sub_id = $1 RETURNING done_seq";
	/* the leases of finished blocks, and the finished ones of the watermark's block */
	static const char *delete_sql =
		"DELETE FROM tx_message.leases WHERE sub_id = $1"
		"   AND (block < $2 OR (block = $2 AND strpos(substr(covered::text, $3 + 1), '1') = 0))";
	ClaimRels	rels;
	Snapshot	snap;
	int64		done_seq;
	int64		seq;
	Oid			types[3] = {INT4OID, INT8OID, INT4OID};
	Datum		values[3];
	bool		isnull;

	claim_rels_open(&rels);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = read_done_seq(&rels, sub->sub_id, snap);
	seq = done_seq;
	for (;;)
	{
		int64		block = seq / TXM_BLOCK;
		BlockSlices bs;
		LeaseRow   *rows;
		int			nrows;
		int			off;

		if (!read_block_slices(sub->topic_id, block, snap, &bs))
			break;
		nrows = read_block_leases(&rels, sub->sub_id, block, snap, &rows);
		for (off = (int) (seq % TXM_BLOCK); off < TXM_BLOCK; off++)
		{
			bool		finished = false;

			if (!bit_get(&bs.avail, off))
				break;
			for (int r = 0; r < nrows; r++)
				if (bit_get(&rows[r].covered, off))
					finished = bit_get(&rows[r].done, off);
			if (!finished)
				break;
		}
		seq = block * TXM_BLOCK + off;
		if (off < TXM_BLOCK)
			break;
	}
	UnregisterSnapshot(snap);
	claim_rels_close(&rels);
	values[0] = Int32GetDatum(sub->sub_id);
	SPI_connect();
	if (seq > done_seq)
	{
		values[1] = Int64GetDatum(seq);
		if (txm_spi_exec(state_sql, 2, types, values, NULL, 1) == 1)
			seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	values[1] = Int64GetDatum(seq / TXM_BLOCK);
	values[2] = Int32GetDatum((int32) (seq % TXM_BLOCK));
	txm_spi_exec(delete_sql, 3, types, values, NULL, 0);
	SPI_finish();
	return seq;
}

/*----------
 * tx_receive
 *----------
 */

static TimestampTz
lease_deadline(const TxmSub *sub, Interval *lease, TimestampTz now)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(lease ? lease : (Interval *) &sub->lease)));
}

/* Sleep on the database's condition variable, counted as a waiting receiver. */
static void
sleep_as_waiter(TxmDbSlot *slot, long timeout)
{
	txm_waiter_enter(slot);
	PG_TRY();
	{
		(void) ConditionVariableTimedSleep(&slot->cv, timeout, PG_WAIT_EXTENSION);
	}
	PG_FINALLY();
	{
		txm_waiter_leave(slot);
	}
	PG_END_TRY();
}

/*
 * Make everything committed before now deliverable: wait for the worker's
 * tick, or, with no worker serving this database, tick in this transaction
 * (unless someone else is ticking).
 */
void
txm_sync_ticks(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	uint64		upto;

	if (slot && txm_worker_running(slot))
	{
		txm_wait_for_ticks(1000);
		return;
	}
	if (txm_tick(false, &upto) >= 0 && slot)
		txm_note_ticked(upto);
}

/*
 * Claim up to need messages for a group: due retries first, then each
 * subscription's stream.  pull[i] says which subscriptions to serve.
 */
List *
txm_claim(TxmSub *subs, int nsubs, const bool *pull, int need, Interval *lease)
{
	List	   *out = NIL;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz *deadlines = palloc(sizeof(TimestampTz) * nsubs);
	bool		local_turn = now - last_expiry_scan >= 100 * 1000;
	int			got;

	if (local_turn)
		last_expiry_scan = now;
	for (int i = 0; i < nsubs; i++)
	{
		deadlines[i] = lease_deadline(&subs[i], lease, now);
		if (pull[i] && expiry_possible(subs[i].sub_id, now, local_turn))
			txm_expire_leases(&subs[i]);
	}
	got = claim_retries(subs, nsubs, pull, need, deadlines, &out);
	for (int i = 0; i < nsubs && got < need; i++)
	{
		if (!pull[i])
			continue;
		if (subs[i].ordered)
			got += claim_ordered(&subs[i], i, need - got, deadlines[i], &out);
		else
			got += claim_stream(&subs[i], i, need - got, deadlines[i], &out);
	}
	for (int i = 0; i < list_length(out); i++)
	{
		TxmDelivery *d = list_nth(out, i);

		session_remember(&subs[d->sub_index], d);
	}
	return out;
}

/* Earliest due retry of the subscriptions, or 0. */
static TimestampTz
next_retry_due(TxmSub *subs, int nsubs, const bool *pull)
{
	static const char *sql =
		"SELECT min(due_at) FROM tx_message.retries WHERE sub_id = ANY ($1)";
	Oid			types[1] = {INT4ARRAYOID};
	Datum		values[1];
	Datum	   *ids = palloc(sizeof(Datum) * nsubs);
	int			nids = 0;
	TimestampTz due = 0;
	bool		isnull;
	Datum		d;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
			ids[nids++] = Int32GetDatum(subs[i].sub_id);
	values[0] = PointerGetDatum(construct_array(ids, nids, INT4OID, 4, true, TYPALIGN_INT));
	SPI_connect();
	txm_spi_exec(sql, 1, types, values, NULL, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		due = DatumGetTimestampTz(d);
	SPI_finish();
	return due;
}

static void
check_can_consume(const char *what)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot consume messages during recovery"),
				 errhint("Consume messages on the primary.")));
	PreventCommandIfReadOnly(what);
	PreventCommandIfParallelMode(what);
}

static char *
group_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *group;

	txm_require_arg(fcinfo, argno, "consumer_group");
	group = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	txm_check_name("consumer group", group);
	return group;
}

/*
 * tx_receive(consumer_group text, max_messages integer, wait interval,
 *			  lease interval) RETURNS TABLE (msg_id bigint, topic text,
 *			  key text, tags text[], headers jsonb, payload jsonb,
 *			  attempt integer, sent_at timestamptz, lease_until timestamptz)
 */
Datum
tx_receive(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *group;
	int32		max_messages;
	Interval   *lease = NULL;
	TimestampTz deadline;
	TxmSub	   *subs;
	int			nsubs;
	bool	   *pull;
	int			npull = 0;
	List	   *out = NIL;
	TxmDbSlot  *slot;
	bool		sleeping = false;
	ListCell   *lc;
	Interval	zero;

	group = group_arg(fcinfo, 0);
	txm_require_arg(fcinfo, 1, "max_messages");
	max_messages = PG_GETARG_INT32(1);
	/* nothing written yet, or only by earlier receives */
	receive_only = !TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		(receive_only && XactLastRecEnd == receive_wal_end);
	if (max_messages < 1 || max_messages > TXM_MAX_RECEIVE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must be between 1 and %d", TXM_MAX_RECEIVE),
				 errdetail("The value given is %d.", max_messages)));
	memset(&zero, 0, sizeof(zero));
	deadline = GetCurrentTimestamp();
	if (!PG_ARGISNULL(2))
	{
		if (DatumGetBool(DirectFunctionCall2(interval_lt, PG_GETARG_DATUM(2), IntervalPGetDatum(&zero))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("wait must not be negative")));
		deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														   TimestampTzGetDatum(deadline),
														   PG_GETARG_DATUM(2)));
	}
	if (!PG_ARGISNULL(3))
	{
		lease = PG_GETARG_INTERVAL_P(3);
		txm_check_positive_interval("lease", lease);
	}
	check_can_consume("tx_receive()");

	subs = txm_group_subs(group, &nsubs, false);
	pull = palloc(sizeof(bool) * nsubs);
	for (int i = 0; i < nsubs; i++)
	{
		pull[i] = !OidIsValid(subs[i].handler);
		npull += pull[i];
	}
	if (npull == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consumer group \"%s\" is consumed by its handler", group),
				 errhint("Messages of a subscription with a handler are delivered by the worker, not by tx_receive().")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	slot = txm_my_slot();
	/* register for wake-ups before looking, so that none is missed */
	if (deadline > GetCurrentTimestamp() && slot && txm_worker_running(slot))
	{
		ConditionVariablePrepareToSleep(&slot->cv);
		sleeping = true;
	}
	for (;;)
	{
		TimestampTz now;
		long		timeout;
		TimestampTz due;

		txm_sync_ticks();
		/* waiting for ticks used the condition variable: register again */
		if (sleeping)
			ConditionVariablePrepareToSleep(&slot->cv);
		out = txm_claim(subs, nsubs, pull, max_messages, lease);
		now = GetCurrentTimestamp();
		if (out != NIL || now >= deadline)
			break;

		/* sleep until something may be deliverable: a tick, a retry, an expiry */
		timeout = TimestampDifferenceMilliseconds(now, deadline);
		due = next_retry_due(subs, nsubs, pull);
		if (due != 0)
		{
			/* a due retry we could not take is locked by another receiver: look again later */
			timeout = Min(timeout, due <= now ? 100 : TimestampDifferenceMilliseconds(now, due) + 1);
		}
		for (int i = 0; i < nsubs; i++)
		{
			TxmHint    *h;

			if (slot == NULL || !pull[i])
				continue;
			SpinLockAcquire(&slot->mutex);
			h = hint_for(slot, subs[i].sub_id, false);
			if (h && h->next_expiry != 0 && h->next_expiry != DT_NOEND)
				timeout = Min(timeout, TimestampDifferenceMilliseconds(now, h->next_expiry) + 1);
			SpinLockRelease(&slot->mutex);
		}
		if (sleeping)
			sleep_as_waiter(slot, Max(timeout, 1));
		else
		{
			/* nobody broadcasts: look again ten times a second */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(Min(timeout, 100), 1), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (sleeping)
		ConditionVariableCancelSleep();

	foreach(lc, out)
	{
		TxmDelivery   *d = lfirst(lc);
		Datum		values[9];
		bool		nulls[9];
		const char *topic = subs[d->sub_index].topic;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int64GetDatum(d->msg.msg_id);
		values[1] = CStringGetTextDatum(topic);
		for (int k = 0; k < 4; k++)
		{
			values[2 + k] = d->msg.cols[k];
			nulls[2 + k] = d->msg.isnull[k];
		}
		values[6] = Int32GetDatum(d->attempt);
		values[7] = TimestampTzGetDatum(d->msg.sent_at);
		values[8] = TimestampTzGetDatum(d->lease_until);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	receive_wal_end = XactLastRecEnd;
	return (Datum) 0;
}

/*----------
 * Finishing deliveries: ack, nack, extend
 *----------
 */

/* Where a message of a group is held now. */
typedef struct Holding
{
	int			sub_index;
	bool		from_retry;
	int64		block;
	int16		first_off;
	int16		off;
	int32		attempt;		/* of this session's delivery, or 0 if unknown */
} Holding;

/*
 * Find a message this session received (cheap), or look it up among the
 * group's pending leases and leased retries (for acks from another
 * connection, e.g. through a pool).
 */
static bool
find_holding(TxmSub *subs, int nsubs, int64 msg_id, Holding *h)
{
	static const char *retry_sql =
		"SELECT sub_id FROM tx_message.retries"
		" WHERE sub_id = ANY ($1) AND msg_id = $2 AND state = 'leased' LIMIT 1";
	static const char *lease_sql =
		"SELECT block, first_off, covered, done FROM tx_message.leases"
		" WHERE sub_id = $1 AND block >= $2 AND covered <> done";	/* pending ones */
	Datum	   *ids;
	Oid			types[2] = {INT4ARRAYOID, INT8OID};
	Datum		values[2];
	bool		isnull;
	bool		found = false;

	for (int i = 0; i < nsubs; i++)
	{
		SessionEntry *e = session_lookup(subs[i].sub_id, msg_id);

		if (e)
		{
			h->sub_index = i;
			h->from_retry = e->from_retry;
			h->block = e->block;
			h->first_off = e->first_off;
			h->off = e->off;
			h->attempt = e->attempt;
			return true;
		}
	}

	ids = palloc(sizeof(Datum) * nsubs);
	for (int i = 0; i < nsubs; i++)
		ids[i] = Int32GetDatum(subs[i].sub_id);
	values[0] = PointerGetDatum(construct_array(ids, nsubs, INT4OID, 4, true, TYPALIGN_INT));
	values[1] = Int64GetDatum(msg_id);
	SPI_connect();
	if (txm_spi_exec(retry_sql, 2, types, values, NULL, 1) == 1)
	{
		int32		sub_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		for (int i = 0; i < nsubs; i++)
			if (subs[i].sub_id == sub_id)
				h->sub_index = i;
		h->from_retry = true;
		h->attempt = 0;
		found = true;
	}
	for (int i = 0; i < nsubs && !found; i++)
	{
		Oid			ltypes[2] = {INT4OID, INT8OID};
		int			n;
		SPITupleTable *rows;

		values[0] = Int32GetDatum(subs[i].sub_id);
		values[1] = Int64GetDatum(0);
		n = txm_spi_exec(lease_sql, 2, ltypes, values, NULL, 0);
		rows = SPI_tuptable;
		for (int r = 0; r < n && !found; r++)
		{
			int64		block = DatumGetInt64(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull));
			BlockBits	covered;
			BlockBits	done;
			BlockSlices bs;
			Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
			TxmMsg		   *msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
			int		   *offs = palloc(sizeof(int) * TXM_BLOCK);
			int			nmsgs = 0;

			bits_from_datum(SPI_getbinval(rows->vals[r], rows->tupdesc, 3, &isnull), &covered);
			bits_from_datum(SPI_getbinval(rows->vals[r], rows->tupdesc, 4, &isnull), &done);
			read_block_slices(subs[i].topic_id, block, snap, &bs);
			for (int off = 0; off < TXM_BLOCK; off++)
				if (bit_get(&covered, off) && !bit_get(&done, off) && bit_get(&bs.avail, off))
				{
					msgs[nmsgs].pos = bs.pos[off];
					offs[nmsgs++] = off;
				}
			/* ordinary messages: the id is the position; moved ones need the row */
			for (int k = 0; k < nmsgs && !found; k++)
				if (msgs[k].pos == msg_id)
				{
					h->off = offs[k];
					found = true;
				}
			if (!found)
			{
				fetch_messages(msgs, nmsgs, bs.slots, snap);
				for (int k = 0; k < nmsgs && !found; k++)
					if (msgs[k].found && msgs[k].msg_id == msg_id)
					{
						h->off = offs[k];
						found = true;
					}
			}
			UnregisterSnapshot(snap);
			if (found)
			{
				h->sub_index = i;
				h->from_retry = false;
				h->block = block;
				h->first_off = DatumGetInt16(SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull));
				h->attempt = 0;
			}
		}
	}
	SPI_finish();
	return found;
}

/*
 * Mark positions of one lease done.  Returns how many were pending, i.e.
 * how many this call finished; the row lock makes concurrent acks of the
 * same message count once.
 */
static int
finish_in_lease(int32 sub_id, int64 block, int16 first_off, const BlockBits *mask)
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

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(sub_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(block));
	ScanKeyInit(&keys[2], 3, BTEqualStrategyNumber, F_INT2EQ, Int16GetDatum(first_off));
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
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		BlockBits	covered;
		BlockBits	done;

		bits_from_datum(slot_getattr(ts, Anum_lease_covered, &isnull), &covered);
		bits_from_datum(slot_getattr(ts, Anum_lease_done, &isnull), &done);
		for (int i = 0; i < TXM_BLOCK / 8; i++)
		{
			uint8		newly = mask->b[i] & covered.b[i] & ~done.b[i];

			n += pg_popcount((const char *) &newly, 1);
			done.b[i] |= newly;
		}
		if (n > 0)
		{
			Datum		values[LEASE_NATTS];
			bool		nulls[LEASE_NATTS];
			bool		replace[LEASE_NATTS];
			HeapTuple	oldtup = ExecFetchSlotHeapTuple(ts, false, NULL);
			HeapTuple	newtup;

			memset(replace, 0, sizeof(replace));
			memset(nulls, 0, sizeof(nulls));
			replace[Anum_lease_done - 1] = true;
			values[Anum_lease_done - 1] = bits_datum(&done);
			newtup = heap_modify_tuple(oldtup, desc, values, nulls, replace);
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

/* Finish a leased retry; attempt 0 accepts whichever attempt holds it. */
static bool
finish_retry(int32 sub_id, int64 msg_id, int32 attempt)
{
	static const char *sql =
		"DELETE FROM tx_message.retries"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased' AND ($3 = 0 OR attempt = $3)";
	Oid			types[3] = {INT4OID, INT8OID, INT4OID};
	Datum		values[3];
	int			n;

	values[0] = Int32GetDatum(sub_id);
	values[1] = Int64GetDatum(msg_id);
	values[2] = Int32GetDatum(attempt);
	SPI_connect();
	n = txm_spi_exec(sql, 3, types, values, NULL, 0);
	SPI_finish();
	return n > 0;
}

static int64 *
id_array_arg(FunctionCallInfo fcinfo, int argno, int *n)
{
	ArrayType  *array;
	Datum	   *elems;
	bool	   *nulls;
	int64	   *ids;

	txm_require_arg(fcinfo, argno, "msg_ids");
	array = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("msg_ids must be a one-dimensional array")));
	deconstruct_array(array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
	ids = palloc(sizeof(int64) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("msg_ids must not contain nulls")));
		ids[i] = DatumGetInt64(elems[i]);
	}
	/* each id counts once */
	qsort(ids, *n, sizeof(int64), cmp_int64);
	{
		int			k = 0;

		for (int i = 0; i < *n; i++)
			if (k == 0 || ids[k - 1] != ids[i])
				ids[k++] = ids[i];
		*n = k;
	}
	return ids;
}

/*
 * Acknowledge messages of a group; returns how many this call finished.
 * A delivery this session no longer holds (its lease expired and the
 * message was delivered again) counts nothing.
 */
int
txm_ack(TxmSub *subs, int nsubs, const int64 *ids, int n)
{
	typedef struct LeaseMask
	{
		int32		sub_id;
		int64		block;
		int16		first_off;
		BlockBits	mask;
	} LeaseMask;
	LeaseMask  *masks = palloc0(sizeof(LeaseMask) * Max(n, 1));
	int			nmasks = 0;
	int			acked = 0;

	for (int i = 0; i < n; i++)
	{
		Holding		h;
		int			m;

		if (!find_holding(subs, nsubs, ids[i], &h))
			continue;
		if (h.from_retry)
		{
			if (finish_retry(subs[h.sub_index].sub_id, ids[i], h.attempt))
				acked++;
			session_forget(subs[h.sub_index].sub_id, ids[i]);
			continue;
		}
		for (m = 0; m < nmasks; m++)
			if (masks[m].sub_id == subs[h.sub_index].sub_id && masks[m].block == h.block &&
				masks[m].first_off == h.first_off)
				break;
		if (m == nmasks)
		{
			masks[m].sub_id = subs[h.sub_index].sub_id;
			masks[m].block = h.block;
			masks[m].first_off = h.first_off;
			nmasks++;
		}
		bit_set(&masks[m].mask, h.off);
		session_forget(subs[h.sub_index].sub_id, ids[i]);
	}
	for (int m = 0; m < nmasks; m++)
		acked += finish_in_lease(masks[m].sub_id, masks[m].block, masks[m].first_off, &masks[m].mask);
	pfree(masks);
	return acked;
}

/* tx_ack(consumer_group text, msg_ids bigint[]) RETURNS integer */
Datum
tx_ack(PG_FUNCTION_ARGS)
{
	char	   *group = group_arg(fcinfo, 0);
	int			n;
	int64	   *ids = id_array_arg(fcinfo, 1, &n);
	TxmSub	   *subs;
	int			nsubs;

	check_can_consume("tx_ack()");
	subs = txm_group_subs(group, &nsubs, false);
	PG_RETURN_INT32(txm_ack(subs, nsubs, ids, n));
}

/* tx_ack(consumer_group text, msg_id bigint) RETURNS boolean */
Datum
tx_ack_one(PG_FUNCTION_ARGS)
{
	char	   *group = group_arg(fcinfo, 0);
	int64		id;
	TxmSub	   *subs;
	int			nsubs;

	txm_require_arg(fcinfo, 1, "msg_id");
	id = PG_GETARG_INT64(1);
	check_can_consume("tx_ack()");
	subs = txm_group_subs(group, &nsubs, false);
	PG_RETURN_BOOL(txm_ack(subs, nsubs, &id, 1) == 1);
}

/* The backoff before attempt number failed_attempt + 1. */
static Interval *
backoff_after(const TxmSub *sub, int32 failed_attempt)
{
	int			step = Min(Max(failed_attempt, 1), sub->nbackoff) - 1;

	return &sub->backoff[step];
}

/*
 * A delivery failed: schedule its retry after retry_in (or the next backoff
 * step), or move it to the dead letters when it was the last attempt
 * allowed.  Returns "retry", "dead_letter", or NULL if the message is not
 * held (any more).
 */
const char *
txm_nack(TxmSub *subs, int nsubs, int64 msg_id, const char *error, Interval *retry_in)
{
	static const char *read_retry_sql =
		"SELECT attempt, first_failed_at, topic_id, sent_at, key, tags, headers, payload"
		"  FROM tx_message.retries"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased' AND ($3 = 0 OR attempt = $3)"
		"   FOR UPDATE";
	static const char *reschedule_sql =
		"UPDATE tx_message.retries"
		"   SET state = 'waiting', due_at = clock_timestamp() + $3, last_error = $4, holder = NULL"
		" WHERE sub_id = $1 AND msg_id = $2";
	static const char *delete_sql =
		"DELETE FROM tx_message.retries WHERE sub_id = $1 AND msg_id = $2";
	static const char *new_retry_sql =
		"INSERT INTO tx_message.retries"
		" (sub_id, msg_id, topic_id, sent_at, key, tags, headers, payload, attempt, state,"
		"  due_at, last_error, first_failed_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, 'waiting', clock_timestamp() + $9, $10, clock_timestamp())"
		" ON CONFLICT (sub_id, msg_id) DO NOTHING";
	Holding		h;
	const TxmSub *sub;
	const char *result = NULL;

	if (!find_holding(subs, nsubs, msg_id, &h))
		return NULL;
	sub = &subs[h.sub_index];
	session_forget(sub->sub_id, msg_id);

	if (h.from_retry)
	{
		Oid			types[4] = {INT4OID, INT8OID, INT4OID, TEXTOID};
		Datum		values[4];
		bool		isnull;
		int32		attempt;

		values[0] = Int32GetDatum(sub->sub_id);
		values[1] = Int64GetDatum(msg_id);
		values[2] = Int32GetDatum(h.attempt);
		SPI_connect();
		if (txm_spi_exec(read_retry_sql, 3, types, values, NULL, 1) == 1)
		{
			HeapTuple	row = SPI_copytuple(SPI_tuptable->vals[0]);
			TupleDesc	desc = SPI_tuptable->tupdesc;

			attempt = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
			if (attempt >= sub->max_retries + 1)
			{
				Datum		cols[4];
				bool		nulls[4];

				for (int k = 0; k < 4; k++)
					cols[k] = SPI_getbinval(row, desc, 5 + k, &nulls[k]);
				txm_spi_exec(delete_sql, 2, types, values, NULL, 0);
				txm_dead_letter(sub, msg_id, DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull)),
								cols[0], cols[1], cols[2], cols[3], nulls, attempt,
								"max_retries exceeded", error,
								DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull)));
				result = "dead_letter";
			}
			else
			{
				Oid			rtypes[4] = {INT4OID, INT8OID, INTERVALOID, TEXTOID};
				Datum		rvalues[4];
				char		rnulls[4] = {' ', ' ', ' ', ' '};

				rvalues[0] = values[0];
				rvalues[1] = values[1];
				rvalues[2] = IntervalPGetDatum(retry_in ? retry_in : backoff_after(sub, attempt));
				rvalues[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
				rnulls[3] = error ? ' ' : 'n';
				txm_spi_exec(reschedule_sql, 4, rtypes, rvalues, rnulls, 0);
				result = "retry";
			}
		}
		SPI_finish();
	}
	else
	{
		BlockBits	mask;
		Snapshot	snap;
		BlockSlices bs;
		TxmMsg			m;

		memset(&mask, 0, sizeof(mask));
		bit_set(&mask, h.off);
		if (finish_in_lease(sub->sub_id, h.block, h.first_off, &mask) == 0)
			return NULL;		/* no longer pending: expired and moved, or done */
		snap = RegisterSnapshot(GetLatestSnapshot());
		read_block_slices(sub->topic_id, h.block, snap, &bs);
		m.pos = bs.pos[h.off];
		fetch_messages(&m, 1, bs.slots, snap);
		UnregisterSnapshot(snap);
		if (!m.found)
			return NULL;
		SPI_connect();
		if (sub->max_retries < 1)
		{
			txm_dead_letter(sub, msg_id, m.sent_at, m.cols[0], m.cols[1], m.cols[2],
							m.cols[3], m.isnull, 1, "max_retries exceeded", error,
							GetCurrentTimestamp());
			result = "dead_letter";
		}
		else
		{
			Oid			types[10] = {INT4OID, INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
			TEXTARRAYOID, JSONBOID, JSONBOID, INTERVALOID, TEXTOID};
			Datum		values[10];
			char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

			values[0] = Int32GetDatum(sub->sub_id);
			values[1] = Int64GetDatum(msg_id);
			values[2] = Int32GetDatum(m.topic_id);
			values[3] = TimestampTzGetDatum(m.sent_at);
			for (int k = 0; k < 4; k++)
			{
				values[4 + k] = m.cols[k];
				nulls[4 + k] = m.isnull[k] ? 'n' : ' ';
			}
			values[8] = IntervalPGetDatum(retry_in ? retry_in : backoff_after(sub, 1));
			values[9] = error ? CStringGetTextDatum(error) : (Datum) 0;
			nulls[9] = error ? ' ' : 'n';
			txm_spi_exec(new_retry_sql, 10, types, values, nulls, 0);
			result = "retry";
		}
		SPI_finish();
	}
	if (result && strcmp(result, "retry") == 0)
		broadcast_at_commit = true;
	return result;
}

/*
 * tx_nack(consumer_group text, msg_id bigint, error text, retry_in interval)
 *	RETURNS text
 */
Datum
tx_nack(PG_FUNCTION_ARGS)
{
	char	   *group = group_arg(fcinfo, 0);
	Interval   *retry_in = NULL;
	TxmSub	   *subs;
	int			nsubs;
	const char *result;

	txm_require_arg(fcinfo, 1, "msg_id");
	if (!PG_ARGISNULL(3))
	{
		Interval	zero;

		retry_in = PG_GETARG_INTERVAL_P(3);
		memset(&zero, 0, sizeof(zero));
		if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(retry_in),
											 IntervalPGetDatum(&zero))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retry_in must not be negative")));
	}
	check_can_consume("tx_nack()");
	subs = txm_group_subs(group, &nsubs, false);
	result = txm_nack(subs, nsubs, PG_GETARG_INT64(1),
					  PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
					  retry_in);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/*
 * tx_extend_lease(consumer_group text, msg_ids bigint[], lease interval)
 *	RETURNS integer
 *
 * Leases are per batch: extending one message of a batch extends the batch.
 */
Datum
tx_extend_lease(PG_FUNCTION_ARGS)
{
	static const char *lease_sql =
		"UPDATE tx_message.leases SET lease_until = $4"
		" WHERE sub_id = $1 AND block = $2 AND first_off = $3"
		"   AND get_bit(covered, $5) = 1 AND get_bit(done, $5) = 0";
	static const char *retry_sql =
		"UPDATE tx_message.retries SET due_at = $3"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased'";
	char	   *group = group_arg(fcinfo, 0);
	int			n;
	int64	   *ids = id_array_arg(fcinfo, 1, &n);
	Interval   *lease;
	TimestampTz until;
	TxmSub	   *subs;
	int			nsubs;
	int			extended = 0;

	txm_require_arg(fcinfo, 2, "lease");
	lease = PG_GETARG_INTERVAL_P(2);
	txm_check_positive_interval("lease", lease);
	check_can_consume("tx_extend_lease()");
	subs = txm_group_subs(group, &nsubs, false);
	until = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													TimestampTzGetDatum(GetCurrentTimestamp()),
													IntervalPGetDatum(lease)));
	for (int i = 0; i < n; i++)
	{
		Holding		h;

		if (!find_holding(subs, nsubs, ids[i], &h))
			continue;
		SPI_connect();
		if (h.from_retry)
		{
			Oid			types[3] = {INT4OID, INT8OID, TIMESTAMPTZOID};
			Datum		values[3];

			values[0] = Int32GetDatum(subs[h.sub_index].sub_id);
			values[1] = Int64GetDatum(ids[i]);
			values[2] = TimestampTzGetDatum(until);
			extended += txm_spi_exec(retry_sql, 3, types, values, NULL, 0);
		}
		else
		{
			Oid			types[5] = {INT4OID, INT8OID, INT2OID, TIMESTAMPTZOID, INT4OID};
			Datum		values[5];

			values[0] = Int32GetDatum(subs[h.sub_index].sub_id);
			values[1] = Int64GetDatum(h.block);
			values[2] = Int16GetDatum(h.first_off);
			values[3] = TimestampTzGetDatum(until);
			values[4] = Int32GetDatum(h.off);
			extended += txm_spi_exec(lease_sql, 5, types, values, NULL, 0) > 0;
		}
		SPI_finish();
	}
	PG_RETURN_INT32(extended);
}

/* Housekeeping of every subscription of this database: expiry and watermarks. */
void
txm_maintain_subscriptions(TxmMaintStats *stats)
{
	/* one order for every process, so that their row locks cannot deadlock */
	static const char *sql = "SELECT DISTINCT consumer_group FROM tx_message.subscriptions ORDER BY 1";
	int			ngroups;
	char	  **names;

	SPI_connect();
	ngroups = txm_spi_exec(sql, 0, NULL, NULL, NULL, 0);
	names = SPI_palloc(sizeof(char *) * Max(ngroups, 1));
	for (int i = 0; i < ngroups; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		names[i] = SPI_palloc(strlen(name) + 1);
		strcpy(names[i], name);
	}
	SPI_finish();

	for (int g = 0; g < ngroups; g++)
	{
		int			nsubs;
		TxmSub	   *subs = txm_group_subs(names[g], &nsubs, true);

		for (int i = 0; i < nsubs; i++)
		{
			stats->leases_expired += txm_expire_leases(&subs[i]);
			txm_advance_watermark(&subs[i]);
		}
	}
}
