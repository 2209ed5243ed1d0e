/*-------------------------------------------------------------------------
 *
 * shmem_internal.h
 *	  The layout of tx_message's shared memory, private to the files of the
 *	  shmem module (src/base/shmem*.c); everyone else goes through shmem.h.
 *	  scripts/check_layers.sh enforces that.
 *
 * Locking:
 *
 *	- TxmShared->lock (an LWLock) protects the allocation of slots and their
 *	  process fields, the launcher's fields and the list of databases known
 *	  to lack the extension.
 *	- Each slot's spinlock (mutex) protects the few fields a committing
 *	  producer or a receiver touches on its hot path: the ring's head and
 *	  ticked position, the latches, the waiter count and the tick and
 *	  maintenance requests.  It is held for a few instructions only.
 *	- The ring entries are atomics, written under the spinlock and read
 *	  without it (shmem_ring.c explains how).
 *	- Each slot's hint lock (an LWLock) protects its claim hints; a commit
 *	  that wrote retries invalidates every retry hint at once by bumping the
 *	  atomic retry_version.
 *	- Each slot's claim lock (an LWLock) protects its registry of open
 *	  claims.
 *	- Counters and the worker's cycle facts are atomics.
 *
 * None of this is durable: after a crash everything is rebuilt from the
 * tables.
 *
 * IDENTIFICATION
 *	  src/base/shmem_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_SHMEM_INTERNAL_H
#define TXM_SHMEM_INTERNAL_H

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#include "src/base/layout.h"
#include "src/base/shmem.h"

/* entries since a tick's look at the ring that make the next due at once */
#define TXM_RING_HURRY		(TXM_RING_SIZE / 2)
#define TXM_HINTS			256
#define TXM_MAX_ABSENT		256
#define TXM_TOTALS			512

/* how soon the launcher starts a database's worker again after it ended */
#define TXM_RESTART_DELAY_MS 1000

/*
 * How soon it tries again when no background worker slot was free: the
 * postmaster frees the slots of workers that just left as it reaps them.
 */
#define TXM_REGISTER_RETRY_MS 250

typedef enum TxmDbState
{
	TXM_DB_FREE = 0,
	TXM_DB_STARTING,			/* worker registered, not yet connected */
	TXM_DB_RUNNING,
	TXM_DB_STOPPED,				/* worker gone; the launcher restarts it */
	TXM_DB_IDLE,				/* worker left for want of work (shmem_pool.c) */
	TXM_DB_ABSENT				/* extension not installed there */
} TxmDbState;

/* Per-subscription hints for receivers; only speed depends on them. */
typedef struct TxmHint
{
	int32		sub_id;			/* 0: free entry */
	int64		claim_from;		/* lowest position that may be unclaimed */
	uint32		lowered;		/* how often claim_from was lowered (claims gave positions back) */
	TimestampTz next_expiry;	/* no lease expires before (0: unknown) */
	TimestampTz retry_due;		/* no retry is due before (0: unknown) */
	uint32		retry_version;	/* the slot's retry_version retry_due was read at */
} TxmHint;

/*
 * Totals counted since the worker last moved them into tx_message.totals,
 * per subscription (sub_id 0: the topic's own).  topic_id 0: a free entry.
 */
typedef struct TxmTotal
{
	int32		topic_id;
	int32		sub_id;
	pg_atomic_uint64 n[TXM_NTOTALS];
} TxmTotal;

/*
 * A claim of an open transaction: the positions of one block it covers with
 * a lease row that others cannot see yet.
 */
typedef struct TxmClaim
{
	int32		sub_id;			/* 0: free entry */
	int			pgprocno;		/* owner */
	int64		block;
	int64		last_block;		/* > block: block..last_block, every position */
	TimestampTz lease_until;	/* of its lease rows, not visible to others yet */
	uint8		covered[TXM_BLOCK_BYTES];
	int			key_filter;		/* an ordered claim: its keys are in this
								 * backend's filter (backend id - 1), else -1 */
} TxmClaim;

struct TxmDbSlot
{
	/* protected by TxmShared->lock */
	Oid			dboid;
	TxmDbState	state;
	bool		stop_requested; /* DROP DATABASE and the like are waiting */
	uint32		executors_wanted;	/* bit i: executor i should run */
	pid_t		worker_pid;
	pid_t		executor_pids[TXM_MAX_EXECUTORS];
	TimestampTz started_at;
	TimestampTz restart_after;
	TimestampTz wake_at;		/* TXM_DB_IDLE: start a worker then at the latest */
	TimestampTz wanted_since;	/* waiting for a place in the pool since (0: not) */
	bool		yield_requested;	/* others wait for a place in the pool */
	bool		served;			/* a worker found the extension here */

	/* written by the worker alone */
	pg_atomic_uint64 last_cycle_at;
	pg_atomic_uint32 stale_prepared;
	pg_atomic_uint64 counters[TXM_NCOUNTERS];

	/* written by the handler executors */
	pg_atomic_uint64 executor_work_at;	/* when one last handled a message */
	pg_atomic_uint32 executors_busy;	/* bit i: executor i runs a handler batch */
	pg_atomic_uint64 handlers_dry_at;	/* start of the last round that found no work */

	/* written by receivers */
	pg_atomic_uint64 read_at;	/* last tx_receive() here, to TXM_READ_NOTE_MS */

	slock_t		mutex;			/* protects the fields up to ring */
	bool		maintenance_requested;	/* a new deadline: delayed or half sent */
	Latch	   *worker_latch;
	Latch	   *executor_latches[TXM_MAX_EXECUTORS];
	uint64		ring_head;		/* ring entries written so far */
	uint64		ring_ticked;	/* entries below are in committed ticks */
	int			waiters;		/* receivers blocked until something is deliverable */
	uint32		topic_waiters[TXM_WAITER_KINDS][TXM_TOPIC_BUCKETS];	/* ... by kind and bucket */
	uint64		topics_waited[TXM_WAITER_KINDS];	/* the buckets with waiters, by kind */
	uint64		topics_new;		/* buckets of the ring entries from topics_mark on */
	uint64		topics_old;		/* ... of the unticked ones below it */
	uint64		topics_mark;	/* ring_head when the last tick read the ring */
	uint64		topics_ticked;	/* the buckets the last committed tick covered */
	uint64		ticks_seen;		/* committed ticks that covered a topic */
	TxmUrgency	urgency;		/* how soon to tick, for receivers */
	char		restore_state[TXM_RESTORE_STATE_LEN];	/* tx_worker_status().restore_state */
	bool		wake_on_commit; /* the worker sleeps with everything ticked
								 * and will not look again by itself */
	bool		on_demand;		/* idle: commits and receivers ask the launcher */
	bool		demand;			/* ... and one did */
	/* xids (0: not ordered), 32 bits: the entries are recent */
	pg_atomic_uint32 ring[TXM_RING_SIZE];
	pg_atomic_uint64 ring_lsn[TXM_RING_SIZE];	/* ... and their commit records' end */

	ConditionVariable cv;		/* broadcast when something became deliverable */

	LWLock	   *hint_lock;		/* protects hints */
	TxmHint		hints[TXM_HINTS];
	uint32		hints_epoch;	/* bumped when every hint is voided; under hint_lock */
	pg_atomic_uint32 retry_version; /* bumped by every commit that wrote retries */

	LWLock	   *claim_lock;		/* protects this slot's claim registry */

	LWLock	   *totals_lock;	/* shared to add to an entry, exclusive to make or empty one */
	TxmTotal	totals[TXM_TOTALS];
};

/* A backend restoring into a database, and the generation it was last marked at. */
typedef struct TxmRestorer
{
	pid_t		pid;			/* 0: none (any more) */
	Oid			dboid;
	uint64		gen;
} TxmRestorer;

typedef struct TxmShared
{
	LWLock	   *lock;
	int			claims_per_slot;
	Size		claims_offset;	/* of the claim registries, from the start of this struct */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	bool		rescan;			/* a database asked for a worker */
	int			nslots;
	int			nabsent;
	Oid			absent[TXM_MAX_ABSENT]; /* databases known to lack the extension */
	/*
	 * Backends that loaded rows into the extension's tables (a restore):
	 * one TxmRestorer per backend id at restorers_offset, nrestorers of
	 * them with a pid.  restore_gen counts the markings; restore_lost_gen
	 * is the newest generation of an entry that a backend of another
	 * database took over.
	 */
	Size		restorers_offset;
	Size		key_filters_offset; /* a TxmKeyFilter per backend id */
	/*
	 * Per backend id, a pg_atomic_uint64: the xid of the backend's
	 * committing transaction that will append to a ring, from before its
	 * commit becomes visible until it has appended (shmem_ring.c), else 0.
	 */
	Size		committing_offset;
	int			nrestorers;
	uint64		restore_gen;
	uint64		restore_lost_gen;
	TxmDbSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} TxmShared;

extern TxmShared *txm_shared;

/* shmem.c */
extern void shmem_request_worker(Oid dboid);
extern void shmem_wake_launcher(void);

/* shmem_pool.c */
extern bool shmem_demand_locked(TxmDbSlot *slot);

/* shmem_ring.c */
extern void shmem_ring_append(TxmDbSlot *slot, uint64 xid64, XLogRecPtr commit_end, uint64 topics);
extern void shmem_ring_committing(uint64 xid64);
extern void shmem_ring_ticked(TxmDbSlot *slot, uint64 upto);
extern void shmem_request_maintenance(TxmDbSlot *slot);
extern void shmem_broadcast(TxmDbSlot *slot);

/* shmem_xact.c */
extern void shmem_committing_done(void);

/* shmem_totals.c */
extern void shmem_totals_add(TxmDbSlot *slot, int32 topic_id, int32 sub_id, const uint64 *n);
extern void shmem_totals_taken(const TxmDbSlot *slot, const TxmTotalDelta *d, int n);
extern void shmem_totals_clear(TxmDbSlot *slot);

/* shmem_claims.c */
extern void shmem_hints_clear(TxmDbSlot *slot);
extern void shmem_hints_retry_reset(TxmDbSlot *slot);
extern bool shmem_claims_release_own(int min_level, bool lower_hints);
extern void shmem_claims_promote_own(int level);

#endif							/* TXM_SHMEM_INTERNAL_H */
