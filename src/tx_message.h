/*-------------------------------------------------------------------------
 *
 * tx_message.h
 *	  Declarations shared by the C files of the tx_message extension.
 *
 * IDENTIFICATION
 *	  src/tx_message.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TX_MESSAGE_H
#define TX_MESSAGE_H

#include "access/htup.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

/*
 * Message ids: (top-level FullTransactionId << TXM_POS_SHIFT) | n, where n
 * counts the messages of that transaction.  See docs/design.md.
 */
#define TXM_POS_SHIFT		20
#define TXM_MAX_PER_XACT	(INT64CONST(1) << TXM_POS_SHIFT)
#define TXM_MAX_FXID		(UINT64CONST(1) << (63 - TXM_POS_SHIFT))
#define TXM_POS_XID(pos)	((uint64) (pos) >> TXM_POS_SHIFT)

/* Positions of a topic's stream are claimed in blocks of this many. */
#define TXM_BLOCK			256
#define TXM_LOG_SLOTS		3
#define TXM_NAME_MAX		127

/* GUC variables (tx_message.c) */
extern int	txm_max_payload_size;
extern int	txm_max_databases;
extern bool txm_enabled;
extern int	txm_naptime;
extern int	txm_tick_interval;
extern int	txm_batch_size;
extern int	txm_check_timeout;
extern int	txm_handler_timeout;
extern int	txm_handler_batch_size;
extern bool txm_preloaded;

/*
 * Shared memory (shmem.c): one slot per database served by a worker.
 */
#define TXM_RING_SIZE		4096
#define TXM_HINTS			256
#define TXM_MAX_ABSENT		256

typedef enum TxmDbState
{
	TXM_DB_FREE = 0,
	TXM_DB_STARTING,			/* worker registered, not yet connected */
	TXM_DB_RUNNING,
	TXM_DB_STOPPED,				/* worker gone; the launcher restarts it */
	TXM_DB_ABSENT				/* extension not installed there */
} TxmDbState;

/* Per-subscription hints for receivers; only speed depends on them. */
typedef struct TxmHint
{
	int32		sub_id;			/* 0: free entry */
	int64		claim_from;		/* lowest position that may be unclaimed */
	TimestampTz next_expiry;	/* no lease expires before (0: unknown) */
	TimestampTz retry_due;		/* no retry is due before (0: unknown) */
	uint32		retry_version;	/* bumped by every commit that wrote retries */
} TxmHint;

typedef struct TxmDbSlot
{
	/* protected by TxmShared->lock */
	Oid			dboid;
	TxmDbState	state;
	bool		stop_requested; /* DROP DATABASE and the like are waiting */
	bool		executor_wanted;
	pid_t		worker_pid;
	pid_t		executor_pid;
	TimestampTz started_at;
	TimestampTz restart_after;

	/* written by the worker only */
	TimestampTz last_cycle_at;
	int			stale_prepared;

	slock_t		mutex;			/* protects what follows */
	bool		maintenance_requested;	/* a new deadline: delayed or half sent */
	Latch	   *worker_latch;
	Latch	   *executor_latch;
	uint64		ring_head;		/* ring entries written so far */
	uint64		ring_ticked;	/* entries below are in committed ticks */
	int			waiters;		/* receivers blocked until something is deliverable */
	bool		tick_requested; /* a receiver waits for unticked commits */
	bool		wake_on_commit; /* the worker sleeps with everything ticked */
	TxmHint		hints[TXM_HINTS];
	uint64		ring[TXM_RING_SIZE];

	ConditionVariable cv;		/* broadcast when something became deliverable */
	pg_atomic_uint64 delivered;
	pg_atomic_uint64 checks;
	pg_atomic_uint64 dead_lettered;
	pg_atomic_uint64 errors;
	pg_atomic_uint64 handled;
} TxmDbSlot;

/*
 * A claim of an open transaction: the positions of one block it covers with
 * a lease row that others cannot see yet.  See consume.c.
 */
typedef struct TxmClaim
{
	int32		sub_id;			/* 0: free entry */
	int			pgprocno;		/* owner */
	int64		block;
	uint8		covered[TXM_BLOCK / 8];
} TxmClaim;

typedef struct TxmShared
{
	LWLock	   *lock;
	LWLockPadded *claim_locks;	/* one per slot */
	int			claims_per_slot;
	Size		claims_offset;	/* from the start of this struct */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	bool		rescan;			/* a database asked for a worker */
	int			nslots;
	int			nabsent;
	Oid			absent[TXM_MAX_ABSENT]; /* databases known to lack the extension */
	TxmDbSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} TxmShared;

extern PGDLLIMPORT TxmShared *txm_shared;

/*
 * OIDs of the extension's relations in the current database, looked up once
 * per backend and forgotten on any relcache invalidation of one of them.
 */
typedef struct TxmCatalog
{
	Oid			namespace;
	Oid			owner;			/* owner of the relations: runs internal SQL */
	Oid			topics;
	Oid			topics_pkey;
	Oid			log[TXM_LOG_SLOTS];
	Oid			log_pos[TXM_LOG_SLOTS];
	Oid			log_slots;
	Oid			half_messages;
	Oid			half_messages_pkey;
	Oid			delayed;
	Oid			delayed_pkey;
	Oid			ticks;
	Oid			ticks_pkey;
	Oid			slices;
	Oid			slices_pkey;
	Oid			subscriptions;
	Oid			sub_state;
	Oid			sub_state_pkey;
	Oid			leases;
	Oid			leases_pkey;
	Oid			retries;
	Oid			dead_letters;
	Oid			message_type;
} TxmCatalog;

/* What the producer path needs to know about a topic. */
typedef struct TxmTopic
{
	char		name[TXM_NAME_MAX + 1];	/* hash key */
	int32		topic_id;
	Oid			owner;
	Oid			check_function;
	Interval	retention;
	Interval	check_after;
	Interval	check_interval;
	int32		check_max;
} TxmTopic;

/* catalog.c */
extern void txm_catalog_init(void);
extern const TxmCatalog *txm_catalog(void);
extern const TxmCatalog *txm_catalog_if_installed(void);
extern TxmTopic *txm_lookup_topic(const char *name, bool missing_ok);
extern const char *txm_topic_name(int32 topic_id);
extern int	txm_current_log_slot(void);
extern void txm_invalidate(Oid relid);
extern void txm_check_name(const char *kind, const char *name);

/*
 * Internal SQL runs as the owner of the extension's relations (as RI
 * triggers run as the owner of the referenced table): callers of the public
 * functions need no privileges on the internal tables.
 */
typedef struct TxmSavedUser
{
	Oid			userid;
	int			sec_context;
} TxmSavedUser;

extern void txm_become_owner(TxmSavedUser *saved);
extern void txm_restore_user(const TxmSavedUser *saved);
extern int	txm_spi_exec(const char *sql, int nargs, const Oid *argtypes,
						 Datum *values, const char *nulls, long count);
extern int	txm_spi_exec_latest(const char *sql, int nargs, const Oid *argtypes,
								Datum *values, const char *nulls, long count);
extern void txm_insert_row(Relation rel, Datum *values, bool *nulls);
extern void txm_update_row(Relation rel, ItemPointer tid, HeapTuple newtup);

/* send.c */
extern int64 txm_next_pos(void);
extern int64 txm_log_insert(int32 topic_id, int64 msg_id, TimestampTz sent_at,
							TimestampTz deliver_at, Datum key, Datum tags,
							Datum headers, Datum payload, const bool *isnull);
extern void txm_check_payload(Jsonb *payload, const char *what);
extern void txm_check_headers(Jsonb *headers);
extern void txm_check_tags(ArrayType *tags, const char *what);
extern bool txm_resolve_half(int64 msg_id, bool commit, const char *resolved_by);
extern void txm_send_xact_callback(XactEvent event);
extern bool txm_xact_sent_messages(void);
extern uint64 txm_xact_sent_xid(void);
extern bool txm_xact_needs_maintenance(void);

/* shmem.c */
extern void txm_shmem_init(void);
extern TxmDbSlot *txm_find_slot_locked(Oid dboid);
extern TxmDbSlot *txm_my_slot(void);
extern void txm_ring_append(uint64 xid64);
extern void txm_wake_worker(void);
extern void txm_request_maintenance(void);
extern void txm_wake_executor(TxmDbSlot *slot);
extern void txm_ring_ticked(TxmDbSlot *slot, uint64 upto);
extern uint64 txm_ring_read(TxmDbSlot *slot, uint64 from, uint64 *out, int *nout,
							uint64 *first);
extern bool txm_worker_running(TxmDbSlot *slot);
extern LWLock *txm_claim_lock(TxmDbSlot *slot);
extern TxmClaim *txm_slot_claims(TxmDbSlot *slot);
extern void txm_wait_for_ticks(int timeout_ms);
extern void txm_waiter_enter(TxmDbSlot *slot);
extern void txm_waiter_leave(TxmDbSlot *slot);
extern void txm_count(pg_atomic_uint64 *counter, uint64 n);

/* tick.c */
extern int64 txm_tick(bool wait, uint64 *ring_upto);
extern void txm_tick_xact_callback(XactEvent event);
extern void txm_tick_subxact_callback(SubXactEvent event);

/* maint.c */
typedef struct TxmMaintStats
{
	int64		ticked;
	int64		delayed_released;
	int64		checks;
	int64		check_commits;
	int64		check_rollbacks;
	int64		check_unknown;
	int64		dead_lettered;
	int64		stale_prepared;
	int64		ticks_trimmed;
	int64		leases_expired;
	int64		truncated;
	int64		rotated;
	int64		handled;
	int64		handler_errors;
} TxmMaintStats;

extern int64 txm_release_delayed(int limit);
extern int	txm_due_checks(bool with_functions, int limit, int64 **ids);
extern bool txm_check_one(int64 msg_id, bool with_functions, TxmMaintStats *stats);
extern Datum txm_message_datum(int64 msg_id, const char *topic, Datum key, Datum tags,
							   Datum headers, Datum payload, TimestampTz sent_at,
							   int32 attempt, const bool *isnull);
extern void txm_arm_timeout(int timeout_ms);
extern void txm_disarm_timeout(void);
extern bool txm_has_check_functions(void);
extern int	txm_report_prepared(bool warn);
extern int64 txm_trim_ticks(void);
extern int	txm_retention(bool *rotated);
extern TimestampTz txm_next_deadline(void);
extern void txm_dead_letter_notify(const char *topic, const char *consumer_group,
								   int64 msg_id, const char *key, const char *reason);

/* worker.c */
extern void txm_register_launcher(void);
extern void txm_utility_init(void);
extern void txm_worker_xact_callback(XactEvent event);
extern void txm_register_at_commit(void);
extern void txm_note_ticked(uint64 upto);
extern void txm_worker_subxact_callback(SubXactEvent event);

/* subs.c: a subscription, as consumers need it */
typedef struct TxmSub
{
	int32		sub_id;
	int32		topic_id;
	char		topic[TXM_NAME_MAX + 1];
	char		group[TXM_NAME_MAX + 1];
	int			ntags;			/* -1: no filter */
	char	  **tags;
	Oid			handler;
	int32		max_retries;
	int			nbackoff;
	Interval   *backoff;
	Interval	lease;
	bool		ordered;
	Oid			owner;
} TxmSub;

extern void txm_forget_groups(void);
extern TxmSub *txm_group_subs(const char *group, int *nsubs, bool missing_ok);
extern TxmSub *txm_handler_subs(int *nsubs);
extern bool txm_has_handlers(void);
extern void txm_dead_letter(const TxmSub *sub, int64 msg_id, TimestampTz sent_at,
							Datum key, Datum tags, Datum headers, Datum payload,
							const bool *isnull, int32 attempts, const char *reason,
							const char *last_error, TimestampTz first_failed_at);

/* consume.c */

/* A log row, copied out. */
typedef struct TxmMsg
{
	int64		pos;
	bool		found;
	int64		msg_id;
	int32		topic_id;
	TimestampTz sent_at;
	Datum		cols[4];		/* key, tags, headers, payload */
	bool		isnull[4];
} TxmMsg;

/* A message handed out by a claim, and where it is held. */
typedef struct TxmDelivery
{
	int			sub_index;
	TxmMsg		msg;
	int32		attempt;
	TimestampTz lease_until;
	bool		from_retry;
	int64		block;
	int16		first_off;
	int16		off;
} TxmDelivery;

extern List *txm_claim(TxmSub *subs, int nsubs, const bool *pull, int need, Interval *lease);
extern int	txm_ack(TxmSub *subs, int nsubs, const int64 *ids, int n);
extern const char *txm_nack(TxmSub *subs, int nsubs, int64 msg_id, const char *error,
							Interval *retry_in);
extern int	txm_expire_leases(const TxmSub *sub);
extern int64 txm_advance_watermark(const TxmSub *sub);
extern void txm_maintain_subscriptions(TxmMaintStats *stats);
extern void txm_sync_ticks(void);
extern void txm_broadcast_at_commit(void);
extern void txm_request_maintenance_at_commit(void);
extern void txm_consume_xact_callback(XactEvent event);
extern void txm_consume_subxact_callback(SubXactEvent event);

/* handlers.c */
extern int	txm_run_handler_batch(TxmSub *sub, int batch_size, TxmMaintStats *stats);

/* topics.c */
extern void txm_check_positive_interval(const char *what, Interval *value);
extern void txm_check_message_function(Oid fn, const char *what, Oid required_rettype);

/* helpers */
#define txm_require_arg(fcinfo, n, name) \
	do { \
		if (PG_ARGISNULL(n)) \
			ereport(ERROR, \
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), \
					 errmsg("%s must not be null", (name)))); \
	} while (0)

#endif							/* TX_MESSAGE_H */
