/*-------------------------------------------------------------------------
 *
 * subs.c
 *	  Subscriptions (consumer groups): tx_subscribe and tx_unsubscribe.
 *
 * A subscription is a (topic, consumer_group) pair.  Every group subscribed
 * to a topic reads the same position stream with its own leases (fan-out
 * without copies); sub_state holds its watermark.  Changes send a relcache
 * invalidation on tx_message.subscriptions, so that every backend's
 * subscription cache (subcache.c) forgets the old definition at commit.
 *
 * IDENTIFICATION
 *	  src/api/subs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"

#include "src/api/topics.h"
#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/filter.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/subcache.h"
#include "src/base/validate.h"
#include "src/storage/lineage.h"
#include "src/storage/stream.h"
#include "src/storage/tick.h"

PG_FUNCTION_INFO_V1(tx_subscribe);
PG_FUNCTION_INFO_V1(tx_unsubscribe);

/* Where a subscription starts: start_from, parsed. */
typedef struct StartFrom
{
	bool		given;			/* NULL: 'now' for a new subscription */
	bool		earliest;
	bool		at_time;
	TimestampTz time;
	char	   *text;			/* as stored: 'now', 'earliest' or an ISO 8601 time in UTC */
} StartFrom;

/*
 * start_from: 'now' (or 'latest'), 'earliest', or a timestamp in any form
 * timestamptz accepts (it starts at the first message committed at or after
 * it, as tx_seek does).
 */
static void
parse_start_from(FunctionCallInfo fcinfo, int argno, StartFrom *sf)
{
	char	   *value;

	memset(sf, 0, sizeof(*sf));
	sf->text = "now";
	if (PG_ARGISNULL(argno))
		return;
	sf->given = true;
	value = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(value, "now") == 0 || strcmp(value, "latest") == 0)
		return;
	if (strcmp(value, "earliest") == 0)
	{
		sf->earliest = true;
		sf->text = "earliest";
		return;
	}
	/* a time has digits: words such as 'yesterday' or 'epoch' are refused */
	if (strpbrk(value, "0123456789") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_from must be 'now', 'earliest' or a timestamp"),
				 errdetail("The value given is \"%s\".", value)));
	if (!txm_catalog()->v1_1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("start_from as a time needs version 1.1 of the extension tx_message"),
				 errhint("Run ALTER EXTENSION tx_message UPDATE.")));
	sf->at_time = true;
	sf->time = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(value),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
	/* stored as ISO 8601 text, which the table's check wants to begin with a year */
	if (sf->time < (TimestampTz) (date2j(1970, 1, 1) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY ||
		sf->time >= (TimestampTz) (date2j(10000, 1, 1) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("start_from must be a time from 1970 to 9999"),
				 errdetail("The value given is \"%s\".", value)));
	{
		char		buf[MAXDATELEN + 1];
		int			utc = 0;

		JsonEncodeDateTime(buf, TimestampTzGetDatum(sf->time), TIMESTAMPTZOID, &utc);
		sf->text = pstrdup(buf);
	}
}

/* Check tx_subscribe's options (arguments 2 to 7 and 9 to 11); the required ones are not null. */
static void
check_subscription_options(FunctionCallInfo fcinfo, const char *topic)
{
	if (!PG_ARGISNULL(2))
	{
		ArrayType  *tags = PG_GETARG_ARRAYTYPE_P(2);

		txm_check_tags(tags, "tags");
		if (ArrayGetNItems(ARR_NDIM(tags), ARR_DIMS(tags)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tags must not be empty"),
					 errhint("Pass NULL to receive messages whatever their tags.")));
	}
	if (!PG_ARGISNULL(3))
		txm_check_message_function(PG_GETARG_OID(3), "handler", txm_catalog()->message_type,
								   InvalidOid);
	txm_check_int_range("max_retries", PG_GETARG_INT32(4), 0, TXM_MAX_COUNT);
	txm_check_backoff(PG_GETARG_ARRAYTYPE_P(5));
	txm_check_positive_interval("lease", PG_GETARG_INTERVAL_P(6));
	/* a database still at 1.0 declares neither dead_letter_topic nor filter */
	if (PG_NARGS() > 10)
	{
		if (!PG_ARGISNULL(9))
			txm_check_dead_letter_topic(topic, text_to_cstring(PG_GETARG_TEXT_PP(9)), false);
		if (!PG_ARGISNULL(10))
			txm_check_filter(PG_GETARG_JSONPATH_P(10));
	}
	if (PG_NARGS() > 11)
		txm_check_int_range("handler_executors", PG_GETARG_INT32(11), 1, TXM_MAX_EXECUTORS);
}

/*
 * Subscribing again keeps the position: say so when start_from asked for
 * another one than the subscription started from.
 */
static void
report_start_kept(const char *topic, const char *group, const StartFrom *sf, const char *stored)
{
	if (!sf->given || strcmp(sf->text, stored) == 0)
		return;
	ereport(NOTICE,
			(errmsg("consumer group \"%s\" is subscribed to topic \"%s\" already: its position is kept",
					group, topic),
			 errdetail("It started from %s; start_from applies to a new subscription only.", stored),
			 errhint("Move its position with tx_seek('%s', '%s', '%s').", group, topic,
					 strcmp(sf->text, "now") == 0 ? "latest" : sf->text)));
}

/*
 * Find or create a consumer group, lock its row against a concurrent
 * tx_unsubscribe or tx_drop_topic that would remove it, and check that the
 * caller has the privileges of its owner (the role that created it).  The
 * check comes before anything is written: a look-up with a share lock,
 * then, for a new group, an insert (again if another session's got there
 * first).  In the caller's SPI connection.
 */
static void
lock_group(Datum group)
{
	static const char *find_sql =
		"SELECT owner FROM tx_message.consumer_groups WHERE consumer_group = $1 FOR KEY SHARE";
	static const char *create_sql =
		"INSERT INTO tx_message.consumer_groups (consumer_group, owner) VALUES ($1, $2)"
		" ON CONFLICT (consumer_group) DO NOTHING";
	Oid			types[2] = {TEXTOID, REGROLEOID};
	Datum		values[2];
	bool		isnull;
	Oid			owner;
	const char *owner_name;

	values[0] = group;
	values[1] = ObjectIdGetDatum(GetUserId());
	while (txm_spi_exec(find_sql, 1, types, values, NULL, 1) == 0)
	{
		if (txm_spi_exec(create_sql, 2, types, values, NULL, 0) == 1)
			return;
		CHECK_FOR_INTERRUPTS();
	}
	owner = DatumGetObjectId(txm_spi_value(0, 1, &isnull));
	txm_require_group_member(TextDatumGetCString(group), owner);
	/* a superuser passes any membership check: say whose group it joins */
	if (owner != GetUserId() && !is_member_of_role_nosuper(GetUserId(), owner))
	{
		owner_name = GetUserNameFromId(owner, true);
		ereport(NOTICE,
				(errmsg("consumer group \"%s\" belongs to role \"%s\"",
						TextDatumGetCString(group), owner_name ? owner_name : "?"),
				 errdetail("Its members can receive this subscription's messages and change it.")));
	}
}

/* Is the group subscribed to the topic already? */
static bool
subscribed(int32 topic_id, const char *group)
{
	int			nsubs;
	TxmSub	   *subs = txm_group_subs(group, &nsubs, true);

	for (int i = 0; i < nsubs; i++)
		if (subs[i].topic_id == topic_id)
			return true;
	return false;
}

/*
 * tx_subscribe(topic text, consumer_group text, tags text[],
 *				handler regprocedure, max_retries integer, backoff interval[],
 *				lease interval, ordered boolean, start_from text,
 *				dead_letter_topic text, filter jsonpath,
 *				handler_executors integer) RETURNS void
 *
 * Subscribing again updates the options and keeps the position.  The
 * handler runs as the role that named it, and dead letters are sent to the
 * dead-letter topic with the privileges of the role that named it last
 * (who held 'send' on it then).
 */
Datum
tx_subscribe(PG_FUNCTION_ARGS)
{
#define UPSERT_SQL(cols, values, sets) \
		"INSERT INTO tx_message.subscriptions AS s" \
		" (topic, consumer_group, tags, handler, max_retries, backoff, lease, ordered, start_from," \
		"  owner" cols ")" \
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10" values ")" \
		" ON CONFLICT (topic, consumer_group) DO UPDATE" \
		"   SET tags = excluded.tags, handler = excluded.handler," \
		"       max_retries = excluded.max_retries, backoff = excluded.backoff," \
		"       lease = excluded.lease, ordered = excluded.ordered," \
		"       owner = CASE WHEN s.handler IS DISTINCT FROM excluded.handler" \
		"                    THEN excluded.owner ELSE s.owner END," sets \
		"       altered_at = now()" \
		" RETURNING sub_id, altered_at IS NULL, start_from"
	static const char *upsert_sql_1_0 = UPSERT_SQL("", "", "");
	static const char *upsert_sql =
		UPSERT_SQL(", dead_letter_topic, dead_letter_owner, filter, handler_executors",
				   ", $11, CASE WHEN $11 IS NOT NULL THEN $10 END, $12, $13",
				   "       dead_letter_topic = excluded.dead_letter_topic,"
				   "       dead_letter_owner = excluded.dead_letter_owner,"
				   "       filter = excluded.filter,"
				   "       handler_executors = excluded.handler_executors,");
	static const char *state_sql =
		"INSERT INTO tx_message.sub_state (sub_id, done_seq, updated_at) VALUES ($1, $2, now())";
	Oid			types[13] = {TEXTOID, TEXTOID, TEXTARRAYOID, REGPROCEDUREOID, INT4OID,
	INTERVALARRAYOID, INTERVALOID, BOOLOID, TEXTOID, REGROLEOID, TEXTOID, JSONPATHOID, INT4OID};
	Datum		values[13];
	char		nulls[13];
	char	   *topic;
	char	   *group;
	int32		topic_id;
	bool		isnull;
	bool		v1_1 = PG_NARGS() > 10;
	StartFrom	sf;

	static const char *required[] = {"topic", "consumer_group", NULL, NULL, "max_retries",
	"backoff", "lease", "ordered", NULL, NULL, NULL, "handler_executors"};

	txm_check_can_change("tx_subscribe()");
	txm_take_over_if_restored();
	for (int i = 0; i < lengthof(required) && i < PG_NARGS(); i++)
		if (required[i])
			txm_require_arg(fcinfo, i, required[i]);
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	group = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("topic", topic);
	txm_check_name("consumer group", group);
	topic_id = txm_topic_id_for(topic, TXM_PRIV_RECEIVE);
	check_subscription_options(fcinfo, topic);
	parse_start_from(fcinfo, 8, &sf);

	for (int i = 0; i < 13; i++)
	{
		int			arg = i < 9 ? i : i - 1;

		if (i == 9)
			continue;
		values[i] = arg < PG_NARGS() && !PG_ARGISNULL(arg) ? PG_GETARG_DATUM(arg) : (Datum) 0;
		nulls[i] = txm_spi_null(arg >= PG_NARGS() || PG_ARGISNULL(arg));
	}
	values[8] = CStringGetTextDatum(sf.text);
	nulls[8] = ' ';
	values[9] = ObjectIdGetDatum(GetUserId());
	nulls[9] = ' ';

	/*
	 * 'now' means after every message committed before this call, and a
	 * time counts the messages committed until this call: for a new
	 * subscription, wait for whoever ticks if need be.  Changing the
	 * options of one keeps its position, and waits for nothing.
	 */
	txm_sync_ticks(!subscribed(topic_id, group) && !sf.earliest, txm_topic_bit(topic_id),
				   TXM_WAIT_EAGER);
	SPI_connect();
	txm_lock_topic(topic, false);
	/* a dead-letter topic is not dropped while we name it */
	if (v1_1 && nulls[10] == ' ')
		txm_lock_topic(TextDatumGetCString(values[10]), false);
	lock_group(values[1]);
	txm_spi_exec(v1_1 ? upsert_sql : upsert_sql_1_0, v1_1 ? 13 : 10, types, values, nulls, 1);
	if (DatumGetBool(txm_spi_value(0, 2, &isnull)))
	{
		Oid			state_types[2] = {INT4OID, INT8OID};
		Datum		state_values[2];

		state_values[0] = txm_spi_value(0, 1, &isnull);
		state_values[1] = Int64GetDatum(sf.at_time ? txm_stream_seq_at(topic_id, sf.time) :
										txm_stream_start(topic_id, sf.earliest));
		txm_spi_exec(state_sql, 2, state_types, state_values, NULL, 0);
	}
	else
		report_start_kept(topic, group, &sf, TextDatumGetCString(txm_spi_value(0, 3, &isnull)));
	SPI_finish();
	txm_invalidate(txm_catalog()->subscriptions);
	/* the worker starts or wakes the executors at our commit, not after naptime */
	if (!PG_ARGISNULL(3))
		txm_at_commit_request_maintenance();
	PG_RETURN_VOID();
}

/*
 * tx_unsubscribe(topic text, consumer_group text) RETURNS void
 *
 * Removes the subscription with its progress, leases and pending retries.
 * Dead letters stay until purged.
 */
Datum
tx_unsubscribe(PG_FUNCTION_ARGS)
{
	static const char *find_sql =
		"SELECT s.sub_id, g.owner FROM tx_message.subscriptions s"
		"  JOIN tx_message.consumer_groups g USING (consumer_group)"
		" WHERE s.topic = $1 AND s.consumer_group = $2 FOR UPDATE";
	static const char *drop_sql =
		"WITH st AS (DELETE FROM tx_message.sub_state WHERE sub_id = $1),"
		" l AS (DELETE FROM tx_message.leases WHERE sub_id = $1),"
		" r AS (DELETE FROM tx_message.retries_data WHERE sub_id = $1),"
		" s AS (DELETE FROM tx_message.subscriptions WHERE sub_id = $1)"
		" DELETE FROM tx_message.consumer_groups g"
		" WHERE g.consumer_group = $2 AND NOT EXISTS"
		"  (SELECT 1 FROM tx_message.subscriptions s2"
		"    WHERE s2.consumer_group = $2 AND s2.sub_id <> $1)";
	Oid			types[2] = {TEXTOID, TEXTOID};
	Oid			drop_types[2] = {INT4OID, TEXTOID};
	Datum		values[2];
	char	   *topic;
	char	   *group;
	bool		isnull;
	bool		topic_admin;

	txm_check_can_change("tx_unsubscribe()");
	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "consumer_group");
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	group = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("topic", topic);
	txm_check_name("consumer group", group);

	topic_admin = txm_has_topic_privilege(txm_lookup_topic(topic, false), GetUserId(),
										  TXM_PRIV_ADMIN);

	SPI_connect();
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	if (txm_spi_exec(find_sql, 2, types, values, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("consumer group \"%s\" is not subscribed to topic \"%s\"", group, topic)));
	/* the group's team, or an admin of the topic, may end a subscription */
	if (!topic_admin)
		txm_require_group_member(group, DatumGetObjectId(txm_spi_value(0, 2, &isnull)));
	values[0] = txm_spi_value(0, 1, &isnull);
	txm_spi_exec(drop_sql, 2, drop_types, values, NULL, 0);
	SPI_finish();
	txm_invalidate(txm_catalog()->subscriptions);
	PG_RETURN_VOID();
}
