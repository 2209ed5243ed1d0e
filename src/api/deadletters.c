/*-------------------------------------------------------------------------
 *
 * deadletters.c
 *	  Dead letters: tx_redrive and tx_purge_dead_letters.
 *
 * A dead letter of a consumer group belongs to the owner of its
 * subscription; one of an exhausted check-back (consumer group NULL) to the
 * owner of its topic.  Both functions refuse to touch any dead letter the
 * caller does not own (or is not a member of the owner of).
 *
 * IDENTIFICATION
 *	  src/api/deadletters.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/validate.h"

PG_FUNCTION_INFO_V1(tx_redrive);
PG_FUNCTION_INFO_V1(tx_purge_dead_letters);

/* The count of the statement just run, as returned by SELECT count(*). */
static int64
counted(void)
{
	bool		isnull;

	return DatumGetInt64(txm_spi_value(0, 1, &isnull));
}

/*
 * Dead letters of a group get a fresh round of attempts: they become due
 * retries.  In the caller's SPI connection.
 */
static int
redrive_group(Datum group, Datum ids, bool ids_null)
{
	static const char *sql =
		"WITH d AS ("
		"  DELETE FROM tx_message.dead_letters dl USING tx_message.subscriptions s"
		"   WHERE dl.consumer_group = $1 AND ($2::bigint[] IS NULL OR dl.msg_id = ANY ($2))"
		"     AND s.consumer_group = dl.consumer_group AND s.topic = dl.topic"
		"  RETURNING dl.*, s.sub_id)"
		" INSERT INTO tx_message.retries"
		"  (sub_id, msg_id, topic_id, sent_at, key, tags, headers, payload, attempt, state,"
		"   due_at, last_error, first_failed_at)"
		" SELECT d.sub_id, d.msg_id, t.topic_id, d.sent_at, d.key, d.tags, d.headers, d.payload,"
		"        0, 'waiting', clock_timestamp(), d.last_error, coalesce(d.first_failed_at, now())"
		"   FROM d JOIN tx_message.topics t ON t.topic = d.topic"
		" ON CONFLICT (sub_id, msg_id) DO NOTHING";
	static const char *denied_sql =
		"SELECT count(*) FROM tx_message.dead_letters dl"
		"  JOIN tx_message.subscriptions s ON s.consumer_group = dl.consumer_group AND s.topic = dl.topic"
		" WHERE dl.consumer_group = $1 AND ($2::bigint[] IS NULL OR dl.msg_id = ANY ($2))"
		"   AND NOT pg_catalog.pg_has_role($3, s.owner, 'USAGE')";
	Oid			types[3] = {TEXTOID, INT8ARRAYOID, OIDOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			n;

	values[0] = group;
	values[1] = ids;
	nulls[1] = txm_spi_null(ids_null);
	values[2] = ObjectIdGetDatum(GetUserId());
	txm_spi_exec(denied_sql, 3, types, values, nulls, 1);
	if (counted() > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of the subscriptions of consumer group \"%s\" to redrive its dead letters",
						TextDatumGetCString(group))));
	n = txm_spi_exec(sql, 2, types, values, nulls, 0);
	if (n > 0)
		txm_at_commit_broadcast();
	return n;
}

/*
 * Dead letters of exhausted check-backs go back to the half state with a
 * fresh check count.  In the caller's SPI connection.
 */
static int
redrive_half(Datum ids, bool ids_null)
{
	static const char *sql =
		"WITH d AS ("
		"  DELETE FROM tx_message.dead_letters dl"
		"   WHERE dl.consumer_group IS NULL AND ($1::bigint[] IS NULL OR dl.msg_id = ANY ($1))"
		"     AND EXISTS (SELECT 1 FROM tx_message.topics t WHERE t.topic = dl.topic)"
		"  RETURNING dl.*)"
		" INSERT INTO tx_message.half_messages"
		"  (msg_id, topic_id, sent_at, key, tags, headers, payload, state, checks, last_check_at)"
		" SELECT d.msg_id, t.topic_id, d.sent_at, d.key, d.tags, d.headers, d.payload,"
		"        'half', 0, now()"
		"   FROM d JOIN tx_message.topics t ON t.topic = d.topic"
		" ON CONFLICT (msg_id) DO NOTHING";
	static const char *denied_sql =
		"SELECT count(*) FROM tx_message.dead_letters dl"
		"  JOIN tx_message.topics t ON t.topic = dl.topic"
		" WHERE dl.consumer_group IS NULL AND ($1::bigint[] IS NULL OR dl.msg_id = ANY ($1))"
		"   AND NOT pg_catalog.pg_has_role($2, t.owner, 'USAGE')";
	Oid			types[2] = {INT8ARRAYOID, OIDOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	values[0] = ids;
	nulls[0] = txm_spi_null(ids_null);
	values[1] = ObjectIdGetDatum(GetUserId());
	txm_spi_exec(denied_sql, 2, types, values, nulls, 1);
	if (counted() > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of the topic to redrive its check-back dead letters")));
	return txm_spi_exec(sql, 1, types, values, nulls, 0);
}

/*
 * tx_redrive(consumer_group text, msg_ids bigint[]) RETURNS integer
 *
 * Gives dead letters of a group a fresh round of attempts (all of them when
 * msg_ids is NULL).  Dead letters from exhausted check-backs (group NULL)
 * go back to the half state with a fresh check count.
 */
Datum
tx_redrive(PG_FUNCTION_ARGS)
{
	bool		ids_null = PG_ARGISNULL(1);
	Datum		ids = ids_null ? (Datum) 0 : PG_GETARG_DATUM(1);
	int			n;

	txm_catalog();
	if (!ids_null)
	{
		ArrayType  *array = PG_GETARG_ARRAYTYPE_P(1);

		txm_check_one_dimension(array, "msg_ids");
		if (array_contains_nulls(array))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("msg_ids must not contain nulls")));
	}
	SPI_connect();
	if (PG_ARGISNULL(0))
		n = redrive_half(ids, ids_null);
	else
	{
		txm_check_name("consumer group", text_to_cstring(PG_GETARG_TEXT_PP(0)));
		n = redrive_group(PG_GETARG_DATUM(0), ids, ids_null);
	}
	SPI_finish();
	if (n > 0)
		txm_at_commit_request_maintenance();
	PG_RETURN_INT32(n);
}

/*
 * tx_purge_dead_letters(consumer_group text, older_than interval)
 *	RETURNS bigint
 *
 * Deletes the dead letters of a group (of every group when NULL) that died
 * at least older_than ago.
 */
Datum
tx_purge_dead_letters(PG_FUNCTION_ARGS)
{
	static const char *denied_sql =
		"SELECT count(*) FROM tx_message.dead_letters dl"
		"  LEFT JOIN tx_message.subscriptions s ON s.consumer_group = dl.consumer_group AND s.topic = dl.topic"
		"  LEFT JOIN tx_message.topics t ON t.topic = dl.topic"
		" WHERE ($1::text IS NULL OR dl.consumer_group = $1) AND dl.dead_at <= now() - $2"
		"   AND NOT pg_catalog.pg_has_role($3, coalesce(s.owner, t.owner, $4), 'USAGE')";
	static const char *sql =
		"DELETE FROM tx_message.dead_letters"
		" WHERE ($1::text IS NULL OR consumer_group = $1) AND dead_at <= now() - $2";
	Oid			types[4] = {TEXTOID, INTERVALOID, OIDOID, OIDOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			n;

	txm_catalog();
	txm_require_arg(fcinfo, 1, "older_than");
	txm_check_not_negative("older_than", PG_GETARG_INTERVAL_P(1));
	if (!PG_ARGISNULL(0))
		txm_check_name("consumer group", text_to_cstring(PG_GETARG_TEXT_PP(0)));
	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = txm_spi_null(PG_ARGISNULL(0));
	values[1] = PG_GETARG_DATUM(1);
	values[2] = ObjectIdGetDatum(GetUserId());
	/* dead letters of a dropped topic are the extension owner's */
	values[3] = ObjectIdGetDatum(txm_catalog()->owner);
	SPI_connect();
	txm_spi_exec(denied_sql, 4, types, values, nulls, 1);
	if (counted() > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of the subscriptions or topics whose dead letters are purged"),
				 errhint("Name a consumer group you own.")));
	n = txm_spi_exec(sql, 2, types, values, nulls, 0);
	SPI_finish();
	PG_RETURN_INT64(n);
}
