/*-------------------------------------------------------------------------
 *
 * shmem_pool.c
 *	  The pool of database workers: which database gets a worker next, and
 *	  a worker leaving when its database has no work for it.
 *
 * A database keeps its slot (its commit ring, hints and counters) whether a
 * worker runs there or not; at most tx_message.max_workers database workers
 * run at once.  A worker that found nothing to do for
 * tx_message.worker_idle_timeout leaves (txm_worker_leave): its slot becomes
 * TXM_DB_IDLE, with the time of its next deadline (a delayed message, a
 * check-back, a lease or a retry falling due).  From then on, the first
 * commit into the database, the first receiver that waits there, or a
 * delayed or half message sent there sets the slot's demand flag under its
 * spinlock and wakes the launcher (shmem_demand_locked); so does the
 * deadline.  The launcher starts workers for the slots that want one, those
 * waiting longest first, while the pool has room.  When it has none, it
 * asks the running workers to yield: an idle one leaves at once, a busy one
 * after its turn, and comes back at the end of the queue.
 *
 * A receiver never depends on a worker being there: without one it ticks
 * in its own transaction (tick.c), as it does when no worker runs at all.
 *
 * IDENTIFICATION
 *	  src/base/shmem_pool.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"

#include "src/base/shmem_internal.h"

/*
 * Called by a committing producer, a receiver about to wait, or a commit
 * that sent a delayed or half message, with the slot's spinlock held: if no
 * worker serves the slot for want of work, ask for one.  Returns whether
 * the caller must wake the launcher (after releasing the spinlock).
 */
bool
shmem_demand_locked(TxmDbSlot *slot)
{
	if (!slot->on_demand || slot->demand)
		return false;
	slot->demand = true;
	return true;
}

/*
 * A receiver about to wait for messages: have a worker serve the database.
 * Returns whether one was asked for (or already had been).
 */
bool
txm_request_worker(TxmDbSlot *slot)
{
	bool		wake;
	bool		asked;

	SpinLockAcquire(&slot->mutex);
	wake = shmem_demand_locked(slot);
	asked = slot->on_demand;
	SpinLockRelease(&slot->mutex);
	if (wake)
		shmem_wake_launcher();
	return asked;
}

/*
 * Wait at most timeout_ms for a worker asked for by txm_request_worker()
 * to serve the slot's database.  Starting a background worker takes
 * milliseconds; this polls.
 */
bool
txm_wait_for_worker(TxmDbSlot *slot, long timeout_ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	while (!txm_worker_running(slot))
	{
		if (GetCurrentTimestamp() >= until)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 2,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/* Does slot want a worker now?  Lowers *next_ms to when it will otherwise. */
static bool
wants_worker(TxmDbSlot *slot, TimestampTz now, long *next_ms)
{
	bool		demand;

	Assert(LWLockHeldByMeInMode(txm_shared->lock, LW_EXCLUSIVE));
	if (slot->worker_pid != 0 || slot->stop_requested)
		return false;
	if (slot->state == TXM_DB_STOPPED)
	{
		if (slot->restart_after <= now)
			return true;
		*next_ms = Min(*next_ms, TimestampDifferenceMilliseconds(now, slot->restart_after) + 1);
		return false;
	}
	if (slot->state != TXM_DB_IDLE)
		return false;
	SpinLockAcquire(&slot->mutex);
	demand = slot->demand;
	SpinLockRelease(&slot->mutex);
	if (demand || slot->wake_at <= now)
		return true;
	*next_ms = Min(*next_ms, TimestampDifferenceMilliseconds(now, slot->wake_at) + 1);
	return false;
}

/* Ask every running worker to yield its place; returns their latches. */
static int
request_yields(Latch **latches)
{
	int			n = 0;

	Assert(LWLockHeldByMeInMode(txm_shared->lock, LW_EXCLUSIVE));
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];

		if (slot->worker_pid == 0 || slot->state != TXM_DB_RUNNING || slot->yield_requested)
			continue;
		slot->yield_requested = true;
		SpinLockAcquire(&slot->mutex);
		if (slot->worker_latch)
			latches[n++] = slot->worker_latch;
		SpinLockRelease(&slot->mutex);
	}
	return n;
}

/*
 * The slots whose worker the launcher should start now, at most what the
 * pool of max_workers has room for, those waiting longest first: their
 * indexes and databases.  *next_ms is lowered to the time until the next
 * restart or deadline.  When slots wait for room, the running workers are
 * asked to yield.
 */
int
txm_launcher_due(TimestampTz now, int max_workers, int *indexes, Oid *dboids, long *next_ms)
{
	int			nslots = txm_shared->nslots;
	int		   *wanting = palloc(sizeof(int) * nslots);
	Latch	  **latches = palloc(sizeof(Latch *) * nslots);
	int			nwanting = 0;
	int			running = 0;
	int			nlatches = 0;
	int			n;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];

		if (slot->worker_pid != 0 || slot->state == TXM_DB_STARTING)
			running++;
		else if (wants_worker(slot, now, next_ms))
		{
			int			k = nwanting++;

			if (slot->wanted_since == 0)
				slot->wanted_since = now;
			/* insertion sort: the longest waiting first */
			while (k > 0 && txm_shared->slots[wanting[k - 1]].wanted_since > slot->wanted_since)
			{
				wanting[k] = wanting[k - 1];
				k--;
			}
			wanting[k] = i;
		}
	}
	n = Min(nwanting, Max(max_workers - running, 0));
	for (int k = 0; k < n; k++)
	{
		indexes[k] = wanting[k];
		dboids[k] = txm_shared->slots[wanting[k]].dboid;
	}
	if (nwanting > n)
		nlatches = request_yields(latches);
	else
	{
		/* nobody waits (any more): a worker asked to yield may stay */
		for (int i = 0; i < nslots; i++)
			txm_shared->slots[i].yield_requested = false;
	}
	LWLockRelease(txm_shared->lock);

	for (int k = 0; k < nlatches; k++)
		SetLatch(latches[k]);
	pfree(wanting);
	pfree(latches);
	return n;
}

/*
 * tx_message.enabled is off: no worker comes, so nothing may wait for one.
 * The databases whose worker had left are started again (once) when it is
 * on again, and meanwhile ask for nothing.
 */
void
txm_launcher_pool_off(void)
{
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];

		if (slot->state != TXM_DB_IDLE)
			continue;
		slot->state = TXM_DB_STOPPED;
		slot->restart_after = 0;
		SpinLockAcquire(&slot->mutex);
		slot->on_demand = false;
		slot->demand = false;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(txm_shared->lock);
}

/* Did the launcher ask this worker to make room in the pool? */
bool
txm_worker_yield_requested(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		requested;

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	requested = slot->yield_requested;
	LWLockRelease(txm_shared->lock);
	return requested;
}

/*
 * The worker leaves its database until wake_at, or until a commit or a
 * receiver asks for a worker.  Without with_work, only if the database has
 * nothing for it: no commit waiting to be ticked, no receiver waiting, no
 * new deadline, no handler batch running, and none ended since the caller
 * read seen_work_at; with it (yielding its place in the pool), at once,
 * and it asks to come back.  Returns whether it left;
 * the caller then exits.  Its executors leave after their batch.
 */
bool
txm_worker_leave(TimestampTz wake_at, bool with_work, TimestampTz seen_work_at)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		left;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	left = with_work || pg_atomic_read_u32(&slot->executors_busy) == 0;
	/* a batch that ended since the caller looked may have written a retry */
	pg_memory_barrier();
	left = left && (with_work ||
					(TimestampTz) pg_atomic_read_u64(&slot->executor_work_at) <= seen_work_at);
	SpinLockAcquire(&slot->mutex);
	if (!with_work)
		left = left && slot->ring_head == slot->ring_ticked && slot->waiters == 0 &&
			slot->urgency == TXM_TICK_PACED && !slot->maintenance_requested;
	if (left)
	{
		slot->worker_latch = NULL;
		slot->wake_on_commit = false;
		slot->on_demand = true;
		slot->demand = with_work;
	}
	SpinLockRelease(&slot->mutex);
	if (left)
	{
		slot->state = TXM_DB_IDLE;
		slot->wake_at = wake_at;
		slot->wanted_since = 0;
		slot->executors_wanted = 0;
	}
	LWLockRelease(txm_shared->lock);
	if (left)
		txm_wake_executor();
	return left;
}

/*
 * A handler executor is about to run a batch: counted busy until
 * txm_executor_batch_end(), so that the worker does not leave meanwhile.
 * Returns false if the executor is no longer wanted (the worker left).
 */
bool
txm_executor_batch_begin(int executor)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		wanted;

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	wanted = (slot->executors_wanted & (((uint32) 1) << executor)) != 0;
	if (wanted)
		pg_atomic_fetch_or_u32(&slot->executors_busy, ((uint32) 1) << executor);
	LWLockRelease(txm_shared->lock);
	return wanted;
}

/* The batch ended; worked: it handled messages. */
void
txm_executor_batch_end(int executor, bool worked)
{
	TxmDbSlot  *slot = txm_my_slot();

	if (worked)
		pg_atomic_write_u64(&slot->executor_work_at, (uint64) GetCurrentTimestamp());
	pg_atomic_fetch_and_u32(&slot->executors_busy, ~(((uint32) 1) << executor));
}

/*
 * A handler executor went over every handler subscription, in a round
 * begun at started, and found no more work.
 */
void
txm_executor_handlers_dry(TimestampTz started)
{
	pg_atomic_write_u64(&txm_my_slot()->handlers_dry_at, (uint64) started);
}

/* When the last round that found the handlers without work began (0: never). */
TimestampTz
txm_worker_handlers_dry_at(void)
{
	return (TimestampTz) pg_atomic_read_u64(&txm_my_slot()->handlers_dry_at);
}

/* When a handler executor of this database last handled messages (0: never). */
TimestampTz
txm_worker_executor_work_at(void)
{
	return (TimestampTz) pg_atomic_read_u64(&txm_my_slot()->executor_work_at);
}
