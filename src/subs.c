/*-------------------------------------------------------------------------
 *
 * subs.c
 *	  Subscriptions (consumer groups) and dead letters: tx_subscribe,
 *	  tx_unsubscribe, tx_redrive, tx_purge_dead_letters, and the backend
 *	  cache that tx_receive and tx_ack use to resolve a group.
 *
 * A subscription is a (topic, consumer_group) pair.  Every group subscribed
 * to a topic reads the same position stream with its own leases (fan-out
 * without copies); sub_state holds its watermark.  The cache follows the
 * same rule as the topic cache: changes send a relcache invalidation on
 * tx_message.subscriptions.  Lookups hand out copies, so an invalidation
 * processed while a caller works never pulls memory from under it.
 *
 * IDENTIFICATION
 *	  src/subs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "tx_message.h"

PG_FUNCTION_INFO_V1(tx_subscribe);
PG_FUNCTION_INFO_V1(tx_unsubscribe);
PG_FUNCTION_INFO_V1(tx_redrive);
PG_FUNCTION_INFO_V1(tx_purge_dead_letters);

typedef struct GroupEntry
{
	char		name[TXM_NAME_MAX + 1]; /* hash key */
	int			nsubs;
	TxmSub	   *subs;
} GroupEntry;

static MemoryContext groups_cxt = NULL;
static HTAB *groups = NULL;
static bool groups_stale = false;

/* Called from the relcache callback: forget at the next lookup. */
void
txm_forget_groups(void)
{
	groups_stale = true;
}

static void
ensure_groups(void)
{
	HASHCTL		ctl;

	if (groups_cxt == NULL)
		groups_cxt = AllocSetContextCreate(CacheMemoryContext, "tx_message groups",
										   ALLOCSET_SMALL_SIZES);
	if (groups_stale && groups != NULL)
	{
		MemoryContextReset(groups_cxt);
		groups = NULL;
	}
	groups_stale = false;
	if (groups)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TXM_NAME_MAX + 1;
	ctl.entrysize = sizeof(GroupEntry);
	ctl.hcxt = groups_cxt;
	groups = hash_create("tx_message groups", 32, &ctl,
						 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

static const char *subs_columns =
	"SELECT s.sub_id, t.topic_id, s.topic, s.consumer_group, s.tags, s.handler,"
	"       s.max_retries, s.backoff, s.lease, s.ordered, s.owner"
	"  FROM tx_message.subscriptions s JOIN tx_message.topics t USING (topic)";

/* Fill sub from a row of subs_columns, allocating in cxt. */
static void
sub_from_row(TxmSub *sub, HeapTuple row, TupleDesc desc, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	MemoryContext old = MemoryContextSwitchTo(cxt);

	memset(sub, 0, sizeof(TxmSub));
	sub->sub_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	sub->topic_id = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
	strlcpy(sub->topic, TextDatumGetCString(SPI_getbinval(row, desc, 3, &isnull)), sizeof(sub->topic));
	strlcpy(sub->group, TextDatumGetCString(SPI_getbinval(row, desc, 4, &isnull)), sizeof(sub->group));
	d = SPI_getbinval(row, desc, 5, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &n);
		sub->ntags = n;
		sub->tags = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			sub->tags[i] = TextDatumGetCString(elems[i]);
	}
	else
		sub->ntags = -1;
	d = SPI_getbinval(row, desc, 6, &isnull);
	sub->handler = isnull ? InvalidOid : DatumGetObjectId(d);
	sub->max_retries = DatumGetInt32(SPI_getbinval(row, desc, 7, &isnull));
	{
		Datum	   *elems;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(row, desc, 8, &isnull)),
						  INTERVALOID, sizeof(Interval), false, TYPALIGN_DOUBLE,
						  &elems, NULL, &n);
		sub->nbackoff = n;
		sub->backoff = palloc(sizeof(Interval) * Max(n, 1));
		for (int i = 0; i < n; i++)
			sub->backoff[i] = *DatumGetIntervalP(elems[i]);
	}
	sub->lease = *DatumGetIntervalP(SPI_getbinval(row, desc, 9, &isnull));
	sub->ordered = DatumGetBool(SPI_getbinval(row, desc, 10, &isnull));
	sub->owner = DatumGetObjectId(SPI_getbinval(row, desc, 11, &isnull));
	MemoryContextSwitchTo(old);
}

static void
copy_sub(TxmSub *dst, const TxmSub *src)
{
	*dst = *src;
	if (src->ntags > 0)
	{
		dst->tags = palloc(sizeof(char *) * src->ntags);
		for (int i = 0; i < src->ntags; i++)
			dst->tags[i] = pstrdup(src->tags[i]);
	}
	dst->backoff = palloc(sizeof(Interval) * Max(src->nbackoff, 1));
	memcpy(dst->backoff, src->backoff, sizeof(Interval) * src->nbackoff);
}

/*
 * The subscriptions of a consumer group, copied into the caller's memory
 * context.  An unknown group is an error unless missing_ok.
 */
TxmSub *
txm_group_subs(const char *group, int *nsubs, bool missing_ok)
{
	GroupEntry *entry;
	TxmSub	   *copy;

	if (strlen(group) > TXM_NAME_MAX)
		txm_check_name("consumer group", group);
	txm_catalog();
	ensure_groups();
	entry = hash_search(groups, group, HASH_FIND, NULL);
	if (entry == NULL)
	{
		static const char *sql_where = NULL;
		Oid			types[1] = {TEXTOID};
		Datum		values[1];
		int			n;
		TxmSub	   *loaded;

		txm_check_name("consumer group", group);
		if (sql_where == NULL)
			sql_where = MemoryContextStrdup(TopMemoryContext,
											psprintf("%s WHERE s.consumer_group = $1 ORDER BY s.sub_id",
													 subs_columns));
		values[0] = CStringGetTextDatum(group);
		SPI_connect();
		n = txm_spi_exec(sql_where, 1, types, values, NULL, 0);
		/* the query may have processed invalidations */
		ensure_groups();
		loaded = MemoryContextAlloc(groups_cxt, sizeof(TxmSub) * Max(n, 1));
		for (int i = 0; i < n; i++)
			sub_from_row(&loaded[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc, groups_cxt);
		SPI_finish();
		entry = hash_search(groups, group, HASH_ENTER, NULL);
		entry->nsubs = n;
		entry->subs = loaded;
	}

	if (entry->nsubs == 0 && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("consumer group \"%s\" does not exist", group),
				 errhint("Subscribe it to a topic with tx_subscribe(topic, '%s').", group)));
	*nsubs = entry->nsubs;
	copy = palloc(sizeof(TxmSub) * Max(entry->nsubs, 1));
	for (int i = 0; i < entry->nsubs; i++)
		copy_sub(&copy[i], &entry->subs[i]);
	return copy;
}

/* All subscriptions with a handler, for the executor. */
TxmSub *
txm_handler_subs(int *nsubs)
{
	static const char *sql = NULL;
	TxmSub	   *subs;
	MemoryContext outer = CurrentMemoryContext;
	int			n;

	if (sql == NULL)
		sql = MemoryContextStrdup(TopMemoryContext,
								  psprintf("%s WHERE s.handler IS NOT NULL ORDER BY s.sub_id",
										   subs_columns));
	SPI_connect();
	n = txm_spi_exec(sql, 0, NULL, NULL, NULL, 0);
	subs = MemoryContextAlloc(outer, sizeof(TxmSub) * Max(n, 1));
	for (int i = 0; i < n; i++)
		sub_from_row(&subs[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc, outer);
	SPI_finish();
	*nsubs = n;
	return subs;
}

bool
txm_has_handlers(void)
{
	static const char *sql =
		"SELECT 1 FROM tx_message.subscriptions WHERE handler IS NOT NULL LIMIT 1";
	bool		found;

	SPI_connect();
	found = txm_spi_exec(sql, 0, NULL, NULL, NULL, 1) > 0;
	SPI_finish();
	return found;
}

/*
 * Where a new subscription starts: at the topic's head ('now'), or at the
 * oldest position still retained ('earliest').
 */
static int64
start_position(int32 topic_id, bool earliest)
{
	static const char *head_sql =
		"SELECT coalesce((SELECT first_seq + cardinality(positions) FROM tx_message.slices"
		"                  WHERE topic_id = $1 ORDER BY first_seq DESC LIMIT 1), retired_seq)"
		"  FROM tx_message.topics WHERE topic_id = $1";
	static const char *oldest_sql =
		"SELECT coalesce((SELECT first_seq FROM tx_message.slices"
		"                  WHERE topic_id = $1 ORDER BY first_seq LIMIT 1), retired_seq)"
		"  FROM tx_message.topics WHERE topic_id = $1";
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;

	values[0] = Int32GetDatum(topic_id);
	if (txm_spi_exec(earliest ? oldest_sql : head_sql, 1, types, values, NULL, 1) == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
check_backoff(ArrayType *backoff)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Interval	zero;

	if (ARR_NDIM(backoff) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("backoff must be a one-dimensional array")));
	deconstruct_array(backoff, INTERVALOID, sizeof(Interval), false, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backoff must have at least one step")));
	memset(&zero, 0, sizeof(zero));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("backoff must not contain nulls")));
		if (DatumGetBool(DirectFunctionCall2(interval_lt, elems[i], IntervalPGetDatum(&zero))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backoff steps must not be negative"),
					 errdetail("Step %d is \"%s\".", i + 1,
							   DatumGetCString(DirectFunctionCall1(interval_out, elems[i])))));
	}
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
	static const char *owner_sql =
		"SELECT owner FROM tx_message.subscriptions"
		" WHERE topic = $1 AND consumer_group = $2 FOR UPDATE";
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
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *topic;
	char	   *group;
	char	   *start_from;
	TxmTopic   *t;
	int32		topic_id;
	bool		isnull;
	const char *required[] = {"topic", "consumer_group", NULL, NULL, "max_retries",
	"backoff", "lease", "ordered", "start_from"};

	for (int i = 0; i < 9; i++)
		if (required[i])
			txm_require_arg(fcinfo, i, required[i]);
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	group = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("topic", topic);
	txm_check_name("consumer group", group);
	t = txm_lookup_topic(topic, false);
	topic_id = t->topic_id;
	if (!PG_ARGISNULL(2))
	{
		txm_check_tags(PG_GETARG_ARRAYTYPE_P(2), "tags");
		if (ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(2)), ARR_DIMS(PG_GETARG_ARRAYTYPE_P(2))) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tags must not be empty"),
					 errhint("Pass NULL to receive messages whatever their tags.")));
	}
	if (!PG_ARGISNULL(3))
		txm_check_message_function(PG_GETARG_OID(3), "handler", InvalidOid);
	if (PG_GETARG_INT32(4) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_retries must not be negative")));
	check_backoff(PG_GETARG_ARRAYTYPE_P(5));
	txm_check_positive_interval("lease", PG_GETARG_INTERVAL_P(6));
	start_from = text_to_cstring(PG_GETARG_TEXT_PP(8));
	if (strcmp(start_from, "now") != 0 && strcmp(start_from, "earliest") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_from must be 'now' or 'earliest'"),
				 errdetail("The value given is \"%s\".", start_from)));

	for (int i = 0; i < 9; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[9] = ObjectIdGetDatum(GetUserId());

	/* 'now' means after every message committed before this call */
	txm_sync_ticks();
	SPI_connect();
	if (txm_spi_exec(owner_sql, 2, types, values, NULL, 1) == 1)
	{
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (!has_privs_of_role(GetUserId(), owner))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of the subscription of consumer group \"%s\" to topic \"%s\" to change it",
							group, topic)));
	}
	txm_spi_exec(upsert_sql, 10, types, values, nulls, 1);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
	{
		int32		sub_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
		Oid			state_types[2] = {INT4OID, INT8OID};
		Datum		state_values[2];

		state_values[0] = Int32GetDatum(sub_id);
		state_values[1] = Int64GetDatum(start_position(topic_id, strcmp(start_from, "earliest") == 0));
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
	static const char *lock_sql =
		"SELECT sub_id, owner FROM tx_message.subscriptions"
		" WHERE topic = $1 AND consumer_group = $2 FOR UPDATE";
	static const char *drop_sql =
		"WITH st AS (DELETE FROM tx_message.sub_state WHERE sub_id = $1),"
		" l AS (DELETE FROM tx_message.leases WHERE sub_id = $1),"
		" r AS (DELETE FROM tx_message.retries WHERE sub_id = $1)"
		" DELETE FROM tx_message.subscriptions WHERE sub_id = $1";
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char	   *topic;
	char	   *group;
	bool		isnull;
	Oid			owner;
	Datum		sub_id;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "consumer_group");
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	group = text_to_cstring(PG_GETARG_TEXT_PP(1));
	txm_check_name("topic", topic);
	txm_check_name("consumer group", group);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);

	SPI_connect();
	if (txm_spi_exec(lock_sql, 2, types, values, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("consumer group \"%s\" is not subscribed to topic \"%s\"", group, topic)));
	sub_id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of the subscription of consumer group \"%s\" to topic \"%s\" to drop it",
						group, topic)));
	types[0] = INT4OID;
	values[0] = sub_id;
	txm_spi_exec(drop_sql, 1, types, values, NULL, 0);
	SPI_finish();
	txm_invalidate(txm_catalog()->subscriptions);
	PG_RETURN_VOID();
}

/*
 * Move a message that failed for good to tx_message.dead_letters, notify
 * and log.  Runs in the caller's SPI connection.
 */
void
txm_dead_letter(const TxmSub *sub, int64 msg_id, TimestampTz sent_at,
				Datum key, Datum tags, Datum headers, Datum payload,
				const bool *isnull, int32 attempts, const char *reason,
				const char *last_error, TimestampTz first_failed_at)
{
	static const char *sql =
		"INSERT INTO tx_message.dead_letters AS d"
		" (msg_id, topic, key, tags, headers, payload, sent_at, consumer_group,"
		"  attempts, reason, last_error, first_failed_at, dead_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())"
		" ON CONFLICT (consumer_group, msg_id) DO UPDATE"
		"   SET attempts = excluded.attempts, reason = excluded.reason,"
		"       last_error = excluded.last_error, first_failed_at = excluded.first_failed_at,"
		"       dead_at = excluded.dead_at";
	Oid			types[12] = {INT8OID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, JSONBOID,
	TIMESTAMPTZOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[12];
	char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(msg_id);
	values[1] = CStringGetTextDatum(sub->topic);
	values[2] = key;
	values[3] = tags;
	values[4] = headers;
	values[5] = payload;
	for (int i = 0; i < 4; i++)
		nulls[2 + i] = isnull[i] ? 'n' : ' ';
	values[6] = TimestampTzGetDatum(sent_at);
	values[7] = CStringGetTextDatum(sub->group);
	values[8] = Int32GetDatum(attempts);
	values[9] = CStringGetTextDatum(reason);
	values[10] = last_error ? CStringGetTextDatum(last_error) : (Datum) 0;
	nulls[10] = last_error ? ' ' : 'n';
	values[11] = TimestampTzGetDatum(first_failed_at);
	txm_spi_exec(sql, 12, types, values, nulls, 0);
	txm_dead_letter_notify(sub->topic, sub->group, msg_id,
						   isnull[0] ? NULL : TextDatumGetCString(key), reason);
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
	static const char *group_sql =
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
	static const char *half_sql =
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
	static const char *group_denied_sql =
		"SELECT count(*) FROM tx_message.dead_letters dl"
		"  JOIN tx_message.subscriptions s ON s.consumer_group = dl.consumer_group AND s.topic = dl.topic"
		" WHERE dl.consumer_group = $1 AND ($2::bigint[] IS NULL OR dl.msg_id = ANY ($2))"
		"   AND NOT pg_catalog.pg_has_role($3, s.owner, 'USAGE')";
	static const char *half_denied_sql =
		"SELECT count(*) FROM tx_message.dead_letters dl"
		"  JOIN tx_message.topics t ON t.topic = dl.topic"
		" WHERE dl.consumer_group IS NULL AND ($1::bigint[] IS NULL OR dl.msg_id = ANY ($1))"
		"   AND NOT pg_catalog.pg_has_role($2, t.owner, 'USAGE')";
	Oid			types[3] = {TEXTOID, INT8ARRAYOID, OIDOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			n;
	bool		isnull;

	txm_catalog();
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *ids = PG_GETARG_ARRAYTYPE_P(1);

		if (ARR_NDIM(ids) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("msg_ids must be a one-dimensional array")));
		if (array_contains_nulls(ids))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("msg_ids must not contain nulls")));
	}
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';

	values[2] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	if (PG_ARGISNULL(0))
	{
		/* check-back dead letters belong to the topic's owner */
		txm_spi_exec(half_denied_sql, 2, &types[1], &values[1], &nulls[1], 1);
		if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of the topic to redrive its check-back dead letters")));
		n = txm_spi_exec(half_sql, 1, &types[1], &values[1], &nulls[1], 0);
	}
	else
	{
		char	   *group = text_to_cstring(PG_GETARG_TEXT_PP(0));

		txm_check_name("consumer group", group);
		values[0] = PG_GETARG_DATUM(0);
		txm_spi_exec(group_denied_sql, 3, types, values, nulls, 1);
		if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of the subscriptions of consumer group \"%s\" to redrive its dead letters",
							group)));
		n = txm_spi_exec(group_sql, 2, types, values, nulls, 0);
		if (n > 0)
			txm_broadcast_at_commit();
	}
	SPI_finish();
	if (n > 0)
		txm_request_maintenance_at_commit();
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
	Interval	zero;
	int			n;
	bool		isnull;

	txm_catalog();
	txm_require_arg(fcinfo, 1, "older_than");
	memset(&zero, 0, sizeof(zero));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, PG_GETARG_DATUM(1), IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	if (!PG_ARGISNULL(0))
		txm_check_name("consumer group", text_to_cstring(PG_GETARG_TEXT_PP(0)));
	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	values[1] = PG_GETARG_DATUM(1);
	values[2] = ObjectIdGetDatum(GetUserId());
	/* dead letters of a dropped topic are the extension owner's */
	values[3] = ObjectIdGetDatum(txm_catalog()->owner);
	SPI_connect();
	txm_spi_exec(denied_sql, 4, types, values, nulls, 1);
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of the subscriptions or topics whose dead letters are purged"),
				 errhint("Name a consumer group you own.")));
	n = txm_spi_exec(sql, 2, types, values, nulls, 0);
	SPI_finish();
	PG_RETURN_INT64(n);
}
