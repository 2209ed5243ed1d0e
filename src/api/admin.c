/*-------------------------------------------------------------------------
 *
 * admin.c
 *	  Administration: tx_run_maintenance and tx_worker_status, and the
 *	  extension's internal functions (the install script's notice, the
 *	  triggers on tx_message.retries_data and tx_message.lineage).
 *
 * IDENTIFICATION
 *	  src/api/admin.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/validate.h"
#include "src/engine/maintenance.h"
#include "src/storage/lineage.h"

PG_FUNCTION_INFO_V1(tx_run_maintenance);
PG_FUNCTION_INFO_V1(tx_worker_status);
PG_FUNCTION_INFO_V1(tx_message_installed);
PG_FUNCTION_INFO_V1(tx_message_retries_written);
PG_FUNCTION_INFO_V1(tx_message_lineage_changed);

static void
add_counter(JsonbParseState **state, const char *name, int64 value)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) name;
	k.val.string.len = strlen(name);
	pushJsonbValue(state, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(value)));
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * tx_run_maintenance() RETURNS jsonb
 *
 * One full maintenance cycle in the calling session and transaction (see
 * maintenance.c), with one batch of each handler subscription.  Messages
 * this transaction makes deliverable (by releasing delayed messages or
 * committing half messages) are ticked after it commits, by the worker or
 * by the next call.
 */
Datum
tx_run_maintenance(PG_FUNCTION_ARGS)
{
	TxmMaintStats stats;
	JsonbParseState *state = NULL;
	JsonbValue *result;
	bool		loading;
	uint64		restore_gen;

	txm_check_can_change("tx_run_maintenance()");
	txm_catalog();
	txm_take_over_if_restored();

	/*
	 * Not over part of a dump (see txm_restore_generation): a cycle that saw
	 * restored rows whose topic or subscription is still to come would
	 * delete them as orphans.
	 */
	restore_gen = txm_restore_generation(&loading);
	if (loading)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a restore of this database is still loading tx_message's tables"),
				 errdetail("Maintenance waits until every session that loads them has ended."),
				 errhint("Try again when the restore has finished.")));
	memset(&stats, 0, sizeof(stats));
	txm_maintenance_cycle(TXM_STEPS_ALL, false, &stats);
	if (txm_restore_began_since(restore_gen))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a restore of this database began loading tx_message's tables during maintenance"),
				 errdetail("What the maintenance did is rolled back: it may have seen part of the dump."),
				 errhint("Try again when the restore has finished.")));

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	add_counter(&state, "ticked", stats.ticked);
	add_counter(&state, "delayed_released", stats.delayed_released);
	add_counter(&state, "checks", stats.checks);
	add_counter(&state, "check_commits", stats.check_commits);
	add_counter(&state, "check_rollbacks", stats.check_rollbacks);
	add_counter(&state, "check_unknown", stats.check_unknown);
	add_counter(&state, "dead_lettered", stats.dead_lettered);
	add_counter(&state, "leases_expired", stats.leases_expired);
	add_counter(&state, "rotated", stats.rotated);
	add_counter(&state, "truncated", stats.truncated);
	add_counter(&state, "handled", stats.handled);
	add_counter(&state, "handler_errors", stats.handler_errors);
	add_counter(&state, "stale_prepared", stats.stale_prepared);
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}

/*
 * tx_worker_status() RETURNS TABLE (pid, database, started_at, last_cycle_at,
 *	 delivered, checks, dead_lettered, errors, handled, stale_prepared,
 *	 executor_pids, restore_state)
 */
/* The pids of the executors that run, in their order, as an integer[]. */
static Datum
executor_pids(const TxmWorkerStatus *row)
{
	Datum		pids[TXM_MAX_EXECUTORS];
	int			n = 0;

	for (int i = 0; i < TXM_MAX_EXECUTORS; i++)
		if (row->executor_pids[i] != 0)
			pids[n++] = Int32GetDatum(row->executor_pids[i]);
	return PointerGetDatum(construct_array(pids, n, INT4OID, 4, true, TYPALIGN_INT));
}

Datum
tx_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static const TxmCounter columns[] = {TXM_COUNTER_DELIVERED, TXM_COUNTER_CHECKS,
	TXM_COUNTER_DEAD_LETTERED, TXM_COUNTER_ERRORS, TXM_COUNTER_HANDLED};
	TxmWorkerStatus *rows;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (!txm_shmem_available())
		return (Datum) 0;
	rows = palloc(sizeof(TxmWorkerStatus) * txm_nslots());
	n = txm_worker_statuses(rows);
	for (int i = 0; i < n; i++)
	{
		Datum		values[12];
		bool		nulls[12];
		char	   *dbname = get_database_name(rows[i].dboid);

		memset(nulls, 0, sizeof(nulls));
		/* a database whose worker left for want of work: no process */
		values[0] = Int32GetDatum(rows[i].pid);
		nulls[0] = rows[i].pid == 0;
		if (dbname)
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(dbname));
		else
			nulls[1] = true;
		values[2] = TimestampTzGetDatum(rows[i].started_at);
		nulls[2] = rows[i].started_at == 0;
		values[3] = TimestampTzGetDatum(rows[i].last_cycle_at);
		nulls[3] = rows[i].last_cycle_at == 0;
		for (int k = 0; k < lengthof(columns); k++)
			values[4 + k] = Int64GetDatum((int64) rows[i].counters[columns[k]]);
		values[9] = Int32GetDatum(rows[i].stale_prepared);
		values[10] = executor_pids(&rows[i]);
		values[11] = CStringGetTextDatum(rows[i].restore_state);
		nulls[11] = rows[i].restore_state[0] == '\0';
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * tx_message._installed(), called by the install script.  Without
 * shared_preload_libraries the SQL API works, but nothing delivers
 * committed messages on its own: say so.  With it, tell the launcher at
 * commit that this database wants a worker.
 */
Datum
tx_message_installed(PG_FUNCTION_ARGS)
{
	if (!txm_shmem_available())
	{
		/*
		 * CREATE EXTENSION raises client_min_messages to WARNING while its
		 * script runs, to hide the script's own chatter; this notice is
		 * meant for the user, so let it through.
		 */
		int			saved = client_min_messages;

		if (client_min_messages > NOTICE)
			client_min_messages = NOTICE;
		ereport(NOTICE,
				(errmsg("tx_message is not loaded through shared_preload_libraries, so no background worker will serve this database"),
				 errhint("Add tx_message to shared_preload_libraries and restart the server, or call tx_run_maintenance() periodically, for example from pg_cron.")));
		client_min_messages = saved;
	}
	txm_at_commit_register_database();
	PG_RETURN_VOID();
}

/*
 * tx_message._retries_written(): statement trigger on tx_message.retries_data.
 * Receivers skip the look-up in retries while shared memory says none is
 * due; every statement that writes retries, from anyone, makes its
 * transaction void those hints when it commits.
 */
Datum
tx_message_retries_written(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tx_message._retries_written() must be called as a trigger")));
	txm_at_commit_retries_written();
	return PointerGetDatum(NULL);
}

/*
 * tx_message._lineage_changed(): statement trigger on tx_message.lineage.
 * Every backend looks at the id space again; a backend that loads rows
 * into lineage (a restore) is known as restoring until it disconnects or
 * uses the extension (docs/design.md, "Dump and restore").
 */
Datum
tx_message_lineage_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tx_message._lineage_changed() must be called as a trigger")));
	if (!txm_lineage_internal_write())
		txm_restore_note_restorer();
	txm_invalidate(txm_catalog()->lineage);
	txm_forget_instance();
	return PointerGetDatum(NULL);
}
