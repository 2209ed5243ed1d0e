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

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/base/validate.h"
#include "src/storage/stream.h"
#include "src/storage/tick.h"

PG_FUNCTION_INFO_V1(tx_subscribe);
PG_FUNCTION_INFO_V1(tx_unsubscribe);

/* Check tx_subscribe's options (arguments 2 to 8); the required ones are not null. */
static void
check_subscription_options(FunctionCallInfo fcinfo)
{
	char	   *start_from;

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
	if (PG_GETARG_INT32(4) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_retries must not be negative")));
	txm_check_backoff(PG_GETARG_ARRAYTYPE_P(5));
	txm_check_positive_interval("lease", PG_GETARG_INTERVAL_P(6));
	start_from = text_to_cstring(PG_GETARG_TEXT_PP(8));
	if (strcmp(start_from, "now") != 0 && strcmp(start_from, "earliest") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_from must be 'now' or 'earliest'"),
				 errdetail("The value given is \"%s\".", start_from)));
}

/*
 * Lock a subscription's row, if there is one, and check that the caller
 * may change it: its owner, a member of the owner role, or a superuser.
 * Returns its sub_id, or 0 if there is none.  In the caller's SPI
 * connection.
 */
static int32
lock_own_subscription(Datum topic, Datum group, const char *action)
{
	static const char *sql =
		"SELECT sub_id, owner FROM tx_message.subscriptions"
		" WHERE topic = $1 AND consumer_group = $2 FOR UPDATE";
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	Oid			owner;

	values[0] = topic;
	values[1] = group;
	if (txm_spi_exec(sql, 2, types, values, NULL, 1) == 0)
		return 0;
	owner = DatumGetObjectId(txm_spi_value(0, 2, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of the subscription of consumer group \"%s\" to topic \"%s\" to %s it",
						TextDatumGetCString(group), TextDatumGetCString(topic), action)));
	return DatumGetInt32(txm_spi_value(0, 1, &isnull));
}

/*
 * tx_subscribe(topic text, consumer_group text, tags text[],
 *				handler regprocedure, max_retries integer, backoff interval[],
 *				lease interval, ordered boolean, start_from text) RETURNS void
 *
 * Subscribing again updates the options and keeps the position.
 */
Datum
tx_subscribe(PG_FUNCTION_ARGS)
{
	static const char *upsert_sql =
		"INSERT INTO tx_message.subscriptions AS s"
		" (topic, consumer_group, tags, handler, max_retries, backoff, lease, ordered, start_from, owner)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
		" ON CONFLICT (topic, consumer_group) DO UPDATE"
		"   SET tags = excluded.tags, handler = excluded.handler,"
		"       max_retries = excluded.max_retries, backoff = excluded.backoff,"
		"       lease = excluded.lease, ordered = excluded.ordered, owner = excluded.owner,"
		"       altered_at = now()"
		" RETURNING sub_id, altered_at IS NULL";
	static const char *state_sql =
		"INSERT INTO tx_message.sub_state (sub_id, done_seq, updated_at) VALUES ($1, $2, now())";
	Oid			types[10] = {TEXTOID, TEXTOID, TEXTARRAYOID, REGPROCEDUREOID, INT4OID,
	INTERVALARRAYOID, INTERVALOID, BOOLOID, TEXTOID, REGROLEOID};
	Datum		values[10];
	char		nulls[10];
	char	   *topic;
	char	   *group;
	int32		topic_id;
	bool		isnull;

	static const char *required[] = {"topic", "consumer_group", NULL, NULL, "max_retries",
	"backoff", "lease", "ordered", "start_from"};

	for (int i = 0; i < lengthof(required); i++)
		if (required[i])
			txm_require_arg(fcinfo, i, required[i]);
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	group = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("topic", topic);
	txm_check_name("consumer group", group);
	topic_id = txm_lookup_topic(topic, false)->topic_id;
	check_subscription_options(fcinfo);

	for (int i = 0; i < 9; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = txm_spi_null(PG_ARGISNULL(i));
	}
	values[9] = ObjectIdGetDatum(GetUserId());
	nulls[9] = ' ';

	/* 'now' means after every message committed before this call */
	txm_sync_ticks();
	SPI_connect();
	lock_own_subscription(values[0], values[1], "change");
	txm_spi_exec(upsert_sql, 10, types, values, nulls, 1);
	if (DatumGetBool(txm_spi_value(0, 2, &isnull)))
	{
		Oid			state_types[2] = {INT4OID, INT8OID};
		Datum		state_values[2];
		bool		earliest = strcmp(TextDatumGetCString(values[8]), "earliest") == 0;

		state_values[0] = txm_spi_value(0, 1, &isnull);
		state_values[1] = Int64GetDatum(txm_stream_start(topic_id, earliest));
		txm_spi_exec(state_sql, 2, state_types, state_values, NULL, 0);
	}
	SPI_finish();
	txm_invalidate(txm_catalog()->subscriptions);
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
	static const char *drop_sql =
		"WITH st AS (DELETE FROM tx_message.sub_state WHERE sub_id = $1),"
		" l AS (DELETE FROM tx_message.leases WHERE sub_id = $1),"
		" r AS (DELETE FROM tx_message.retries WHERE sub_id = $1)"
		" DELETE FROM tx_message.subscriptions WHERE sub_id = $1";
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	char	   *topic;
	char	   *group;
	int32		sub_id;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "consumer_group");
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	group = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("topic", topic);
	txm_check_name("consumer group", group);

	SPI_connect();
	sub_id = lock_own_subscription(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), "drop");
	if (sub_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("consumer group \"%s\" is not subscribed to topic \"%s\"", group, topic)));
	values[0] = Int32GetDatum(sub_id);
	txm_spi_exec(drop_sql, 1, types, values, NULL, 0);
	SPI_finish();
	txm_invalidate(txm_catalog()->subscriptions);
	PG_RETURN_VOID();
}
