/*-------------------------------------------------------------------------
 *
 * shmem_xact.c
 *	  What a transaction asks of shared memory at its end.
 *
 * Modules record their requests here while the transaction runs (a message
 * sent, a tick made, retries written, a new installation); the transaction
 * callback carries them out once its commit is visible (a transaction that
 * sent also shows its xid as committing from just before then: see
 * shmem_ring.c), or drops them on abort, where it also withdraws the transaction's open claims and gives
 * their positions back.  All of it happens in this one callback, in one
 * order, so no other module's callback depends on it: a request recorded in
 * a subtransaction that rolls back is forgotten with it when that matters
 * (a tick), and harmless otherwise (a wake-up).
 *
 * IDENTIFICATION
 *	  src/base/shmem_xact.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "src/base/shmem_internal.h"

/* The current transaction's requests, carried out at its commit. */
static struct
{
	bool		sent;			/* inserted into the log: append to the ring */
	uint64		sent_xid;
	uint64		sent_topics;	/* the buckets of the topics sent to */
	bool		request_maintenance;	/* stored delayed or half messages */
	bool		broadcast;		/* made messages deliverable again (nack, redrive) */
	bool		register_database;	/* CREATE EXTENSION */
	bool		retries_written;	/* the retry hints are void */
	bool		positions_moved;	/* a position went back (tx_seek): every hint is void */
	bool		ticked;			/* made a tick covering the ring up to ticked_upto */
	uint64		ticked_upto;
	int			ticked_level;	/* forgotten if that subtransaction rolls back */
} at_commit;

/* this backend shows sent_xid as committing (shmem_ring_committing) */
static bool committing_shown = false;

/*
 * Totals the transaction counted (shmem_totals.c), per subscription and
 * subtransaction level: those of a subtransaction that rolls back (a
 * handler call that failed) are forgotten with it.
 */
typedef struct PendingTotal
{
	TxmTotalDelta d;
	int			level;
} PendingTotal;

static PendingTotal *pending_totals = NULL;
static int	npending_totals = 0;
static int	pending_totals_cap = 0;

/*
 * Totals taken out of shared memory to be stored (txm_totals_take), per
 * subtransaction level: given back if that level rolls back, so that a
 * store that does not commit loses none.
 */
static PendingTotal *taken_totals = NULL;
static int	ntaken_totals = 0;
static int	taken_totals_cap = 0;

void
shmem_totals_taken(const TxmDbSlot *slot, const TxmTotalDelta *d, int n)
{
	int			level = GetCurrentTransactionNestLevel();

	Assert(slot == txm_my_slot());
	if (ntaken_totals + n > taken_totals_cap)
	{
		taken_totals_cap = Max(ntaken_totals + n, Max(16, taken_totals_cap * 2));
		taken_totals = taken_totals
			? repalloc(taken_totals, sizeof(PendingTotal) * taken_totals_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(PendingTotal) * taken_totals_cap);
	}
	for (int i = 0; i < n; i++)
	{
		taken_totals[ntaken_totals].d = d[i];
		taken_totals[ntaken_totals++].level = level;
	}
}

void
txm_at_commit_count(int32 topic_id, int32 sub_id, TxmTotalKind kind, uint64 n)
{
	int			level = GetCurrentTransactionNestLevel();
	PendingTotal *p = NULL;

	if (txm_shared == NULL || n == 0)
		return;
	for (int i = npending_totals - 1; i >= 0; i--)
	{
		PendingTotal *q = &pending_totals[i];

		if (q->level == level && q->d.topic_id == topic_id && q->d.sub_id == sub_id)
		{
			p = q;
			break;
		}
	}
	if (p == NULL)
	{
		if (npending_totals == pending_totals_cap)
		{
			pending_totals_cap = Max(16, pending_totals_cap * 2);
			pending_totals = pending_totals
				? repalloc(pending_totals, sizeof(PendingTotal) * pending_totals_cap)
				: MemoryContextAlloc(TopMemoryContext, sizeof(PendingTotal) * pending_totals_cap);
		}
		p = &pending_totals[npending_totals++];
		memset(p, 0, sizeof(*p));
		p->d.topic_id = topic_id;
		p->d.sub_id = sub_id;
		p->level = level;
	}
	p->d.n[kind] += n;
}

void
txm_at_commit_ring_append(uint64 xid64, int32 topic_id)
{
	at_commit.sent = true;
	at_commit.sent_xid = xid64;
	at_commit.sent_topics |= txm_topic_bit(topic_id);
}

void
txm_at_commit_ring_ticked(uint64 upto)
{
	at_commit.ticked = true;
	at_commit.ticked_upto = upto;
	at_commit.ticked_level = GetCurrentTransactionNestLevel();
}

void
txm_at_commit_request_maintenance(void)
{
	at_commit.request_maintenance = true;
}

void
txm_at_commit_broadcast(void)
{
	at_commit.broadcast = true;
}

/* Only with shared memory: there is no launcher to tell otherwise. */
void
txm_at_commit_register_database(void)
{
	if (txm_shared != NULL)
		at_commit.register_database = true;
}

void
txm_at_commit_retries_written(void)
{
	at_commit.retries_written = true;
}

void
txm_at_commit_positions_moved(void)
{
	at_commit.positions_moved = true;
}

bool
txm_xact_wrote_retries(void)
{
	return at_commit.retries_written;
}

/* The commit is visible: withdraw our claims (our leases stand for them now), wake whom we promised. */
static void
at_commit_visible(void)
{
	TxmDbSlot  *slot;

	if (txm_shared == NULL)
		return;
	shmem_claims_release_own(0, false);
	slot = txm_my_slot();
	if (slot != NULL)
	{
		if (at_commit.broadcast)
			shmem_broadcast(slot);
		if (at_commit.retries_written)
			shmem_hints_retry_reset(slot);
		if (at_commit.positions_moved)
			shmem_hints_clear(slot);
		if (at_commit.sent)
			shmem_ring_append(slot, at_commit.sent_xid, XactLastCommitEnd, at_commit.sent_topics);
		if (at_commit.request_maintenance)
			shmem_request_maintenance(slot);
		if (at_commit.ticked)
			shmem_ring_ticked(slot, at_commit.ticked_upto);
		for (int i = 0; i < npending_totals; i++)
			shmem_totals_add(slot, pending_totals[i].d.topic_id, pending_totals[i].d.sub_id,
							 pending_totals[i].d.n);
	}
	shmem_committing_done();
	if (at_commit.register_database)
		shmem_request_worker(MyDatabaseId);
}

/*
 * About to commit: show the xid of a transaction that sent until its ring
 * entry is there, for a tick that finds its messages before that (the
 * commit becomes visible before the commit callbacks run).
 */
static void
before_commit(void)
{
	if (txm_shared == NULL || !at_commit.sent)
		return;
	shmem_ring_committing(at_commit.sent_xid);
	committing_shown = true;
}

/*
 * COMMIT PREPARED of prepared is about to make its messages visible: show
 * it as committing until txm_ring_note_commit_prepared() appended it (or
 * the statement failed).
 */
void
txm_at_commit_prepared(FullTransactionId prepared)
{
	if (txm_shared == NULL || !FullTransactionIdIsValid(prepared))
		return;
	shmem_ring_committing(U64FromFullTransactionId(prepared));
	committing_shown = true;
}

void
shmem_committing_done(void)
{
	if (committing_shown)
	{
		shmem_ring_committing(0);
		committing_shown = false;
	}
}

/*
 * Rolled back (from min_level on): our claims' positions are free again,
 * tell the waiting receivers; the totals taken to be stored go back.
 */
static void
at_abort(int min_level)
{
	TxmDbSlot  *slot;
	int			kept = 0;

	if (txm_shared == NULL)
		return;
	slot = txm_my_slot();
	if (shmem_claims_release_own(min_level, true) && slot != NULL)
		shmem_broadcast(slot);
	for (int i = 0; i < ntaken_totals; i++)
	{
		if (taken_totals[i].level < min_level)
			taken_totals[kept++] = taken_totals[i];
		else if (slot != NULL)
			shmem_totals_add(slot, taken_totals[i].d.topic_id, taken_totals[i].d.sub_id,
							 taken_totals[i].d.n);
	}
	ntaken_totals = kept;
}

void
txm_shmem_xact_callback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			before_commit();
			break;
		case XACT_EVENT_COMMIT:
			at_commit_visible();
			break;
		case XACT_EVENT_ABORT:
			at_abort(0);
			break;
		default:
			break;
	}
	/* failed after the PRE_COMMIT event, or prepared: nothing to append */
	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_COMMIT)
		shmem_committing_done();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
	{
		memset(&at_commit, 0, sizeof(at_commit));
		npending_totals = 0;
		ntaken_totals = 0;
	}
}

/* A subtransaction ended: its totals go to its parent, or away. */
static void
subxact_totals(int level, bool commit)
{
	int			kept = 0;

	for (int i = 0; i < npending_totals; i++)
	{
		if (pending_totals[i].level < level)
			pending_totals[kept++] = pending_totals[i];
		else if (commit)
		{
			pending_totals[i].level = level - 1;
			pending_totals[kept++] = pending_totals[i];
		}
	}
	npending_totals = kept;
}

void
txm_shmem_subxact_callback(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		at_abort(level);
		if (at_commit.ticked && at_commit.ticked_level >= level)
			at_commit.ticked = false;
		subxact_totals(level, false);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (txm_shared != NULL)
			shmem_claims_promote_own(level);
		if (at_commit.ticked && at_commit.ticked_level >= level)
			at_commit.ticked_level = level - 1;
		subxact_totals(level, true);
		for (int i = 0; i < ntaken_totals; i++)
			if (taken_totals[i].level >= level)
				taken_totals[i].level = level - 1;
	}
}
