/*-------------------------------------------------------------------------
 *
 * claim_retries.c
 *	  Claiming due retries: the failed deliveries whose next attempt is due,
 *	  and retry leases that expired, taken before the streams.
 *
 * A retry is a row of tx_message.retries_data; a receive locks the due
 * rows it takes (skipping those other receivers locked) and leases them in
 * place.  Receivers skip the look-up while the retry hints in shared
 * memory say none is due; any statement that writes retries voids the
 * hints at its commit.
 *
 * IDENTIFICATION
 *	  src/engine/claim_retries.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/claim_retries.h"
#include "src/storage/failures.h"

/* A retry row of the due query, as a message. */
static void
retry_row_msg(HeapTuple row, TupleDesc desc, TxmMsg *m)
{
	bool		isnull;

	memset(m, 0, sizeof(TxmMsg));
	m->found = true;
	m->msg_id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	m->pos = m->msg_id;
	m->topic_id = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
	m->sent_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull));
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		m->cols[k] = SPI_getbinval(row, desc, 5 + k, &m->isnull[k]);
		/* the delivery outlives this SPI connection */
		if (!m->isnull[k])
			m->cols[k] = SPI_datumTransfer(m->cols[k], false, -1);
	}
}

/*
 * Lock the first need due retries of each pulled subscription (skipping
 * those locked by others) and return how many, in SPI_tuptable, with
 * *order their row numbers in (due_at, msg_id) order.  A receive thus reads a
 * batch of them per subscription however many are due, along retries_due.
 * With several subscriptions, rows beyond those delivered stay locked until
 * the transaction ends, and other receivers skip them meanwhile.  Runs in
 * the caller's SPI connection.
 */
static int
lock_due_retries(Datum sub_ids, int need, int **order)
{
	static const char *due_sql =
		"SELECT d.sub_id, d.msg_id, d.topic_id, d.sent_at, d.key, d.tags, d.headers, d.payload,"
		"       d.attempt, d.state, d.first_failed_at, d.due_at"
		"  FROM unnest($1) AS s(sub_id),"
		"       LATERAL (SELECT * FROM tx_message.retries_data r WHERE r.sub_id = s.sub_id AND r.due_at <= $3"
		"                 ORDER BY r.due_at, r.msg_id LIMIT $2 FOR UPDATE OF r SKIP LOCKED) d";
	Oid			types[3] = {INT4ARRAYOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[3];
	int			nest_level;
	int			n;

	values[0] = sub_ids;
	values[1] = Int32GetDatum(need);
	/* a parameter, where clock_timestamp() would not bound the index scan */
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());

	/*
	 * Planned without sorts: statistics lag behind a burst of retries (a
	 * crashed consumer's leases, a failing downstream), and a plan for the
	 * few rows they show would sort every due row on each receive.  The
	 * plan left has no sort, and so none of the cost that disables one
	 * (on a database still at 1.0, whose index ends at due_at, retries that
	 * fell due at the same moment still go through an incremental sort on
	 * msg_id; the update adds msg_id to the index).  Nor JIT: the generic
	 * plan's LIMIT $2 is costed at a tenth of the due rows, which with many
	 * of them would compile it on every receive.
	 */
	nest_level = NewGUCNestLevel();
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	n = txm_spi_exec(due_sql, 3, types, values, NULL, 0);
	AtEOXact_GUC(true, nest_level);

	*order = txm_spi_rows_in_order(n, 12, 2);
	return n;
}

/*
 * Take up to need due retries (and expired retry leases) of the pulled
 * subscriptions.  A retry whose lease expired on its last allowed attempt
 * goes to the dead letters instead.  Runs in the caller's SPI connection.
 */
static int
take_due_retries(TxmSub *subs, int nsubs, Datum sub_ids, int need,
				 const TimestampTz *lease_until, List **out, MemoryContext outer, int *ndue)
{
	static const char *lease_sql =
		"UPDATE tx_message.retries_data"
		"   SET state = 'leased', attempt = attempt + 1, due_at = $3, leased_at = clock_timestamp(), holder = $4"
		" WHERE sub_id = $1 AND msg_id = $2";
	static const char *delete_sql =
		"DELETE FROM tx_message.retries_data WHERE sub_id = $1 AND msg_id = $2";
	Oid			ktypes[4] = {INT4OID, INT8OID, TIMESTAMPTZOID, INT4OID};
	SPITupleTable *rows;
	int		   *order;
	int			got = 0;

	*ndue = lock_due_retries(sub_ids, need, &order);
	rows = SPI_tuptable;
	/* a retry that goes to the dead letters leaves its place to the next */
	for (int j = 0; j < *ndue && got < need; j++)
	{
		int			i = order[j];
		bool		isnull;
		int32		sub_id = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
		int32		attempt = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 9, &isnull));
		char	   *state = SPI_getvalue(rows->vals[i], rows->tupdesc, 10);
		int			si = -1;
		Datum		kvalues[4];
		TxmMsg		m;
		MemoryContext spi;

		for (int k = 0; k < nsubs; k++)
			if (subs[k].sub_id == sub_id)
				si = k;
		if (si < 0)
			continue;
		retry_row_msg(rows->vals[i], rows->tupdesc, &m);
		kvalues[0] = Int32GetDatum(sub_id);
		kvalues[1] = Int64GetDatum(m.msg_id);
		if (strcmp(state, "leased") == 0 && attempt >= subs[si].max_retries + 1)
		{
			/* its last lease expired: a crashed consumer, or a poison message */
			TimestampTz first = DatumGetTimestampTz(SPI_getbinval(rows->vals[i], rows->tupdesc, 11, &isnull));

			txm_spi_exec(delete_sql, 2, ktypes, kvalues, NULL, 0);
			/*
			 * The trigger that voids the retry hints fires on inserts and
			 * updates only; a hint set after this deletion would hide the
			 * row again if the deletion is rolled back.
			 */
			txm_at_commit_retries_written();
			txm_dead_letter(&subs[si], m.msg_id, m.sent_at, m.cols, m.isnull, attempt,
							"max_retries exceeded", "lease expired", first);
			continue;
		}
		kvalues[2] = TimestampTzGetDatum(lease_until[si]);
		kvalues[3] = Int32GetDatum(MyProcPid);
		txm_spi_exec(lease_sql, 4, ktypes, kvalues, NULL, 0);
		spi = MemoryContextSwitchTo(outer);
		txm_delivery_add(out, si, &m, attempt + 1, lease_until[si], true, 0, 0);
		MemoryContextSwitchTo(spi);
		got++;
	}
	return got;
}

/*
 * Deliver due retries (and expired retry leases) of the given
 * subscriptions.  When all that was due is taken, note in the hints when the
 * next one falls due, read with a snapshot newer than the hint version; not
 * after this transaction wrote retries: its commit voids the hints anyway.
 */
int
txm_claim_retries(TxmSub *subs, int nsubs, const bool *pull, int need,
				  const TimestampTz *lease_until, List **out)
{
	static const char *next_due_sql =
		"SELECT min(due_at) FROM tx_message.retries_data WHERE sub_id = $1";
	Datum	   *ids = palloc(sizeof(Datum) * nsubs);
	int32	   *sub_ids = palloc(sizeof(int32) * nsubs);
	uint32		version;
	int			nids = 0;
	int			ndue;
	int			got;
	MemoryContext outer = CurrentMemoryContext;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
		{
			sub_ids[nids] = subs[i].sub_id;
			ids[nids++] = Int32GetDatum(subs[i].sub_id);
		}
	if (nids == 0)
		return 0;
	if (!txm_hint_retries_possible(sub_ids, nids, GetCurrentTimestamp(), &version))
		return 0;
	SPI_connect();
	got = take_due_retries(subs, nsubs,
						   PointerGetDatum(construct_array(ids, nids, INT4OID, 4, true, TYPALIGN_INT)),
						   need, lease_until, out, outer, &ndue);
	if (ndue < need && txm_my_slot() != NULL && !txm_xact_wrote_retries())
	{
		for (int i = 0; i < nids; i++)
		{
			Oid			types[1] = {INT4OID};
			Datum		values[1];
			bool		isnull;
			Datum		d;

			values[0] = Int32GetDatum(sub_ids[i]);
			txm_spi_exec_latest(next_due_sql, 1, types, values, NULL, 1);
			d = txm_spi_value(0, 1, &isnull);
			txm_hint_retry_set(sub_ids[i], version, isnull ? DT_NOEND : DatumGetTimestampTz(d));
		}
	}
	SPI_finish();
	return got;
}
