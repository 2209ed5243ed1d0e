/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *	  One maintenance cycle, for the database worker and for
 *	  tx_run_maintenance() alike.
 *
 * The cycle's steps run in one fixed order: release delayed messages,
 * check back, expire leases and advance watermarks, run a batch of each
 * handler subscription, tick, retention, report prepared transactions,
 * trim the tick history.  tx_run_maintenance() runs them all in the
 * caller's transaction.  The worker runs the housekeeping steps as one
 * unit; it ticks, and gives each check-back and handler batch a transaction
 * of its own, in units of their own (and user code in the executor).
 *
 * IDENTIFICATION
 *	  src/engine/maintenance.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "src/base/subcache.h"
#include "src/engine/checkback.h"
#include "src/engine/handlers.h"
#include "src/engine/housekeeping.h"
#include "src/engine/maintenance.h"
#include "src/engine/retention.h"
#include "src/storage/tick.h"

int			txm_batch_size = 1000;

/* The due check-backs of both kinds, in the current transaction. */
static void
check_back(TxmMaintStats *stats)
{
	for (int kind = 0; kind < 2; kind++)
	{
		int64	   *ids;
		int			n = txm_due_checks(kind == 1, txm_batch_size, &ids);

		for (int i = 0; i < n; i++)
			txm_check_one(ids[i], kind == 1, stats);
		pfree(ids);
	}
}

/* One batch of each handler subscription, in the current transaction. */
static void
run_handlers(TxmMaintStats *stats)
{
	int			nsubs;
	TxmSub	   *subs = txm_handler_subs(&nsubs);

	for (int i = 0; i < nsubs; i++)
		txm_run_handler_batch(&subs[i], txm_handler_batch_size, stats);
}

/*
 * Run the given steps of a cycle in the current transaction.  warn_prepared
 * logs a WARNING the first time this process sees each stale prepared
 * transaction.
 *
 * The user code (check functions, handlers) runs before the tick: a tick
 * holds the tick lock until its transaction ends, and no other process
 * ticks meanwhile, the worker included; ticking first would stop the
 * deliveries of the whole database for as long as the slowest handler
 * batch.  So a cycle's handlers get what earlier ticks made deliverable.
 */
void
txm_maintenance_cycle(int steps, bool warn_prepared, TxmMaintStats *stats)
{
	if (steps & TXM_STEP_RELEASE_DELAYED)
		stats->delayed_released += txm_release_delayed(txm_batch_size);
	if (steps & TXM_STEP_CHECK_BACKS)
		check_back(stats);
	if (steps & TXM_STEP_SUBSCRIPTIONS)
		txm_maintain_subscriptions(stats);
	if (steps & TXM_STEP_HANDLERS)
		run_handlers(stats);
	if (steps & TXM_STEP_TICK)
		stats->ticked += txm_tick(true);
	if (steps & TXM_STEP_RETENTION)
	{
		bool		rotated;

		stats->truncated += txm_retention(&rotated);
		stats->rotated += rotated;
	}
	if (steps & TXM_STEP_PREPARED)
		stats->stale_prepared = txm_report_prepared(warn_prepared);
	if (steps & TXM_STEP_TRIM_TICKS)
		stats->ticks_trimmed += txm_trim_ticks();
	if (steps & TXM_STEP_ORPHANS)
		(void) txm_remove_orphans();
	if (steps & TXM_STEP_TOTALS)
		(void) txm_store_totals();
}
