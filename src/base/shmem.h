/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Everything tx_message keeps in shared memory, reached through these
 *	  functions only: one slot per served database with its processes, the
 *	  commit ring, the waiting receivers, the claim hints and the registry
 *	  of open claims, the counters, and what a transaction asks of them at
 *	  commit.
 *
 * The module is split by subject: shmem.c (the segment, the slots and the
 * processes), shmem_ring.c (the commit ring and waiting), shmem_claims.c
 * (hints and open claims) and shmem_xact.c (the effects of commit and
 * abort).  The layout of the segment is private to them (shmem_internal.h).
 * Without shared_preload_libraries there is no segment: every function here
 * then does nothing, or says that nothing is there.
 *
 * IDENTIFICATION
 *	  src/base/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_SHMEM_H
#define TXM_SHMEM_H

#include "access/xact.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

/* Most executor processes per database (tx_message.executors). */
#define TXM_MAX_EXECUTORS	8

/*
 * Topics as the commit ring and the waiting receivers see them: one of 64
 * buckets, a bit of a mask.  Only a commit into a topic someone waits for
 * needs a tick at once, and only a receiver of a topic with unticked
 * commits waits for the tick; two topics in one bucket just share that.
 */
#define TXM_TOPIC_BUCKETS	64
#define TXM_ALL_TOPICS		(~UINT64CONST(0))

static inline uint64
txm_topic_bit(int32 topic_id)
{
	return UINT64CONST(1) << ((uint32) topic_id % TXM_TOPIC_BUCKETS);
}

/*
 * A receiver starts to wait eagerly: a commit into its topics is ticked at
 * once.  Once a tick of its topics since it last looked left it nothing
 * (another consumer took the messages, or its tag filter left them out),
 * it waits patiently: a commit is ticked within TXM_PATIENT_TICK_GAP_MS of
 * the last tick, so that such receivers do not have a tick made per
 * commit.
 */
typedef enum TxmWaiterKind
{
	TXM_WAIT_EAGER,
	TXM_WAIT_PATIENT
} TxmWaiterKind;

#define TXM_WAITER_KINDS 2

/* in increasing order: a request only ever raises it */
typedef enum TxmUrgency
{
	TXM_TICK_PACED,				/* within tx_message.tick_interval */
	TXM_TICK_SOON,				/* within TXM_PATIENT_TICK_GAP_MS */
	TXM_TICK_NOW
} TxmUrgency;

#define TXM_PATIENT_TICK_GAP_MS 1

/*
 * The worker ticks every tx_message.tick_interval only while the database
 * has readers: tx_receive() was called there within this window, or it has
 * handlers.  Otherwise commits wait for the maintenance cycle, half a ring
 * or a receiver (worker.c).
 */
#define TXM_READERS_WINDOW_MS	10000

/* tx_message.max_databases */
extern int	txm_max_databases;

/* A served database's share of the segment; its layout is private. */
typedef struct TxmDbSlot TxmDbSlot;

/*
 * A commit ring entry: the transaction (0: a COMMIT PREPARED of one not
 * found, not ordered)
 * and the end of its commit record, which orders it (shmem_ring.c).
 */
typedef struct TxmRingEntry
{
	uint64		xid;
	XLogRecPtr	commit_end;
} TxmRingEntry;

/* the commit ring's entries per database: a copy of it takes at most this */
#define TXM_RING_SIZE		4096

/* The counters tx_worker_status() reports, per database. */
typedef enum TxmCounter
{
	TXM_COUNTER_DELIVERED,		/* messages made deliverable */
	TXM_COUNTER_CHECKS,			/* check-backs made */
	TXM_COUNTER_DEAD_LETTERED,
	TXM_COUNTER_ERRORS,			/* errors contained by a background process */
	TXM_COUNTER_HANDLED,		/* successful handler calls */
	TXM_NCOUNTERS
} TxmCounter;

/*
 * The totals of tx_message.stats, counted per subscription (or per topic)
 * by the transactions that commit them, and moved into tx_message.totals
 * by the worker.
 */
typedef enum TxmTotalKind
{
	TXM_TOTAL_DELIVERED,		/* messages handed to a consumer or handler */
	TXM_TOTAL_ACKED,
	TXM_TOTAL_NACKED,			/* nacks and failed handler calls */
	TXM_TOTAL_CHECKS,			/* check-backs of the topic's half messages */
	TXM_NTOTALS
} TxmTotalKind;

typedef struct TxmTotalDelta
{
	int32		topic_id;
	int32		sub_id;			/* 0: the topic's own */
	uint64		n[TXM_NTOTALS];
} TxmTotalDelta;

/* A database as the launcher found it in pg_database. */
typedef struct TxmDatabase
{
	Oid			oid;
	bool		usable;			/* connectable, not a template, not being dropped */
} TxmDatabase;

/* Longest text of tx_worker_status().restore_state. */
#define TXM_RESTORE_STATE_LEN 160

/* One row of tx_worker_status(). */
typedef struct TxmWorkerStatus
{
	pid_t		pid;
	Oid			dboid;
	TimestampTz started_at;
	TimestampTz last_cycle_at;
	uint64		counters[TXM_NCOUNTERS];
	int			stale_prepared;
	pid_t		executor_pids[TXM_MAX_EXECUTORS];	/* 0: not running */
	char		restore_state[TXM_RESTORE_STATE_LEN];	/* "": never restored */
} TxmWorkerStatus;

/* shmem.c: the segment and the slots */
extern void txm_shmem_init(void);
extern bool txm_shmem_available(void);
extern int	txm_nslots(void);
extern TxmDbSlot *txm_my_slot(void);
extern void txm_count(TxmCounter counter, uint64 n);
extern int	txm_worker_statuses(TxmWorkerStatus *rows);

/* shmem.c: the launcher's view of the slots */
extern void txm_launcher_attach(void);
extern bool txm_launcher_take_rescan(void);
extern bool txm_launcher_reconcile(const TxmDatabase *dbs, int n);
extern long txm_launcher_started(int index, Oid dboid, bool registered, TimestampTz now);
extern bool txm_launcher_awaits_attach(int index);
extern void txm_launcher_start_failed(int index, TimestampTz now);

/* shmem.c: a database worker or executor and its slot */
extern bool txm_process_attach(int index, Oid dboid, int executor);
extern void txm_process_ready(int executor);
extern void txm_process_absent(void);
extern bool txm_process_must_exit(int executor);
extern int	txm_process_slot_index(void);
extern void txm_worker_extension_dropped(void);
extern uint32 txm_worker_want_executors(uint32 wanted);
extern void txm_worker_note_cycle(TimestampTz now);
extern void txm_worker_note_stale_prepared(int n);

/* shmem_pool.c: the pool of database workers */
extern int	txm_launcher_due(TimestampTz now, int max_workers, int *indexes, Oid *dboids,
							 long *next_ms);
extern bool txm_request_worker(TxmDbSlot *slot);
extern bool txm_wait_for_worker(TxmDbSlot *slot, long timeout_ms);
#define TXM_WORKER_ARRIVAL_MS 1000	/* how long a receiver waits for a worker it asked for */
extern void txm_launcher_pool_off(void);
extern bool txm_worker_yield_requested(void);
extern bool txm_worker_leave(TimestampTz wake_at, bool with_work, TimestampTz seen_work_at);
extern bool txm_executor_batch_begin(int executor);
extern void txm_executor_batch_end(int executor, bool worked);
extern TimestampTz txm_worker_executor_work_at(void);
extern void txm_executor_handlers_dry(TimestampTz started);
extern TimestampTz txm_worker_handlers_dry_at(void);

/* shmem_totals.c: totals waiting to be moved into tx_message.totals */
extern int	txm_totals_take(TxmTotalDelta *out, int max);
extern int	txm_totals_capacity(void);

/* shmem.c: restores in progress, and what became of them */
extern void txm_restore_note_restorer(void);
extern bool txm_restore_in_progress(void);
extern uint64 txm_restore_generation(bool *loading);
extern bool txm_restore_began_since(uint64 gen);
extern void txm_restore_taken_over(const char *state, uint64 gen);
extern void txm_restore_done_here(void);
extern void txm_worker_note_restore(const char *state);

/* shmem.c: commands that need a database to themselves */
extern int	txm_database_stop(Oid dboid, pid_t *pids);
extern bool txm_database_processes_gone(Oid dboid);
extern void txm_database_resume(Oid dboid);

/* shmem_ring.c: the commit ring, ticks and waiting */
extern bool txm_worker_running(TxmDbSlot *slot);
extern TxmRingEntry *txm_ring_unticked(TxmDbSlot *slot, int *nout, uint64 *head);
extern int	txm_ring_since(TxmDbSlot *slot, uint64 from, TxmRingEntry *out, uint64 *head);
extern bool txm_ring_committing_any(const uint64 *xids, int n);
extern int	txm_cmp_xid64(const void *a, const void *b);
extern void txm_ring_note_commit_prepared(FullTransactionId prepared);
extern bool txm_worker_tick_due(TxmUrgency *urgency, bool looking_soon);
extern TimestampTz txm_worker_read_at(void);
extern void txm_note_reader(void);
extern void txm_worker_clear_tick_request(void);
extern bool txm_worker_take_maintenance_request(void);
extern void txm_wake_executor(void);
extern bool txm_wait_for_ticks(int timeout_ms, uint64 topics, TxmWaiterKind kind);
extern void txm_wait_prepare(TxmDbSlot *slot);
extern void txm_wait_as_receiver(TxmDbSlot *slot, long timeout_ms, uint64 topics,
								 TxmWaiterKind kind);
extern bool txm_tick_covered_since(TxmDbSlot *slot, uint64 topics, uint64 *seen);
extern void txm_wait_cancel(void);

/* shmem_claims.c: claim hints */
extern int64 txm_hint_claim_from(int32 sub_id, uint64 *version);
extern void txm_hint_after_claim(int32 sub_id, int64 hint_read, uint64 version, int64 next_free);
extern void txm_hint_expiry_min(int32 sub_id, TimestampTz t);
extern void txm_hint_expiry_set(int32 sub_id, TimestampTz t);
extern bool txm_hint_expiry_possible(int32 sub_id, TimestampTz now, bool without_hints);
extern TimestampTz txm_hint_next_expiry(int32 sub_id);
extern int	txm_hint_subs_with_deadline(int32 *sub_ids, int max);
#define TXM_MAX_HINTED_SUBS 256	/* no more than the hints a slot holds */
extern bool txm_hint_retries_possible(const int32 *sub_ids, int n, TimestampTz now,
									  uint32 *version);
extern void txm_hint_retry_set(int32 sub_id, uint32 version, TimestampTz due);

/*
 * The keys of an ordered claim, as a Bloom filter (three bits a key): a key
 * that was added always tests true; one that was not, rarely (0.04 % with a
 * hundred keys, 1.6 % with four hundred: four open claims of a hundred),
 * which only holds its message back until the claim ends.
 */
#define TXM_KEY_FILTER_BITS	4096
typedef struct TxmKeyFilter
{
	uint8		b[TXM_KEY_FILTER_BITS / 8];
} TxmKeyFilter;

/* shmem_claims.c: the registry of open claims */
extern void txm_claims_lock(TxmDbSlot *slot, LWLockMode mode);
extern void txm_claims_unlock(TxmDbSlot *slot);
extern void txm_claims_taken(TxmDbSlot *slot, int32 sub_id, int64 block, uint8 *taken);
extern bool txm_claims_open_keys(int32 sub_id, TxmKeyFilter *keys, int64 *claim_from,
								 uint64 *version);
extern int	txm_claims_capacity(void);
extern bool txm_claims_publish(TxmDbSlot *slot, int32 sub_id, int64 block,
							   const uint8 *covered, const TxmKeyFilter *keys,
							   int64 first_seq, TimestampTz lease_until);
extern void txm_key_filter_add(TxmKeyFilter *keys, const char *key);
extern bool txm_key_filter_test(const TxmKeyFilter *keys, const char *key);

/* shmem_xact.c: what the current transaction asks for at its commit */
extern void txm_at_commit_ring_append(uint64 xid64, int32 topic_id);
extern void txm_at_commit_ring_ticked(uint64 upto);
extern void txm_at_commit_request_maintenance(void);
extern void txm_at_commit_broadcast(void);
extern void txm_at_commit_register_database(void);
extern void txm_at_commit_prepared(FullTransactionId prepared);
extern void txm_at_commit_retries_written(void);
extern void txm_at_commit_positions_moved(void);
extern void txm_at_commit_count(int32 topic_id, int32 sub_id, TxmTotalKind kind, uint64 n);
extern bool txm_xact_wrote_retries(void);
extern void txm_shmem_xact_callback(XactEvent event);
extern void txm_shmem_subxact_callback(SubXactEvent event);

#endif							/* TXM_SHMEM_H */
