/*-------------------------------------------------------------------------
 *
 * shmem_ring.c
 *	  The commit ring of each served database, and everything that waits on
 *	  it: the worker's ticks, receivers waiting for messages, wake-ups.
 *
 * Every transaction that inserted into the message log appends its xid and
 * the end of its commit record to its database's ring from its commit
 * callback, after its commit became visible.  The ticker orders the
 * transactions a tick found by their commit records: a transaction that
 * could see another's commit wrote its own commit record after that one's,
 * whereas the callbacks of the two may run in either order (a commit is
 * visible, and its row locks no longer wait, before its callbacks run).
 * From before its commit becomes visible until it has appended, a backend
 * shows the xid in its committing entry, so that a tick that found a
 * transaction whose entry is not in the ring yet can wait for it.
 * ring_head / ring_ticked let a receiver wait until everything committed
 * before it started has been ticked (docs/design.md, section 2).  Appends
 * take the slot's spinlock for a few instructions; the ticker copies the
 * entries without it and then drops any that an append may have
 * overwritten meanwhile, as if the ring had overflowed.
 *
 * IDENTIFICATION
 *	  src/base/shmem_ring.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"

#include "src/base/shmem_internal.h"

/*
 * Record a commit's place in commit order.  Runs after the commit became
 * visible, so it must not fail.  xid64 0 records "something committed"
 * without an order (a COMMIT PREPARED whose transaction was not found).
 *
 * topics are the buckets (txm_topic_bit) of the topics it sent to.
 *
 * The worker is woken when it sleeps with everything ticked and asked to
 * be woken (wake_on_commit), to tick within tx_message.tick_interval, and
 * when a receiver waits for one of these topics, to tick at once or soon
 * (TxmWaiterKind).  Otherwise it is already due to tick, or to look for
 * commits at the next tick's time, and a wake-up per commit would only cost
 * both sides a system call; nor does a receiver waiting for another topic
 * hurry the tick, or every tick would wake it for nothing.  Once half the
 * ring came after the last tick's look at it, the tick is due at once,
 * whatever the tick_interval: a tick that comes after the ring wrapped has
 * lost the commit order of the oldest transactions.  When the worker
 * left for want of work, the first commit asks the launcher for one
 * (shmem_pool.c).
 */
void
shmem_ring_append(TxmDbSlot *slot, uint64 xid64, XLogRecPtr commit_end, uint64 topics)
{
	Latch	   *latch = NULL;
	bool		wake_launcher;
	TxmUrgency	want;
	bool		raised;

	SpinLockAcquire(&slot->mutex);
	pg_atomic_write_u32(&slot->ring[slot->ring_head % TXM_RING_SIZE], (uint32) xid64);
	pg_atomic_write_u64(&slot->ring_lsn[slot->ring_head % TXM_RING_SIZE], commit_end);
	slot->ring_head++;
	slot->topics_new |= topics;
	want = TXM_TICK_PACED;
	/* counted from the last tick's look at the ring, committed or not yet */
	if (topics & slot->topics_waited[TXM_WAIT_EAGER] ||
		slot->ring_head - Max(slot->ring_ticked, slot->topics_mark) >= TXM_RING_HURRY)
		want = TXM_TICK_NOW;
	else if (topics & slot->topics_waited[TXM_WAIT_PATIENT])
		want = TXM_TICK_SOON;
	/* the worker needs waking only when the tick becomes due sooner */
	raised = want > slot->urgency;
	if (raised)
		slot->urgency = want;
	if (slot->wake_on_commit || raised)
	{
		slot->wake_on_commit = false;
		latch = slot->worker_latch;
	}
	wake_launcher = shmem_demand_locked(slot);
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
	if (wake_launcher)
		shmem_wake_launcher();
}

/*
 * COMMIT PREPARED of prepared, whose messages are visible now (or of a
 * transaction not found: 0): append it, with the end of the WAL that
 * committed it, and stop showing it as committing (txm_at_commit_prepared).
 */
void
txm_ring_note_commit_prepared(FullTransactionId prepared)
{
	TxmDbSlot  *slot = txm_my_slot();

	if (slot)
	{
		if (FullTransactionIdIsValid(prepared))
			shmem_ring_append(slot, U64FromFullTransactionId(prepared), XactLastRecEnd,
							  TXM_ALL_TOPICS);
		else
			shmem_ring_append(slot, 0, InvalidXLogRecPtr, TXM_ALL_TOPICS);
	}
	shmem_committing_done();
}

/*
 * Copy the ring entries from position from up to head into out (room for
 * TXM_RING_SIZE); returns the position of the first one copied.  Those that
 * appends overwrote, before or while they were copied, are left out.
 */
static uint64
ring_copy(TxmDbSlot *slot, uint64 from, uint64 head, TxmRingEntry *out)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint64		head_after;

	if (head - from > TXM_RING_SIZE)
		from = head - TXM_RING_SIZE;
	for (uint64 i = from; i < head; i++)
	{
		/*
		 * An entry's transaction is older than next, by less than 2^31 unless
		 * the ring went unticked for that long (it then matches nothing).
		 */
		out[i - from].xid = txm_widen_xid(pg_atomic_read_u32(&slot->ring[i % TXM_RING_SIZE]), next);
		out[i - from].commit_end = pg_atomic_read_u64(&slot->ring_lsn[i % TXM_RING_SIZE]);
	}

	/* appends made meanwhile overwrote the entries below head_after - size */
	SpinLockAcquire(&slot->mutex);
	head_after = slot->ring_head;
	SpinLockRelease(&slot->mutex);
	if (head_after - from > TXM_RING_SIZE)
	{
		uint64		lost = Min(head_after - TXM_RING_SIZE - from, head - from);

		memmove(out, out + lost, sizeof(TxmRingEntry) * (head - from - lost));
		from += lost;
	}
	return from;
}

/*
 * The ring entries not yet ticked, oldest first, in a palloc'd array (at
 * most TXM_RING_SIZE: the oldest are lost on overflow).  *head receives the
 * ring's head: a tick that read them covers the ring up to there.
 */
TxmRingEntry *
txm_ring_unticked(TxmDbSlot *slot, int *nout, uint64 *head)
{
	TxmRingEntry *out = palloc(sizeof(TxmRingEntry) * TXM_RING_SIZE);
	uint64		from;

	SpinLockAcquire(&slot->mutex);
	from = slot->ring_ticked;
	*head = slot->ring_head;
	/* the tick covers what is below head: its topics are old once it commits */
	slot->topics_old |= slot->topics_new;
	slot->topics_new = 0;
	slot->topics_mark = *head;
	SpinLockRelease(&slot->mutex);
	from = ring_copy(slot, from, *head, out);
	*nout = (int) (*head - from);
	return out;
}

/*
 * The entries appended from position from on, without taking them, into
 * out (room for TXM_RING_SIZE): a tick looks there for transactions it
 * found whose entries came after it read the ring.  Returns how many;
 * *head receives the ring's head, where the next look starts.  Fewer than
 * *head - from when appends overwrote some of them.
 */
int
txm_ring_since(TxmDbSlot *slot, uint64 from, TxmRingEntry *out, uint64 *head)
{
	SpinLockAcquire(&slot->mutex);
	*head = slot->ring_head;
	SpinLockRelease(&slot->mutex);
	from = ring_copy(slot, from, *head, out);
	return (int) (*head - from);
}

/* qsort / bsearch order of 64-bit xids */
int
txm_cmp_xid64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

static pg_atomic_uint64 *
committing_entry(int index)
{
	Assert(index >= 0 && index < MaxBackends);
	return (pg_atomic_uint64 *) ((char *) txm_shared + txm_shared->committing_offset) + index;
}

/*
 * This backend's transaction, xid64, is about to commit and will append to
 * the ring (before its commit becomes visible), or it has appended or
 * ended (xid64 0).  The write before the commit is ordered before the
 * commit's visibility by the ProcArrayLock that makes it visible; the
 * append is ordered before the clearing by a full barrier (a spinlock's
 * release orders only what comes before it), as the reader's barrier
 * orders its look at the entries before its look at the ring.
 */
void
shmem_ring_committing(uint64 xid64)
{
	Assert(MyBackendId >= 1 && MyBackendId <= MaxBackends);
	if (xid64 == 0)
		pg_memory_barrier();
	pg_atomic_write_u64(committing_entry(MyBackendId - 1), xid64);
}

/*
 * Whether one of the transactions xids (sorted) is committing without its
 * ring entry yet: its commit is visible, its commit callbacks are running.
 * When none is, the entries of those seen done are in the ring for a look
 * after this.
 */
bool
txm_ring_committing_any(const uint64 *xids, int n)
{
	pg_read_barrier();
	for (int i = 0; i < MaxBackends; i++)
	{
		uint64		xid = pg_atomic_read_u64(committing_entry(i));

		if (xid != 0 && bsearch(&xid, xids, n, sizeof(uint64), txm_cmp_xid64) != NULL)
			return true;
	}
	pg_memory_barrier();
	return false;
}

/* Everything up to ring position upto is in a committed tick: tell waiters. */
void
shmem_ring_ticked(TxmDbSlot *slot, uint64 upto)
{
	SpinLockAcquire(&slot->mutex);
	if (upto > slot->ring_ticked)
		slot->ring_ticked = upto;
	/* a tick that read the ring later has not committed yet: keep them */
	if (upto >= slot->topics_mark && slot->topics_old != 0)
	{
		/* a tick that covered nothing leaves the last one's topics known */
		slot->topics_ticked = slot->topics_old;
		slot->topics_old = 0;
		slot->ticks_seen++;
	}
	SpinLockRelease(&slot->mutex);
	ConditionVariableBroadcast(&slot->cv);
}

/* A delayed or half message was committed: the worker recomputes its deadline. */
void
shmem_request_maintenance(TxmDbSlot *slot)
{
	Latch	   *latch;
	bool		wake_launcher;

	SpinLockAcquire(&slot->mutex);
	slot->maintenance_requested = true;
	latch = slot->worker_latch;
	wake_launcher = shmem_demand_locked(slot);
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
	if (wake_launcher)
		shmem_wake_launcher();
}

/* Something may have become deliverable: wake the waiting receivers. */
void
shmem_broadcast(TxmDbSlot *slot)
{
	ConditionVariableBroadcast(&slot->cv);
}

/* True if a worker serves the slot's database. */
bool
txm_worker_running(TxmDbSlot *slot)
{
	bool		running;

	SpinLockAcquire(&slot->mutex);
	running = slot->worker_latch != NULL;
	SpinLockRelease(&slot->mutex);
	return running;
}

/*
 * For the worker: whether commits wait to be ticked, and how soon receivers
 * want them (TxmUrgency).  With nothing unticked, the next commit is asked
 * to wake the worker, unless the worker will look again by itself at the
 * next tick's time anyway (looking_soon).
 */
bool
txm_worker_tick_due(TxmUrgency *urgency, bool looking_soon)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		pending;

	SpinLockAcquire(&slot->mutex);
	pending = slot->ring_head > slot->ring_ticked;
	/* asked for commits a tick has covered meanwhile */
	if (!pending)
		slot->urgency = TXM_TICK_PACED;
	*urgency = slot->urgency;
	slot->wake_on_commit = !pending && !looking_soon;
	SpinLockRelease(&slot->mutex);
	return pending;
}

/* About to tick: a receiver's request is served by this tick. */
void
txm_worker_clear_tick_request(void)
{
	TxmDbSlot  *slot = txm_my_slot();

	SpinLockAcquire(&slot->mutex);
	slot->urgency = TXM_TICK_PACED;
	SpinLockRelease(&slot->mutex);
}

/* Did a commit move the next deadline (delayed or half messages)? */
bool
txm_worker_take_maintenance_request(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		requested;

	SpinLockAcquire(&slot->mutex);
	requested = slot->maintenance_requested;
	slot->maintenance_requested = false;
	SpinLockRelease(&slot->mutex);
	return requested;
}

/* Wake the executor of the current database, if it runs. */
void
txm_wake_executor(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	Latch	   *latches[TXM_MAX_EXECUTORS];

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	memcpy(latches, slot->executor_latches, sizeof(latches));
	SpinLockRelease(&slot->mutex);
	for (int i = 0; i < TXM_MAX_EXECUTORS; i++)
		if (latches[i])
			SetLatch(latches[i]);
}

/*
 * tx_receive() was called in the current database: the worker paces ticks
 * while receivers came within TXM_READERS_WINDOW_MS (worker.c).  Written
 * once per TXM_READ_NOTE_MS at most, so that receivers do not all write one
 * cache line per call; the first after a window without readers wakes the
 * worker, which may sleep until its next maintenance cycle.  Also without a
 * worker: the one that comes next finds the database read.
 */
#define TXM_READ_NOTE_MS	100

void
txm_note_reader(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	TimestampTz now;
	TimestampTz last;
	Latch	   *latch = NULL;

	if (slot == NULL)
		return;
	now = GetCurrentTimestamp();
	last = (TimestampTz) pg_atomic_read_u64(&slot->read_at);
	if (!TimestampDifferenceExceeds(last, now, TXM_READ_NOTE_MS))
		return;
	pg_atomic_write_u64(&slot->read_at, (uint64) now);
	if (TimestampDifferenceExceeds(last, now, TXM_READERS_WINDOW_MS))
	{
		SpinLockAcquire(&slot->mutex);
		latch = slot->worker_latch;
		SpinLockRelease(&slot->mutex);
	}
	if (latch)
		SetLatch(latch);
}

/* For the worker: when tx_receive() was last called here (0: never). */
TimestampTz
txm_worker_read_at(void)
{
	return (TimestampTz) pg_atomic_read_u64(&txm_my_slot()->read_at);
}

/*
 * Wait until the worker has ticked everything committed before now into the
 * given topics, at most timeout_ms: if unticked commits touch their
 * buckets, wait for every commit before now.  Receivers call this so that
 * a message whose commit returned before tx_receive() started is always
 * visible to it.
 */
bool
txm_wait_for_ticks(int timeout_ms, uint64 topics, TxmWaiterKind kind)
{
	TxmUrgency	want = kind == TXM_WAIT_EAGER ? TXM_TICK_NOW : TXM_TICK_SOON;
	TxmDbSlot  *slot = txm_my_slot();
	uint64		target;
	TimestampTz deadline;
	bool		done = false;
	bool		unticked;

	if (slot == NULL || !txm_worker_running(slot))
		return false;
	SpinLockAcquire(&slot->mutex);
	target = slot->ring_head;
	unticked = ((slot->topics_new | slot->topics_old) & topics) != 0;
	SpinLockRelease(&slot->mutex);
	if (!unticked)
		return true;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	ConditionVariablePrepareToSleep(&slot->cv);
	for (;;)
	{
		uint64		ticked;
		long		remaining;
		Latch	   *latch = NULL;

		SpinLockAcquire(&slot->mutex);
		ticked = slot->ring_ticked;
		if (ticked < target && slot->urgency < want)
		{
			/* do not leave it to tx_message.tick_interval */
			slot->urgency = want;
			latch = slot->worker_latch;
		}
		SpinLockRelease(&slot->mutex);
		if (latch)
			SetLatch(latch);
		done = ticked >= target;
		if (done || !txm_worker_running(slot))
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			break;
		ConditionVariableTimedSleep(&slot->cv, remaining, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return done;
}

/* Register for the broadcasts of the slot's condition variable. */
void
txm_wait_prepare(TxmDbSlot *slot)
{
	ConditionVariablePrepareToSleep(&slot->cv);
}

void
txm_wait_cancel(void)
{
	ConditionVariableCancelSleep();
}

/* the slot this backend counts itself a waiter of, for which topics, how */
static TxmDbSlot *waiting_in = NULL;
static uint64 waiting_for = 0;
static TxmWaiterKind waiting_kind = TXM_WAIT_EAGER;

static void
waiter_leave(TxmDbSlot *slot)
{
	waiting_in = NULL;
	SpinLockAcquire(&slot->mutex);
	/* never below zero, even if the slot was handed to another database */
	if (slot->waiters > 0)
		slot->waiters--;
	for (uint64 left = waiting_for; left != 0; left &= left - 1)
	{
		int			b = pg_rightmost_one_pos64(left);

		if (slot->topic_waiters[waiting_kind][b] > 0 &&
			--slot->topic_waiters[waiting_kind][b] == 0)
			slot->topics_waited[waiting_kind] &= ~(UINT64CONST(1) << b);
	}
	SpinLockRelease(&slot->mutex);
}

/* A backend that exits while it waits (FATAL skips PG_FINALLY) stops counting. */
static void
waiter_exit(int code, Datum arg)
{
	if (waiting_in)
		waiter_leave(waiting_in);
}

/*
 * A receiver is about to sleep until something becomes deliverable in one
 * of the topics: from now on their commits are ticked at once, or soon for
 * a patient receiver.  Those that came in since it last looked are asked
 * for right away.
 */
static void
waiter_enter(TxmDbSlot *slot, uint64 topics, TxmWaiterKind kind)
{
	TxmUrgency	want = kind == TXM_WAIT_EAGER ? TXM_TICK_NOW : TXM_TICK_SOON;
	static bool registered = false;
	Latch	   *latch = NULL;
	bool		wake_launcher;

	if (!registered)
	{
		before_shmem_exit(waiter_exit, (Datum) 0);
		registered = true;
	}
	waiting_in = slot;
	waiting_for = topics;
	waiting_kind = kind;
	SpinLockAcquire(&slot->mutex);
	slot->waiters++;
	for (uint64 left = topics; left != 0; left &= left - 1)
		slot->topic_waiters[kind][pg_rightmost_one_pos64(left)]++;
	slot->topics_waited[kind] |= topics;
	if (((slot->topics_new | slot->topics_old) & topics) && slot->urgency < want)
	{
		slot->urgency = want;
		latch = slot->worker_latch;
	}
	wake_launcher = shmem_demand_locked(slot);
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
	if (wake_launcher)
		shmem_wake_launcher();
}

/*
 * Sleep on the database's condition variable, counted as a receiver waiting
 * for the topics (txm_topic_bit), until a broadcast or timeout_ms.  The
 * caller has called txm_wait_prepare().
 */
void
txm_wait_as_receiver(TxmDbSlot *slot, long timeout_ms, uint64 topics, TxmWaiterKind kind)
{
	waiter_enter(slot, topics, kind);
	PG_TRY();
	{
		(void) ConditionVariableTimedSleep(&slot->cv, timeout_ms, PG_WAIT_EXTENSION);
	}
	PG_FINALLY();
	{
		waiter_leave(slot);
	}
	PG_END_TRY();
}

/*
 * Has a tick covered any of the topics since the caller last looked (*seen,
 * updated; PG_UINT64_MAX: never)?  A receiver that then finds nothing was
 * left out by it (TxmWaiterKind).  Only the last tick's topics are known:
 * one for other topics after it hides it, which only delays the caller's
 * patience.
 */
bool
txm_tick_covered_since(TxmDbSlot *slot, uint64 topics, uint64 *seen)
{
	bool		covered;

	SpinLockAcquire(&slot->mutex);
	covered = *seen != PG_UINT64_MAX && slot->ticks_seen != *seen &&
		(slot->topics_ticked & topics) != 0;
	*seen = slot->ticks_seen;
	SpinLockRelease(&slot->mutex);
	return covered;
}
