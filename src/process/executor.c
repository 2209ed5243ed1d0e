/*-------------------------------------------------------------------------
 *
 * executor.c
 *	  The executor: runs a database's user code, so that a slow or hanging
 *	  check function or handler never delays ticks.
 *
 * The database worker starts tx_message.executors of them while the
 * database has check functions or handler subscriptions, and they leave
 * when there are none any more.  With one, it does everything; with more,
 * the first runs the due check-backs that have a check function (each in a
 * transaction of its own) and nothing else, so that a check-back never
 * waits behind a handler, and the others run handlers.  A handler executor
 * gives every handler subscription batches (one transaction each) until it
 * runs dry or has had its second, then the next subscription's turn comes;
 * a subscription whose batches run in as many other executors as its
 * handler_executors allows (1 unless set) is skipped (handlers.c), so one
 * slow handler holds up that many executors, not the others'
 * subscriptions.  Each round starts one subscription further, so that every
 * subscription comes first in turn.
 *
 * IDENTIFICATION
 *	  src/process/executor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/subcache.h"
#include "src/engine/handlers.h"
#include "src/process/unit.h"

PGDLLEXPORT void txm_executor_main(Datum main_arg);

/* a handler subscription's turn lasts at most this long */
#define TXM_HANDLER_TURN_MS 1000

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
	if (!txm_lock_extension() || txm_catalog_if_installed() == NULL)
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
	if (!txm_lock_extension())
		return;
	u->processed = txm_run_handler_batch(&u->subs[u->index], txm_handler_batch_size, &u->stats);
}

/*
 * One round over the handler subscriptions.  Returns true if there may be
 * more work.
 */
static bool
run_handlers(MemoryContext cxt)
{
	static uint32 round = 0;
	HandlerUnit u;
	bool		more = false;
	bool		failed = false;
	TimestampTz started = GetCurrentTimestamp();

	memset(&u, 0, sizeof(u));
	u.cxt = cxt;
	if (!txm_run_in_transaction(load_handlers_unit, &u, "loading handler subscriptions"))
		return false;
	round++;
	for (int k = 0; k < u.nsubs; k++)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TXM_HANDLER_TURN_MS);

		u.index = (int) ((round + k) % u.nsubs);

		do
		{
			bool		ran;

			txm_process_checkpoint(true);
			/* counted busy meanwhile: the worker does not leave under a batch */
			if (!txm_executor_batch_begin(txm_my_executor()))
				break;
			u.processed = 0;
			ran = txm_run_in_transaction(handler_batch_unit, &u, "running a handler");
			txm_executor_batch_end(txm_my_executor(), ran && u.processed > 0);
			if (!ran)
			{
				failed = true;
				break;
			}
		} while (u.processed >= txm_handler_batch_size && GetCurrentTimestamp() < until);
		if (u.processed >= txm_handler_batch_size)
			more = true;
	}
	MemoryContextReset(cxt);
	/*
	 * What was deliverable when the round began is handled: the worker may
	 * leave.  Not after a batch that failed as a whole: it is tried again.
	 */
	if (!more && !failed)
		txm_executor_handlers_dry(started);
	return more;
}

void
txm_executor_main(Datum main_arg)
{
	MemoryContext cxt;

	txm_attach_to_database(main_arg, true);
	ereport(DEBUG1, (errmsg("tx_message executor started")));
	cxt = AllocSetContextCreate(TopMemoryContext, "tx_message executor", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		bool		more = false;
		int			me = txm_my_executor();

		txm_process_checkpoint(true);
		/* counted busy meanwhile: the worker does not leave under a check-back */
		if (me == 0 && txm_executor_batch_begin(me))
			txm_executor_batch_end(me, txm_run_due_checks(true, true) > 0);
		if (me > 0 || txm_executors == 1)
			more = run_handlers(cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 more ? 0 : txm_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
