/*-------------------------------------------------------------------------
 *
 * receive.c
 *	  The consumer API: tx_receive, tx_ack, tx_nack, tx_extend_lease.
 *
 * tx_receive first makes sure that everything committed before it was
 * called is deliverable (it waits for the worker's tick, or ticks itself
 * when no worker serves the database), then claims (claim.c).  With a wait,
 * it sleeps on the database's condition variable until a tick, a nack, an
 * aborted receive or an expiring lease may have made something deliverable.
 *
 * A transaction that wrote nothing but what tx_receive writes (its leases,
 * expired leases moved to retries, the watermark) commits asynchronously:
 * if a crash loses it, its messages are simply delivered again, as after an
 * expired lease.  Any other write makes the commit synchronous again.
 *
 * tx_receive and tx_ack are hot paths: like tx_send they resolve no name
 * through search_path and need no SET clause.
 *
 * IDENTIFICATION
 *	  src/api/receive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "src/api/receive.h"
#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/subcache.h"
#include "src/base/validate.h"
#include "src/engine/claim.h"
#include "src/engine/settle.h"
#include "src/storage/lineage.h"
#include "src/storage/tick.h"

PG_FUNCTION_INFO_V1(tx_receive);
PG_FUNCTION_INFO_V1(tx_ack);
PG_FUNCTION_INFO_V1(tx_ack_one);
PG_FUNCTION_INFO_V1(tx_ack_received);
PG_FUNCTION_INFO_V1(tx_nack);
PG_FUNCTION_INFO_V1(tx_extend_lease);

#define TXM_MAX_RECEIVE		100000

/*
 * Whether the current transaction wrote only what receives write: wal_end
 * is the end of WAL when its last receive returned; any other write moves
 * it.
 */
static struct
{
	bool		receive_only;
	XLogRecPtr	wal_end;
} xact = {false, InvalidXLogRecPtr};

void
txm_receive_xact_callback(XactEvent event)
{
	if (event == XACT_EVENT_PRE_COMMIT && xact.receive_only && XactLastRecEnd == xact.wal_end)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		xact.receive_only = false;
}

/*
 * The subscriptions of a consumer group, after checking that the caller may
 * consume in it: it has the privileges of the group's owner, and 'receive'
 * on every topic the group is subscribed to.
 */
static TxmSub *
consumer_subs(const char *group, int *nsubs)
{
	TxmSub	   *subs = txm_group_subs(group, nsubs, false);

	txm_require_group_member(group, subs[0].group_owner);
	for (int i = 0; i < *nsubs; i++)
		txm_require_topic_privilege(txm_lookup_topic_by_id(subs[i].topic_id), TXM_PRIV_RECEIVE);
	return subs;
}

/* A group's subscriptions that tx_receive serves: those without a handler. */
static bool *
pulled_subscriptions(const char *group, const TxmSub *subs, int nsubs)
{
	bool	   *pull = palloc(sizeof(bool) * nsubs);
	int			npull = 0;

	for (int i = 0; i < nsubs; i++)
	{
		pull[i] = !OidIsValid(subs[i].handler);
		npull += pull[i];
	}
	if (npull == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consumer group \"%s\" is consumed by its handler", group),
				 errhint("Messages of a subscription with a handler are delivered by the worker, not by tx_receive().")));
	return pull;
}

/* Earliest due retry of the subscriptions, or 0. */
static TimestampTz
next_retry_due(const TxmSub *subs, int nsubs, const bool *pull)
{
	/* each subscription's minimum from retries_due, not a scan of them all */
	static const char *sql =
		"SELECT min(r.due) FROM unnest($1) AS s(sub_id),"
		"       LATERAL (SELECT min(d.due_at) AS due FROM tx_message.retries_data d"
		"                 WHERE d.sub_id = s.sub_id) r";
	Oid			types[1] = {INT4ARRAYOID};
	Datum		values[1];
	Datum	   *ids = palloc(sizeof(Datum) * nsubs);
	int			nids = 0;
	TimestampTz due = 0;
	bool		isnull;
	Datum		d;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
			ids[nids++] = Int32GetDatum(subs[i].sub_id);
	values[0] = PointerGetDatum(construct_array(ids, nids, INT4OID, 4, true, TYPALIGN_INT));
	SPI_connect();
	txm_spi_exec(sql, 1, types, values, NULL, 1);
	d = txm_spi_value(0, 1, &isnull);
	if (!isnull)
		due = DatumGetTimestampTz(d);
	SPI_finish();
	return due;
}

/*
 * How long a receiver that found nothing sleeps: until its deadline, the
 * next due retry or the next lease deadline, whichever comes first.
 */
static long
sleep_time(const TxmSub *subs, int nsubs, const bool *pull, TimestampTz now,
		   TimestampTz deadline)
{
	long		timeout = TimestampDifferenceMilliseconds(now, deadline);
	TimestampTz due = next_retry_due(subs, nsubs, pull);

	if (due != 0)
	{
		/* a due retry we could not take is locked by another receiver: look again later */
		timeout = Min(timeout, due <= now ? 100 : TimestampDifferenceMilliseconds(now, due) + 1);
	}
	for (int i = 0; i < nsubs; i++)
	{
		TimestampTz expiry;

		if (!pull[i])
			continue;
		expiry = txm_hint_next_expiry(subs[i].sub_id);
		if (expiry != 0 && expiry != DT_NOEND)
			timeout = Min(timeout, TimestampDifferenceMilliseconds(now, expiry) + 1);
	}
	return timeout;
}

/*
 * Claim for the group until something is delivered or the deadline passes.
 * With a worker to wake it, the receiver sleeps on the database's condition
 * variable (registered before looking, so that no wake-up is missed);
 * without one, it looks again ten times a second, until the worker it asked
 * for is there.
 */
/*
 * Should a waiting receiver leave the ticks to the worker?  A database whose
 * worker left for want of work gets one back: wait a little for it rather
 * than tick here, since a tick of ours would hold the tick lock, and keep
 * the worker from ticking, until we commit.  After such a tick, we go on
 * ticking ourselves.
 */
static bool
worker_ticks(TxmDbSlot *slot, TimestampTz deadline)
{
	if (txm_tick_lock_held())
		return false;
	if (!txm_worker_running(slot) && txm_request_worker(slot))
	{
		long		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		(void) txm_wait_for_worker(slot, Min(remaining, TXM_WORKER_ARRIVAL_MS));
	}
	return txm_worker_running(slot);
}

/*
 * How this backend asks for ticks (TxmWaiterKind): eagerly, until a tick
 * of its topics since it last looked left it nothing (another consumer
 * took the messages, or a tag filter left them out); then patiently, until
 * it gets something again.  Kept across calls, so that a consumer that
 * polls or waits in vain does not have a tick made per commit; it is the
 * backend's, whatever group it receives for, which costs one that
 * alternates at most a tick a millisecond.
 */
static TxmWaiterKind receiver_kind = TXM_WAIT_EAGER;
static uint64 receiver_ticks_seen = PG_UINT64_MAX;

static List *
receive_until(TxmSub *subs, int nsubs, const bool *pull, int max_messages,
			  Interval *lease, TimestampTz deadline)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		waits = slot != NULL && deadline > GetCurrentTimestamp();
	bool		sleeping = false;
	uint64		topics = 0;
	List	   *out;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
			topics |= txm_topic_bit(subs[i].topic_id);
	for (;;)
	{
		TimestampTz now;
		long		timeout;
		bool		covered;
		bool		by_worker = waits && worker_ticks(slot, deadline);

		if (by_worker != sleeping)
		{
			if (by_worker)
				txm_wait_prepare(slot);
			else
				txm_wait_cancel();
			sleeping = by_worker;
		}
		txm_sync_ticks(false, topics, receiver_kind);
		/* waiting for ticks used the condition variable: register again */
		if (sleeping)
			txm_wait_prepare(slot);
		/* looked at before the claim: a tick during it may have come too late for it */
		covered = slot != NULL && txm_tick_covered_since(slot, topics, &receiver_ticks_seen);
		out = txm_claim(subs, nsubs, pull, max_messages, lease);
		if (out != NIL)
			receiver_kind = TXM_WAIT_EAGER;
		else if (covered)
			receiver_kind = TXM_WAIT_PATIENT;
		now = GetCurrentTimestamp();
		if (out != NIL || now >= deadline)
			break;

		timeout = sleep_time(subs, nsubs, pull, now, deadline);
		if (sleeping)
			txm_wait_as_receiver(slot, Max(timeout, 1), topics, receiver_kind);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(Min(timeout, 100), 1), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (sleeping)
		txm_wait_cancel();
	return out;
}

/* Return the deliveries as tx_receive's rows. */
static void
emit_deliveries(ReturnSetInfo *rsinfo, const TxmSub *subs, List *out)
{
	ListCell   *lc;

	foreach(lc, out)
	{
		TxmDelivery *d = lfirst(lc);
		Datum		values[9];
		bool		nulls[9];

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int64GetDatum(d->msg.msg_id);
		values[1] = CStringGetTextDatum(subs[d->sub_index].topic);
		for (int k = 0; k < TXM_MSG_NCOLS; k++)
		{
			values[2 + k] = d->msg.cols[k];
			nulls[2 + k] = d->msg.isnull[k];
		}
		values[6] = Int32GetDatum(d->attempt);
		values[7] = TimestampTzGetDatum(d->msg.sent_at);
		values[8] = TimestampTzGetDatum(d->lease_until);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * tx_receive(consumer_group text, max_messages integer, wait interval,
 *			  lease interval) RETURNS TABLE (msg_id bigint, topic text,
 *			  key text, tags text[], headers jsonb, payload jsonb,
 *			  attempt integer, sent_at timestamptz, lease_until timestamptz)
 */
Datum
tx_receive(PG_FUNCTION_ARGS)
{
	char	   *group = txm_group_arg(fcinfo, 0);
	int32		max_messages;
	Interval   *lease = NULL;
	TimestampTz deadline;
	TxmSub	   *subs;
	int			nsubs;
	bool	   *pull;
	List	   *out;

	txm_require_arg(fcinfo, 1, "max_messages");
	max_messages = PG_GETARG_INT32(1);
	/* nothing written yet, or only by earlier receives */
	xact.receive_only = !TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		(xact.receive_only && XactLastRecEnd == xact.wal_end);
	if (max_messages < 1 || max_messages > TXM_MAX_RECEIVE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must be between 1 and %d", TXM_MAX_RECEIVE),
				 errdetail("The value given is %d.", max_messages)));
	txm_require_arg(fcinfo, 2, "wait");
	txm_check_not_negative("wait", PG_GETARG_INTERVAL_P(2));
	deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													   TimestampTzGetDatum(GetCurrentTimestamp()),
													   PG_GETARG_DATUM(2)));
	if (!PG_ARGISNULL(3))
	{
		lease = PG_GETARG_INTERVAL_P(3);
		txm_check_positive_interval("lease", lease);
	}
	txm_check_can_consume("tx_receive()");
	txm_take_over_if_restored();

	subs = consumer_subs(group, &nsubs);
	pull = pulled_subscriptions(group, subs, nsubs);
	/* the database has a reader: the worker ticks at tx_message.tick_interval */
	txm_note_reader();
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	out = receive_until(subs, nsubs, pull, max_messages, lease, deadline);
	emit_deliveries((ReturnSetInfo *) fcinfo->resultinfo, subs, out);
	xact.wal_end = XactLastRecEnd;
	return (Datum) 0;
}

/* tx_ack(consumer_group text, msg_ids bigint[]) RETURNS integer */
Datum
tx_ack(PG_FUNCTION_ARGS)
{
	char	   *group = txm_group_arg(fcinfo, 0);
	int			n;
	int64	   *ids;
	TxmSub	   *subs;
	int			nsubs;

	txm_require_arg(fcinfo, 1, "msg_ids");
	ids = txm_id_array(PG_GETARG_ARRAYTYPE_P(1), &n);
	txm_check_can_consume("tx_ack()");
	subs = consumer_subs(group, &nsubs);
	PG_RETURN_INT32(txm_ack(subs, nsubs, ids, n));
}

/* tx_ack(consumer_group text, msg_id bigint) RETURNS boolean */
Datum
tx_ack_one(PG_FUNCTION_ARGS)
{
	char	   *group = txm_group_arg(fcinfo, 0);
	int64		id;
	TxmSub	   *subs;
	int			nsubs;

	txm_require_arg(fcinfo, 1, "msg_id");
	id = PG_GETARG_INT64(1);
	txm_check_can_consume("tx_ack()");
	subs = consumer_subs(group, &nsubs);
	PG_RETURN_BOOL(txm_ack(subs, nsubs, &id, 1) == 1);
}

/*
 * tx_ack(consumer_group text) RETURNS integer: what this transaction
 * received from the group with tx_receive and has not settled (since 1.1).
 * A group consumed by its handler has nothing tx_receive gave.
 */
Datum
tx_ack_received(PG_FUNCTION_ARGS)
{
	char	   *group = txm_group_arg(fcinfo, 0);
	TxmSub	   *subs;
	int			nsubs;

	txm_check_can_consume("tx_ack()");
	subs = consumer_subs(group, &nsubs);
	PG_RETURN_INT32(txm_ack_received(subs, nsubs, pulled_subscriptions(group, subs, nsubs)));
}

/*
 * tx_nack(consumer_group text, msg_id bigint, error text, retry_in interval)
 *	RETURNS text
 */
Datum
tx_nack(PG_FUNCTION_ARGS)
{
	char	   *group = txm_group_arg(fcinfo, 0);
	Interval   *retry_in = NULL;
	TxmSub	   *subs;
	int			nsubs;
	const char *result;

	txm_require_arg(fcinfo, 1, "msg_id");
	if (!PG_ARGISNULL(3))
	{
		retry_in = PG_GETARG_INTERVAL_P(3);
		txm_check_not_negative("retry_in", retry_in);
	}
	txm_check_can_consume("tx_nack()");
	subs = consumer_subs(group, &nsubs);
	result = txm_nack(subs, nsubs, PG_GETARG_INT64(1),
					  PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
					  retry_in);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/*
 * tx_extend_lease(consumer_group text, msg_ids bigint[], lease interval)
 *	RETURNS integer
 */
Datum
tx_extend_lease(PG_FUNCTION_ARGS)
{
	char	   *group = txm_group_arg(fcinfo, 0);
	int			n;
	int64	   *ids;
	Interval   *lease;
	TimestampTz until;
	TxmSub	   *subs;
	int			nsubs;

	txm_require_arg(fcinfo, 1, "msg_ids");
	ids = txm_id_array(PG_GETARG_ARRAYTYPE_P(1), &n);
	txm_require_arg(fcinfo, 2, "lease");
	lease = PG_GETARG_INTERVAL_P(2);
	txm_check_positive_interval("lease", lease);
	txm_check_can_consume("tx_extend_lease()");
	subs = consumer_subs(group, &nsubs);
	until = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													TimestampTzGetDatum(GetCurrentTimestamp()),
													IntervalPGetDatum(lease)));
	PG_RETURN_INT32(txm_extend(subs, nsubs, ids, n, until));
}
