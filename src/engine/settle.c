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
#include "utils/snapmgr.h"

#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/deliveries.h"
#include "src/engine/settle.h"
#include "src/storage/failures.h"
#include "src/storage/lease.h"

/*
 * Is msg_id one of the pending positions of a lease row (covered, not
 * done)?  Ordinary messages' ids are their positions; messages moved in
 * from delayed or half_messages need their rows read.
 */
static bool
find_in_lease(const TxmSub *sub, int64 block, const TxmBlockBits *covered,
			  const TxmBlockBits *done, int64 msg_id, int16 *off)
{
	TxmBlockSlices bs;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TxmMsg	   *msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
	int		   *offs = palloc(sizeof(int) * TXM_BLOCK);
	int			nmsgs = 0;
	bool		found = false;

	txm_read_block_slices(sub->topic_id, block, snap, &bs);
	for (int o = 0; o < TXM_BLOCK; o++)
		if (txm_bit_get(covered, o) && !txm_bit_get(done, o) && txm_bit_get(&bs.avail, o))
		{
			msgs[nmsgs].pos = bs.pos[o];
			offs[nmsgs++] = o;
		}
	for (int k = 0; k < nmsgs && !found; k++)
		if (msgs[k].pos == msg_id)
		{
			*off = offs[k];
			found = true;
		}
	if (!found)
	{
		txm_fetch_messages(msgs, nmsgs, bs.slots, snap);
		for (int k = 0; k < nmsgs && !found; k++)
			if (msgs[k].found && msgs[k].msg_id == msg_id)
			{
				*off = offs[k];
				found = true;
			}
	}
	UnregisterSnapshot(snap);
	pfree(msgs);
	pfree(offs);
	return found;
}

/* Look a message up among the group's leased retries.  In the caller's SPI connection. */
static bool
find_leased_retry(TxmSub *subs, int nsubs, int64 msg_id, TxmHolding *h)
{
	static const char *sql =
		"SELECT sub_id FROM tx_message.retries"
		" WHERE sub_id = ANY ($1) AND msg_id = $2 AND state = 'leased' LIMIT 1";
	Oid			types[2] = {INT4ARRAYOID, INT8OID};
	Datum		values[2];
	Datum	   *ids = palloc(sizeof(Datum) * nsubs);
	bool		isnull;
	int32		sub_id;

	for (int i = 0; i < nsubs; i++)
		ids[i] = Int32GetDatum(subs[i].sub_id);
	values[0] = PointerGetDatum(construct_array(ids, nsubs, INT4OID, 4, true, TYPALIGN_INT));
	values[1] = Int64GetDatum(msg_id);
	if (txm_spi_exec(sql, 2, types, values, NULL, 1) != 1)
		return false;
	sub_id = DatumGetInt32(txm_spi_value(0, 1, &isnull));
	for (int i = 0; i < nsubs; i++)
		if (subs[i].sub_id == sub_id)
			h->sub_index = i;
	h->from_retry = true;
	h->attempt = 0;
	return true;
}

/* Look a message up among the group's pending leases.  In the caller's SPI connection. */
static bool
find_in_leases(TxmSub *subs, int nsubs, int64 msg_id, TxmHolding *h)
{
	static const char *sql =
		"SELECT block, first_off, covered, done FROM tx_message.leases"
		" WHERE sub_id = $1 AND block >= $2 AND covered <> done";	/* pending ones */
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];

	for (int i = 0; i < nsubs; i++)
	{
		int			n;
		SPITupleTable *rows;

		values[0] = Int32GetDatum(subs[i].sub_id);
		values[1] = Int64GetDatum(0);
		n = txm_spi_exec(sql, 2, types, values, NULL, 0);
		rows = SPI_tuptable;
		for (int r = 0; r < n; r++)
		{
			bool		isnull;
			int64		block = DatumGetInt64(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull));
			TxmBlockBits covered;
			TxmBlockBits done;

			txm_bits_from_datum(SPI_getbinval(rows->vals[r], rows->tupdesc, 3, &isnull), &covered);
			txm_bits_from_datum(SPI_getbinval(rows->vals[r], rows->tupdesc, 4, &isnull), &done);
			if (find_in_lease(&subs[i], block, &covered, &done, msg_id, &h->off))
			{
				h->sub_index = i;
				h->from_retry = false;
				h->block = block;
				h->first_off = DatumGetInt16(SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull));
				h->attempt = 0;
				return true;
			}
		}
	}
	return false;
}

/*
 * Find where a message of the group is held: among what this session
 * received (cheap), or else among the group's leased retries and pending
 * leases (for acks from another connection, e.g. through a pool).  With
 * take, see txm_deliveries_lookup().
 */
static bool
find_holding(TxmSub *subs, int nsubs, int64 msg_id, TxmHolding *h, bool take)
{
	bool		found;

	for (int i = 0; i < nsubs; i++)
	{
		if (txm_deliveries_lookup(subs[i].sub_id, msg_id, h, take))
		{
			h->sub_index = i;
			return true;
		}
	}
	SPI_connect();
	found = find_leased_retry(subs, nsubs, msg_id, h) ||
		find_in_leases(subs, nsubs, msg_id, h);
	SPI_finish();
	return found;
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

/*
 * Acknowledge messages of a group; returns how many this call finished.
 * The messages of one lease row are finished with one update of it.
 */
int
txm_ack(TxmSub *subs, int nsubs, const int64 *ids, int n)
{
	typedef struct LeaseMask
	{
		int32		sub_id;
		int64		block;
		int16		first_off;
		TxmBlockBits mask;
	} LeaseMask;
	LeaseMask  *masks = palloc0(sizeof(LeaseMask) * Max(n, 1));
	int			nmasks = 0;
	int			acked = 0;

	for (int i = 0; i < n; i++)
	{
		TxmHolding	h;
		int32		sub_id;
		int			m;

		if (!find_holding(subs, nsubs, ids[i], &h, true))
			continue;
		sub_id = subs[h.sub_index].sub_id;
		if (h.from_retry)
		{
			/* forgotten once finished: a retried ack must still know its attempt */
			if (finish_retry(sub_id, ids[i], h.attempt))
				acked++;
			txm_deliveries_forget(sub_id, ids[i]);
			continue;
		}
		for (m = 0; m < nmasks; m++)
			if (masks[m].sub_id == sub_id && masks[m].block == h.block &&
				masks[m].first_off == h.first_off)
				break;
		if (m == nmasks)
		{
			masks[m].sub_id = sub_id;
			masks[m].block = h.block;
			masks[m].first_off = h.first_off;
			nmasks++;
		}
		txm_bit_set(&masks[m].mask, h.off);
	}
	for (int m = 0; m < nmasks; m++)
		acked += txm_finish_in_lease(masks[m].sub_id, masks[m].block, masks[m].first_off,
									 &masks[m].mask);
	pfree(masks);
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
		"  FROM tx_message.retries"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased' AND ($3 = 0 OR attempt = $3)"
		"   FOR UPDATE";
	static const char *reschedule_sql =
		"UPDATE tx_message.retries"
		"   SET state = 'waiting', due_at = clock_timestamp() + $3, last_error = $4, holder = NULL"
		" WHERE sub_id = $1 AND msg_id = $2";
	static const char *delete_sql =
		"DELETE FROM tx_message.retries WHERE sub_id = $1 AND msg_id = $2";
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

	if (!find_holding(subs, nsubs, msg_id, &h, true))
		return NULL;
	sub = &subs[h.sub_index];
	if (h.from_retry)
		txm_deliveries_forget(sub->sub_id, msg_id);
	if (h.from_retry)
		result = nack_retry(sub, &h, msg_id, error, retry_in);
	else
		result = nack_lease(sub, &h, msg_id, error, retry_in);
	if (result && strcmp(result, "retry") == 0)
		txm_at_commit_broadcast();
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
		"UPDATE tx_message.retries SET due_at = $3"
		" WHERE sub_id = $1 AND msg_id = $2 AND state = 'leased'";
	int			extended = 0;

	for (int i = 0; i < n; i++)
	{
		TxmHolding	h;

		if (!find_holding(subs, nsubs, ids[i], &h, false))
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
