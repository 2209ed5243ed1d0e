/*-------------------------------------------------------------------------
 *
 * lineage.c
 *	  Taking over a restored dump (docs/design.md, "Dump and restore").
 *
 * pg_dump carries every table of the extension but tx_message.instance
 * (this database's own id base) and log_slots; tx_message.lineage carries
 * the dumped database's token, id base and log_slots.  After a restore,
 * lineage holds a row whose token is not this instance's.  Before anything
 * makes an id or ticks here, that dump is taken over, once, under an
 * exclusive lock on instance (which every transaction that makes ids holds
 * in RowShareLock) and the tick lock:
 *
 *	- the id base is raised so that every id made from now on is above every
 *	  id in the dump and the dumped ticks' snapshots (which are in the
 *	  dumped database's virtual xids); ids below the new floor are the
 *	  dump's, so the next tick diffs the dumped last tick against this
 *	  database's snapshot and slices exactly the dumped messages that were
 *	  committed but not yet ticked there;
 *	- log_slots gets back the dumped state, so retention goes on where it
 *	  was;
 *	- leases and leased retries expire now: their holders were sessions of
 *	  the dumped database, and their messages come again;
 *	- identity sequences move past the restored rows;
 *	- what the dump did not carry is repaired where it can be, and said.
 *
 * IDENTIFICATION
 *	  src/storage/lineage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/storage/lineage.h"
#include "src/storage/log.h"
#include "src/storage/stream.h"

/* true while this backend writes lineage itself (its trigger ignores that) */
static bool internal_write = false;

bool
txm_lineage_internal_write(void)
{
	return internal_write;
}

/* Run a statement on lineage as the extension, not as a restore. */
static void
write_lineage(const char *sql, int nargs, const Oid *types, Datum *values, const char *nulls)
{
	internal_write = true;
	PG_TRY();
	{
		txm_spi_exec(sql, nargs, types, values, nulls, 0);
	}
	PG_FINALLY();
	{
		internal_write = false;
	}
	PG_END_TRY();
}

/*
 * Keep this database's lineage row's copy of log_slots current: called in
 * the transaction that changed log_slots, inside SPI.
 */
void
txm_lineage_save_slots(void)
{
	static const char *sql =
		"UPDATE tx_message.lineage SET updated_at = now(),"
		"       slots = (SELECT jsonb_agg(to_jsonb(l) - 'log_table' ORDER BY l.slot)"
		"                  FROM tx_message.log_slots l)"
		" WHERE token = (SELECT token FROM tx_message.instance)";

	write_lineage(sql, 0, NULL, NULL, NULL);
}

/*
 * Move the identity sequences of topics and subscriptions past the rows a
 * restore loaded (sequences behind identity columns are not dumped with
 * the data).  Returns how many were moved.  Call inside SPI.
 */
int
txm_repair_identities(void)
{
	static const char *sql =
		"SELECT pg_catalog.setval('tx_message.topics_topic_id_seq', m) FROM"
		" (SELECT max(topic_id) AS m FROM tx_message.topics) x,"
		" tx_message.topics_topic_id_seq s"
		" WHERE m > s.last_value OR (m = s.last_value AND NOT s.is_called)"
		" UNION ALL"
		" SELECT pg_catalog.setval('tx_message.subscriptions_sub_id_seq', m) FROM"
		" (SELECT max(sub_id) AS m FROM tx_message.subscriptions) x,"
		" tx_message.subscriptions_sub_id_seq s"
		" WHERE m > s.last_value OR (m = s.last_value AND NOT s.is_called)";

	return txm_spi_exec(sql, 0, NULL, NULL, NULL, 0);
}

/*
 * The first virtual xid above every id and every ticked snapshot of the
 * dump: the largest of the logs' positions (one index probe each), of the
 * ids kept by rows moved in from half_messages or delayed, of the ids of
 * half, delayed, retried and dead-lettered messages, and the last tick's
 * xmax.
 */
static uint64
dump_high_water(void)
{
	static const char *sql =
		"SELECT greatest("
		"  (SELECT max(pos) FROM tx_message.log_0), (SELECT max(pos) FROM tx_message.log_1),"
		"  (SELECT max(pos) FROM tx_message.log_2),"
		"  (SELECT max(msg_id) FROM tx_message.log_0), (SELECT max(msg_id) FROM tx_message.log_1),"
		"  (SELECT max(msg_id) FROM tx_message.log_2),"
		"  (SELECT max(msg_id) FROM tx_message.half_messages),"
		"  (SELECT max(msg_id) FROM tx_message.delayed),"
		"  (SELECT max(msg_id) FROM tx_message.retries_data),"
		"  (SELECT max(msg_id) FROM tx_message.dead_letters_data)),"
		" (SELECT pg_catalog.pg_snapshot_xmax(snapshot)::text::bigint"
		"    FROM tx_message.ticks ORDER BY tick_id DESC LIMIT 1)";
	bool		isnull;
	uint64		high = 0;
	Datum		d;

	txm_spi_exec_latest(sql, 0, NULL, NULL, NULL, 1);
	d = txm_spi_value(0, 1, &isnull);
	if (!isnull)
		high = TXM_POS_XID(DatumGetInt64(d)) + 1;
	d = txm_spi_value(0, 2, &isnull);
	if (!isnull)
		high = Max(high, (uint64) DatumGetInt64(d));
	return high;
}

/* Give log_slots back the dumped state (NULL slots: as CREATE EXTENSION left it). */
static void
restore_slots(Datum slots)
{
	/* two statements: log_slots_one_current is checked row by row */
	static const char *clear_sql = "UPDATE tx_message.log_slots SET is_current = false";
	static const char *set_sql =
		"UPDATE tx_message.log_slots l"
		"   SET is_current = (s->>'is_current')::boolean,"
		"       opened_at = (s->>'opened_at')::timestamptz,"
		"       closed_at = (s->>'closed_at')::timestamptz,"
		"       opened_heads = nullif(s->'opened_heads', 'null'),"
		"       sealed_heads = nullif(s->'sealed_heads', 'null')"
		"  FROM pg_catalog.jsonb_array_elements($1) s"
		" WHERE l.slot = (s->>'slot')::smallint";
	Oid			types[1] = {JSONBOID};

	txm_spi_exec(clear_sql, 0, NULL, NULL, NULL, 0);
	txm_spi_exec(set_sql, 1, types, &slots, NULL, 0);
	txm_invalidate(txm_catalog()->log_slots);
}

/*
 * Subscriptions that came without a position (the dump was made without
 * tx_message.sub_state, or by hand): they start at the newest message, so
 * that a handler never runs again over old ones.  Returns how many.
 */
static int
repair_positions(void)
{
	static const char *positions_sql =
		"SELECT s.sub_id, t.topic_id, s.consumer_group, s.topic"
		"  FROM tx_message.subscriptions s JOIN tx_message.topics t USING (topic)"
		" WHERE NOT EXISTS (SELECT FROM tx_message.sub_state st WHERE st.sub_id = s.sub_id)"
		" ORDER BY s.sub_id";
	static const char *state_sql =
		"INSERT INTO tx_message.sub_state (sub_id, done_seq, updated_at) VALUES ($1, $2, now())"
		" ON CONFLICT (sub_id) DO NOTHING";
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];
	int			n = txm_spi_exec_latest(positions_sql, 0, NULL, NULL, NULL, 0);
	SPITupleTable *rows = SPI_tuptable;

	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *group = SPI_getvalue(rows->vals[i], rows->tupdesc, 3);
		char	   *topic = SPI_getvalue(rows->vals[i], rows->tupdesc, 4);
		int32		topic_id = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));

		values[0] = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		values[1] = Int64GetDatum(txm_stream_start(topic_id, false));
		txm_spi_exec(state_sql, 2, types, values, NULL, 0);
		ereport(WARNING,
				(errmsg("the subscription of consumer group \"%s\" to topic \"%s\" has no position in the restored dump, and starts at the newest message",
						group, topic),
				 errdetail("The dump did not carry tx_message.sub_state."),
				 errhint("Dump the whole database, or redeliver what it missed with tx_send().")));
	}
	return n;
}

/*
 * Slices (positions of messages still to deliver to some group) whose
 * first message is in none of the log tables: the dump did not carry the
 * log.  Returns how many.
 */
static int64
count_missing_messages(void)
{
	/* OFFSET 0: a subquery pulled up would decode a packed slice once per use */
#define COUNT_MISSING_SQL(POSITIONS) \
		"SELECT count(*) FROM tx_message.slices s, LATERAL (SELECT " POSITIONS " AS positions OFFSET 0) p" \
		" WHERE s.first_seq + cardinality(p.positions) >" \
		"       (SELECT min(st.done_seq) FROM tx_message.sub_state st" \
		"          JOIN tx_message.subscriptions su USING (sub_id)" \
		"          JOIN tx_message.topics t USING (topic) WHERE t.topic_id = s.topic_id)" \
		"   AND NOT EXISTS (SELECT FROM tx_message.log_0 l WHERE l.pos = p.positions[1])" \
		"   AND NOT EXISTS (SELECT FROM tx_message.log_1 l WHERE l.pos = p.positions[1])" \
		"   AND NOT EXISTS (SELECT FROM tx_message.log_2 l WHERE l.pos = p.positions[1])"
	static const char *sql[2] = {COUNT_MISSING_SQL(TXM_SLICE_POSITIONS_1_0),
		COUNT_MISSING_SQL(TXM_SLICE_POSITIONS_1_1)};
	bool		isnull;

	txm_spi_exec_latest(sql[txm_catalog()->v1_1], 0, NULL, NULL, NULL, 1);
	return DatumGetInt64(txm_spi_value(0, 1, &isnull));
}

/* Record the take-over, and what it found missing, in this database's rows. */
static void
record_take_over(uint64 base, uint64 floor, Datum slots, bool slots_null, const char *problem)
{
	static const char *instance_sql =
		"UPDATE tx_message.instance SET id_base = $1, id_floor = $2, restored_at = now(),"
		"       restore_problem = $3";
	static const char *lineage_sql =
		"WITH gone AS (DELETE FROM tx_message.lineage"
		"               WHERE token <> (SELECT token FROM tx_message.instance))"
		"UPDATE tx_message.lineage SET id_base = $1, slots = $2, updated_at = now()"
		" WHERE token = (SELECT token FROM tx_message.instance)";
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	Oid			ltypes[2] = {INT8OID, JSONBOID};
	Datum		lvalues[2];
	char		lnulls[2] = {' ', ' '};

	values[0] = Int64GetDatum((int64) base);
	values[1] = Int64GetDatum((int64) floor);
	values[2] = problem ? CStringGetTextDatum(problem) : (Datum) 0;
	nulls[2] = txm_spi_null(problem == NULL);
	txm_spi_exec(instance_sql, 3, types, values, nulls, 0);
	lvalues[0] = values[0];
	lvalues[1] = slots;
	lnulls[1] = txm_spi_null(slots_null);
	write_lineage(lineage_sql, 2, ltypes, lvalues, lnulls);
	txm_invalidate(txm_catalog()->instance);
}

/* What take_over_begin found. */
typedef enum TakeOverStart
{
	TAKE_OVER_GO,				/* locks held, a dump to take over */
	TAKE_OVER_DONE,				/* nothing to do (any more) */
	TAKE_OVER_BUSY				/* a producer or a restore in the way: later */
} TakeOverStart;

/*
 * The locks of a take-over (txm_take_over_restore), and whether there is
 * one to do.  Unless it answers TAKE_OVER_GO, it holds no lock it took.
 * *restore_gen: the restorers' generation it found no restore loading at
 * (a backend marked after that is loading another dump, and stays marked).
 */
static TakeOverStart
take_over_begin(const TxmCatalog *c, bool holding_ticks, uint64 *restore_gen)
{
	TakeOverStart result = TAKE_OVER_GO;
	bool		loading;

	if (holding_ticks)
	{
		if (!ConditionalLockRelationOid(c->instance, ExclusiveLock))
			return TAKE_OVER_BUSY;
	}
	else
	{
		LockRelationOid(c->instance, ExclusiveLock);
		LockRelationOid(c->ticks, ExclusiveLock);
	}
	txm_forget_instance();
	if (!txm_instance()->restore_pending)
		result = TAKE_OVER_DONE;	/* taken over meanwhile */

	/*
	 * A restoring session marks itself before its first COPY commits, so
	 * one whose rows we see is marked by now, even if it was not when the
	 * caller looked: its dump is still loading, and taking it over now
	 * would tick under the ticks it has yet to load.
	 */
	else
	{
		*restore_gen = txm_restore_generation(&loading);
		if (loading)
			result = TAKE_OVER_BUSY;
	}
	if (result != TAKE_OVER_GO)
	{
		/* hold up no producer until this transaction ends */
		UnlockRelationOid(c->instance, ExclusiveLock);
		if (!holding_ticks)
			UnlockRelationOid(c->ticks, ExclusiveLock);
	}
	return result;
}

/*
 * Take over a restored dump, in the current transaction.  The locks are
 * taken in the order producers take them (instance, then ticks); a caller
 * that holds the tick lock already (a tick) passes holding_ticks and only
 * tries instance, and gets false back if a producer holds it: it ticks
 * later.  Any caller gets false back while a restore is still loading.
 * Concurrent callers wait for the first and find nothing to do.
 * Reads use the latest snapshot, whatever the isolation level: a restore
 * may have committed after the transaction's snapshot was taken.
 */
bool
txm_take_over_restore(bool holding_ticks)
{
	static const char *foreign_sql =
		"SELECT slots, id_base FROM tx_message.lineage"
		" WHERE token <> (SELECT token FROM tx_message.instance)"
		" ORDER BY slots IS NULL, updated_at DESC LIMIT 1";
	static const char *expire_sql =
		"WITH l AS (UPDATE tx_message.leases SET lease_until = now() WHERE lease_until > now())"
		"UPDATE tx_message.retries_data SET due_at = now()"
		" WHERE state = 'leased' AND due_at > now()";
	static const char *xmin_sql =
		"SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint";
	const TxmCatalog *c = txm_catalog();
	Datum		slots;
	bool		slots_null;
	bool		isnull;
	uint64		high;
	uint64		xmin;
	uint64		base;
	int			positions_repaired;
	int64		missing;
	char	   *problem = NULL;
	uint64		restore_gen = 0;

	switch (take_over_begin(c, holding_ticks, &restore_gen))
	{
		case TAKE_OVER_BUSY:
			return false;
		case TAKE_OVER_DONE:
			return true;
		case TAKE_OVER_GO:
			break;
	}

	SPI_connect();
	if (txm_spi_exec_latest(foreign_sql, 0, NULL, NULL, NULL, 1) != 1)
	{
		SPI_finish();
		return true;
	}
	slots = txm_spi_value(0, 1, &slots_null);
	if (!slots_null)
		slots = SPI_datumTransfer(slots, false, -1);

	/*
	 * Every id made from now on is above the dump's: transactions running
	 * now (from xmin on) may still make ids, so the base counts from xmin.
	 */
	high = dump_high_water();
	txm_spi_exec(xmin_sql, 0, NULL, NULL, NULL, 1);
	xmin = (uint64) DatumGetInt64(txm_spi_value(0, 1, &isnull));
	base = txm_instance()->id_base;
	if (high > xmin + base)
		base = high - xmin;

	if (!slots_null)
		restore_slots(slots);
	txm_spi_exec(expire_sql, 0, NULL, NULL, NULL, 0);
	(void) txm_repair_identities();
	positions_repaired = repair_positions();
	missing = count_missing_messages();
	if (missing > 0)
	{
		problem = psprintf("%lld slices of undelivered messages point at messages the dump did not carry",
						   (long long) missing);
		ereport(WARNING,
				(errmsg("the restored dump lacks messages that are still to be delivered"),
				 errdetail("%s.", problem),
				 errhint("Dump the whole database, tx_message's tables included.")));
	}
	else if (positions_repaired > 0)
		problem = psprintf("%d subscriptions came without a position and start at the newest message",
						   positions_repaired);
	record_take_over(base, xmin + base, slots, slots_null, problem);
	SPI_finish();
	txm_forget_instance();
	/* ids this transaction made before are of the old base: make new ones */
	txm_forget_pos();
	txm_restore_taken_over(problem ? problem : "taken over", restore_gen);
	ereport(LOG,
			(errmsg("tx_message took over the messages of a restored dump"),
			 errdetail("Message ids continue from %llu; messages leased when the dump was taken are delivered again.",
					   (unsigned long long) ((xmin + base) << TXM_POS_SHIFT))));
	return true;
}

/*
 * Before making ids, ticking or subscribing: take over a restored dump if
 * there is one.  A session that uses the extension is no longer restoring;
 * while another still is, the dump is not complete yet, and this waits.
 */
void
txm_take_over_if_restored(void)
{
	txm_restore_done_here();
	if (!txm_instance()->restore_pending)
		return;
	if (txm_restore_in_progress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a restore of this database is still loading tx_message's tables"),
				 errdetail("The restored messages are taken over once every session that loads them has ended."),
				 errhint("Try again when the restore has finished.")));
	if (!txm_take_over_restore(false))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a restore of this database is still loading tx_message's tables"),
				 errdetail("The restored messages are taken over once every session that loads them has ended."),
				 errhint("Try again when the restore has finished.")));
}
