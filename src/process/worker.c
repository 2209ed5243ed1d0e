/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The database worker: ticks, maintenance, NOTIFY check-backs.
 *
 * A database worker serves one database that has the extension while it
 * has work (the launcher starts it, from a pool).  It ticks whenever
 * commits wait to be ticked: at once when a receiver waits, otherwise at
 * most every tx_message.tick_interval while the database has readers
 * (since a tick costs a transaction and a few rows however many commits it
 * covers), and without readers at each maintenance cycle.  On a timer
 * bounded by the next deadline (a delayed message or a check-back falling
 * due) it runs the housekeeping steps of the maintenance cycle and the
 * NOTIFY check-backs, and starts the executor (executor.c) while the
 * database has user code to run.  It exits when the extension is dropped,
 * and leaves when the database has had no work for it for a while
 * (leave_now); the launcher restarts it after anything else, and when work
 * comes.
 *
 * IDENTIFICATION
 *	  src/process/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/engine/housekeeping.h"
#include "src/engine/maintenance.h"
#include "src/process/unit.h"
#include "src/storage/tick.h"

PGDLLEXPORT void txm_worker_main(Datum main_arg);

typedef struct TickUnit
{
	int64		ticked;			/* messages made deliverable, -1: skipped */
} TickUnit;

static void
tick_unit(void *arg)
{
	TickUnit   *u = arg;

	u->ticked = 0;
	/* after DROP EXTENSION, the maintenance unit notices and we exit */
	if (!txm_lock_extension() || txm_catalog_if_installed() == NULL)
		return;
	/* -1: tx_run_maintenance() or a receive is ticking; it reports itself */
	u->ticked = txm_tick(false);
}

/*
 * The housekeeping steps run one unit each, and the subscriptions one unit
 * per consumer group: a step or a group that fails (it is logged and
 * counted, and tried again next cycle) holds up none of the others.
 */
#define TXM_ORPHANS_INTERVAL_MS	60000

typedef struct StepUnit
{
	bool		installed;
	int			steps;			/* steps of the cycle, or 0 with a group */
	const char *group;
	bool		restore_check;
	TxmMaintStats *stats;
} StepUnit;

static void
step_unit(void *arg)
{
	StepUnit   *u = arg;

	u->installed = txm_lock_extension();
	if (!u->installed)
		return;
	if (u->restore_check)
		txm_restore_check();
	else if (u->group)
		txm_maintain_group(u->group, u->stats);
	else
		txm_maintenance_cycle(u->steps, true, u->stats);
}

typedef struct GroupsUnit
{
	bool		installed;
	MemoryContext cxt;
	char	  **names;
	int			n;
} GroupsUnit;

static void
groups_unit(void *arg)
{
	GroupsUnit *u = arg;

	u->installed = txm_lock_extension();
	if (u->installed)
		u->names = txm_group_names(u->cxt, &u->n);
}

typedef struct MaintenanceUnit
{
	bool		installed;
	uint32		executors_wanted;
	TimestampTz deadline;
	TxmMaintStats stats;
} MaintenanceUnit;

/*
 * The executors the database's user code needs (bit i: executor i): with
 * one, it runs everything; with more, the first runs check functions and
 * the others handlers, as many as the handler subscriptions can use at once
 * (their handler_executors).
 */
static bool has_handlers = false;

static uint32
executors_wanted(void)
{
	bool		checks;
	int			handlers;
	uint32		wanted = 0;

	txm_user_code(&checks, &handlers);
	has_handlers = handlers > 0;
	if (txm_executors == 1)
		return (checks || handlers > 0) ? 1 : 0;
	if (checks)
		wanted |= 1;
	for (int i = 1; i < txm_executors && i <= handlers; i++)
		wanted |= ((uint32) 1) << i;
	return wanted;
}

static void
maintenance_unit(void *arg)
{
	MaintenanceUnit *m = arg;
	const TxmInstance *inst;

	m->installed = txm_lock_extension();
	if (!m->installed)
		return;
	txm_worker_note_stale_prepared((int) m->stats.stale_prepared);
	inst = txm_instance();
	txm_worker_note_restore(!inst->restored ? "" :
							inst->restore_problem[0] ? inst->restore_problem : "taken over");
	m->executors_wanted = executors_wanted();
	m->deadline = txm_next_deadline();
}

/* Run the housekeeping steps; false if the extension was dropped meanwhile. */
static bool
housekeeping(TxmMaintStats *stats)
{
	static const int steps[] = {TXM_STEP_RELEASE_DELAYED, TXM_STEP_SUBSCRIPTIONS,
	TXM_STEP_RETENTION, TXM_STEP_PREPARED, TXM_STEP_TRIM_TICKS, TXM_STEP_ORPHANS, TXM_STEP_TOTALS};
	static TimestampTz orphans_at = 0;
	TimestampTz now = GetCurrentTimestamp();

	StaticAssertStmt((TXM_STEP_RELEASE_DELAYED | TXM_STEP_SUBSCRIPTIONS | TXM_STEP_RETENTION |
					  TXM_STEP_PREPARED | TXM_STEP_TRIM_TICKS | TXM_STEP_ORPHANS | TXM_STEP_TOTALS) ==
					 TXM_STEPS_HOUSEKEEPING,
					 "the worker runs every housekeeping step");

	/* what a restore left out: a unit of its own, like every step */
	{
		StepUnit	u;

		memset(&u, 0, sizeof(u));
		u.installed = true;
		u.stats = stats;
		u.restore_check = true;
		txm_run_in_transaction(step_unit, &u, "checking what a restore left out");
		if (!u.installed)
			return false;
	}

	for (int i = 0; i < lengthof(steps); i++)
	{
		StepUnit	u;

		/* orphans are rare and need whole-table scans: once a minute */
		if (steps[i] == TXM_STEP_ORPHANS)
		{
			if (!TimestampDifferenceExceeds(orphans_at, now, TXM_ORPHANS_INTERVAL_MS))
				continue;
			orphans_at = now;
		}

		memset(&u, 0, sizeof(u));
		u.installed = true;
		u.stats = stats;
		if (steps[i] == TXM_STEP_SUBSCRIPTIONS)
		{
			GroupsUnit	g;

			memset(&g, 0, sizeof(g));
			g.installed = true;
			g.cxt = AllocSetContextCreate(CurrentMemoryContext, "tx_message groups",
										  ALLOCSET_SMALL_SIZES);
			if (txm_run_in_transaction(groups_unit, &g, "listing consumer groups"))
			{
				for (int k = 0; k < g.n && g.installed && u.installed; k++)
				{
					u.group = g.names[k];
					txm_run_in_transaction(step_unit, &u, "consumer group housekeeping");
				}
			}
			MemoryContextDelete(g.cxt);
			if (!g.installed)
				return false;
		}
		else
		{
			u.steps = steps[i];
			txm_run_in_transaction(step_unit, &u, "maintenance");
		}
		if (!u.installed)
			return false;
	}
	return true;
}

/*
 * Paced ticks (every tx_message.tick_interval) serve readers: handlers, and
 * consumers that poll, whose receive otherwise waits for a tick of what is
 * unticked.  A database with no tx_receive() for TXM_READERS_WINDOW_MS and
 * no handler (say, its messages go out by change data capture, or its
 * consumers run at night) has its commits ticked at each maintenance cycle,
 * once half the commit ring waits, or when a receiver comes: a tick every
 * 10 ms cost its producers about 15 bytes of WAL a transaction, 2 %
 * (bench/RESULTS.md, run 57).  Set before the loop's tick and again after
 * its maintenance, which may have found the first handler.
 */
static bool ticks_paced = true;

static bool
readers_recent(TimestampTz now)
{
	return has_handlers ||
		!TimestampDifferenceExceeds(txm_worker_read_at(), now, TXM_READERS_WINDOW_MS);
}

/*
 * When the next tick is due (TxmUrgency).  For an eager receiver, at once:
 * even a millisecond's gap (one to two in effect, WaitLatch's unit)
 * doubled the commit -> consumer latency at thousands of commits a second
 * (bench/RESULTS.md, run 20).  For a patient one, a millisecond after the
 * last tick, which bounds what receivers that wait in vain cost.  After a
 * failed or skipped tick (retry), TXM_TICK_RETRY_MS at the soonest.
 * Without readers, no paced tick is due (DT_NOEND), but one that failed or
 * was skipped is tried again at the pace: its commits have left the count
 * that hurries the tick before the ring wraps (shmem_ring_append).
 */
#define TXM_TICK_RETRY_MS 10

static TimestampTz
next_tick_at(TimestampTz last_tick_at, TxmUrgency urgency, bool retry)
{
	int			gap = txm_tick_interval;

	if (urgency == TXM_TICK_PACED && !ticks_paced && !retry)
		return DT_NOEND;
	if (urgency == TXM_TICK_NOW)
		gap = 0;
	else if (urgency == TXM_TICK_SOON)
		gap = Min(txm_tick_interval, TXM_PATIENT_TICK_GAP_MS);
	if (retry)
		gap = Max(gap, TXM_TICK_RETRY_MS);
	return TimestampTzPlusMilliseconds(last_tick_at, gap);
}

/*
 * Tick now; returns false if the tick failed or was skipped (then retry
 * after TXM_TICK_RETRY_MS at the soonest).  *worked: it made messages
 * deliverable.
 */
static bool
tick_now(bool *worked)
{
	TickUnit	tick;

	txm_worker_clear_tick_request();
	*worked = false;
	if (!txm_run_in_transaction(tick_unit, &tick, "ticking"))
		return false;
	/* handlers may have work now */
	if (tick.ticked > 0)
	{
		txm_wake_executor();
		*worked = true;
	}
	return tick.ticked >= 0;
}

/*
 * One maintenance cycle; returns when the next is due.  Exits when the
 * extension was dropped.
 */
static TimestampTz
maintain(bool *executors_missing)
{
	MaintenanceUnit m;
	TimestampTz next;
	uint32		start;
	int			failed = 0;
	static TimestampTz warned_at = 0;

	memset(&m, 0, sizeof(m));
	m.installed = housekeeping(&m.stats);
	if (!m.installed || txm_run_in_transaction(maintenance_unit, &m, "maintenance"))
	{
		if (!m.installed)
		{
			ereport(LOG, (errmsg("extension tx_message was dropped, tx_message worker exiting")));
			txm_worker_extension_dropped();
			proc_exit(0);
		}
		start = txm_worker_want_executors(m.executors_wanted);
		for (int i = 0; i < TXM_MAX_EXECUTORS; i++)
			if ((start & (((uint32) 1) << i)) &&
				txm_start_worker("txm_executor_main", "tx_message executor",
								 txm_process_slot_index(), i, MyDatabaseId, 0) == NULL)
				failed++;
		*executors_missing = failed > 0;
		/* tried again every cycle; said once a minute */
		if (failed > 0 && TimestampDifferenceExceeds(warned_at, GetCurrentTimestamp(), 60000))
		{
			ereport(WARNING,
					(errmsg("could not start %d tx_message executor(s) for the database with OID %u",
							failed, MyDatabaseId),
					 errdetail("No background worker slot is free; check functions or handlers of this database wait."),
					 errhint("Raise max_worker_processes: it counts the launcher, and per database a worker and up to tx_message.executors executors.")));
			warned_at = GetCurrentTimestamp();
		}
	}
	txm_run_due_checks(false, false);
	/* no background worker slot was free: the postmaster frees them as it reaps */
	next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   *executors_missing ? Min(txm_naptime, 250) : txm_naptime);
	if (m.deadline != 0 && m.deadline < next)
		next = Max(m.deadline, GetCurrentTimestamp());
	txm_wake_executor();
	return next;
}

/*
 * After a tick that made messages deliverable (look_again), more commits
 * are likely: until the next tick's time, the worker does not ask them to
 * wake it, and looks for them by itself at that time.  Under a
 * steady stream of commits that saves a system call in a committing backend
 * and one of the worker's two wake-ups per tick; the tick is made at the
 * same time either way.  When commits are further apart than
 * tick_interval, the look finds nothing and costs a wake-up; the next
 * commit then wakes the worker.  Without readers, the worker looks at its
 * next maintenance cycle, and commits need not wake it.
 */
static bool
looking_soon(bool look_again, TimestampTz last_tick_at, TimestampTz now)
{
	if (!ticks_paced)
		return true;
	return look_again && now < next_tick_at(last_tick_at, TXM_TICK_PACED, false);
}

/* How long to sleep: until the next maintenance, or the next tick due. */
static long
sleep_time(TimestampTz next_maintenance, TimestampTz last_tick_at, bool tick_backoff,
		   bool look_again)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout = next_maintenance == 0 ? 0 :
		TimestampDifferenceMilliseconds(now, next_maintenance);
	TxmUrgency	urgency;
	bool		looking = looking_soon(look_again, last_tick_at, now);

	if (txm_worker_tick_due(&urgency, looking))
	{
		long		until_tick = 0;
		TimestampTz tick_due = next_tick_at(last_tick_at, urgency, tick_backoff);

		if (tick_due == DT_NOEND)
			until_tick = timeout;
		else if (tick_due > now)
			until_tick = Max(TimestampDifferenceMilliseconds(now, tick_due), 1);
		timeout = Min(timeout, until_tick);
	}
	else if (looking && ticks_paced)
	{
		TimestampTz look_at = next_tick_at(last_tick_at, TXM_TICK_PACED, false);

		timeout = Min(timeout, Max(TimestampDifferenceMilliseconds(now, look_at), 1));
	}
	return timeout;
}

/*
 * Leaving the database (shmem_pool.c).  A worker asked to make room in the
 * pool leaves once it has had nothing to do for TXM_YIELD_IDLE_MS, or,
 * busy, once it has run for TXM_POOL_TURN_MS (then it asks to come back).
 * Otherwise it leaves after tx_message.worker_idle_timeout without work,
 * unless a deadline falls due sooner; it is started again by then at the
 * latest, and at least every TXM_IDLE_REVISIT_MS for the housekeeping
 * that has no deadline (retention, totals, orphans).
 */
#define TXM_POOL_TURN_MS		10000
#define TXM_YIELD_IDLE_MS		100
#define TXM_IDLE_REVISIT_MS		(30 * 60 * 1000)

typedef struct WakeupUnit
{
	bool		installed;
	TimestampTz at;
} WakeupUnit;

static void
wakeup_unit(void *arg)
{
	WakeupUnit *u = arg;

	u->installed = txm_lock_extension();
	if (u->installed)
		u->at = txm_next_wakeup();
}

/*
 * Should the worker leave now?  busy_at: when it last had work; *next_try
 * keeps it from asking the tables again before a deadline it found.
 */
static bool
leave_now(TimestampTz now, TimestampTz busy_at, TimestampTz delivered_at, TimestampTz started_at,
		  TimestampTz *next_try, bool *yielding)
{
	bool		yield;
	WakeupUnit	u;
	TimestampTz wake_at;
	TimestampTz seen_work_at;

	/* others wait for a place in the pool: look now, whatever next_try says */
	yield = txm_worker_yield_requested();
	*yielding = yield;
	if (now < *next_try && !yield)
		return false;
	/* the handlers have not been over what the last ticks delivered */
	if (has_handlers && txm_worker_handlers_dry_at() <= delivered_at)
		busy_at = now;
	seen_work_at = txm_worker_executor_work_at();
	busy_at = Max(busy_at, seen_work_at);
	if (yield && !TimestampDifferenceExceeds(busy_at, now, TXM_YIELD_IDLE_MS))
		return TimestampDifferenceExceeds(started_at, now, TXM_POOL_TURN_MS) &&
			txm_worker_leave(now, true, seen_work_at);
	if (!yield && (txm_worker_idle_timeout < 0 ||
				   !TimestampDifferenceExceeds(busy_at, now, txm_worker_idle_timeout)))
		return false;

	memset(&u, 0, sizeof(u));
	if (!txm_run_in_transaction(wakeup_unit, &u, "looking for deadlines") || !u.installed)
	{
		*next_try = TimestampTzPlusMilliseconds(now, txm_naptime);
		return false;
	}
	wake_at = TimestampTzPlusMilliseconds(now, TXM_IDLE_REVISIT_MS);
	if (u.at != 0 && u.at < wake_at)
		wake_at = Max(u.at, now);
	/* something falls due soon: stay for it, unless others need the place */
	if (!yield && !TimestampDifferenceExceeds(now, wake_at, txm_worker_idle_timeout))
	{
		*next_try = Max(wake_at, TimestampTzPlusMilliseconds(now, txm_naptime));
		return false;
	}
	if (txm_worker_leave(wake_at, false, seen_work_at))
		return true;
	/* a commit or a receiver came in meanwhile */
	*next_try = TimestampTzPlusMilliseconds(now, txm_naptime);
	return false;
}

void
txm_worker_main(Datum main_arg)
{
	TimestampTz next_maintenance = 0;
	TimestampTz last_tick_at = 0;
	bool		look_again = false;
	bool		tick_backoff = false;
	bool		executors_missing = false;
	TimestampTz started_at;
	TimestampTz busy_at;
	TimestampTz next_leave_try = 0;
	TimestampTz delivered_at;
	bool		yielding = false;

	txm_attach_to_database(main_arg, false);
	started_at = busy_at = GetCurrentTimestamp();
	/* what was committed before we came may wait for the handlers */
	delivered_at = started_at;

	/*
	 * The worker's own transactions (ticks, releases) can commit
	 * asynchronously: whatever depends on them commits later in WAL order,
	 * and a tick lost in a crash is simply made again.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	ereport(DEBUG1, (errmsg("tx_message worker started")));

	for (;;)
	{
		TimestampTz now;
		TxmUrgency	urgency;
		bool		unticked;

		txm_process_checkpoint(false);
		now = GetCurrentTimestamp();
		ticks_paced = readers_recent(now);

		/*
		 * While a restore loads this database, its data is incomplete:
		 * ticking or taking it over now could slice restored messages
		 * twice.  Wait for the restoring sessions to end.
		 */
		if (txm_restore_in_progress())
		{
			txm_worker_note_restore("waiting for a restore to finish");
			txm_worker_note_cycle(now);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 txm_naptime, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			next_maintenance = 0;
			/* a restore with triggers disabled sent no invalidation: look again */
			txm_forget_instance();
			continue;
		}

		unticked = txm_worker_tick_due(&urgency, looking_soon(look_again, last_tick_at, now));
		/* a waiting receiver, a commit or a new deadline is work */
		if (unticked || urgency != TXM_TICK_PACED)
			busy_at = now;
		if (unticked && now < next_tick_at(last_tick_at, urgency, tick_backoff))
			unticked = false;	/* not yet */
		if (unticked || now >= next_maintenance)
		{
			bool		worked;

			last_tick_at = now;
			tick_backoff = !tick_now(&worked);
			look_again = worked;
			if (worked)
				busy_at = delivered_at = now;
		}
		if (now >= next_maintenance)
		{
			next_maintenance = maintain(&executors_missing);
			ticks_paced = readers_recent(now);
		}
		txm_worker_note_cycle(now);
		if (txm_worker_take_maintenance_request())
		{
			next_maintenance = 0;
			busy_at = now;
			next_leave_try = 0;
		}
		if (executors_missing)
			busy_at = now;
		if (leave_now(now, busy_at, delivered_at, started_at, &next_leave_try, &yielding))
		{
			ereport(DEBUG1, (errmsg("tx_message worker leaving: the database has no work for it")));
			proc_exit(0);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(Min(sleep_time(next_maintenance, last_tick_at, tick_backoff, look_again),
								 yielding ? TXM_YIELD_IDLE_MS : LONG_MAX), 0),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
