/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: database workers, from a pool, for the databases that
 *	  have the extension.  And the utility hook that lets DROP DATABASE and
 *	  the like have a database to themselves.
 *
 * The launcher is a static background worker, started with the server once
 * recovery is over.  It connects to no database: it reads pg_database, gives
 * every usable database a slot in shared memory, and starts a database
 * worker for it (worker.c), which finds out whether the extension is there.
 * CREATE EXTENSION tells it at commit (tx_message._installed()); databases
 * created from a template that has the extension are found by a rescan
 * every few seconds.  A worker that ends is started again after a second.
 * At most tx_message.max_workers run at once: a worker leaves a database
 * that has nothing for it to do, and the launcher starts one again when a
 * commit, a waiting receiver or a deadline asks for it (shmem_pool.c).
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME/SET TABLESPACE and CREATE
 * DATABASE ... TEMPLATE need the database free of other sessions: the
 * ProcessUtility hook asks our processes there to leave first (and waits at
 * most five seconds), and lets the launcher bring them back afterwards if
 * the database still exists.
 *
 * IDENTIFICATION
 *	  src/process/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/process/launcher.h"
#include "src/process/unit.h"

PGDLLEXPORT void txm_launcher_main(Datum main_arg);

/* how often the launcher looks for new databases */
#define LAUNCHER_RESCAN_MS		5000

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

typedef struct DatabaseList
{
	int			n;
	TxmDatabase *entries;
} DatabaseList;

static void
read_databases(void *arg)
{
	DatabaseList *list = arg;
	Relation	rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tup;
	int			cap = 16;

	list->entries = MemoryContextAlloc(TopMemoryContext, sizeof(TxmDatabase) * cap);
	list->n = 0;
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (list->n >= cap)
		{
			cap *= 2;
			list->entries = repalloc(list->entries, sizeof(TxmDatabase) * cap);
		}
		list->entries[list->n].oid = db->oid;
		list->entries[list->n].usable = db->datallowconn && !db->datistemplate &&
			db->datconnlimit != -2;		/* -2: being dropped */
		list->n++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* Reconcile the slots with pg_database. */
static void
launcher_scan(void)
{
	DatabaseList list = {0, NULL};
	static bool warned_full = false;

	if (!txm_run_in_transaction(read_databases, &list, "reading pg_database"))
		return;
	if (!txm_launcher_reconcile(list.entries, list.n) && !warned_full)
	{
		ereport(LOG,
				(errmsg("tx_message cannot serve more than %d databases", txm_nslots()),
				 errhint("Raise tx_message.max_databases.")));
		warned_full = true;
	}
	pfree(list.entries);
}

/* Start the workers that should run; returns ms until the next restart is due. */
static long
launcher_start_workers(BackgroundWorkerHandle **handles)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next = LAUNCHER_RESCAN_MS;
	int			nslots = txm_nslots();
	int		   *due;
	Oid		   *dboids;
	int			ndue;

	/* workers that died before attaching */
	for (int i = 0; i < nslots; i++)
	{
		pid_t		pid;

		if (handles[i] && txm_launcher_awaits_attach(i) &&
			GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
			txm_launcher_start_failed(i, now);
	}
	if (!txm_enabled)
	{
		txm_launcher_pool_off();
		return next;
	}
	due = palloc(sizeof(int) * nslots);
	dboids = palloc(sizeof(Oid) * nslots);
	ndue = txm_launcher_due(now, txm_max_workers, due, dboids, &next);
	for (int k = 0; k < ndue; k++)
	{
		int			i = due[k];
		long		retry_ms;

		if (handles[i])
			pfree(handles[i]);
		handles[i] = txm_start_worker("txm_worker_main", "tx_message worker", i, -1, dboids[k],
									  MyProcPid);
		/* without a free background worker slot, try again later */
		retry_ms = txm_launcher_started(i, dboids[k], handles[i] != NULL, now);
		if (retry_ms > 0)
			next = Min(next, retry_ms);
	}
	pfree(due);
	pfree(dboids);
	return next;
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
									 sizeof(BackgroundWorkerHandle *) * txm_nslots());
	txm_launcher_attach();
	ereport(LOG, (errmsg("tx_message launcher started")));

	for (;;)
	{
		TimestampTz now;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		now = GetCurrentTimestamp();
		if (txm_launcher_take_rescan() || now >= next_scan)
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

/* Called from _PG_init while the postmaster preloads the library. */
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
	pid_t		pids[1 + TXM_MAX_EXECUTORS];
	int			n = txm_database_stop(dboid, pids);

	for (int i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	for (int waited = 0; waited < 5000 && n > 0; waited += 10)
	{
		if (txm_database_processes_gone(dboid))
			break;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
}

/*
 * COPY into one of the extension's tables: pg_restore and psql loading a
 * dump (docs/design.md, "Dump and restore").  The extension's own code
 * never does that.
 */
static bool
loads_extension_table(Node *parsetree)
{
	CopyStmt   *copy;

	if (!IsA(parsetree, CopyStmt))
		return false;
	copy = (CopyStmt *) parsetree;
	return copy->is_from && copy->relation != NULL && copy->relation->schemaname != NULL &&
		strcmp(copy->relation->schemaname, "tx_message") == 0;
}

/* DROP EXTENSION tx_message, which an idle database's worker is not there to see. */
static bool
drops_extension(Node *parsetree)
{
	DropStmt   *drop;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt) || ((DropStmt *) parsetree)->removeType != OBJECT_EXTENSION)
		return false;
	drop = (DropStmt *) parsetree;
	foreach(lc, drop->objects)
		if (strcmp(strVal(lfirst(lc)), "tx_message") == 0)
			return true;
	return false;
}

static void
txm_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile Oid paused = InvalidOid;
	volatile bool commit_prepared = false;
	volatile uint64 prepared = 0;	/* its FullTransactionId, 0: none */
	volatile bool loads = false;
	volatile bool drops = false;
	TxmDbSlot  *slot;

	if (txm_shmem_available())
	{
		loads = loads_extension_table(parsetree);
		drops = drops_extension(parsetree);
		paused = database_needing_exclusive_access(parsetree);
		if (OidIsValid(paused))
			pause_database(paused);
		commit_prepared = IsA(parsetree, TransactionStmt) &&
			((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED;
		/* ordered like a commit: shown as committing, then in the ring */
		if (commit_prepared && txm_my_slot() != NULL)
		{
			prepared = U64FromFullTransactionId(txm_prepared_xid(((TransactionStmt *) parsetree)->gid));
			txm_at_commit_prepared(FullTransactionIdFromU64(prepared));
		}
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
			txm_database_resume(paused);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (OidIsValid(paused))
		txm_database_resume(paused);
	/* a COPY that loaded rows (so had the privilege to): before its commit */
	if (loads)
		txm_restore_note_restorer();
	/* the prepared transaction's messages are visible now: tick them */
	if (commit_prepared)
		txm_ring_note_commit_prepared(FullTransactionIdFromU64(prepared));

	/*
	 * A worker comes to find the extension gone (it waits for this
	 * transaction's lock on it) and stops serving the database.
	 */
	if (drops && (slot = txm_my_slot()) != NULL)
		(void) txm_request_worker(slot);
}

/* Called from _PG_init while the postmaster preloads the library. */
void
txm_utility_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = txm_ProcessUtility;
}
