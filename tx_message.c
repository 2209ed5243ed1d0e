/*-------------------------------------------------------------------------
 *
 * tx_message.c
 *	  Module entry of tx_message: transactional messaging inside PostgreSQL.
 *
 * Producers write messages as rows of their own transaction; a background
 * worker per database turns committed rows into per-topic, commit-ordered
 * position streams, chases half messages nobody resolved and keeps the log
 * small; consumers claim blocks of positions with one lease row per batch.
 * docs/design.md explains the storage and delivery design, and its source
 * map the layers of src/ (base, storage, engine, api, process), each
 * calling only the layers below it.
 *
 * This file sits above them all: it defines the settings (each variable
 * lives in the module that uses it), installs the hooks, and registers the
 * transaction callbacks once.  Each module keeps its own per-transaction
 * state and does its own transaction-end work, so the order of the calls
 * below does not matter.
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

#include "src/api/receive.h"
#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/subcache.h"
#include "src/base/validate.h"
#include "src/engine/checkback.h"
#include "src/engine/claim.h"
#include "src/engine/deliveries.h"
#include "src/engine/handlers.h"
#include "src/engine/maintenance.h"
#include "src/process/launcher.h"
#include "src/process/unit.h"
#include "src/storage/tick.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Settings that only take effect at server start, hence only when preloaded. */
static void
define_postmaster_settings(void)
{
	DefineCustomIntVariable("tx_message.max_databases",
							"Most databases with the extension that tx_message serves.",
							"Each has a slot in shared memory (about 100 kB); tx_message.max_workers bounds the workers that serve them.",
							&txm_max_databases,
							128, 1, 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
}

static void
define_settings(void)
{
	DefineCustomBoolVariable("tx_message.enabled",
							 "Runs the tx_message background workers.",
							 "When off, no worker runs; tx_run_maintenance() still works.",
							 &txm_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.naptime",
							"How long an idle worker sleeps between maintenance cycles.",
							"This bounds how late a delayed message or a check-back can be, and how late commits are ticked in a database without readers (no tx_receive() in the last 10 s, no handler).",
							&txm_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.tick_interval",
							"Shortest time between two ticks while no consumer waits.",
							"A consumer blocked in tx_receive(), or one that finds messages not yet ticked, gets a tick at once; otherwise commits are gathered for this long, which keeps ticking cheap under a high commit rate, while the database has readers (a tx_receive() in the last 10 s, or a handler).  0 ticks after every commit while it has readers.",
							&txm_tick_interval,
							10, 0, 10000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.executors",
							"Executor processes per database that run check functions and handlers.",
							"With two or more, the first runs check functions only, so that check-backs never wait behind handlers, and the others run handlers, one subscription each at a time, so that one slow handler holds up only its own subscription.",
							&txm_executors,
							3, 1, TXM_MAX_EXECUTORS,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.max_workers",
							"Most tx_message database workers running at once.",
							"Databases without work have no worker; one is started when a commit, a waiting consumer or a deadline needs it.  Each also runs executors while it has check functions or handlers.",
							&txm_max_workers,
							3, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("tx_message.worker_idle_timeout",
							"How long a database worker with nothing to do stays before it leaves.",
							"-1 keeps a worker in every database.",
							&txm_worker_idle_timeout,
							60000, -1, 3600 * 1000,
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
}

static void
txm_xact_callback(XactEvent event, void *arg)
{
	txm_shmem_xact_callback(event);
	txm_tick_xact_callback(event);
	txm_deliveries_xact_callback(event);
	txm_claim_xact_callback(event);
	txm_receive_xact_callback(event);
}

static void
txm_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	txm_shmem_subxact_callback(event);
	txm_tick_subxact_callback(event);
	txm_deliveries_subxact_callback(event);
}

/*
 * Without shared_preload_libraries the SQL API works, but there is no
 * shared memory and no worker (tx_message._installed() says so at CREATE
 * EXTENSION).
 */
void
_PG_init(void)
{
	bool		preloading = process_shared_preload_libraries_in_progress;

	if (preloading)
		define_postmaster_settings();
	define_settings();

	txm_catalog_init();
	txm_subcache_init();
	txm_acl_init();
	RegisterXactCallback(txm_xact_callback, NULL);
	RegisterSubXactCallback(txm_subxact_callback, NULL);

	if (preloading)
	{
		txm_shmem_init();
		txm_utility_init();
		txm_register_launcher();
	}
}
