/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  tx_message's shared memory segment: one slot per served database, and
 *	  the life cycle of the processes that serve it.
 *
 * A slot holds what the processes of one database share: its database
 * worker and, when needed, its executor (their pids and latches), the
 * commit ring (shmem_ring.c), the claim hints and the registry of open
 * claims (shmem_claims.c), a condition variable that waiting consumers
 * sleep on, and the counters tx_worker_status() reports.
 *
 * Slots change hands under TxmShared->lock.  The launcher gives every usable
 * database a slot (txm_launcher_reconcile); the database's worker attaches
 * to it and finds out whether the extension is there (txm_process_attach,
 * then txm_process_ready or txm_process_absent); the launcher frees the
 * slots of databases that are gone, unusable or without the extension, and
 * remembers the latter so that it does not try them again until CREATE
 * EXTENSION asks for a worker (shmem_request_worker, at that commit).
 * shmem_internal.h describes the locking of the other fields.
 *
 * IDENTIFICATION
 *	  src/base/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"

#include "src/base/shmem_internal.h"

int			txm_max_databases = 8;

TxmShared  *txm_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* slot of MyDatabaseId, cached */
static int	my_slot_index = -1;

/* the slot this database worker or executor serves */
static TxmDbSlot *attached = NULL;

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
restorers_offset(void)
{
	return MAXALIGN(add_size(claims_offset(),
							 mul_size(mul_size(txm_max_databases, claims_per_slot()),
									  sizeof(TxmClaim))));
}

/* the keys of each backend's open ordered claims (shmem_claims.c) */
static Size
key_filters_offset(void)
{
	return MAXALIGN(add_size(restorers_offset(), mul_size(MaxBackends, sizeof(TxmRestorer))));
}

/* the committing backends' xids (shmem_ring.c) */
static Size
committing_offset(void)
{
	return MAXALIGN(add_size(key_filters_offset(), mul_size(MaxBackends, sizeof(TxmKeyFilter))));
}

static Size
shmem_size(void)
{
	return add_size(committing_offset(), mul_size(MaxBackends, sizeof(pg_atomic_uint64)));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shmem_size());
	/* the segment's lock, then a claim lock and a hint lock per slot */
	RequestNamedLWLockTranche("tx_message", 1 + 3 * txm_max_databases);
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	txm_shared = ShmemInitStruct("tx_message", shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("tx_message");

		memset(txm_shared, 0, shmem_size());
		txm_shared->lock = &locks[0].lock;
		txm_shared->claims_per_slot = claims_per_slot();
		txm_shared->claims_offset = claims_offset();
		txm_shared->restorers_offset = restorers_offset();
		txm_shared->key_filters_offset = key_filters_offset();
		txm_shared->committing_offset = committing_offset();
		for (int b = 0; b < MaxBackends; b++)
			pg_atomic_init_u64((pg_atomic_uint64 *) ((char *) txm_shared + txm_shared->committing_offset) + b, 0);
		txm_shared->nslots = txm_max_databases;
		for (int i = 0; i < txm_shared->nslots; i++)
		{
			TxmDbSlot  *slot = &txm_shared->slots[i];

			slot->claim_lock = &locks[1 + 3 * i].lock;
			slot->hint_lock = &locks[2 + 3 * i].lock;
			slot->totals_lock = &locks[3 + 3 * i].lock;
			for (int t = 0; t < TXM_TOTALS; t++)
				for (int k = 0; k < TXM_NTOTALS; k++)
					pg_atomic_init_u64(&slot->totals[t].n[k], 0);
			SpinLockInit(&slot->mutex);
			ConditionVariableInit(&slot->cv);
			pg_atomic_init_u64(&slot->last_cycle_at, 0);
			pg_atomic_init_u32(&slot->stale_prepared, 0);
			pg_atomic_init_u64(&slot->executor_work_at, 0);
			pg_atomic_init_u32(&slot->executors_busy, 0);
			pg_atomic_init_u64(&slot->handlers_dry_at, 0);
			pg_atomic_init_u64(&slot->read_at, 0);
			for (int c = 0; c < TXM_NCOUNTERS; c++)
				pg_atomic_init_u64(&slot->counters[c], 0);
			for (int r = 0; r < TXM_RING_SIZE; r++)
			{
				pg_atomic_init_u32(&slot->ring[r], 0);
				pg_atomic_init_u64(&slot->ring_lsn[r], 0);
			}
			pg_atomic_init_u32(&slot->retry_version, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init while the postmaster preloads the library. */
void
txm_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

bool
txm_shmem_available(void)
{
	return txm_shared != NULL;
}

int
txm_nslots(void)
{
	return txm_shared ? txm_shared->nslots : 0;
}

/* The slot serving a database, or NULL. */
static TxmDbSlot *
find_slot_locked(Oid dboid)
{
	Assert(LWLockHeldByMe(txm_shared->lock));
	for (int i = 0; i < txm_shared->nslots; i++)
		if (txm_shared->slots[i].dboid == dboid)
			return &txm_shared->slots[i];
	return NULL;
}

/*
 * The slot of the current database, or NULL without shared memory or when
 * no slot serves this database.  Used on hot paths, so the index is cached
 * and only verified: a slot's dboid is one aligned word, and a slot handed
 * to another database in the meantime fails the check.
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
	slot = find_slot_locked(MyDatabaseId);
	my_slot_index = slot ? (int) (slot - txm_shared->slots) : -1;
	LWLockRelease(txm_shared->lock);
	return slot;
}

void
txm_count(TxmCounter counter, uint64 n)
{
	TxmDbSlot  *slot = txm_my_slot();

	Assert(counter >= 0 && counter < TXM_NCOUNTERS);
	if (slot != NULL && n > 0)
		pg_atomic_fetch_add_u64(&slot->counters[counter], n);
}

/*
 * The databases served: those whose worker runs, and those without one for
 * now (pid 0: it left for want of work, or is on its way).  rows has
 * txm_nslots() entries.
 */
int
txm_worker_statuses(TxmWorkerStatus *rows)
{
	int			n = 0;

	if (txm_shared == NULL)
		return 0;
	LWLockAcquire(txm_shared->lock, LW_SHARED);
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];

		/* a worker found the extension there: listed until one finds it gone */
		bool		idle = slot->state != TXM_DB_RUNNING;

		if (!slot->served)
			continue;
		rows[n].pid = idle ? 0 : slot->worker_pid;
		rows[n].dboid = slot->dboid;
		rows[n].started_at = idle ? 0 : slot->started_at;
		rows[n].last_cycle_at = (TimestampTz) pg_atomic_read_u64(&slot->last_cycle_at);
		for (int c = 0; c < TXM_NCOUNTERS; c++)
			rows[n].counters[c] = pg_atomic_read_u64(&slot->counters[c]);
		rows[n].stale_prepared = (int) pg_atomic_read_u32(&slot->stale_prepared);
		memcpy(rows[n].executor_pids, slot->executor_pids, sizeof(slot->executor_pids));
		SpinLockAcquire(&slot->mutex);
		strlcpy(rows[n].restore_state, slot->restore_state, TXM_RESTORE_STATE_LEN);
		SpinLockRelease(&slot->mutex);
		n++;
	}
	LWLockRelease(txm_shared->lock);
	return n;
}

/*----------
 * The launcher
 *----------
 */

/* Wake the launcher: a database asked for a worker, or a worker ended. */
void
shmem_wake_launcher(void)
{
	Latch	   *latch;

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	latch = txm_shared->launcher_latch;
	LWLockRelease(txm_shared->lock);
	if (latch)
		SetLatch(latch);
}

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	txm_shared->launcher_pid = 0;
	txm_shared->launcher_latch = NULL;
	LWLockRelease(txm_shared->lock);
}

/*
 * The launcher starts: publish its latch.  Workers of a previous launcher
 * incarnation keep running; those registered but never attached are
 * started again.
 */
void
txm_launcher_attach(void)
{
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	txm_shared->launcher_pid = MyProcPid;
	txm_shared->launcher_latch = MyLatch;
	for (int i = 0; i < txm_shared->nslots; i++)
		if (txm_shared->slots[i].state == TXM_DB_STARTING && txm_shared->slots[i].worker_pid == 0)
			txm_shared->slots[i].state = TXM_DB_STOPPED;
	LWLockRelease(txm_shared->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);
}

/* Did a database ask for a worker since the last call? */
bool
txm_launcher_take_rescan(void)
{
	bool		rescan;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	rescan = txm_shared->rescan;
	txm_shared->rescan = false;
	LWLockRelease(txm_shared->lock);
	return rescan;
}

static const TxmDatabase *
find_database(const TxmDatabase *dbs, int n, Oid oid)
{
	for (int i = 0; i < n; i++)
		if (dbs[i].oid == oid)
			return &dbs[i];
	return NULL;
}

/* Does any executor of the slot run? */
static bool
any_executor(const TxmDbSlot *slot)
{
	for (int i = 0; i < TXM_MAX_EXECUTORS; i++)
		if (slot->executor_pids[i] != 0)
			return true;
	return false;
}

/*
 * Free the slots of databases that are gone, unusable or known to lack the
 * extension (remembering the latter), and forget absent databases that no
 * longer exist.
 */
static void
release_unserved_slots(const TxmDatabase *dbs, int n)
{
	Assert(LWLockHeldByMeInMode(txm_shared->lock, LW_EXCLUSIVE));
	for (int i = 0; i < txm_shared->nslots; i++)
	{
		TxmDbSlot  *slot = &txm_shared->slots[i];
		const TxmDatabase *db;

		if (slot->dboid == InvalidOid || slot->worker_pid != 0 || any_executor(slot))
			continue;
		db = find_database(dbs, n, slot->dboid);
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
		if (find_database(dbs, n, txm_shared->absent[i]) == NULL)
			txm_shared->absent[i] = txm_shared->absent[--txm_shared->nabsent];
		else
			i++;
	}
}

/* Hand a free slot to a database; its worker checks for the extension. */
static void
assign_slot(TxmDbSlot *slot, Oid dboid)
{
	Assert(LWLockHeldByMeInMode(txm_shared->lock, LW_EXCLUSIVE));
	shmem_hints_clear(slot);
	shmem_totals_clear(slot);
	SpinLockAcquire(&slot->mutex);
	slot->waiters = 0;
	memset(slot->topic_waiters, 0, sizeof(slot->topic_waiters));
	memset(slot->topics_waited, 0, sizeof(slot->topics_waited));
	slot->topics_ticked = 0;
	/* whatever the ring holds of the database before is of unknown topics */
	slot->topics_new = TXM_ALL_TOPICS;
	slot->topics_old = 0;
	slot->topics_mark = slot->ring_head;
	slot->urgency = TXM_TICK_PACED;
	slot->restore_state[0] = '\0';
	slot->on_demand = false;
	slot->demand = false;
	SpinLockRelease(&slot->mutex);
	pg_atomic_write_u64(&slot->executor_work_at, 0);
	pg_atomic_write_u32(&slot->executors_busy, 0);
	pg_atomic_write_u64(&slot->handlers_dry_at, 0);
	pg_atomic_write_u64(&slot->read_at, 0);
	slot->dboid = dboid;
	slot->state = TXM_DB_STOPPED;
	slot->stop_requested = false;
	slot->executors_wanted = 0;
	slot->restart_after = 0;
	slot->wake_at = 0;
	slot->wanted_since = 0;
	slot->yield_requested = false;
	slot->served = false;
}

/*
 * Reconcile the slots with pg_database.  Returns false if some usable
 * database found no free slot.
 */
bool
txm_launcher_reconcile(const TxmDatabase *dbs, int n)
{
	bool		all_served = true;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	release_unserved_slots(dbs, n);
	for (int d = 0; d < n; d++)
	{
		bool		known = false;
		TxmDbSlot  *free_slot = NULL;

		if (!dbs[d].usable)
			continue;
		for (int i = 0; i < txm_shared->nabsent && !known; i++)
			known = txm_shared->absent[i] == dbs[d].oid;
		for (int i = 0; i < txm_shared->nslots && !known; i++)
		{
			if (txm_shared->slots[i].dboid == dbs[d].oid)
				known = true;
			else if (txm_shared->slots[i].dboid == InvalidOid && free_slot == NULL)
				free_slot = &txm_shared->slots[i];
		}
		if (known)
			continue;
		if (free_slot == NULL)
		{
			all_served = false;
			break;
		}
		assign_slot(free_slot, dbs[d].oid);
	}
	LWLockRelease(txm_shared->lock);
	return all_served;
}

/*
 * The launcher registered a worker for slot index, or failed to (no free
 * background worker slot): then it tries again later.  Returns the time
 * until that retry, 0 if the worker was registered.
 */
long
txm_launcher_started(int index, Oid dboid, bool registered, TimestampTz now)
{
	TxmDbSlot  *slot = &txm_shared->slots[index];
	long		retry_ms = registered ? 0 : TXM_REGISTER_RETRY_MS;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	if (slot->dboid == dboid && (slot->state == TXM_DB_STOPPED || slot->state == TXM_DB_IDLE))
	{
		if (registered)
		{
			slot->state = TXM_DB_STARTING;
			slot->wanted_since = 0;
		}
		else
		{
			slot->state = TXM_DB_STOPPED;
			slot->restart_after = TimestampTzPlusMilliseconds(now, retry_ms);
		}
	}
	LWLockRelease(txm_shared->lock);
	return retry_ms;
}

/* Is a worker registered for slot index that has not attached yet? */
bool
txm_launcher_awaits_attach(int index)
{
	TxmDbSlot  *slot = &txm_shared->slots[index];
	bool		awaits;

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	awaits = slot->state == TXM_DB_STARTING && slot->worker_pid == 0;
	LWLockRelease(txm_shared->lock);
	return awaits;
}

/* The worker registered for slot index died before attaching. */
void
txm_launcher_start_failed(int index, TimestampTz now)
{
	TxmDbSlot  *slot = &txm_shared->slots[index];

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	if (slot->state == TXM_DB_STARTING && slot->worker_pid == 0)
	{
		slot->state = TXM_DB_STOPPED;
		slot->restart_after = TimestampTzPlusMilliseconds(now, TXM_RESTART_DELAY_MS);
	}
	LWLockRelease(txm_shared->lock);
}

/*
 * At the commit of CREATE EXTENSION: the launcher serves this database
 * again, with fresh hints (a new installation numbers its subscriptions
 * from 1 again).
 */
void
shmem_request_worker(Oid dboid)
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
	slot = find_slot_locked(dboid);
	if (slot)
	{
		shmem_hints_clear(slot);
		/* idle: the worker may not have seen a DROP EXTENSION before this CREATE */
		if (slot->state == TXM_DB_ABSENT || slot->state == TXM_DB_IDLE)
		{
			slot->state = TXM_DB_STOPPED;
			slot->restart_after = 0;
		}
	}
	txm_shared->rescan = true;
	LWLockRelease(txm_shared->lock);
	shmem_wake_launcher();
}

/*----------
 * Database workers and executors
 *----------
 */

/* arg: the executor's index, or -1 for the database worker */
static void
process_detach(int code, Datum arg)
{
	TxmDbSlot  *slot = attached;
	int			executor = DatumGetInt32(arg);

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&slot->mutex);
	if (executor >= 0)
		slot->executor_latches[executor] = NULL;
	else
		slot->worker_latch = NULL;
	SpinLockRelease(&slot->mutex);
	if (executor >= 0 && slot->executor_pids[executor] == MyProcPid)
	{
		slot->executor_pids[executor] = 0;
		/* a batch that ended with this process ended */
		pg_atomic_fetch_and_u32(&slot->executors_busy, ~(((uint32) 1) << executor));
	}
	else if (executor < 0 && slot->worker_pid == MyProcPid)
	{
		slot->worker_pid = 0;
		slot->yield_requested = false;
		/* a worker that left for want of work is started on demand */
		if (slot->state != TXM_DB_ABSENT && slot->state != TXM_DB_IDLE)
		{
			slot->state = TXM_DB_STOPPED;
			slot->restart_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  TXM_RESTART_DELAY_MS);
		}
	}
	LWLockRelease(txm_shared->lock);
	shmem_wake_launcher();
	/* receivers waiting for a tick must not wait for us */
	shmem_broadcast(slot);
}

/*
 * A database worker (executor -1) or executor number executor takes its
 * place in slot index, unless the slot no longer serves dboid, its database
 * is to be left alone, or the place is taken.  Its place is given up when
 * the process exits.
 */
bool
txm_process_attach(int index, Oid dboid, int executor)
{
	TxmDbSlot  *slot;
	bool		ok;

	if (txm_shared == NULL || index < 0 || index >= txm_shared->nslots ||
		executor >= TXM_MAX_EXECUTORS)
		return false;
	slot = &txm_shared->slots[index];
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	ok = slot->dboid == dboid && !slot->stop_requested &&
		(executor >= 0 ? slot->executor_pids[executor] == 0 : slot->worker_pid == 0);
	if (ok)
	{
		if (executor >= 0)
			slot->executor_pids[executor] = MyProcPid;
		else
		{
			slot->worker_pid = MyProcPid;
			slot->started_at = GetCurrentTimestamp();
			slot->yield_requested = false;
		}
	}
	LWLockRelease(txm_shared->lock);
	if (!ok)
		return false;
	attached = slot;
	before_shmem_exit(process_detach, Int32GetDatum(executor));
	return true;
}

/* Connected, and the extension is there: publish the latch. */
void
txm_process_ready(int executor)
{
	Assert(attached != NULL);
	SpinLockAcquire(&attached->mutex);
	if (executor >= 0)
		attached->executor_latches[executor] = MyLatch;
	else
	{
		attached->worker_latch = MyLatch;
		attached->wake_on_commit = true;
		attached->on_demand = false;
		attached->demand = false;
	}
	SpinLockRelease(&attached->mutex);
	if (executor < 0)
	{
		LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
		attached->state = TXM_DB_RUNNING;
		attached->served = true;
		LWLockRelease(txm_shared->lock);
	}
}

/* The database worker found no extension: the launcher frees the slot. */
void
txm_process_absent(void)
{
	Assert(attached != NULL);
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	attached->state = TXM_DB_ABSENT;
	attached->served = false;
	LWLockRelease(txm_shared->lock);
}

/* Should this process leave: its database wanted alone, or this executor not wanted? */
bool
txm_process_must_exit(int executor)
{
	bool		leave;

	Assert(attached != NULL);
	LWLockAcquire(txm_shared->lock, LW_SHARED);
	leave = attached->stop_requested ||
		(executor >= 0 && (attached->executors_wanted & (((uint32) 1) << executor)) == 0);
	LWLockRelease(txm_shared->lock);
	return leave;
}

int
txm_process_slot_index(void)
{
	Assert(attached != NULL);
	return (int) (attached - txm_shared->slots);
}

/* DROP EXTENSION: the worker leaves for good, and lets the executor go. */
void
txm_worker_extension_dropped(void)
{
	Assert(attached != NULL);
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	attached->state = TXM_DB_ABSENT;
	attached->served = false;
	attached->executors_wanted = 0;
	LWLockRelease(txm_shared->lock);
	txm_wake_executor();
}

/*
 * The executors the database needs (bit i: executor i).  Returns those to
 * start now; executors no longer wanted are woken to leave.
 */
uint32
txm_worker_want_executors(uint32 wanted)
{
	uint32		start = 0;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	attached->executors_wanted = wanted;
	for (int i = 0; i < TXM_MAX_EXECUTORS; i++)
		if ((wanted & (((uint32) 1) << i)) && attached->executor_pids[i] == 0)
			start |= ((uint32) 1) << i;
	LWLockRelease(txm_shared->lock);
	txm_wake_executor();
	return start;
}

void
txm_worker_note_cycle(TimestampTz now)
{
	Assert(attached != NULL);
	pg_atomic_write_u64(&attached->last_cycle_at, (uint64) now);
}

void
txm_worker_note_stale_prepared(int n)
{
	Assert(attached != NULL);
	pg_atomic_write_u32(&attached->stale_prepared, (uint32) n);
}

/* The worker: what tx_worker_status() says of the restore of its database. */
void
txm_worker_note_restore(const char *state)
{
	Assert(attached != NULL);
	SpinLockAcquire(&attached->mutex);
	strlcpy(attached->restore_state, state, TXM_RESTORE_STATE_LEN);
	SpinLockRelease(&attached->mutex);
}

/*----------
 * Commands that need a database to themselves
 *----------
 */

/*
 * Ask the processes serving a database to leave and not come back until
 * txm_database_resume().  Returns how many there are; their pids go to
 * pids[0 .. TXM_MAX_EXECUTORS].
 */
int
txm_database_stop(Oid dboid, pid_t *pids)
{
	TxmDbSlot  *slot;
	int			n = 0;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	slot = find_slot_locked(dboid);
	if (slot)
	{
		slot->stop_requested = true;
		if (slot->worker_pid != 0)
			pids[n++] = slot->worker_pid;
		for (int i = 0; i < TXM_MAX_EXECUTORS; i++)
			if (slot->executor_pids[i] != 0)
				pids[n++] = slot->executor_pids[i];
	}
	LWLockRelease(txm_shared->lock);
	return n;
}

bool
txm_database_processes_gone(Oid dboid)
{
	TxmDbSlot  *slot;
	bool		gone;

	LWLockAcquire(txm_shared->lock, LW_SHARED);
	slot = find_slot_locked(dboid);
	gone = slot == NULL || (slot->worker_pid == 0 && !any_executor(slot));
	LWLockRelease(txm_shared->lock);
	return gone;
}

void
txm_database_resume(Oid dboid)
{
	TxmDbSlot  *slot;

	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	slot = find_slot_locked(dboid);
	if (slot)
	{
		slot->stop_requested = false;
		slot->restart_after = 0;
	}
	txm_shared->rescan = true;
	LWLockRelease(txm_shared->lock);
	shmem_wake_launcher();
}
