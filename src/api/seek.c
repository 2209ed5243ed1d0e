/*-------------------------------------------------------------------------
 *
 * seek.c
 *	  tx_seek: replay, or skip, by moving a consumer group's position on a
 *	  topic (RocketMQ's resetOffsetByTime).
 *
 * The new position is a point of the topic's stream: the first message
 * committed at or after a time (the first slice the ticker made then, see
 * stream.c), the oldest one retention keeps ('earliest') or the next one
 * to come ('latest').  Everything below it counts as finished, everything
 * from it on is waiting: the group's leases and retries go, and messages
 * it had already acked come again.  The position lock (lease.c) keeps the
 * worker from storing a watermark it computed before the move; the log
 * tables are held against truncation while the new position is read and
 * committed (stream.c).  A receive whose transaction is still open when the
 * move commits keeps what it holds: its lease rows were not visible to the
 * move.
 *
 * IDENTIFICATION
 *	  src/api/seek.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "src/api/topics.h"
#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/subcache.h"
#include "src/base/validate.h"
#include "src/storage/lease.h"
#include "src/storage/lineage.h"
#include "src/storage/stream.h"
#include "src/storage/tick.h"

PG_FUNCTION_INFO_V1(tx_seek);
PG_FUNCTION_INFO_V1(tx_seek_text);

typedef enum SeekKind
{
	SEEK_TIME,
	SEEK_EARLIEST,
	SEEK_LATEST
} SeekKind;

/* The group's subscription to the topic, checked: a member of the group, or an admin of the topic. */
static TxmSub *
seek_subscription(const char *group, const char *topic_name)
{
	TxmTopic   *topic = txm_lookup_topic(topic_name, false);
	int32		topic_id = topic->topic_id;
	bool		admin = txm_has_topic_privilege(topic, GetUserId(), TXM_PRIV_ADMIN);
	int			nsubs;
	TxmSub	   *subs = txm_group_subs(group, &nsubs, true);

	for (int i = 0; i < nsubs; i++)
	{
		if (subs[i].topic_id != topic_id)
			continue;
		if (!admin)
		{
			txm_require_group_member(group, subs[i].group_owner);
			(void) txm_topic_id_for(topic_name, TXM_PRIV_RECEIVE);
		}
		return &subs[i];
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("consumer group \"%s\" is not subscribed to topic \"%s\"", group, topic_name)));
	return NULL;				/* keep the compiler quiet */
}

/*
 * Lock the subscription's row against tx_unsubscribe (which locks it FOR
 * UPDATE): the one found in the cache may have gone before we took the
 * position lock.  In the caller's SPI connection.
 */
static void
lock_subscription(int32 sub_id, const char *group, const char *topic)
{
	static const char *sql =
		"SELECT 1 FROM tx_message.subscriptions WHERE sub_id = $1 FOR KEY SHARE";
	Oid			types[1] = {INT4OID};
	Datum		values[1];

	values[0] = Int32GetDatum(sub_id);
	if (txm_spi_exec(sql, 1, types, values, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("consumer group \"%s\" is not subscribed to topic \"%s\"", group, topic)));
}

/* Move the position; returns how many positions are ahead of it. */
static int64
seek(FunctionCallInfo fcinfo, SeekKind kind, TimestampTz target)
{
	char	   *group;
	char	   *topic;
	TxmSub	   *sub;
	int64		seq;
	int64		head;

	txm_check_can_change("tx_seek()");
	txm_take_over_if_restored();
	group = text_to_cstring(PG_GETARG_TEXT_PP(0));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("consumer group", group);
	txm_check_name("topic", topic);
	sub = seek_subscription(group, topic);

	/* what committed before this call has its place in the stream */
	txm_sync_ticks(true, TXM_ALL_TOPICS, TXM_WAIT_EAGER);
	txm_lock_sub_position(sub->sub_id, ExclusiveLock);
	SPI_connect();
	/* the topic and the subscription stay while we move it */
	txm_lock_topic(topic, false);
	lock_subscription(sub->sub_id, group, topic);
	if (kind == SEEK_TIME)
		seq = txm_stream_seq_at(sub->topic_id, target);
	else
		seq = txm_stream_start(sub->topic_id, kind == SEEK_EARLIEST);
	txm_reset_position(sub->sub_id, seq);
	head = txm_stream_head(sub->topic_id, GetLatestSnapshot());
	SPI_finish();
	txm_at_commit_positions_moved();
	txm_at_commit_broadcast();
	/* a handler subscription's executor replays at once, worker or not */
	txm_at_commit_request_maintenance();
	return Max(head - seq, 0);
}

/* The arguments of both forms: none may be NULL. */
static void
require_args(FunctionCallInfo fcinfo)
{
	txm_require_arg(fcinfo, 0, "consumer_group");
	txm_require_arg(fcinfo, 1, "topic");
	txm_require_arg(fcinfo, 2, "target");
}

/* tx_seek(consumer_group text, topic text, target timestamptz) RETURNS bigint */
Datum
tx_seek(PG_FUNCTION_ARGS)
{
	TimestampTz target;

	require_args(fcinfo);
	target = PG_GETARG_TIMESTAMPTZ(2);

	if (TIMESTAMP_IS_NOBEGIN(target))
		PG_RETURN_INT64(seek(fcinfo, SEEK_EARLIEST, 0));
	if (TIMESTAMP_IS_NOEND(target))
		PG_RETURN_INT64(seek(fcinfo, SEEK_LATEST, 0));
	PG_RETURN_INT64(seek(fcinfo, SEEK_TIME, target));
}

/*
 * tx_seek(consumer_group text, topic text, target text) RETURNS bigint
 *
 * 'earliest', 'latest', or a time written as text: an untyped literal
 * comes here.
 */
Datum
tx_seek_text(PG_FUNCTION_ARGS)
{
	char	   *target;
	TimestampTz t;

	require_args(fcinfo);
	target = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (strcmp(target, "earliest") == 0)
		PG_RETURN_INT64(seek(fcinfo, SEEK_EARLIEST, 0));
	if (strcmp(target, "latest") == 0)
		PG_RETURN_INT64(seek(fcinfo, SEEK_LATEST, 0));
	t = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(target),
												ObjectIdGetDatum(InvalidOid),
												Int32GetDatum(-1)));
	if (TIMESTAMP_IS_NOBEGIN(t))
		PG_RETURN_INT64(seek(fcinfo, SEEK_EARLIEST, 0));
	if (TIMESTAMP_IS_NOEND(t))
		PG_RETURN_INT64(seek(fcinfo, SEEK_LATEST, 0));
	PG_RETURN_INT64(seek(fcinfo, SEEK_TIME, t));
}
