/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of tx_message: one slot per served database.
 *
 * A slot holds what the processes of one database share:
 *
 *	- the processes: the database worker and, when needed, the executor,
 *	  with their latches, so that a committing producer can wake the worker;
 *	- the commit ring: every transaction that inserted into the message log
 *	  appends its xid from its commit callback.  The ring gives the ticker the
 *	  order in which those commits became visible, and receivers use
 *	  ring_head/ring_ticked to wait until everything committed before they
 *	  started has been ticked (docs/design.md, section 2);
 *	- a condition variable that waiting consumers sleep on, broadcast when
 *	  something became deliverable;
 *	- claim hints of subscriptions (consume.c) and the worker's counters;
 *	- the open claims of the database's transactions (consume.c), each slot
 *	  with an LWLock of its own.
 *
 * Locking: TxmShared->lock (an LWLock) protects slot allocation and the
 * process fields; each slot's spinlock protects its ring and hints.  Counters
 * are atomics.  None of this is durable: after a crash everything is rebuilt
 * from the tables.
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "tx_message.h"

TxmShared  *txm_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* slot of MyDatabaseId, cached */
static int	my_slot_index = -1;

/* Open claims per database: every backend may hold a couple at once. */
static int
claims_per_slot(void)
{
	return 2 * MaxBackends + 16;
}

static Size
claims_offset(void)
{
	return MAXALIGN(add_size(offsetof(TxmShared, slots),
							 mul_size(txm_max_databases, sizeof(TxmDbSlot))));
}

static Size
txm_shmem_size(void)
{
	return add_size(claims_offset(),
					mul_size(mul_size(txm_max_databases, claims_per_slot()),
							 sizeof(TxmClaim)));
}

static void
txm_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(txm_shmem_size());
	RequestNamedLWLockTranche("tx_message", 1 + txm_max_databases);
}

static void
txm_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	txm_shared = ShmemInitStruct("tx_message", txm_shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("tx_message");

		memset(txm_shared, 0, txm_shmem_size());
		txm_shared->lock = &locks[0].lock;
		txm_shared->claim_locks = &locks[1];
		txm_shared->claims_per_slot = claims_per_slot();
		txm_shared->claims_offset = claims_offset();
		txm_shared->nslots = txm_max_databases;
		for (int i = 0; i < txm_shared->nslots; i++)
		{
			TxmDbSlot  *slot = &txm_shared->slots[i];

			SpinLockInit(&slot->mutex);
			ConditionVariableInit(&slot->cv);
			pg_atomic_init_u64(&slot->delivered, 0);
			pg_atomic_init_u64(&slot->checks, 0);
			pg_atomic_init_u64(&slot->dead_lettered, 0);
			pg_atomic_init_u64(&slot->errors, 0);
			pg_atomic_init_u64(&slot->handled, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
txm_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = txm_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = txm_shmem_startup;
}

/*
 * The slot serving a database, or NULL.  The caller holds txm_shared->lock
 * in any mode.
 */
TxmDbSlot *
txm_find_slot_locked(Oid dboid)
{
	for (int i = 0; i < txm_shared->nslots; i++)
		if (txm_shared->slots[i].dboid == dboid)
			return &txm_shared->slots[i];
	return NULL;
}

/*
 * The slot of the current database, or NULL without shared memory or when
 * no worker serves this database.  Used on hot paths, so the index is cached
 * and only verified.
 */
TxmDbSlot *
txm_my_slot(void)
{
	TxmDbSlot  *slot;

	if (txm_shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	if (my_slot_index >= 0 && txm_shared->slots[my_slot_index].dboid == MyDatabaseId)
		return &txm_shared->slots[my_slot_index];

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	slot = txm_find_slot_locked(MyDatabaseId);
	my_slot_index = slot ? (int) (slot - txm_shared->slots) : -1;
	LWLockRelease(txm_shared->lock);
	return slot;
}

/*
 * Called from the commit callback of a transaction that inserted into the
 * message log: record its place in commit order.  Runs after the commit
 * became visible (XACT_EVENT_COMMIT), so it must not fail.  xid64 0 records
 * "something committed" without an order (COMMIT PREPARED).
 *
 * The worker is woken only when it sleeps with everything ticked, or when a
 * receiver waits: otherwise it is already due to tick within
 * tx_message.tick_interval, and a wake-up per commit would only cost both
 * sides a system call.
 */
void
txm_ring_append(uint64 xid64)
{
	TxmDbSlot  *slot = txm_my_slot();
	Latch	   *latch = NULL;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->ring[slot->ring_head % TXM_RING_SIZE] = xid64;
	slot->ring_head++;
	if (slot->wake_on_commit || slot->waiters > 0)
	{
		slot->wake_on_commit = false;
		latch = slot->worker_latch;
	}
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

/* the slot this backend counts itself a waiter of */
static TxmDbSlot *waiting_in = NULL;

/* A backend that exits while it waits (FATAL skips PG_FINALLY) stops counting. */
static void
waiter_exit(int code, Datum arg)
{
	if (waiting_in)
		txm_waiter_leave(waiting_in);
}

/*
 * A receiver is about to sleep until something becomes deliverable: from
 * now on commits are ticked at once.  Commits that came in since it last
 * looked are asked for right away.
 */
void
txm_waiter_enter(TxmDbSlot *slot)
{
	static bool registered = false;
	Latch	   *latch = NULL;

	if (!registered)
	{
		before_shmem_exit(waiter_exit, (Datum) 0);
		registered = true;
	}
	waiting_in = slot;
	SpinLockAcquire(&slot->mutex);
	slot->waiters++;
	if (slot->ring_head > slot->ring_ticked)
	{
		slot->tick_requested = true;
		latch = slot->worker_latch;
	}
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

void
txm_waiter_leave(TxmDbSlot *slot)
{
	waiting_in = NULL;
	SpinLockAcquire(&slot->mutex);
	/* never below zero, even if the slot was handed to another database */
	if (slot->waiters > 0)
		slot->waiters--;
	SpinLockRelease(&slot->mutex);
}

/* Wake the database worker of the current database, if there is one. */
void
txm_wake_worker(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	Latch	   *latch;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	latch = slot->worker_latch;
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

/* A delayed or half message was committed: the worker recomputes its deadline. */
void
txm_request_maintenance(void)
{
	TxmDbSlot  *slot = txm_my_slot();
	Latch	   *latch;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->maintenance_requested = true;
	latch = slot->worker_latch;
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

void
txm_wake_executor(TxmDbSlot *slot)
{
	Latch	   *latch;

	SpinLockAcquire(&slot->mutex);
	latch = slot->executor_latch;
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

/* Everything up to ring position upto is in a committed tick: tell waiters. */
void
txm_ring_ticked(TxmDbSlot *slot, uint64 upto)
{
	SpinLockAcquire(&slot->mutex);
	if (upto > slot->ring_ticked)
		slot->ring_ticked = upto;
	SpinLockRelease(&slot->mutex);
	ConditionVariableBroadcast(&slot->cv);
}

/*
 * Copy the ring entries [from, head) into out (at most TXM_RING_SIZE, the
 * oldest are lost on overflow) and return head.  *first receives the ring
 * position of out[0].
 */
uint64
txm_ring_read(TxmDbSlot *slot, uint64 from, uint64 *out, int *nout, uint64 *first)
{
	uint64		head;

	SpinLockAcquire(&slot->mutex);
	head = slot->ring_head;
	if (head - from > TXM_RING_SIZE)
		from = head - TXM_RING_SIZE;
	*first = from;
	*nout = (int) (head - from);
	for (uint64 i = from; i < head; i++)
		out[i - from] = slot->ring[i % TXM_RING_SIZE];
	SpinLockRelease(&slot->mutex);
	return head;
}

/* True if the current database has a running worker. */
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
 * Wait until the worker has ticked everything committed before now, at most
 * timeout_ms.  Receivers call this so that a message whose commit returned
 * before tx_receive() started is always visible to it.
 */
void
txm_wait_for_ticks(int timeout_ms)
{
	TxmDbSlot  *slot = txm_my_slot();
	uint64		target;
	TimestampTz deadline;

	if (slot == NULL || !txm_worker_running(slot))
		return;
	SpinLockAcquire(&slot->mutex);
	target = slot->ring_head;
	SpinLockRelease(&slot->mutex);

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	ConditionVariablePrepareToSleep(&slot->cv);
	for (;;)
	{
		uint64		ticked;
		long		remaining;
		Latch	   *latch = NULL;

		SpinLockAcquire(&slot->mutex);
		ticked = slot->ring_ticked;
		if (ticked < target && !slot->tick_requested)
		{
			/* do not leave it to tx_message.tick_interval */
			slot->tick_requested = true;
			latch = slot->worker_latch;
		}
		SpinLockRelease(&slot->mutex);
		if (latch)
			SetLatch(latch);
		if (ticked >= target || !txm_worker_running(slot))
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			break;
		ConditionVariableTimedSleep(&slot->cv, remaining, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

LWLock *
txm_claim_lock(TxmDbSlot *slot)
{
	return &txm_shared->claim_locks[slot - txm_shared->slots].lock;
}

TxmClaim *
txm_slot_claims(TxmDbSlot *slot)
{
	TxmClaim   *all = (TxmClaim *) ((char *) txm_shared + txm_shared->claims_offset);

	return all + (slot - txm_shared->slots) * txm_shared->claims_per_slot;
}

void
txm_count(pg_atomic_uint64 *counter, uint64 n)
{
	if (n > 0)
		pg_atomic_fetch_add_u64(counter, n);
}
