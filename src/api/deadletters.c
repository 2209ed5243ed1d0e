/*-------------------------------------------------------------------------
 *
 * deadletters.c
 *	  Dead letters: tx_redrive, tx_purge_dead_letters, tx_redrive_half and
 *	  tx_purge_half_dead_letters.
 *
 * Each function acts on one kind: the dead letters of one consumer group,
 * which need the privileges of the group's owner and 'receive' on their
 * topics, or those of exhausted check-backs, which need 'admin' on their
 * topics.  A dead letter keeps its topic's id: one of a dropped topic is the
 * extension owner's, even once a new topic has the same name.  The
 * privileges are checked on the topics of the rows a call names, and the
 * statement that acts touches the rows of those topics only.
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

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/validate.h"

PG_FUNCTION_INFO_V1(tx_redrive);
PG_FUNCTION_INFO_V1(tx_purge_dead_letters);
PG_FUNCTION_INFO_V1(tx_redrive_half);
PG_FUNCTION_INFO_V1(tx_purge_half_dead_letters);

/* The msg_ids argument: NULL (every dead letter), or ids in one dimension. */
static void
ids_arg(FunctionCallInfo fcinfo, int argno, Datum *ids, char *null)
{
	*null = txm_spi_null(PG_ARGISNULL(argno));
	*ids = PG_ARGISNULL(argno) ? (Datum) 0 : PG_GETARG_DATUM(argno);
	if (!PG_ARGISNULL(argno))
	{
		ArrayType  *array = PG_GETARG_ARRAYTYPE_P(argno);

		txm_check_one_dimension(array, "msg_ids");
		if (array_contains_nulls(array))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("msg_ids must not contain nulls")));
	}
}

/*
 * The topics (by id) of the dead letters a call names, that the caller
 * holds privilege on, as an array for "topic_id = ANY (...)".  topics_sql
 * takes $1 the group (NULL for check-back dead letters), $2 the ids or
 * NULL, $3 older_than or NULL.  A topic without the privilege is an error,
 * unless skip_denied: then its dead letters are left out.  The statement
 * that acts is limited to these topics, so a dead letter of another topic
 * that arrives in between is never touched.  In the caller's SPI
 * connection.
 */
static Datum
allowed_topics(Datum *values, const char *nulls, int privilege, bool skip_denied)
{
	static const char *topics_sql =
		"SELECT DISTINCT topic_id, topic FROM tx_message.dead_letters_data"
		" WHERE consumer_group IS NOT DISTINCT FROM $1"
		"   AND ($2::bigint[] IS NULL OR msg_id = ANY ($2))"
		"   AND ($3::interval IS NULL OR dead_at <= now() - $3)";
	Oid			types[3] = {TEXTOID, INT8ARRAYOID, INTERVALOID};
	Oid			role = GetUserId();
	int			n = txm_spi_exec(topics_sql, 3, types, values, nulls, 0);
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	char	  **names = palloc(sizeof(char *) * Max(n, 1));
	int			nallowed = 0;

	/* copied out: the checks below may run statements of their own */
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = txm_spi_value(i, 1, &isnull);
		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	for (int i = 0; i < n; i++)
	{
		if (txm_may_id(DatumGetInt32(ids[i]), role, privilege))
			ids[nallowed++] = ids[i];
		else if (!skip_denied)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for topic \"%s\"", names[i]),
					 errdetail("Role \"%s\" needs the \"%s\" privilege on it for these dead letters.",
							   GetUserNameFromId(role, false), txm_privilege_name(privilege))));
	}
	return PointerGetDatum(construct_array(ids, nallowed, INT4OID, 4, true, TYPALIGN_INT));
}

/*
 * The owner of a consumer group, or InvalidOid if there is no such group.
 * In the caller's SPI connection.
 */
static Oid
group_owner(Datum group)
{
	static const char *sql =
		"SELECT owner FROM tx_message.consumer_groups WHERE consumer_group = $1";
	Oid			types[1] = {TEXTOID};
	bool		isnull;

	if (txm_spi_exec(sql, 1, types, &group, NULL, 1) == 0)
		return InvalidOid;
	return DatumGetObjectId(txm_spi_value(0, 1, &isnull));
}

static void
no_such_group(const char *group)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("consumer group \"%s\" does not exist", group),
			 errhint("Dead letters of exhausted check-backs are handled by tx_redrive_half() and tx_purge_half_dead_letters().")));
}

/*
 * tx_redrive(consumer_group text, msg_ids bigint[]) RETURNS integer
 *
 * Gives dead letters of a group a fresh round of attempts (all of them when
 * msg_ids is NULL): they become due retries of its subscriptions.
 */
Datum
tx_redrive(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"WITH d AS ("
		"  DELETE FROM tx_message.dead_letters_data dl"
		"   USING tx_message.subscriptions s, tx_message.topics t"
		"   WHERE dl.consumer_group = $1 AND ($2::bigint[] IS NULL OR dl.msg_id = ANY ($2))"
		"     AND dl.topic_id = ANY ($4) AND $3::interval IS NULL"
		"     AND s.consumer_group = dl.consumer_group AND s.topic = t.topic"
		"     AND t.topic_id = dl.topic_id"
		"  RETURNING dl.*, s.sub_id)"
		" INSERT INTO tx_message.retries_data"
		"  (sub_id, msg_id, topic_id, sent_at, key, tags, headers, payload, attempt, state,"
		"   due_at, last_error, first_failed_at)"
		" SELECT d.sub_id, d.msg_id, d.topic_id, d.sent_at, d.key, d.tags, d.headers, d.payload,"
		"        0, 'waiting', clock_timestamp(), d.last_error, coalesce(d.first_failed_at, now())"
		"   FROM d"
		" ON CONFLICT (sub_id, msg_id) DO NOTHING";
	Oid			types[4] = {TEXTOID, INT8ARRAYOID, INTERVALOID, INT4ARRAYOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', 'n', ' '};
	char	   *group = txm_group_arg(fcinfo, 0);
	Oid			owner;
	int			n;

	txm_check_can_change("tx_redrive()");
	ids_arg(fcinfo, 1, &values[1], &nulls[1]);
	values[0] = PG_GETARG_DATUM(0);
	values[2] = (Datum) 0;
	SPI_connect();
	owner = group_owner(values[0]);
	if (!OidIsValid(owner))
		no_such_group(group);
	txm_require_group_member(group, owner);
	values[3] = allowed_topics(values, nulls, TXM_PRIV_RECEIVE, false);
	n = txm_spi_exec(sql, 4, types, values, nulls, 0);
	SPI_finish();
	if (n > 0)
	{
		txm_at_commit_broadcast();
		txm_at_commit_request_maintenance();
	}
	PG_RETURN_INT32(n);
}

/*
 * Delete the dead letters of one kind ($1 the group, NULL for check-backs)
 * of the allowed topics that died at least older_than ago.  In the
 * caller's SPI connection.
 */
static int64
purge(Datum *values, const char *nulls)
{
	static const char *sql =
		"DELETE FROM tx_message.dead_letters_data"
		" WHERE consumer_group IS NOT DISTINCT FROM $1"
		"   AND ($2::bigint[] IS NULL OR msg_id = ANY ($2))"
		"   AND dead_at <= now() - $3 AND topic_id = ANY ($4)";
	Oid			types[4] = {TEXTOID, INT8ARRAYOID, INTERVALOID, INT4ARRAYOID};

	return txm_spi_exec(sql, 4, types, values, nulls, 0);
}

/*
 * tx_purge_dead_letters(consumer_group text, older_than interval,
 *						 msg_ids bigint[]) RETURNS bigint
 *
 * Deletes the dead letters of a group that died at least older_than ago
 * (those of msg_ids only, when given).  A group whose subscriptions are all
 * gone keeps its dead letters: then 'admin' on their topics stands in for
 * the group's ownership.
 */
Datum
tx_purge_dead_letters(PG_FUNCTION_ARGS)
{
	static const char *any_sql =
		"SELECT 1 FROM tx_message.dead_letters_data WHERE consumer_group = $1 LIMIT 1";
	Oid			types[1] = {TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *group = txm_group_arg(fcinfo, 0);
	Oid			owner;
	int64		n;

	txm_check_can_change("tx_purge_dead_letters()");
	txm_require_arg(fcinfo, 1, "older_than");
	txm_check_not_negative("older_than", PG_GETARG_INTERVAL_P(1));
	ids_arg(fcinfo, 2, &values[1], &nulls[1]);
	values[0] = PG_GETARG_DATUM(0);
	values[2] = PG_GETARG_DATUM(1);
	SPI_connect();
	owner = group_owner(values[0]);
	if (OidIsValid(owner))
	{
		txm_require_group_member(group, owner);
		values[3] = allowed_topics(values, nulls, TXM_PRIV_RECEIVE, false);
	}
	else
	{
		if (txm_spi_exec(any_sql, 1, types, values, nulls, 1) == 0)
			no_such_group(group);
		values[3] = allowed_topics(values, nulls, TXM_PRIV_ADMIN, false);
	}
	n = purge(values, nulls);
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * tx_redrive_half(msg_ids bigint[]) RETURNS integer
 *
 * Dead letters of exhausted check-backs go back to the half state with a
 * fresh check count, if their topic still exists: those of msg_ids (each
 * needs 'admin' on its topic), or when NULL all those of the topics the
 * caller administers.
 */
Datum
tx_redrive_half(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"WITH d AS ("
		"  DELETE FROM tx_message.dead_letters_data dl"
		"   WHERE dl.consumer_group IS NULL AND ($2::bigint[] IS NULL OR dl.msg_id = ANY ($2))"
		"     AND dl.topic_id = ANY ($4) AND $1::text IS NULL AND $3::interval IS NULL"
		"     AND EXISTS (SELECT 1 FROM tx_message.topics t WHERE t.topic_id = dl.topic_id)"
		"  RETURNING dl.*)"
		" INSERT INTO tx_message.half_messages"
		"  (msg_id, topic_id, sent_at, key, tags, headers, payload, state, checks, last_check_at)"
		" SELECT d.msg_id, d.topic_id, d.sent_at, d.key, d.tags, d.headers, d.payload,"
		"        'half', 0, now()"
		"   FROM d"
		" ON CONFLICT (msg_id) DO NOTHING";
	Oid			types[4] = {TEXTOID, INT8ARRAYOID, INTERVALOID, INT4ARRAYOID};
	Datum		values[4];
	char		nulls[4] = {'n', ' ', 'n', ' '};
	int			n;

	txm_check_can_change("tx_redrive_half()");
	txm_catalog();
	ids_arg(fcinfo, 0, &values[1], &nulls[1]);
	values[0] = values[2] = (Datum) 0;
	SPI_connect();
	values[3] = allowed_topics(values, nulls, TXM_PRIV_ADMIN, nulls[1] == 'n');
	n = txm_spi_exec(sql, 4, types, values, nulls, 0);
	SPI_finish();
	if (n > 0)
		txm_at_commit_request_maintenance();
	PG_RETURN_INT32(n);
}

/*
 * tx_purge_half_dead_letters(older_than interval, msg_ids bigint[])
 *	RETURNS bigint
 *
 * Deletes dead letters of exhausted check-backs that died at least
 * older_than ago: those of msg_ids (each needs 'admin' on its topic), or
 * when NULL all those of the topics the caller administers.
 */
Datum
tx_purge_half_dead_letters(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	char		nulls[4] = {'n', ' ', ' ', ' '};
	int64		n;

	txm_check_can_change("tx_purge_half_dead_letters()");
	txm_catalog();
	txm_require_arg(fcinfo, 0, "older_than");
	txm_check_not_negative("older_than", PG_GETARG_INTERVAL_P(0));
	ids_arg(fcinfo, 1, &values[1], &nulls[1]);
	values[0] = (Datum) 0;
	values[2] = PG_GETARG_DATUM(0);
	SPI_connect();
	values[3] = allowed_topics(values, nulls, TXM_PRIV_ADMIN, nulls[1] == 'n');
	n = purge(values, nulls);
	SPI_finish();
	PG_RETURN_INT64(n);
}
