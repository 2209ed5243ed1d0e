/*-------------------------------------------------------------------------
 *
 * unit.c
 *	  What the launcher, the database worker and the executor share: their
 *	  settings, how they are started and attach to a database, and how each
 *	  unit of their work runs.
 *
 * Each unit of work runs in a transaction of its own; an error is reported,
 * counted and contained, as autovacuum does, and the loop goes on.  Every
 * unit that touches the extension's relations share-locks the extension
 * first and looks it up again once it has the lock: DROP EXTENSION locks the
 * extension before its relations, so it either waits for the unit to end or
 * the unit finds the extension gone (or replaced, when DROP and CREATE came
 * in one transaction).  Without that lock, a unit holding one of our
 * relations and a DROP holding another can deadlock, and the deadlock
 * detector may cancel the user's DROP.
 *
 * IDENTIFICATION
 *	  src/process/unit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/engine/checkback.h"
#include "src/engine/maintenance.h"
#include "src/engine/stats.h"
#include "src/process/unit.h"

bool		txm_enabled = true;
int			txm_naptime = 1000;
int			txm_tick_interval = 10;
int			txm_executors = 3;
int			txm_max_workers = 3;
int			txm_worker_idle_timeout = 60000;

/* this process's executor number, or -1 for the database worker */
static int	my_executor = -1;

/*
 * Register a database worker or executor for the database served by slot
 * slot_index.  Returns NULL if no background worker slot is free.
 */
BackgroundWorkerHandle *
txm_start_worker(const char *function, const char *type, int slot_index, int executor,
				 Oid dboid, pid_t notify_pid)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* the launcher restarts database workers itself, with back-off */
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "tx_message", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, function, BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "%s for database %u", type, dboid);
	strlcpy(bgw.bgw_type, type, BGW_MAXLEN);
	/* an executor's number goes with the slot's: slots are far fewer than 2^16 */
	bgw.bgw_main_arg = Int32GetDatum(slot_index | ((executor + 1) << 16));
	memcpy(bgw.bgw_extra, &dboid, sizeof(Oid));
	bgw.bgw_notify_pid = notify_pid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return NULL;
	return handle;
}

/*
 * Run fn in a transaction of its own, containing any error: report it,
 * count it, roll back, go on.  Returns false if fn failed, or did not run
 * or was rolled back because a restore was loading the database: a unit
 * that saw part of a dump could tick its messages twice, or take rows
 * whose topic or subscription is still to come for orphans and delete them.
 */
bool
txm_run_in_transaction(void (*fn) (void *), void *arg, const char *activity)
{
	MemoryContext outer = CurrentMemoryContext;
	volatile bool ok = true;
	bool		loading;
	uint64		restore_gen = txm_restore_generation(&loading);

	if (loading)
		return false;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);
		fn(arg);
		PopActiveSnapshot();
		if (txm_restore_began_since(restore_gen))
		{
			ereport(DEBUG1,
					(errmsg("tx_message: %s rolled back: a restore began loading the database", activity)));
			AbortCurrentTransaction();
			ok = false;
		}
		else
			CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(outer);
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortCurrentTransaction();
		FlushErrorState();
		RESUME_INTERRUPTS();
		txm_count(TXM_COUNTER_ERRORS, 1);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(outer);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * Is the extension installed?  If it is, share-lock it to the end of the
 * transaction (see the header comment).
 */
bool
txm_lock_extension(void)
{
	for (;;)
	{
		Oid			extoid = get_extension_oid("tx_message", true);

		if (!OidIsValid(extoid))
			return false;
		LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
		/* taking the lock read the invalidations of a DROP that ended meanwhile */
		if (get_extension_oid("tx_message", true) == extoid)
			return true;
		/* dropped, and perhaps created again, while we waited */
		UnlockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	}
}

static void
check_extension(void *arg)
{
	*(bool *) arg = OidIsValid(get_extension_oid("tx_message", true));
}

/*
 * Common start of the database worker and the executor: take our place in
 * the slot, connect, and make sure the extension is there.  Exits if the
 * place is not ours to take, or the extension is not installed.
 */
void
txm_attach_to_database(Datum main_arg, bool executor)
{
	Oid			dboid;
	bool		installed = true;
	int			slot_index = DatumGetInt32(main_arg) & 0xFFFF;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_executor = executor ? (DatumGetInt32(main_arg) >> 16) - 1 : -1;
	if (!txm_process_attach(slot_index, dboid, my_executor))
		proc_exit(0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * Nothing this process runs on its own behalf resolves a name through a
	 * schema that other roles can create objects in.  User code gets the
	 * settings of a fresh session of its owner instead (usercode.c).
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	/* if the check fails, assume the extension is there and try again later */
	if (txm_run_in_transaction(check_extension, &installed, "checking for the extension") &&
		!installed)
	{
		txm_process_absent();
		proc_exit(0);
	}
	txm_process_ready(my_executor);
}

/* This executor's number, or -1 in the database worker. */
int
txm_my_executor(void)
{
	return my_executor;
}

/* Process SIGHUP, and leave when asked to or when disabled. */
void
txm_process_checkpoint(bool executor)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	if (!txm_enabled || txm_process_must_exit(my_executor))
		proc_exit(0);
}

typedef struct DueUnit
{
	bool		with_functions;
	int			n;
	int64	   *ids;
} DueUnit;

static void
due_unit(void *arg)
{
	DueUnit    *u = arg;
	MemoryContext old;

	if (!txm_lock_extension() || txm_catalog_if_installed() == NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	u->n = txm_due_checks(u->with_functions, txm_batch_size, &u->ids);
	MemoryContextSwitchTo(old);
}

typedef struct CheckUnit
{
	int64		msg_id;
	bool		with_functions;
	TxmMaintStats *stats;
} CheckUnit;

static void
check_unit(void *arg)
{
	CheckUnit  *u = arg;

	if (!txm_lock_extension())
		return;
	txm_check_one(u->msg_id, u->with_functions, u->stats);
}

/*
 * Run the due check-backs of one kind, each in its own transaction: those
 * with a check function in the executor, NOTIFY ones in the worker.
 * Returns how many were due.
 */
int
txm_run_due_checks(bool with_functions, bool executor)
{
	DueUnit		due = {with_functions, 0, NULL};
	TxmMaintStats stats;

	memset(&stats, 0, sizeof(stats));
	if (!txm_run_in_transaction(due_unit, &due, "finding due check-backs"))
	{
		if (due.ids)
			pfree(due.ids);
		return 0;
	}
	for (int i = 0; i < due.n; i++)
	{
		CheckUnit	unit = {due.ids[i], with_functions, &stats};

		txm_process_checkpoint(executor);
		txm_run_in_transaction(check_unit, &unit, "check-back");
	}
	if (due.ids)
		pfree(due.ids);
	return due.n;
}
