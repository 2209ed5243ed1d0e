/*-------------------------------------------------------------------------
 *
 * deliveries.c
 *	  What this session was last handed, per message: which lease row (or
 *	  retry row) holds it, and with which attempt.
 *
 * tx_ack and tx_nack find a message this session received here without
 * reading any table, and a delivery this session no longer holds (its lease
 * expired and the message went to someone else with a higher attempt)
 * counts nothing.  A delivery this session nacked, or acked without
 * finishing it, or finished from a retry row, stays here settled, so that
 * acking or nacking it again counts nothing too, rather than finding the
 * message in the tables, held by its next receiver; a settling that rolls
 * back is forgotten with it.  (An ack that finished a leased message just
 * forgets it: the hot path takes one hash probe, and the tables then show
 * the message done.)  Acks from another connection
 * (through a pool, say) look the message up in the tables instead
 * (settle.c).  A delivery made by a transaction or subtransaction that
 * rolls back is forgotten with it: its lease row is gone.
 *
 * IDENTIFICATION
 *	  src/engine/deliveries.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "src/base/validate.h"
#include "src/engine/deliveries.h"

/* bound on the session's memory of deliveries; it starts afresh beyond */
#define SESSION_CACHE_MAX	200000

typedef struct SessionKey
{
	int64		msg_id;
	int32		sub_id;
} SessionKey;

typedef struct SessionEntry
{
	SessionKey	key;
	bool		from_retry;
	int64		block;
	int16		first_off;
	int16		off;
	int32		attempt;
	bool		settled;		/* acked or nacked by this session */
	bool		holding;		/* the fields above say where it is held */
} SessionEntry;

static HTAB *session_deliveries = NULL;

/* deliveries remembered by the current transaction, with their nesting level */
typedef struct XactDelivery
{
	SessionKey	key;
	int			nest_level;
} XactDelivery;

static List *xact_deliveries = NIL;

/* deliveries settled by the current transaction, in the same form */
static List *xact_settled = NIL;

/* The hash key: set in place, so that its padding is zero too. */
static void
session_key(SessionKey *key, int32 sub_id, int64 msg_id)
{
	memset(key, 0, sizeof(SessionKey));
	key->msg_id = msg_id;
	key->sub_id = sub_id;
}

/* The session's table of deliveries, started afresh when it grew too large. */
static void
ensure_session_deliveries(void)
{
	HASHCTL		ctl;

	if (session_deliveries != NULL &&
		hash_get_num_entries(session_deliveries) <= SESSION_CACHE_MAX)
		return;
	if (session_deliveries)
		hash_destroy(session_deliveries);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(SessionKey);
	ctl.entrysize = sizeof(SessionEntry);
	ctl.hcxt = TopMemoryContext;
	session_deliveries = hash_create("tx_message deliveries", 1024, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Hand out a message: append its delivery to *out. */
void
txm_delivery_add(List **out, int sub_index, const TxmMsg *m, int32 attempt,
				 TimestampTz lease_until, bool from_retry, int64 block, int16 off)
{
	TxmDelivery *d = palloc0(sizeof(TxmDelivery));

	d->sub_index = sub_index;
	d->msg = *m;
	d->attempt = attempt;
	d->lease_until = lease_until;
	d->from_retry = from_retry;
	d->block = block;
	d->off = off;
	*out = lappend(*out, d);
}

/* Note in the current transaction's list that key changed at this level. */
static List *
note_in_xact(List *list, const SessionKey *key)
{
	XactDelivery *xd;
	MemoryContext old;

	/* freed by the transaction callbacks, which run outside any transaction memory */
	old = MemoryContextSwitchTo(TopMemoryContext);
	xd = palloc(sizeof(XactDelivery));
	xd->key = *key;
	xd->nest_level = GetCurrentTransactionNestLevel();
	list = lappend(list, xd);
	MemoryContextSwitchTo(old);
	return list;
}

static void
set_holding(SessionEntry *e, const TxmHolding *h)
{
	e->from_retry = h->from_retry;
	e->block = h->block;
	e->first_off = h->first_off;
	e->off = h->off;
	e->attempt = h->attempt;
	e->holding = true;
}

void
txm_deliveries_remember(int32 sub_id, const TxmDelivery *d)
{
	SessionKey	key;
	SessionEntry *e;
	TxmHolding	h;

	session_key(&key, sub_id, d->msg.msg_id);
	ensure_session_deliveries();
	e = hash_search(session_deliveries, &key, HASH_ENTER, NULL);
	h.from_retry = d->from_retry;
	h.block = d->block;
	h.first_off = d->first_off;
	h.off = d->off;
	h.attempt = d->attempt;
	set_holding(e, &h);
	e->settled = false;
	xact_deliveries = note_in_xact(xact_deliveries, &key);
}

/*
 * A delivery of this session is settled: acking or nacking it again counts
 * nothing.  If the current (sub)transaction rolls back, it is held again
 * where h (or what this session remembered) says, or else forgotten.
 */
void
txm_deliveries_settle(int32 sub_id, int64 msg_id, const TxmHolding *h)
{
	SessionKey	key;
	SessionEntry *e;
	bool		found;

	ensure_session_deliveries();
	session_key(&key, sub_id, msg_id);
	e = hash_search(session_deliveries, &key, HASH_ENTER, &found);
	if (!found)
		e->holding = false;
	if (h)
		set_holding(e, h);
	e->settled = true;
	xact_settled = note_in_xact(xact_settled, &key);
}

/*
 * Where this session holds a message, if it received it; sub_index is left
 * alone.  Returns TXM_HELD_UNKNOWN if this session never received it (the
 * caller looks in the tables), TXM_HELD_SETTLED if this session already
 * settled it (the caller counts nothing).  With take, a delivery held by
 * its lease is forgotten at once (the caller finishes it: one hash probe
 * where a look-up and a removal would take two), while one held by a retry
 * row stays until the caller settles it, so that a finish that fails can be
 * tried again with its attempt.
 */
TxmHeld
txm_deliveries_lookup(int32 sub_id, int64 msg_id, TxmHolding *h, bool take)
{
	SessionKey	key;
	SessionEntry *e;

	session_key(&key, sub_id, msg_id);
	if (session_deliveries == NULL)
		return TXM_HELD_UNKNOWN;
	e = hash_search(session_deliveries, &key, take ? HASH_REMOVE : HASH_FIND, NULL);
	if (e == NULL)
		return TXM_HELD_UNKNOWN;
	/* a removed entry stays readable until the next insertion */
	h->from_retry = e->from_retry;
	h->block = e->block;
	h->first_off = e->first_off;
	h->off = e->off;
	h->attempt = e->attempt;
	if (e->settled || (take && h->from_retry))
	{
		bool		settled = e->settled;

		/* the rare cases that stay: put back what the removal took */
		if (take)
		{
			bool		holding = e->holding;

			e = hash_search(session_deliveries, &key, HASH_ENTER, NULL);
			set_holding(e, h);
			e->settled = settled;
			e->holding = holding;
		}
		if (settled)
			return TXM_HELD_SETTLED;
	}
	return TXM_HELD_HERE;
}

/*
 * The list cut to its first k cells, into which the callers below moved
 * what they keep: one pass over a list, allocating nothing (they run while
 * a transaction aborts).
 */
static List *
keep_first(List *list, int k)
{
	if (k > 0)
		return list_truncate(list, k);
	list_free(list);
	return NIL;
}

/*
 * Remove the deliveries made at nesting level min_level or deeper, from the
 * session's table and from the transaction's list, in one pass: the list
 * then holds only deliveries whose lease rows stand.
 */
static void
forget_from_level(int min_level)
{
	ListCell   *lc;
	int			k = 0;

	if (min_level <= 0)
	{
		/* the whole transaction: its callback frees the list */
		if (session_deliveries != NULL)
			foreach(lc, xact_deliveries)
				hash_search(session_deliveries, &((XactDelivery *) lfirst(lc))->key,
							HASH_REMOVE, NULL);
		return;
	}
	foreach(lc, xact_deliveries)
	{
		XactDelivery *xd = lfirst(lc);

		if (xd->nest_level < min_level)
		{
			lfirst(list_nth_cell(xact_deliveries, k++)) = xd;
			continue;
		}
		if (session_deliveries != NULL)
			hash_search(session_deliveries, &xd->key, HASH_REMOVE, NULL);
		pfree(xd);
	}
	xact_deliveries = keep_first(xact_deliveries, k);
}

/*
 * The ids of the messages the current transaction received for the
 * subscriptions sub_ids and has not settled since (nacked, or acked by id
 * from a retry row), each once, in a palloc'd array; *n receives how many.
 * Those this session still remembers holding are acked without reading a
 * table; the others (acked by id in this transaction, whose entry the ack
 * took, or whose entry a rolled-back subtransaction or a fresh start of
 * the session's table removed) are looked up in the tables by the ack,
 * which finishes only what is still pending: while this transaction is
 * open, nobody else can take what it received.
 */
int64 *
txm_deliveries_held_in_xact(const int32 *sub_ids, int nsub_ids, int *n)
{
	int64	   *ids = palloc(sizeof(int64) * Max(list_length(xact_deliveries), 1));
	int			k = 0;
	ListCell   *lc;

	foreach(lc, xact_deliveries)
	{
		XactDelivery *xd = lfirst(lc);
		SessionEntry *e;
		bool		ours = false;

		for (int i = 0; i < nsub_ids && !ours; i++)
			ours = (xd->key.sub_id == sub_ids[i]);
		if (!ours)
			continue;
		e = session_deliveries != NULL ?
			hash_search(session_deliveries, &xd->key, HASH_FIND, NULL) : NULL;
		if (e != NULL && e->settled)
			continue;
		ids[k++] = xd->key.msg_id;
	}
	*n = txm_sort_unique_ids(ids, k);
	return ids;
}

/* Undo the settling done at nesting level min_level or deeper, in one pass. */
static void
unsettle_from_level(int min_level)
{
	ListCell   *lc;
	int			k = 0;

	foreach(lc, xact_settled)
	{
		XactDelivery *xd = lfirst(lc);
		SessionEntry *e;

		if (xd->nest_level < min_level)
		{
			lfirst(list_nth_cell(xact_settled, k++)) = xd;
			continue;
		}
		e = session_deliveries ?
			hash_search(session_deliveries, &xd->key, HASH_FIND, NULL) : NULL;
		if (e && e->holding)
			e->settled = false;
		else if (e)
			hash_search(session_deliveries, &xd->key, HASH_REMOVE, NULL);
		pfree(xd);
	}
	xact_settled = keep_first(xact_settled, k);
}

void
txm_deliveries_xact_callback(XactEvent event)
{
	if (event == XACT_EVENT_ABORT)
	{
		unsettle_from_level(0);
		forget_from_level(0);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		list_free_deep(xact_deliveries);
		xact_deliveries = NIL;
		list_free_deep(xact_settled);
		xact_settled = NIL;
	}
}

void
txm_deliveries_subxact_callback(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		unsettle_from_level(level);
		forget_from_level(level);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* they now belong to the parent */
		foreach(lc, xact_deliveries)
		{
			XactDelivery *xd = lfirst(lc);

			if (xd->nest_level >= level)
				xd->nest_level = level - 1;
		}
		foreach(lc, xact_settled)
		{
			XactDelivery *xd = lfirst(lc);

			if (xd->nest_level >= level)
				xd->nest_level = level - 1;
		}
	}
}
