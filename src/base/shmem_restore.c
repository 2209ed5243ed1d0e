/*-------------------------------------------------------------------------
 *
 * shmem_restore.c
 *	  Backends restoring a dump into a database, and a generation for the
 *	  units of work that must not act on part of one.
 *
 * A backend that loads rows into the extension's tables with COPY (or
 * into tx_message.lineage) is restoring a dump: until it disconnects, the
 * database's worker neither ticks nor takes the dump over, because the
 * rest of the dump may still be on its way (docs/design.md, "Dump and
 * restore").  Each backend id has an entry, so every restorer is known
 * however many there are; the generation moves with each marking, so that
 * a unit of work can tell whether a restore began while it ran.
 *
 * IDENTIFICATION
 *	  src/base/shmem_restore.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"

#include "src/base/shmem_internal.h"

/* whether this backend may be listed as a restorer */
static bool restoring = false;
static bool restorer_exit_registered = false;

/* This backend's entry: one per backend id, so none is ever short. */
static TxmRestorer *
my_restorer(void)
{
	Assert(MyBackendId >= 1 && MyBackendId <= MaxBackends);
	return (TxmRestorer *) ((char *) txm_shared + txm_shared->restorers_offset) + (MyBackendId - 1);
}

/* Forget entry as a restorer; hold the lock exclusively. */
static void
restorer_clear(TxmRestorer *entry)
{
	Assert(LWLockHeldByMeInMode(txm_shared->lock, LW_EXCLUSIVE));
	if (entry->pid != 0)
		txm_shared->nrestorers--;
	entry->pid = 0;
}

/* A restoring session that ends is no longer restoring. */
static void
restorer_exit(int code, Datum arg)
{
	TxmRestorer *entry;

	if (txm_shared == NULL)
		return;
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	entry = my_restorer();
	if (entry->pid == MyProcPid)
		restorer_clear(entry);
	LWLockRelease(txm_shared->lock);
}

/*
 * Have this backend known as restoring into its database.  Called after
 * the backend wrote rows and before they commit: a unit of work that sees
 * them finds the backend marked (txm_restore_generation).
 */
void
txm_restore_note_restorer(void)
{
	TxmRestorer *entry;

	if (txm_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	restoring = true;
	if (!restorer_exit_registered)
	{
		before_shmem_exit(restorer_exit, (Datum) 0);
		restorer_exit_registered = true;
	}
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	entry = my_restorer();
	/* an earlier backend's entry, of another database: what it said is lost */
	if (entry->dboid != MyDatabaseId)
		txm_shared->restore_lost_gen = Max(txm_shared->restore_lost_gen, entry->gen);
	if (entry->pid != MyProcPid)
	{
		if (entry->pid == 0)
			txm_shared->nrestorers++;
		entry->pid = MyProcPid;
	}
	entry->dboid = MyDatabaseId;
	entry->gen = ++txm_shared->restore_gen;
	LWLockRelease(txm_shared->lock);
}

/* Is another backend that restores into this database connected?  Hold the lock. */
static bool
restore_loading(void)
{
	TxmRestorer *entries = (TxmRestorer *) ((char *) txm_shared + txm_shared->restorers_offset);

	Assert(LWLockHeldByMe(txm_shared->lock));
	if (txm_shared->nrestorers == 0)
		return false;
	for (int i = 0; i < MaxBackends; i++)
		if (entries[i].pid != 0 && entries[i].pid != MyProcPid &&
			entries[i].dboid == MyDatabaseId && BackendPidGetProc(entries[i].pid) != NULL)
			return true;
	return false;
}

/* Is a backend that restores into this database still connected? */
bool
txm_restore_in_progress(void)
{
	bool		found;

	if (txm_shared == NULL)
		return false;
	LWLockAcquire(txm_shared->lock, LW_SHARED);
	found = restore_loading();
	LWLockRelease(txm_shared->lock);
	return found;
}

/*
 * For work that must not act on a database whose restore is still loading
 * (its tables hold part of a dump): call before the work takes its first
 * snapshot, and skip the work if *loading.  Otherwise, give the answer to
 * txm_restore_began_since() before committing the work.  A restoring
 * backend is marked before its rows commit and stays marked until it
 * disconnects, once the dump is loaded (pg_restore -j's workers stay
 * connected until all data is loaded): so work that saw any restored row
 * either found the restore loading here, or finds it began since.
 */
uint64
txm_restore_generation(bool *loading)
{
	uint64		gen;

	*loading = false;
	if (txm_shared == NULL || !OidIsValid(MyDatabaseId))
		return 0;
	LWLockAcquire(txm_shared->lock, LW_SHARED);
	gen = txm_shared->restore_gen;
	*loading = restore_loading();
	LWLockRelease(txm_shared->lock);
	return gen;
}

/*
 * Was a backend marked as restoring into this database since gen?  Also
 * true if an entry newer than gen was taken over by another database's
 * backend, as it may have been this database's.
 */
bool
txm_restore_began_since(uint64 gen)
{
	TxmRestorer *entries;
	bool		began = false;

	if (txm_shared == NULL || !OidIsValid(MyDatabaseId))
		return false;
	entries = (TxmRestorer *) ((char *) txm_shared + txm_shared->restorers_offset);
	LWLockAcquire(txm_shared->lock, LW_SHARED);
	if (txm_shared->restore_gen != gen)
	{
		began = txm_shared->restore_lost_gen > gen;
		for (int i = 0; i < MaxBackends && !began; i++)
			began = entries[i].dboid == MyDatabaseId && entries[i].gen > gen;
	}
	LWLockRelease(txm_shared->lock);
	return began;
}

/*
 * The restore of this database is over: forget its restorers, and record
 * state for tx_worker_status().  A take-over passes the generation its
 * check for restorers saw: a backend marked after it is another restore's.
 */
void
txm_restore_taken_over(const char *state, uint64 gen)
{
	TxmRestorer *entries;
	TxmDbSlot  *slot;

	if (txm_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	restoring = false;
	entries = (TxmRestorer *) ((char *) txm_shared + txm_shared->restorers_offset);
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < MaxBackends; i++)
		if (entries[i].dboid == MyDatabaseId && entries[i].gen <= gen)
			restorer_clear(&entries[i]);
	LWLockRelease(txm_shared->lock);
	slot = txm_my_slot();
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	strlcpy(slot->restore_state, state, TXM_RESTORE_STATE_LEN);
	SpinLockRelease(&slot->mutex);
}

/* This backend uses the extension, which a restore does not: it is done restoring. */
void
txm_restore_done_here(void)
{
	TxmRestorer *entry;

	if (txm_shared == NULL || !restoring)
		return;
	restoring = false;
	LWLockAcquire(txm_shared->lock, LW_EXCLUSIVE);
	entry = my_restorer();
	if (entry->pid == MyProcPid)
		restorer_clear(entry);
	LWLockRelease(txm_shared->lock);
}
