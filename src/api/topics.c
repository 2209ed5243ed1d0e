/*-------------------------------------------------------------------------
 *
 * topics.c
 *	  tx_create_topic, tx_alter_topic and tx_drop_topic.
 *
 * A topic belongs to the role that created it, for good; altering,
 * dropping and granting need 'admin' on it (acl.c).  Its check function
 * runs as the role that named it (check_owner), never as the worker's
 * superuser nor as whoever alters other options later.  Changes
 * send a relcache invalidation on tx_message.topics so that every backend's
 * topic cache (catalog.c) and subscription cache (subcache.c) forget the
 * old definition at commit.
 *
 * IDENTIFICATION
 *	  src/api/topics.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "src/api/topics.h"
#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/validate.h"
#include "src/storage/lineage.h"

PG_FUNCTION_INFO_V1(tx_create_topic);
PG_FUNCTION_INFO_V1(tx_alter_topic);
PG_FUNCTION_INFO_V1(tx_drop_topic);

static void
check_topic_options(FunctionCallInfo fcinfo, bool altering)
{
	/* argument positions are the same in tx_create_topic and tx_alter_topic */
	if (!PG_ARGISNULL(1))
		txm_check_positive_interval("retention", PG_GETARG_INTERVAL_P(1));
	else if (!altering)
		txm_require_arg(fcinfo, 1, "retention");
	/* tx_alter_topic takes '-' (0) for "no check function any more" */
	if (!PG_ARGISNULL(2) && (PG_GETARG_OID(2) != InvalidOid || !altering))
		txm_check_message_function(PG_GETARG_OID(2), "check function",
								   txm_catalog()->message_type, TEXTOID);
	if (!PG_ARGISNULL(3))
		txm_check_positive_interval("check_after", PG_GETARG_INTERVAL_P(3));
	else if (!altering)
		txm_require_arg(fcinfo, 3, "check_after");
	if (!PG_ARGISNULL(4))
		txm_check_positive_interval("check_interval", PG_GETARG_INTERVAL_P(4));
	else if (!altering)
		txm_require_arg(fcinfo, 4, "check_interval");
	if (!PG_ARGISNULL(5))
		txm_check_int_range("check_max", PG_GETARG_INT32(5), 1, TXM_MAX_COUNT);
	else if (!altering)
		txm_require_arg(fcinfo, 5, "check_max");
}

/*
 * A dead-letter topic named by tx_create_topic, tx_alter_topic or
 * tx_subscribe for messages of topic: an existing topic other than topic
 * itself (its copies would come back to it), on which the caller, who
 * becomes the identity the copies are sent with, holds 'send'.  "" is
 * "none" when allow_empty.
 */
void
txm_check_dead_letter_topic(const char *topic, const char *dead_letter_topic, bool allow_empty)
{
	if (allow_empty && dead_letter_topic[0] == '\0')
		return;
	txm_check_name("dead-letter topic", dead_letter_topic);
	if (strcmp(topic, dead_letter_topic) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic \"%s\" cannot be its own dead-letter topic", topic),
				 errdetail("Its dead letters would come back to it.")));
	txm_require_topic_privilege(txm_lookup_topic(dead_letter_topic, false), TXM_PRIV_SEND);
}

/* A topic's notify_channel: a channel name LISTEN accepts; "" is "none" when allow_empty. */
static void
check_notify_channel(const char *channel, bool allow_empty)
{
	if (allow_empty && channel[0] == '\0')
		return;
	if (channel[0] == '\0' || strlen(channel) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notify_channel must have 1 to %d bytes", NAMEDATALEN - 1),
				 errdetail("It has %zu bytes.", strlen(channel))));
}

/*
 * The options of tx_create_topic and tx_alter_topic that 1.1 added:
 * dead_letter_topic and notify_channel, at dlq_arg and dlq_arg + 1.  A
 * database still at 1.0 declares neither.
 */
static void
check_topic_options_1_1(FunctionCallInfo fcinfo, const char *topic, int dlq_arg, bool altering)
{
	if (PG_NARGS() <= dlq_arg + 1)
		return;
	if (!PG_ARGISNULL(dlq_arg))
		txm_check_dead_letter_topic(topic, text_to_cstring(PG_GETARG_TEXT_PP(dlq_arg)), altering);
	if (!PG_ARGISNULL(dlq_arg + 1))
		check_notify_channel(text_to_cstring(PG_GETARG_TEXT_PP(dlq_arg + 1)), altering);
}

/*
 * tx_create_topic(topic text, retention interval, check_function regprocedure,
 *				   check_after interval, check_interval interval,
 *				   check_max integer, if_not_exists boolean,
 *				   dead_letter_topic text, notify_channel text) RETURNS void
 */
Datum
tx_create_topic(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"INSERT INTO tx_message.topics"
		" (topic, retention, check_function, check_after, check_interval, check_max, owner,"
		"  check_owner)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $3 IS NOT NULL THEN $7 END)"
		" ON CONFLICT (topic) DO NOTHING";
	static const char *sql_1_1 =
		"INSERT INTO tx_message.topics"
		" (topic, retention, check_function, check_after, check_interval, check_max, owner,"
		"  check_owner, dead_letter_topic, dead_letter_owner, notify_channel)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $3 IS NOT NULL THEN $7 END,"
		"         $8, CASE WHEN $8 IS NOT NULL THEN $7 END, $9)"
		" ON CONFLICT (topic) DO NOTHING";
	Oid			types[9] = {TEXTOID, INTERVALOID, REGPROCEDUREOID, INTERVALOID,
	INTERVALOID, INT4OID, REGROLEOID, TEXTOID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', 'n', 'n'};
	char	   *topic;
	bool		v1_1 = PG_NARGS() > 8;

	txm_check_can_change("tx_create_topic()");
	txm_take_over_if_restored();
	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 6, "if_not_exists");
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	txm_check_name("topic", topic);
	check_topic_options(fcinfo, false);
	check_topic_options_1_1(fcinfo, topic, 7, false);

	for (int i = 0; i < 6; i++)
		values[i] = PG_GETARG_DATUM(i);
	nulls[2] = txm_spi_null(PG_ARGISNULL(2));
	values[6] = ObjectIdGetDatum(GetUserId());
	for (int i = 7; v1_1 && i < 9; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = txm_spi_null(PG_ARGISNULL(i));
	}

	SPI_connect();
	/* a dead-letter topic is not dropped while we name it */
	if (v1_1 && nulls[7] == ' ')
		txm_lock_topic(TextDatumGetCString(values[7]), false);
	if (txm_spi_exec(v1_1 ? sql_1_1 : sql, v1_1 ? 9 : 7, types, values, nulls, 0) == 0)
	{
		if (!PG_GETARG_BOOL(6))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("topic \"%s\" already exists", topic),
					 errhint("Use if_not_exists => true to ignore an existing topic, or tx_alter_topic() to change it.")));
		ereport(NOTICE,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("topic \"%s\" already exists, skipping", topic)));
	}
	SPI_finish();
	txm_invalidate(txm_catalog()->topics);
	/* a check function: the worker starts its executor at our commit */
	if (!PG_ARGISNULL(2))
		txm_at_commit_request_maintenance();
	PG_RETURN_VOID();
}

/*
 * Lock a topic's row: FOR UPDATE to change it, FOR KEY SHARE to add rows
 * that refer to it.  Waiting for a concurrent tx_drop_topic ends in "does
 * not exist" rather than in a foreign-key error.  In the caller's SPI
 * connection.
 */
void
txm_lock_topic(const char *topic, bool for_update)
{
	static const char *update_sql =
		"SELECT 1 FROM tx_message.topics WHERE topic = $1 FOR UPDATE";
	static const char *share_sql =
		"SELECT 1 FROM tx_message.topics WHERE topic = $1 FOR KEY SHARE";
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(topic);
	if (txm_spi_exec(for_update ? update_sql : share_sql, 1, types, values, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic \"%s\" does not exist", topic),
				 errhint("Create it with tx_create_topic('%s').", topic)));
}

/*
 * Check that the caller holds 'admin' on a topic, and lock its row against
 * concurrent changes.  In the caller's SPI connection.
 */
static void
lock_topic_for_admin(const char *topic)
{
	txm_require_topic_privilege(txm_lookup_topic(topic, false), TXM_PRIV_ADMIN);
	txm_lock_topic(topic, true);
}

/*
 * tx_alter_topic(topic text, retention interval, check_function regprocedure,
 *				  check_after interval, check_interval interval,
 *				  check_max integer, dead_letter_topic text,
 *				  notify_channel text) RETURNS void
 *
 * NULL leaves an option unchanged; check_function => '-' removes the check
 * function, '' the dead-letter topic or the channel.
 */
Datum
tx_alter_topic(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"UPDATE tx_message.topics"
		"   SET retention = coalesce($2, retention),"
		"       check_function = CASE WHEN $3 IS NULL THEN check_function"
		"                             WHEN $3::oid = 0 THEN NULL ELSE $3 END,"
		"       check_after = coalesce($4, check_after),"
		"       check_interval = coalesce($5, check_interval),"
		"       check_max = coalesce($6, check_max),"
		"       check_owner = CASE WHEN $3 IS NULL OR $3 = check_function THEN check_owner"
		"                          WHEN $3::oid = 0 THEN NULL ELSE $7 END,"
		"       altered_at = now()"
		" WHERE topic = $1";
	static const char *sql_1_1 =
		"UPDATE tx_message.topics"
		"   SET dead_letter_topic = CASE WHEN $8 IS NULL THEN dead_letter_topic"
		"                                WHEN $8 = '' THEN NULL ELSE $8 END,"
		"       dead_letter_owner = CASE WHEN $8 IS NULL THEN dead_letter_owner"
		"                                WHEN $8 = '' THEN NULL ELSE $7 END,"
		"       notify_channel = CASE WHEN $9 IS NULL THEN notify_channel"
		"                             WHEN $9 = '' THEN NULL ELSE $9 END"
		" WHERE topic = $1";
	Oid			types[9] = {TEXTOID, INTERVALOID, REGPROCEDUREOID, INTERVALOID,
	INTERVALOID, INT4OID, REGROLEOID, TEXTOID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', 'n', 'n'};
	char	   *topic;
	bool		v1_1 = PG_NARGS() > 7;
	char	   *dead_letter;

	txm_check_can_change("tx_alter_topic()");
	txm_require_arg(fcinfo, 0, "topic");
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	txm_check_name("topic", topic);
	check_topic_options(fcinfo, true);
	check_topic_options_1_1(fcinfo, topic, 6, true);

	for (int i = 0; i < 6; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = txm_spi_null(PG_ARGISNULL(i));
	}
	values[6] = ObjectIdGetDatum(GetUserId());
	for (int i = 7; v1_1 && i < 9; i++)
	{
		values[i] = PG_ARGISNULL(i - 1) ? (Datum) 0 : PG_GETARG_DATUM(i - 1);
		nulls[i] = txm_spi_null(PG_ARGISNULL(i - 1));
	}

	SPI_connect();
	/*
	 * The dead-letter topic is not dropped while we name it.  Two topics
	 * naming each other at once lock their rows in name order, not in
	 * opposite orders.
	 */
	dead_letter = v1_1 && nulls[7] == ' ' && VARSIZE_ANY_EXHDR(DatumGetTextPP(values[7])) > 0 ?
		TextDatumGetCString(values[7]) : NULL;
	if (dead_letter && strcmp(dead_letter, topic) < 0)
		txm_lock_topic(dead_letter, false);
	lock_topic_for_admin(topic);
	if (dead_letter && strcmp(dead_letter, topic) > 0)
		txm_lock_topic(dead_letter, false);
	txm_spi_exec(sql, 7, types, values, nulls, 0);
	if (v1_1 && (nulls[7] == ' ' || nulls[8] == ' '))
		txm_spi_exec(sql_1_1, 9, types, values, nulls, 0);
	SPI_finish();
	txm_invalidate(txm_catalog()->topics);
	/* a check function: the worker starts its executor at our commit */
	if (!PG_ARGISNULL(2))
		txm_at_commit_request_maintenance();
	PG_RETURN_VOID();
}

/*
 * What tx_drop_topic removes that 1.1 added.  A topic that subscriptions or
 * topics name as their dead-letter topic is dropped only with cascade,
 * which removes it from them: a topic created again under the name later
 * must not receive their dead letters.  Naming one locks its row FOR KEY
 * SHARE and the caller holds it FOR UPDATE, so those that name it are
 * found with a fresh snapshot; under REPEATABLE READ one named after our
 * snapshot cannot be updated, and is a serialization failure.  The topic's
 * dedup keys go too.  In the caller's SPI connection.
 */
static void
drop_rows_1_1(const char *topic, bool cascade)
{
	static const char *find_sql =
		"SELECT (SELECT count(*) FROM tx_message.subscriptions WHERE dead_letter_topic = $1),"
		"       (SELECT count(*) FROM tx_message.topics WHERE dead_letter_topic = $1 AND topic <> $1)";
	static const char *clear_sql =
		"WITH s AS (UPDATE tx_message.subscriptions"
		"              SET dead_letter_topic = NULL, dead_letter_owner = NULL"
		"            WHERE dead_letter_topic = $1 RETURNING 1),"
		" t AS (UPDATE tx_message.topics SET dead_letter_topic = NULL, dead_letter_owner = NULL"
		"        WHERE dead_letter_topic = $1 RETURNING 1)"
		" SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM t)";
	static const char *dedup_sql =
		"DELETE FROM tx_message.dedup WHERE topic_id = (SELECT topic_id FROM tx_message.topics WHERE topic = $1)";
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int64		subs;
	int64		topics;

	values[0] = CStringGetTextDatum(topic);
	txm_spi_exec(dedup_sql, 1, types, values, NULL, 0);
	txm_spi_exec_latest(find_sql, 1, types, values, NULL, 1);
	subs = DatumGetInt64(txm_spi_value(0, 1, &isnull));
	topics = DatumGetInt64(txm_spi_value(0, 2, &isnull));
	if (subs + topics == 0)
		return;
	if (!cascade)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop topic \"%s\" because it is a dead-letter topic", topic),
				 errdetail("It is the dead-letter topic of %lld subscription(s) and %lld topic(s).",
						   (long long) subs, (long long) topics),
				 errhint("Use cascade => true to drop it and send their dead letters nowhere but to tx_message.dead_letters.")));
	txm_spi_exec(clear_sql, 1, types, values, NULL, 1);
	if (DatumGetInt64(txm_spi_value(0, 1, &isnull)) != subs ||
		DatumGetInt64(txm_spi_value(0, 2, &isnull)) != topics)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent change of topic \"%s\"", topic),
				 errdetail("It was named as a dead-letter topic after this transaction's snapshot."),
				 errhint("The transaction might succeed if retried.")));
}

/*
 * tx_drop_topic(topic text, cascade boolean) RETURNS void
 *
 * Removes the topic, its pending half and delayed messages and, with
 * cascade, its subscriptions with their progress.  Dead letters stay until
 * purged.  Committed log rows are left to the log rotation.
 */
Datum
tx_drop_topic(PG_FUNCTION_ARGS)
{
	static const char *subs_sql =
		"SELECT string_agg(quote_literal(consumer_group), ', ' ORDER BY consumer_group)"
		"  FROM tx_message.subscriptions WHERE topic = $1 HAVING count(*) > 0";
	static const char *groups_sql =
		"SELECT 1 FROM tx_message.consumer_groups g"
		" WHERE g.consumer_group IN"
		"  (SELECT consumer_group FROM tx_message.subscriptions WHERE topic = $1)"
		" ORDER BY g.consumer_group FOR UPDATE";
	static const char *drop_sql =
		"WITH t AS (SELECT topic_id FROM tx_message.topics WHERE topic = $1),"
		" s AS (DELETE FROM tx_message.subscriptions WHERE topic = $1"
		"       RETURNING sub_id, consumer_group),"
		" g AS (DELETE FROM tx_message.consumer_groups g"
		"        WHERE g.consumer_group IN (SELECT consumer_group FROM s)"
		"          AND NOT EXISTS (SELECT 1 FROM tx_message.subscriptions s2"
		"                           WHERE s2.consumer_group = g.consumer_group"
		"                             AND s2.topic <> $1)),"
		" st AS (DELETE FROM tx_message.sub_state WHERE sub_id IN (SELECT sub_id FROM s)),"
		" l AS (DELETE FROM tx_message.leases WHERE sub_id IN (SELECT sub_id FROM s)),"
		" r AS (DELETE FROM tx_message.retries_data WHERE sub_id IN (SELECT sub_id FROM s)),"
		" h AS (DELETE FROM tx_message.half_messages WHERE topic_id IN (SELECT topic_id FROM t)),"
		" d AS (DELETE FROM tx_message.delayed WHERE topic_id IN (SELECT topic_id FROM t)),"
		" sl AS (DELETE FROM tx_message.slices WHERE topic_id IN (SELECT topic_id FROM t)),"
		" tg AS (DELETE FROM tx_message.topic_grants WHERE topic = $1)"
		" DELETE FROM tx_message.topics WHERE topic = $1";
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *topic;
	const TxmCatalog *c;

	txm_check_can_change("tx_drop_topic()");
	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "cascade");
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	txm_check_name("topic", topic);
	c = txm_catalog();
	values[0] = CStringGetTextDatum(topic);

	SPI_connect();
	lock_topic_for_admin(topic);
	/*
	 * Lock the groups first, in a statement of their own: the drop below
	 * then sees every subscription a concurrent tx_subscribe added to them
	 * before it keeps or deletes a group.
	 */
	txm_spi_exec(groups_sql, 1, types, values, NULL, 0);
	if (!PG_GETARG_BOOL(1) && txm_spi_exec(subs_sql, 1, types, values, NULL, 0) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop topic \"%s\" because it has subscriptions", topic),
				 errdetail("Consumer groups subscribed: %s.",
						   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errhint("Unsubscribe them first, or use cascade => true.")));
	if (c->v1_1)
		drop_rows_1_1(topic, PG_GETARG_BOOL(1));
	txm_spi_exec(drop_sql, 1, types, values, NULL, 0);
	SPI_finish();
	txm_invalidate(c->topics);
	txm_invalidate(c->subscriptions);
	PG_RETURN_VOID();
}
