/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background processes of tx_message and their SQL interface.
 *
 * Three kinds of background workers:
 *
 *	- the launcher (static, started with the server after recovery): it
 *	  connects to no database, watches pg_database and gives every database
 *	  that has the extension a database worker.  CREATE EXTENSION tells it
 *	  at commit (tx_message._installed()); databases created from a template
 *	  that has the extension are found by a rescan every few seconds.
 *	- the database worker (dynamic, one per database): it ticks whenever a
 *	  producer commits (the commit callback sets its latch), and on a timer
 *	  releases delayed messages, sends NOTIFY-style check-backs, reports
 *	  prepared transactions and trims history.  It exits when the extension
 *	  is dropped; the launcher restarts it after anything else.
 *	- the executor (dynamic, one per database, only while the database has
 *	  check functions or handlers): it runs user code, so that a slow or
 *	  hanging check function or handler never delays ticks.
 *
 * DROP DATABASE (and RENAME, SET TABLESPACE, CREATE DATABASE ... TEMPLATE)
 * need the database free of other sessions; a ProcessUtility hook asks our
 * processes to leave first and lets the launcher bring them back after.
 *
 * Each unit of work runs in its own transaction; an error is reported,
 * counted and contained, as autovacuum does, and the loop goes on.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "tx_message.h"

PG_FUNCTION_INFO_V1(tx_worker_status);
PG_FUNCTION_INFO_V1(tx_run_maintenance);

PGDLLEXPORT void txm_launcher_main(Datum main_arg);
PGDLLEXPORT void txm_worker_main(Datum main_arg);
PGDLLEXPORT void txm_executor_main(Datum main_arg);

/* how often the launcher looks for new databases, and restart back-off */
#define LAUNCHER_RESCAN_MS		5000
#define RESTART_DELAY_MS		1000

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* work to do when the current transaction commits */
static bool register_at_commit = false;
static bool ticked_at_commit = false;
static uint64 ticked_upto = 0;
static int	ticked_level = 0;	/* forgotten if that subtransaction rolls back */

/* the slot this background process serves */
static TxmDbSlot *my_bgw_slot = NULL;

/*----------
 * Helpers
 *----------
 */

static BackgroundWorkerHandle *
start_dynamic_worker(const char *function, const char *type, int slot_index,
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
	bgw.bgw_main_arg = Int32GetDatum(slot_index);
	memcpy(bgw.bgw_extra, &dboid, sizeof(Oid));
	bgw.bgw_notify_pid = notify_pid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return NULL;
	return handle;
}

static void
set_launcher_latch(void)
{
	Latch	   *latch;

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	latch = txm_shared->launcher_latch;
	LWLockRelease(txm_shared->lock);
	if (latch)
		SetLatch(latch);
}

/* Ask the launcher for a worker for this database (at commit of CREATE EXTENSION). */
static void
request_worker(Oid dboid)
{
	TxmDbSlot  *slot;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < txm_shared->nabsent; i++)
	{
		if (txm_shared->absent[i] == dboid)
		{
			txm_shared->absent[i] = txm_shared->absent[--txm_shared->nabsent];
			break;
		}
	}
	slot = txm_find_slot_locked(dboid);
	if (slot)
	{
		/* a new installation numbers its subscriptions from 1 again */
		SpinLockAcquire(&slot->mutex);
		memset(slot->hints, 0, sizeof(slot->hints));
		SpinLockRelease(&slot->mutex);
		if (slot->state == TXM_DB_ABSENT)
		{
			slot->state = TXM_DB_STOPPED;
			slot->restart_after = 0;
		}
	}
	txm_shared->rescan = true;
	LWLockRelease(txm_shared->lock);
	set_launcher_latch();
}

/*
 * Run fn in a transaction of its own, containing any error: report it,
 * count it, roll back, go on.  Returns false if fn failed.
 */
static bool
run_in_transaction(void (*fn) (void *), void *arg, const char *activity)
{
	MemoryContext outer = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);
		fn(arg);
		PopActiveSnapshot();
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
		if (my_bgw_slot)
			txm_count(&my_bgw_slot->errors, 1);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(outer);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

static void
check_extension(void *arg)
{
	*(bool *) arg = OidIsValid(get_extension_oid("tx_message", true));
}

/*
 * Is the extension installed?  If it is, share-lock it to the end of the
 * transaction.  DROP EXTENSION locks the extension before its relations, so
 * a unit that takes this lock first either ends before the DROP goes on or
 * finds the extension gone.  Without it, a unit holding one of our relations
 * and a DROP holding another can deadlock, and the deadlock detector may
 * cancel the user's DROP.
 */
static bool
lock_extension(void)
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

static bool
extension_installed(void)
{
	bool		installed = false;

	if (!run_in_transaction(check_extension, &installed, "checking for the extension"))
		return true;			/* assume present; retry later */
	return installed;
}

/*----------
 * The launcher
 *----------
 */

typedef struct DatabaseEntry
{
	Oid			oid;
	bool		usable;			/* connectable and not a template */
} DatabaseEntry;

typedef struct DatabaseList
{
	int			n;
	DatabaseEntry *entries;
} DatabaseList;

static void
read_databases(void *arg)
{
	DatabaseList *list = arg;
	Relation	rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tup;
	int			cap = 16;

	list->entries = MemoryContextAlloc(TopMemoryContext, sizeof(DatabaseEntry) * cap);
	list->n = 0;
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (list->n >= cap)
		{
			cap *= 2;
			list->entries = repalloc(list->entries, sizeof(DatabaseEntry) * cap);
		}
		list->entries[list->n].oid = db->oid;
		list->entries[list->n].usable = db->datallowconn && !db->datistemplate &&
			db->datconnlimit != -2;		/* -2: being dropped */
		list->n++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

static const DatabaseEntry *
find_database(const DatabaseList *list, Oid oid)
{
	for (int i = 0; i < list->n; i++)
		if (list->entries[i].oid == oid)
			return &list->entries[i];
	return NULL;
}

/* Reconcile the slots with pg_database. */
static void
launcher_scan(void)
{
	DatabaseList list = {0, NULL};
	static bool warned_full = false;

	if (!run_in_transaction(read_databases, &list, "reading pg_database"))
		return;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	/* forget databases that are gone or unusable */
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];
		const DatabaseEntry *db;

		if (slot->dboid == InvalidOid || slot->worker_pid != 0 || slot->executor_pid != 0)
			continue;
		db = find_database(&list, slot->dboid);
		if (db == NULL || !db->usable || slot->state == TXM_DB_ABSENT)
		{
			if (db && db->usable && txm_shared->nabsent < TXM_MAX_ABSENT)
				txm_shared->absent[txm_shared->nabsent++] = slot->dboid;
			slot->dboid = InvalidOid;
			slot->state = TXM_DB_FREE;
		}
	}
	for (int i = 0; i < txm_shared->nabsent;)
	{
		if (find_database(&list, txm_shared->absent[i]) == NULL)
			txm_shared->absent[i] = txm_shared->absent[--txm_shared->nabsent];
		else
			i++;
	}
	/* give every other usable database a slot: its worker checks for the extension */
	for (int d = 0; d < list.n; d++)
	{
		bool		known = false;
		TxmDbSlot  *free_slot = NULL;

		if (!list.entries[d].usable)
			continue;
		for (int i = 0; i < txm_shared->nabsent && !known; i++)
			known = txm_shared->absent[i] == list.entries[d].oid;
		for (int i = 0; i < txm_shared->nslots && !known; i++)
		{
			if (txm_shared->slots[i].dboid == list.entries[d].oid)
				known = true;
			else if (txm_shared->slots[i].dboid == InvalidOid && free_slot == NULL)
				free_slot = &txm_shared->slots[i];
		}
		if (known)
			continue;
		if (free_slot == NULL)
		{
			if (!warned_full)
				ereport(LOG,
						(errmsg("tx_message cannot serve more than %d databases", txm_shared->nslots),
						 errhint("Raise tx_message.max_databases.")));
			warned_full = true;
			break;
		}
		SpinLockAcquire(&free_slot->mutex);
		memset(free_slot->hints, 0, sizeof(free_slot->hints));
		free_slot->waiters = 0;
		free_slot->tick_requested = false;
		SpinLockRelease(&free_slot->mutex);
		free_slot->dboid = list.entries[d].oid;
		free_slot->state = TXM_DB_STOPPED;
		free_slot->stop_requested = false;
		free_slot->executor_wanted = false;
		free_slot->restart_after = 0;
	}
	LWLockRelease(txm_shared->lock);
	pfree(list.entries);
}

/* Start the workers that should run; returns ms until the next restart is due. */
static long
launcher_start_workers(BackgroundWorkerHandle **handles)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next = LAUNCHER_RESCAN_MS;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];

		/* a worker that died before attaching */
		if (slot->state == TXM_DB_STARTING && slot->worker_pid == 0 && handles[i])
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
			{
				slot->state = TXM_DB_STOPPED;
				slot->restart_after = TimestampTzPlusMilliseconds(now, RESTART_DELAY_MS);
			}
		}
		if (slot->state != TXM_DB_STOPPED || slot->stop_requested || !txm_enabled ||
			slot->worker_pid != 0)
			continue;
		if (slot->restart_after > now)
		{
			next = Min(next, TimestampDifferenceMilliseconds(now, slot->restart_after) + 1);
			continue;
		}
		if (handles[i])
			pfree(handles[i]);
		handles[i] = start_dynamic_worker("txm_worker_main", "tx_message worker", i,
										  slot->dboid, MyProcPid);
		if (handles[i])
			slot->state = TXM_DB_STARTING;
		else
		{
			/* no free background worker slot now; try again later */
			slot->restart_after = TimestampTzPlusMilliseconds(now, 5 * RESTART_DELAY_MS);
			next = Min(next, 5 * RESTART_DELAY_MS);
		}
	}
	LWLockRelease(txm_shared->lock);
	return next;
}

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	txm_shared->launcher_pid = 0;
	txm_shared->launcher_latch = NULL;
	LWLockRelease(txm_shared->lock);
}

void
txm_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle **handles;
	TimestampTz next_scan = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * txm_shared->nslots);
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	txm_shared->launcher_pid = MyProcPid;
	txm_shared->launcher_latch = MyLatch;
	/* workers of a previous launcher incarnation keep running; restart the rest */
	for (int i = 0; i < txm_shared->nslots; i++)
		if (txm_shared->slots[i].state == TXM_DB_STARTING && txm_shared->slots[i].worker_pid == 0)
			txm_shared->slots[i].state = TXM_DB_STOPPED;
	LWLockRelease(txm_shared->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);
	ereport(LOG, (errmsg("tx_message launcher started")));

	for (;;)
	{
		TimestampTz now;
		bool		rescan;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
		rescan = txm_shared->rescan;
		txm_shared->rescan = false;
		LWLockRelease(txm_shared->lock);

		now = GetCurrentTimestamp();
		if (rescan || now >= next_scan)
		{
			launcher_scan();
			next_scan = TimestampTzPlusMilliseconds(now, LAUNCHER_RESCAN_MS);
		}
		timeout = launcher_start_workers(handles);
		timeout = Min(timeout, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_scan) + 1);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
txm_register_launcher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	strlcpy(bgw.bgw_library_name, "tx_message", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "txm_launcher_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "tx_message launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "tx_message launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

/*----------
 * Database workers and executors
 *----------
 */

static void
worker_detach(int code, Datum arg)
{
	TxmDbSlot  *slot = my_bgw_slot;
	bool		executor = DatumGetBool(arg);

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&slot->mutex);
	if (executor)
		slot->executor_latch = NULL;
	else
		slot->worker_latch = NULL;
	SpinLockRelease(&slot->mutex);
	if (executor && slot->executor_pid == MyProcPid)
		slot->executor_pid = 0;
	else if (!executor && slot->worker_pid == MyProcPid)
	{
		slot->worker_pid = 0;
		if (slot->state != TXM_DB_ABSENT)
		{
			slot->state = TXM_DB_STOPPED;
			slot->restart_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  RESTART_DELAY_MS);
		}
	}
	LWLockRelease(txm_shared->lock);
	set_launcher_latch();
	/* receivers waiting for a tick must not wait for us */
	ConditionVariableBroadcast(&slot->cv);
}

/*
 * Common start of the database worker and the executor: claim our place in
 * the slot, connect, and make sure the extension is there.
 */
static void
attach_to_database(Datum main_arg, bool executor)
{
	int			index = DatumGetInt32(main_arg);
	TxmDbSlot  *slot = &txm_shared->slots[index];
	Oid			dboid;
	bool		ok;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	ok = slot->dboid == dboid && !slot->stop_requested &&
		(executor ? slot->executor_pid == 0 : slot->worker_pid == 0);
	if (ok)
	{
		if (executor)
			slot->executor_pid = MyProcPid;
		else
		{
			slot->worker_pid = MyProcPid;
			slot->started_at = GetCurrentTimestamp();
		}
	}
	LWLockRelease(txm_shared->lock);
	if (!ok)
		proc_exit(0);
	my_bgw_slot = slot;
	before_shmem_exit(worker_detach, BoolGetDatum(executor));

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	if (!extension_installed())
	{
		LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
		slot->state = TXM_DB_ABSENT;
		LWLockRelease(txm_shared->lock);
		proc_exit(0);
	}

	SpinLockAcquire(&slot->mutex);
	if (executor)
		slot->executor_latch = MyLatch;
	else
	{
		slot->worker_latch = MyLatch;
		slot->wake_on_commit = true;
	}
	SpinLockRelease(&slot->mutex);
	if (!executor)
	{
		LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
		slot->state = TXM_DB_RUNNING;
		LWLockRelease(txm_shared->lock);
	}
}

/* Process SIGHUP, and leave when asked to or when disabled. */
static void
worker_checkpoint(bool executor)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	if (my_bgw_slot->stop_requested || !txm_enabled ||
		(executor && !my_bgw_slot->executor_wanted))
		proc_exit(0);
}

typedef struct TickUnit
{
	uint64		upto;
	bool		skipped;		/* another session holds the tick lock */
} TickUnit;

static void
tick_unit(void *arg)
{
	TickUnit   *u = arg;

	u->upto = 0;
	u->skipped = false;
	/* after DROP EXTENSION, the maintenance unit notices and we exit */
	if (!lock_extension() || txm_catalog_if_installed() == NULL)
		return;
	if (txm_tick(false, &u->upto) < 0)
	{
		/* tx_run_maintenance() or a receive is ticking; it reports itself */
		u->upto = 0;
		u->skipped = true;
	}
}

typedef struct MaintenanceUnit
{
	bool		installed;
	bool		executor_wanted;
	TimestampTz deadline;
	TxmMaintStats stats;
} MaintenanceUnit;

static void
maintenance_unit(void *arg)
{
	MaintenanceUnit *m = arg;

	m->installed = lock_extension();
	if (!m->installed)
		return;
	m->stats.delayed_released += txm_release_delayed(txm_batch_size);
	txm_maintain_subscriptions(&m->stats);
	{
		bool		rotated;

		m->stats.truncated += txm_retention(&rotated);
		m->stats.rotated += rotated;
	}
	my_bgw_slot->stale_prepared = txm_report_prepared(true);
	txm_trim_ticks();
	m->executor_wanted = txm_has_check_functions() || txm_has_handlers();
	m->deadline = txm_next_deadline();
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

	if (!lock_extension())
		return;
	txm_check_one(u->msg_id, u->with_functions, u->stats);
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

	if (!lock_extension() || txm_catalog_if_installed() == NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	u->n = txm_due_checks(u->with_functions, txm_batch_size, &u->ids);
	MemoryContextSwitchTo(old);
}

/* Run the due check-backs of one kind, each in its own transaction. */
static void
run_due_checks(bool with_functions, bool executor)
{
	DueUnit		due = {with_functions, 0, NULL};
	TxmMaintStats stats;

	memset(&stats, 0, sizeof(stats));
	if (!run_in_transaction(due_unit, &due, "finding due check-backs"))
		return;
	for (int i = 0; i < due.n; i++)
	{
		CheckUnit	unit = {due.ids[i], with_functions, &stats};

		worker_checkpoint(executor);
		run_in_transaction(check_unit, &unit, "check-back");
	}
	if (due.ids)
		pfree(due.ids);
}

/*
 * Whether commits wait to be ticked, and whether a receiver waits for them
 * (then they are ticked at once rather than after tx_message.tick_interval).
 * Without anything unticked, the next commit is asked to wake us.
 */
static bool
ring_has_unticked(TxmDbSlot *slot, bool *urgent)
{
	bool		pending;

	SpinLockAcquire(&slot->mutex);
	pending = slot->ring_head > slot->ring_ticked;
	*urgent = slot->tick_requested || slot->waiters > 0;
	slot->wake_on_commit = !pending;
	SpinLockRelease(&slot->mutex);
	return pending;
}

/* About to tick: a receiver's request is served by this tick. */
static void
clear_tick_request(TxmDbSlot *slot)
{
	SpinLockAcquire(&slot->mutex);
	slot->tick_requested = false;
	SpinLockRelease(&slot->mutex);
}

/*
 * When the next tick is due.  A waiting receiver is served at once, but at
 * most one tick per millisecond: at thousands of commits a second, ticking
 * after each would cost the worker a CPU.
 */
#define TXM_URGENT_TICK_GAP_MS 1

static TimestampTz
next_tick_at(TimestampTz last_tick_at, bool urgent)
{
	int			gap = urgent ? Min(txm_tick_interval, TXM_URGENT_TICK_GAP_MS) : txm_tick_interval;

	return TimestampTzPlusMilliseconds(last_tick_at, gap);
}

void
txm_worker_main(Datum main_arg)
{
	TxmDbSlot  *slot;
	TimestampTz next_maintenance = 0;
	TimestampTz last_tick_at = 0;
	bool		tick_backoff = false;

	attach_to_database(main_arg, false);
	slot = my_bgw_slot;

	/*
	 * The worker's own transactions (ticks, releases) can commit
	 * asynchronously: whatever depends on them commits later in WAL order,
	 * and a tick lost in a crash is simply made again.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	ereport(LOG, (errmsg("tx_message worker started")));

	for (;;)
	{
		TimestampTz now;
		long		timeout;
		bool		unticked;
		bool		urgent;

		worker_checkpoint(false);
		now = GetCurrentTimestamp();

		/*
		 * Tick when a receiver waits, else at most every tick_interval: a
		 * tick costs a transaction and a few rows however many commits it
		 * covers, so under load gathering them is what keeps it cheap.
		 */
		unticked = ring_has_unticked(slot, &urgent);
		if (unticked && now < next_tick_at(last_tick_at, urgent))
			unticked = false;	/* not yet */
		tick_backoff = false;
		if (unticked || now >= next_maintenance)
		{
			TickUnit	tick;
			bool		ok;

			clear_tick_request(slot);
			last_tick_at = now;
			ok = run_in_transaction(tick_unit, &tick, "ticking");

			if (ok && tick.upto > 0)
			{
				txm_ring_ticked(slot, tick.upto);
				/* handlers may have work now */
				if (slot->executor_pid != 0)
					txm_wake_executor(slot);
			}
			/* a failed or skipped tick is tried again a little later, not at once */
			tick_backoff = !ok || tick.skipped;
		}

		if (now >= next_maintenance)
		{
			MaintenanceUnit m;
			bool		start_executor = false;

			memset(&m, 0, sizeof(m));
			m.installed = true;
			if (run_in_transaction(maintenance_unit, &m, "maintenance"))
			{
				if (!m.installed)
				{
					ereport(LOG, (errmsg("extension tx_message was dropped, tx_message worker exiting")));
					LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
					slot->state = TXM_DB_ABSENT;
					slot->executor_wanted = false;
					LWLockRelease(txm_shared->lock);
					txm_wake_executor(slot);
					proc_exit(0);
				}
				LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
				slot->executor_wanted = m.executor_wanted;
				start_executor = m.executor_wanted && slot->executor_pid == 0;
				LWLockRelease(txm_shared->lock);
				if (start_executor)
					(void) start_dynamic_worker("txm_executor_main", "tx_message executor",
												(int) (slot - txm_shared->slots),
												slot->dboid, 0);
				else if (!m.executor_wanted)
					txm_wake_executor(slot);	/* let an idle one leave */
			}
			run_due_checks(false, false);
			next_maintenance = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), txm_naptime);
			if (m.deadline != 0 && m.deadline < next_maintenance)
				next_maintenance = Max(m.deadline, GetCurrentTimestamp());
			if (slot->executor_pid != 0)
				txm_wake_executor(slot);
		}
		slot->last_cycle_at = now;

		SpinLockAcquire(&slot->mutex);
		if (slot->maintenance_requested)
		{
			slot->maintenance_requested = false;
			next_maintenance = 0;
		}
		SpinLockRelease(&slot->mutex);

		now = GetCurrentTimestamp();
		timeout = TimestampDifferenceMilliseconds(now, next_maintenance);
		if (next_maintenance == 0)
			timeout = 0;
		if (ring_has_unticked(slot, &urgent))
		{
			long		until_tick = 0;
			TimestampTz tick_due = next_tick_at(last_tick_at, urgent);

			if (tick_due > now)
				until_tick = Max(TimestampDifferenceMilliseconds(now, tick_due), 1);
			if (tick_backoff)
				until_tick = Max(until_tick, 10);
			timeout = Min(timeout, until_tick);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 0), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

typedef struct HandlerUnit
{
	MemoryContext cxt;
	TxmSub	   *subs;
	int			nsubs;
	int			index;
	int			processed;
	TxmMaintStats stats;
} HandlerUnit;

static void
load_handlers_unit(void *arg)
{
	HandlerUnit *u = arg;
	MemoryContext old;

	u->nsubs = 0;
	if (!lock_extension() || txm_catalog_if_installed() == NULL)
		return;
	old = MemoryContextSwitchTo(u->cxt);
	u->subs = txm_handler_subs(&u->nsubs);
	MemoryContextSwitchTo(old);
}

static void
handler_batch_unit(void *arg)
{
	HandlerUnit *u = arg;

	u->processed = 0;
	if (!lock_extension())
		return;
	u->processed = txm_run_handler_batch(&u->subs[u->index], txm_handler_batch_size, &u->stats);
}

/*
 * One round over the handler subscriptions: each gets batches, one
 * transaction each, until it runs dry or has had its second; then the next
 * one's turn comes, so a slow handler delays the others at most that long.
 * Returns true if there may be more work.
 */
static bool
run_handlers(MemoryContext cxt)
{
	HandlerUnit u;
	bool		more = false;

	memset(&u, 0, sizeof(u));
	u.cxt = cxt;
	if (!run_in_transaction(load_handlers_unit, &u, "loading handler subscriptions"))
		return false;
	for (u.index = 0; u.index < u.nsubs; u.index++)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);

		do
		{
			worker_checkpoint(true);
			u.processed = 0;
			if (!run_in_transaction(handler_batch_unit, &u, "running a handler"))
				break;
		} while (u.processed >= txm_handler_batch_size && GetCurrentTimestamp() < until);
		if (u.processed >= txm_handler_batch_size)
			more = true;
	}
	MemoryContextReset(cxt);
	return more;
}

void
txm_executor_main(Datum main_arg)
{
	MemoryContext cxt;

	attach_to_database(main_arg, true);
	ereport(LOG, (errmsg("tx_message executor started")));
	cxt = AllocSetContextCreate(TopMemoryContext, "tx_message executor", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		bool		more;

		worker_checkpoint(true);
		run_due_checks(true, true);
		more = run_handlers(cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 more ? 0 : txm_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*----------
 * Commands that need the database to themselves
 *----------
 */

static Oid
database_oid_of(const char *name)
{
	return name ? get_database_oid(name, true) : InvalidOid;
}

/* The database a utility statement needs free of other sessions, if any. */
static Oid
database_needing_exclusive_access(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return database_oid_of(((DropdbStmt *) parsetree)->dbname);
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return database_oid_of(((RenameStmt *) parsetree)->subname);
			break;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
					return database_oid_of(((AlterDatabaseStmt *) parsetree)->dbname);
			break;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "template") == 0)
					return database_oid_of(defGetString((DefElem *) lfirst(lc)));
			break;
		default:
			break;
	}
	return InvalidOid;
}

/* Ask our processes in a database to leave, and wait (at most 5 s) until they have. */
static void
pause_database(Oid dboid)
{
	TxmDbSlot  *slot;
	pid_t		pids[2];

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	slot = txm_find_slot_locked(dboid);
	if (slot == NULL)
	{
		LWLockRelease(txm_shared->lock);
		return;
	}
	slot->stop_requested = true;
	pids[0] = slot->worker_pid;
	pids[1] = slot->executor_pid;
	LWLockRelease(txm_shared->lock);

	for (int i = 0; i < 2; i++)
		if (pids[i] != 0)
			kill(pids[i], SIGTERM);
	for (int waited = 0; waited < 5000; waited += 10)
	{
		bool		gone;

		LWLockAcquire(txm_shared->lock, LW_SHARED);
		gone = slot->worker_pid == 0 && slot->executor_pid == 0;
		LWLockRelease(txm_shared->lock);
		if (gone)
			break;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
}

static void
resume_database(Oid dboid)
{
	TxmDbSlot  *slot;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	slot = txm_find_slot_locked(dboid);
	if (slot)
	{
		slot->stop_requested = false;
		slot->restart_after = 0;
	}
	txm_shared->rescan = true;
	LWLockRelease(txm_shared->lock);
	set_launcher_latch();
}

static void
txm_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile Oid paused = InvalidOid;
	volatile bool commit_prepared = false;

	if (txm_shared != NULL)
	{
		paused = database_needing_exclusive_access(parsetree);
		if (OidIsValid(paused))
			pause_database(paused);
		commit_prepared = IsA(parsetree, TransactionStmt) &&
			((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED;
	}

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(paused))
			resume_database(paused);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (OidIsValid(paused))
		resume_database(paused);
	/* the prepared transaction's messages are visible now: tick them */
	if (commit_prepared)
		txm_ring_append(0);
}

void
txm_utility_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = txm_ProcessUtility;
}

/*----------
 * Transaction callback and SQL functions
 *----------
 */

void
txm_worker_xact_callback(XactEvent event)
{
	if (event == XACT_EVENT_COMMIT && txm_shared != NULL)
	{
		if (txm_xact_sent_messages())
			txm_ring_append(txm_xact_sent_xid());
		if (txm_xact_needs_maintenance())
			txm_request_maintenance();
		if (register_at_commit)
			request_worker(MyDatabaseId);
		if (ticked_at_commit)
		{
			TxmDbSlot  *slot = txm_my_slot();

			if (slot)
				txm_ring_ticked(slot, ticked_upto);
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		register_at_commit = false;
		ticked_at_commit = false;
	}
}

/* A tick in this transaction covers the commit ring up to upto. */
void
txm_note_ticked(uint64 upto)
{
	ticked_at_commit = true;
	ticked_upto = upto;
	ticked_level = GetCurrentTransactionNestLevel();
}

void
txm_worker_subxact_callback(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();

	if (!ticked_at_commit || ticked_level < level)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ticked_at_commit = false;
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		ticked_level = level - 1;
}

/* Called by the install script. */
void
txm_register_at_commit(void)
{
	if (txm_shared != NULL)
		register_at_commit = true;
}

/*
 * tx_worker_status() RETURNS TABLE (pid, database, started_at, last_cycle_at,
 *	 delivered, checks, dead_lettered, errors, handled, stale_prepared,
 *	 executor_pid)
 */
Datum
tx_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	typedef struct Row
	{
		pid_t		pid;
		Oid			dboid;
		TimestampTz started_at;
		TimestampTz last_cycle_at;
		uint64		counters[5];
		int			stale_prepared;
		pid_t		executor_pid;
	} Row;
	Row		   *rows;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (txm_shared == NULL)
		return (Datum) 0;

	rows = palloc(sizeof(Row) * txm_shared->nslots);
	LWLockAcquire(txm_shared->lock, LW_SHARED);
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];

		if (slot->worker_pid == 0 || slot->state != TXM_DB_RUNNING)
			continue;
		rows[n].pid = slot->worker_pid;
		rows[n].dboid = slot->dboid;
		rows[n].started_at = slot->started_at;
		rows[n].last_cycle_at = slot->last_cycle_at;
		rows[n].counters[0] = pg_atomic_read_u64(&slot->delivered);
		rows[n].counters[1] = pg_atomic_read_u64(&slot->checks);
		rows[n].counters[2] = pg_atomic_read_u64(&slot->dead_lettered);
		rows[n].counters[3] = pg_atomic_read_u64(&slot->errors);
		rows[n].counters[4] = pg_atomic_read_u64(&slot->handled);
		rows[n].stale_prepared = slot->stale_prepared;
		rows[n].executor_pid = slot->executor_pid;
		n++;
	}
	LWLockRelease(txm_shared->lock);

	for (int i = 0; i < n; i++)
	{
		Datum		values[11];
		bool		nulls[11];
		char	   *dbname = get_database_name(rows[i].dboid);

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(rows[i].pid);
		if (dbname)
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(dbname));
		else
			nulls[1] = true;
		values[2] = TimestampTzGetDatum(rows[i].started_at);
		values[3] = TimestampTzGetDatum(rows[i].last_cycle_at);
		nulls[3] = rows[i].last_cycle_at == 0;
		for (int k = 0; k < 5; k++)
			values[4 + k] = Int64GetDatum((int64) rows[i].counters[k]);
		values[9] = Int32GetDatum(rows[i].stale_prepared);
		values[10] = Int32GetDatum(rows[i].executor_pid);
		nulls[10] = rows[i].executor_pid == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

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
 * One full worker cycle in the calling session and transaction: tick,
 * release due delayed messages, run due check-backs of both kinds, expire
 * leases, advance watermarks, run one batch of each handler subscription,
 * report prepared transactions.  Messages this transaction makes deliverable (by
 * releasing delayed messages or committing half messages) are ticked after
 * it commits, by the worker or by the next call.
 */
Datum
tx_run_maintenance(PG_FUNCTION_ARGS)
{
	TxmMaintStats stats;
	JsonbParseState *state = NULL;
	JsonbValue *result;
	uint64		upto = 0;

	txm_catalog();
	memset(&stats, 0, sizeof(stats));

	stats.ticked = txm_tick(true, &upto);
	if (txm_my_slot() != NULL)
		txm_note_ticked(upto);
	stats.delayed_released = txm_release_delayed(txm_batch_size);
	for (int kind = 0; kind < 2; kind++)
	{
		int64	   *ids;
		int			n = txm_due_checks(kind == 1, txm_batch_size, &ids);

		for (int i = 0; i < n; i++)
			txm_check_one(ids[i], kind == 1, &stats);
	}
	txm_maintain_subscriptions(&stats);
	{
		/* one batch per handler subscription: a call is one transaction */
		int			nsubs;
		TxmSub	   *subs = txm_handler_subs(&nsubs);

		for (int i = 0; i < nsubs; i++)
			txm_run_handler_batch(&subs[i], txm_handler_batch_size, &stats);
	}
	{
		bool		rotated;

		stats.truncated += txm_retention(&rotated);
		stats.rotated += rotated;
	}
	stats.stale_prepared = txm_report_prepared(false);
	stats.ticks_trimmed = txm_trim_ticks();

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
