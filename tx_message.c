/*-------------------------------------------------------------------------
 *
 * tx_message.c
 *	  Module entry of tx_message: transactional messaging inside PostgreSQL.
 *
 * Producers write messages as rows of their own transaction (send.c); a
 * background worker per database turns committed rows into per-topic,
 * commit-ordered position streams, chases half messages nobody resolved and
 * keeps the log small; consumers claim blocks of positions with one lease row
 * per batch.  docs/design.md explains the storage and delivery design.
 *
 * This file holds what the whole module shares: the settings, the
 * transaction callbacks and _PG_init.
 *
 * IDENTIFICATION
 *	  tx_message.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "src/tx_message.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(tx_message_installed);

/* settings */
int			txm_max_payload_size = 1024 * 1024;
int			txm_max_databases = 8;
bool		txm_enabled = true;
int			txm_naptime = 1000;
int			txm_tick_interval = 10;
int			txm_batch_size = 1000;
int			txm_check_timeout = 5000;
int			txm_handler_timeout = 30000;
int			txm_handler_batch_size = 100;

/* true in every process forked from a postmaster that preloaded us */
bool		txm_preloaded = false;

void		_PG_init(void);
static void txm_xact_callback(XactEvent event, void *arg);
static void txm_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								 SubTransactionId parentSubid, void *arg);

void
_PG_init(void)
{
	if (process_shared_preload_libraries_in_progress)
		txm_preloaded = true;

	if (txm_preloaded)
		DefineCustomIntVariable("tx_message.max_databases",
								"Most databases served by tx_message background workers.",
								"Each served database has a worker, and an executor while it has check functions or handlers.",
								&txm_max_databases,
								8, 1, 1024,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
	DefineCustomBoolVariable("tx_message.enabled",
							 "Runs the tx_message background workers.",
							 "When off, no worker runs; tx_run_maintenance() still works.",
							 &txm_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.naptime",
							"How long an idle worker sleeps between maintenance cycles.",
							"Commits wake the worker at once; this bounds how late a delayed message or a check-back can be.",
							&txm_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.tick_interval",
							"Shortest time between two ticks while no consumer waits.",
							"A consumer blocked in tx_receive(), or one that finds messages not yet ticked, gets a tick at once; otherwise commits are gathered for this long, which keeps ticking cheap under a high commit rate.  0 ticks after every commit.",
							&txm_tick_interval,
							10, 0, 10000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.batch_size",
							"Most delayed messages released, or check-backs made, per cycle.",
							NULL,
							&txm_batch_size,
							1000, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.check_timeout",
							"Statement timeout of a check-back function.",
							"A check function still running after this long counts as an unknown answer; 0 means no limit.",
							&txm_check_timeout,
							5000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.handler_timeout",
							"Statement timeout of a handler call.",
							"A handler still running after this long fails that delivery; 0 means no limit.",
							&txm_handler_timeout,
							30000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.handler_batch_size",
							"Most messages a handler subscription processes per transaction.",
							NULL,
							&txm_handler_batch_size,
							100, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.max_payload_size",
							"Largest message payload accepted, in bytes.",
							"Sends with a larger jsonb payload fail; 0 disables the check.",
							&txm_max_payload_size,
							1024 * 1024, 0, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("tx_message");

	txm_catalog_init();
	RegisterXactCallback(txm_xact_callback, NULL);
	RegisterSubXactCallback(txm_subxact_callback, NULL);

	if (txm_preloaded)
	{
		txm_shmem_init();
		txm_utility_init();
		txm_register_launcher();
	}
}

static void
txm_xact_callback(XactEvent event, void *arg)
{
	/* the worker callback reads what the send callback resets */
	txm_consume_xact_callback(event);
	txm_worker_xact_callback(event);
	txm_tick_xact_callback(event);
	txm_send_xact_callback(event);
}

static void
txm_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	txm_consume_subxact_callback(event);
	txm_tick_subxact_callback(event);
	txm_worker_subxact_callback(event);
}

/*
 * Called by the install script.  Without shared_preload_libraries the SQL
 * API works, but nothing delivers committed messages on its own: say so.
 * With it, tell the launcher at commit that this database wants a worker.
 */
Datum
tx_message_installed(PG_FUNCTION_ARGS)
{
	if (!txm_preloaded)
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
	txm_register_at_commit();
	PG_RETURN_VOID();
}
