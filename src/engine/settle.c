/*-------------------------------------------------------------------------
 *
 * settle.c
 *	  Finishing deliveries: ack, nack with retry or dead letter, and lease
 *	  extension.
 *
 * A message is held either by a lease row (a stream delivery: a bit of its
 * block's covered bitmap) or by its retry row (a redelivery).  An ack sets
 * the message's bit in the lease's done bitmap (one HOT update per lease,
 * however many of its messages are acked), or deletes the retry row.  A
 * nack does the same and then schedules a retry with the subscription's
 * backoff, or moves the message to the dead letters after its last allowed
 * attempt.  A delivery this session no longer holds (its lease expired and
 * the message went elsewhere with a higher attempt) counts nothing.
 *
 * IDENTIFICATION
 *	  src/engine/settle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/snapmgr.h"

#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/deliveries.h"
#include "src/engine/settle.h"
#include "src/storage/failures.h"
#include "src/storage/lease.h"

/*
 * Where the messages of a group that this session did not receive itself
 * are held (acks and extensions from another connection, e.g. through a
 * pool): an index built once per call, on the first id that this session's
 * deliveries do not know, with one query for the leased retries of all the
 * call's ids and one pass over the group's pending leases.  So a call costs
 * the same whether it names one unknown id or a hundred thousand.
 */
typedef struct PendingLease
{
	int			sub_index;
	int64		block;
	int16		first_off;
	int16		slots;
	int			n;
	int16		offs[TXM_BLOCK];
	int64		pos[TXM_BLOCK];
} PendingLease;

typedef struct HeldEntry
{
	int64		msg_id;			/* hash key */
	TxmHolding	h;
} HeldEntry;

typedef struct HeldIndex
{
	MemoryContext cxt;			/* the caller's: outlives the SPI connection */
	HTAB	   *held;
	List	   *leases;			/* of PendingLease, for index_moved_messages */
	bool		moved_done;
} HeldIndex;

/* The first holding found for an id wins: leased retries come first. */
static void
add_held(HeldIndex *idx, int64 msg_id, const TxmHolding *h)
{
	bool		found;
	HeldEntry  *e = hash_search(idx->held, &msg_id, HASH_ENTER, &found);

	if (!found)
		e->h = *h;
}

/* The group's leased retries among ids.  In the caller's SPI connection. */
static void
index_leased_retries(HeldIndex *idx, TxmSub *subs, int nsubs, const int64 *ids, int n)
{
	static const char *sql =
		"SELECT sub_id, msg_id FROM tx_message.retries_data"
		" WHERE sub_id = ANY ($1) AND msg_id = ANY ($2) AND state = 'leased'";
	Oid			types[2] = {INT4ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	Datum	   *sub_ids = palloc(sizeof(Datum) * nsubs);
	Datum	   *msg_ids = palloc(sizeof(Datum) * Max(n, 1));
	int			rows;

	for (int i = 0; i < nsubs; i++)
		sub_ids[i] = Int32GetDatum(subs[i].sub_id);
	for (int i = 0; i < n; i++)
		msg_ids[i] = Int64GetDatum(ids[i]);
	values[0] = PointerGetDatum(construct_array(sub_ids, nsubs, INT4OID, 4, true, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(msg_ids, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	rows = txm_spi_exec(sql, 2, types, values, NULL, 0);
	for (int r = 0; r < rows; r++)
	{
		bool		isnull;
		int32		sub_id = DatumGetInt32(txm_spi_value(r, 1, &isnull));
		TxmHolding	h;

		memset(&h, 0, sizeof(h));
		for (int i = 0; i < nsubs; i++)
			if (subs[i].sub_id == sub_id)
				h.sub_index = i;
		h.from_retry = true;
		add_held(idx, DatumGetInt64(txm_spi_value(r, 2, &isnull)), &h);
	}
}

/*
 * The pending positions (covered, not done) of the group's leases: an
 * ordinary message's id is its position.  In the caller's SPI connection.
 */
static void
index_pending_leases(HeldIndex *idx, TxmSub *subs, int nsubs)
{
	static const char *sql =
		"SELECT block, first_off, covered, done FROM tx_message.leases"
		" WHERE sub_id = $1 AND covered <> done";
	Oid			types[1] = {INT4OID};
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

	for (int i = 0; i < nsubs; i++)
	{
		Datum		value = Int32GetDatum(subs[i].sub_id);
		int			rows = txm_spi_exec(sql, 1, types, &value, NULL, 0);
		SPITupleTable *tuptable = SPI_tuptable;

		for (int r = 0; r < rows; r++)
		{
			HeapTuple	row = tuptable->vals[r];
			bool		isnull;
			TxmBlockBits covered;
			TxmBlockBits done;
			TxmBlockSlices bs;
			PendingLease *pl = MemoryContextAlloc(idx->cxt, sizeof(PendingLease));
			TxmHolding	h;
			MemoryContext old;

			pl->sub_index = i;
			pl->block = DatumGetInt64(SPI_getbinval(row, tuptable->tupdesc, 1, &isnull));
			pl->first_off = DatumGetInt16(SPI_getbinval(row, tuptable->tupdesc, 2, &isnull));
			txm_bits_from_datum(SPI_getbinval(row, tuptable->tupdesc, 3, &isnull), &covered);
			txm_bits_from_datum(SPI_getbinval(row, tuptable->tupdesc, 4, &isnull), &done);
			txm_read_block_slices(subs[i].topic_id, pl->block, snap, &bs);
			pl->slots = bs.slots;
			pl->n = 0;
			memset(&h, 0, sizeof(h));
			h.sub_index = i;
			h.block = pl->block;
			h.first_off = pl->first_off;
			for (int o = 0; o < TXM_BLOCK; o++)
			{
				if (!txm_bit_get(&covered, o) || txm_bit_get(&done, o) || !txm_bit_get(&bs.avail, o))
					continue;
				pl->offs[pl->n] = o;
				pl->pos[pl->n++] = bs.pos[o];
				h.off = o;
				add_held(idx, bs.pos[o], &h);
			}
			old = MemoryContextSwitchTo(idx->cxt);
			idx->leases = lappend(idx->leases, pl);
			MemoryContextSwitchTo(old);
		}
	}
	UnregisterSnapshot(snap);
}

/*
 * Messages moved into the log from half_messages or delayed keep their
 * producer's id, which only their rows tell: read when an id was not found
 * otherwise.
 */
static void
index_moved_messages(HeldIndex *idx)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TxmMsg	   *msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
	ListCell   *lc;

	foreach(lc, idx->leases)
	{
		PendingLease *pl = lfirst(lc);
		TxmHolding	h;

		for (int k = 0; k < pl->n; k++)
			msgs[k].pos = pl->pos[k];
		txm_fetch_messages(msgs, pl->n, pl->slots, snap);
		memset(&h, 0, sizeof(h));
		h.sub_index = pl->sub_index;
		h.block = pl->block;
		h.first_off = pl->first_off;
		for (int k = 0; k < pl->n; k++)
		{
			if (!msgs[k].found || msgs[k].msg_id == msgs[k].pos)
				continue;
			h.off = pl->offs[k];
			add_held(idx, msgs[k].msg_id, &h);
		}
	}
	UnregisterSnapshot(snap);
	pfree(msgs);
	idx->moved_done = true;
}

/* Look ids[which] up in the index, building it (for all of ids) on first use. */
static bool
find_indexed(TxmSub *subs, int nsubs, const int64 *ids, int n, int which,
			 HeldIndex **idx, TxmHolding *h)
{
	HeldEntry  *e;

	if (*idx == NULL)
	{
		HASHCTL		ctl;

		*idx = palloc0(sizeof(HeldIndex));
		(*idx)->cxt = CurrentMemoryContext;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(HeldEntry);
		ctl.hcxt = CurrentMemoryContext;
		(*idx)->held = hash_create("tx_message held messages", Max(n, 64), &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		SPI_connect();
		index_leased_retries(*idx, subs, nsubs, ids, n);
		index_pending_leases(*idx, subs, nsubs);
		SPI_finish();
	}
	e = hash_search((*idx)->held, &ids[which], HASH_FIND, NULL);
	if (e == NULL && !(*idx)->moved_done)
	{
		index_moved_messages(*idx);
		e = hash_search((*idx)->held, &ids[which], HASH_FIND, NULL);
	}
	if (e == NULL)
		return false;
	*h = e->h;
	return true;
}

/*
 * Find where ids[which] of the group is held: among what this session
 * received (cheap), or else in the index of the group's leased retries and
 * pending leases, built on first use for all of ids.  With take, see
 * txm_deliveries_lookup().
 */
static bool
find_holding(TxmSub *subs, int nsubs, const int64 *ids, int n, int which,
			 TxmHolding *h, bool take, HeldIndex **idx)
{
	for (int i = 0; i < nsubs; i++)
	{
		TxmHeld		held = txm_deliveries_lookup(subs[i].sub_id, ids[which], h, take);

		if (held == TXM_HELD_SETTLED)
			return false;
		if (held == TXM_HELD_HERE)
		{
			h->sub_index = i;
			return true;
		}
	}
	return find_indexed(subs, nsubs, ids, n, which, idx, h);
}

/* Finish a leased retry; attempt 0 accepts whichever attempt holds it. */
static bool
finish_retry(int32 sub_id, int64 msg_id, int32 attempt)
{
	static const char *sql =
		"DELETE FROM tx_message.retries_data"
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

/* The positions an ack finishes in one lease row. */
typedef struct LeaseMask
{
	int32		sub_id;
	int64		block;
	int16		first_off;
	TxmBlockBits mask;
	int			nbits;			/* bits set in mask */
} LeaseMask;

typedef struct LeaseMaskKey
{
	int32		sub_id;
	int16		first_off;
	int64		block;
} LeaseMaskKey;

typedef struct LeaseMaskEntry
{
	LeaseMaskKey key;
	int			index;
} LeaseMaskEntry;

/*
 * The index in masks of the entry for one lease row, added if new.  Ids of
 * one batch come together, so the last entry is tried first; past a few
 * entries a hash table keeps an ack of many batches linear.
 */
static int
lease_mask_index(LeaseMask *masks, int *nmasks, HTAB **by_lease,
				 int32 sub_id, int64 block, int16 first_off)
{
	LeaseMaskKey key;
	LeaseMaskEntry *e;
	bool		found;
	int			m = *nmasks - 1;

	if (m >= 0 && masks[m].sub_id == sub_id && masks[m].block == block &&
		masks[m].first_off == first_off)
		return m;
	if (*nmasks <= 8)
	{
		for (m = 0; m < *nmasks; m++)
			if (masks[m].sub_id == sub_id && masks[m].block == block &&
				masks[m].first_off == first_off)
				return m;
	}
	else
	{
		if (*by_lease == NULL)
		{
			HASHCTL		ctl;

			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = sizeof(LeaseMaskKey);
			ctl.entrysize = sizeof(LeaseMaskEntry);
			ctl.hcxt = CurrentMemoryContext;
			*by_lease = hash_create("tx_message acked leases", 256, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			for (m = 0; m < *nmasks; m++)
			{
				memset(&key, 0, sizeof(key));
				key.sub_id = masks[m].sub_id;
				key.block = masks[m].block;
				key.first_off = masks[m].first_off;
				e = hash_search(*by_lease, &key, HASH_ENTER, NULL);
				e->index = m;
			}
		}
		memset(&key, 0, sizeof(key));
		key.sub_id = sub_id;
		key.block = block;
		key.first_off = first_off;
		e = hash_search(*by_lease, &key, HASH_ENTER, &found);
		if (found)
			return e->index;
		e->index = *nmasks;
	}
	m = (*nmasks)++;
	masks[m].sub_id = sub_id;
	masks[m].block = block;
	masks[m].first_off = first_off;
	return m;
}

/* Count n acks or nacks of subscription sub_id for tx_message.stats. */
static void
count_settled(const TxmSub *subs, int nsubs, int32 sub_id, TxmTotalKind kind, uint64 n)
{
	for (int i = 0; i < nsubs; i++)
		if (subs[i].sub_id == sub_id)
			txm_at_commit_count(subs[i].topic_id, sub_id, kind, n);
}

/*
 * Acks of an ordered subscription let the next message of each key go:
 * wake the receivers waiting for messages when they commit (nothing else
 * would until the next tick that finds new messages).
 */
static void
wake_if_ordered(const TxmSub *subs, int nsubs, int32 sub_id)
{
	for (int i = 0; i < nsubs; i++)
		if (subs[i].sub_id == sub_id && subs[i].ordered)
			txm_at_commit_broadcast();
}

/*
 * Acknowledge messages of a group; returns how many this call finished.
 * The messages of one lease row are finished with one update of it.
 */
int
txm_ack(TxmSub *subs, int nsubs, const int64 *ids, int n)
{
	LeaseMask  *masks = palloc0(sizeof(LeaseMask) * Max(n, 1));
	int		   *mask_of = palloc(sizeof(int) * Max(n, 1));
	int			nmasks = 0;
	int			acked = 0;
	HeldIndex  *idx = NULL;
	HTAB	   *by_lease = NULL;

	for (int i = 0; i < n; i++)
	{
		TxmHolding	h;
		int32		sub_id;
		int			m;

		mask_of[i] = -1;
		if (!find_holding(subs, nsubs, ids, n, i, &h, true, &idx))
			continue;
		sub_id = subs[h.sub_index].sub_id;
		if (h.from_retry)
		{
			/* settled once finished: a retried ack must still know its attempt */
			if (finish_retry(sub_id, ids[i], h.attempt))
			{
				acked++;
				count_settled(subs, nsubs, sub_id, TXM_TOTAL_ACKED, 1);
				wake_if_ordered(subs, nsubs, sub_id);
			}
			txm_deliveries_settle(sub_id, ids[i], NULL);
			continue;
		}
		m = lease_mask_index(masks, &nmasks, &by_lease, sub_id, h.block, h.first_off);
		if (!txm_bit_get(&masks[m].mask, h.off))
			masks[m].nbits++;
		txm_bit_set(&masks[m].mask, h.off);
		mask_of[i] = m;
	}
	for (int m = 0; m < nmasks; m++)
	{
		int			finished = txm_finish_in_lease(masks[m].sub_id, masks[m].block,
												   masks[m].first_off, &masks[m].mask);

		acked += finished;
		count_settled(subs, nsubs, masks[m].sub_id, TXM_TOTAL_ACKED, (uint64) finished);
		if (finished > 0)
			wake_if_ordered(subs, nsubs, masks[m].sub_id);
		if (finished == masks[m].nbits)
			continue;
		/*
		 * Some were no longer held (their lease expired): a second ack must
		 * not find them in the tables, held by their next receiver.
		 */
		for (int i = 0; i < n; i++)
			if (mask_of[i] == m)
				txm_deliveries_settle(masks[m].sub_id, ids[i], NULL);
	}
	pfree(masks);
	pfree(mask_of);
	return acked;
}

/*
 * Acknowledge every message the current transaction received from the
 * group's subscriptions served by tx_receive (pull) and has not settled
 * since (tx_ack(group)): what this session remembered of the transaction's
 * deliveries, so no id travels to the client and back, and nothing received
 * in another transaction or a rolled-back subtransaction is finished.  A
 * handler subscription's batch is never taken: its handler calls settle it
 * one by one.  Returns how many this call finished.
 */
int
txm_ack_received(TxmSub *subs, int nsubs, const bool *pull)
{
	int32	   *sub_ids = palloc(sizeof(int32) * nsubs);
	int			npull = 0;
	int64	   *ids;
	int			n;
	int			acked;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
			sub_ids[npull++] = subs[i].sub_id;
	ids = txm_deliveries_held_in_xact(sub_ids, npull, &n);
	acked = txm_ack(subs, nsubs, ids, n);
	pfree(ids);
	pfree(sub_ids);
	return acked;
}

/* The backoff before attempt number failed_attempt + 1. */
static Interval *
backoff_after(const TxmSub *sub, int32 failed_attempt)
{
	int			step = Min(Max(failed_attempt, 1), sub->nbackoff) - 1;

	return &sub->backoff[step];
}

/* nack of a redelivery: reschedule its retry row, or dead-letter it after the last attempt. */
static const char *
nack_retry(const TxmSub *sub, const TxmHolding *h, int64 msg_id, const char *error,
		   Interval *retry_in)
{
	static const char *read_sql =
		"SELECT attempt, first_failed_at, topic_id, sent_at, key, tags, headers, payload"
		"  FROM tx_message.retries_data"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased' AND ($3 = 0 OR attempt = $3)"
		"   FOR UPDATE";
	static const char *reschedule_sql =
		"UPDATE tx_message.retries_data"
		"   SET state = 'waiting', due_at = clock_timestamp() + $3, last_error = $4, holder = NULL"
		" WHERE sub_id = $1 AND msg_id = $2";
	static const char *delete_sql =
		"DELETE FROM tx_message.retries_data WHERE sub_id = $1 AND msg_id = $2";
	Oid			types[4] = {INT4OID, INT8OID, INT4OID, TEXTOID};
	Datum		values[4];
	const char *result = NULL;
	bool		isnull;

	values[0] = Int32GetDatum(sub->sub_id);
	values[1] = Int64GetDatum(msg_id);
	values[2] = Int32GetDatum(h->attempt);
	SPI_connect();
	if (txm_spi_exec(read_sql, 3, types, values, NULL, 1) == 1)
	{
		HeapTuple	row = SPI_copytuple(SPI_tuptable->vals[0]);
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int32		attempt = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));

		if (attempt >= sub->max_retries + 1)
		{
			Datum		cols[TXM_MSG_NCOLS];
			bool		nulls[TXM_MSG_NCOLS];

			for (int k = 0; k < TXM_MSG_NCOLS; k++)
				cols[k] = SPI_getbinval(row, desc, 5 + k, &nulls[k]);
			txm_spi_exec(delete_sql, 2, types, values, NULL, 0);
			txm_dead_letter(sub, msg_id, DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull)),
							cols, nulls, attempt, "max_retries exceeded", error,
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
			rnulls[3] = txm_spi_null(error == NULL);
			txm_spi_exec(reschedule_sql, 4, rtypes, rvalues, rnulls, 0);
			result = "retry";
		}
	}
	SPI_finish();
	return result;
}

/* nack of a first delivery: finish it in its lease, then retry or dead-letter it. */
static const char *
nack_lease(const TxmSub *sub, const TxmHolding *h, int64 msg_id, const char *error,
		   Interval *retry_in)
{
	TxmBlockBits mask;
	Snapshot	snap;
	TxmBlockSlices bs;
	TxmMsg		m;
	const char *result;

	memset(&mask, 0, sizeof(mask));
	txm_bit_set(&mask, h->off);
	if (txm_finish_in_lease(sub->sub_id, h->block, h->first_off, &mask) == 0)
		return NULL;			/* no longer pending: expired and moved, or done */
	snap = RegisterSnapshot(GetLatestSnapshot());
	txm_read_block_slices(sub->topic_id, h->block, snap, &bs);
	m.pos = bs.pos[h->off];
	txm_fetch_messages(&m, 1, bs.slots, snap);
	UnregisterSnapshot(snap);
	if (!m.found)
		return NULL;
	m.msg_id = msg_id;
	SPI_connect();
	if (sub->max_retries < 1)
	{
		txm_dead_letter(sub, msg_id, m.sent_at, m.cols, m.isnull, 1, "max_retries exceeded",
						error, GetCurrentTimestamp());
		result = "dead_letter";
	}
	else
	{
		txm_retry_insert(sub, &m, retry_in ? retry_in : backoff_after(sub, 1), error);
		result = "retry";
	}
	SPI_finish();
	return result;
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
	TxmHolding	h;
	const TxmSub *sub;
	const char *result;
	HeldIndex  *idx = NULL;

	if (!find_holding(subs, nsubs, &msg_id, 1, 0, &h, true, &idx))
		return NULL;
	sub = &subs[h.sub_index];
	/* whatever it does, a nack settles the delivery for this session */
	txm_deliveries_settle(sub->sub_id, msg_id, &h);
	if (h.from_retry)
		result = nack_retry(sub, &h, msg_id, error, retry_in);
	else
		result = nack_lease(sub, &h, msg_id, error, retry_in);
	if (result && strcmp(result, "retry") == 0)
		txm_at_commit_broadcast();
	if (result)
		txm_at_commit_count(sub->topic_id, sub->sub_id, TXM_TOTAL_NACKED, 1);
	return result;
}

/*
 * Keep held messages until until.  Leases are per batch: extending one
 * message of a batch extends the batch.  Returns how many of the messages
 * were held.
 */
int
txm_extend(TxmSub *subs, int nsubs, const int64 *ids, int n, TimestampTz until)
{
	static const char *lease_sql =
		"UPDATE tx_message.leases SET lease_until = $4"
		" WHERE sub_id = $1 AND block = $2 AND first_off = $3"
		"   AND get_bit(covered, $5) = 1 AND get_bit(done, $5) = 0";
	static const char *retry_sql =
		"UPDATE tx_message.retries_data SET due_at = $3"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased'";
	int			extended = 0;
	HeldIndex  *idx = NULL;

	for (int i = 0; i < n; i++)
	{
		TxmHolding	h;

		if (!find_holding(subs, nsubs, ids, n, i, &h, false, &idx))
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
	return extended;
}
