/*-------------------------------------------------------------------------
 *
 * checkback.c
 *	  Check-backs (RocketMQ's 回查) of half messages nobody resolved.
 *
 * A half message older than its topic's check_after and still unresolved
 * is checked every check_interval.  With a check function, the function is
 * called with the message through usercode.c: as the topic's owner, bounded
 * by tx_message.check_timeout, in a subtransaction, so that an error or a
 * timeout only counts as one unknown check.  Without one, a NOTIFY
 * tx_message_check asks an external producer to answer with
 * tx_commit_half/tx_rollback_half.  After check_max unknown checks the
 * message moves to the dead letters.  The half message's row is locked with
 * SKIP LOCKED, and the due condition is checked again under the lock, so a
 * check racing with tx_commit_half, tx_rollback_half or another checker ends
 * with exactly one outcome.
 *
 * IDENTIFICATION
 *	  src/engine/checkback.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/msgjson.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/checkback.h"
#include "src/engine/usercode.h"
#include "src/storage/failures.h"
#include "src/storage/log.h"

int			txm_check_timeout = 5000;

typedef enum CheckOutcome
{
	CHECK_COMMIT,
	CHECK_ROLLBACK,
	CHECK_UNKNOWN
} CheckOutcome;

/* A half message whose check is due, locked, with its topic's check settings. */
typedef struct DueHalf
{
	int64		msg_id;
	char	   *topic;
	char	   *key;
	Datum		cols[TXM_MSG_NCOLS];
	bool		isnull[TXM_MSG_NCOLS];
	TimestampTz sent_at;
	int32		checks;
	Oid			check_function;
	int32		check_max;
	Oid			owner;
} DueHalf;

/*
 * The half messages whose check-back is due, oldest first, at most limit:
 * those of topics with a check function (the executor calls them) or those
 * of topics without one (the worker NOTIFYs).  The ids are allocated in the
 * caller's context.
 */
int
txm_due_checks(bool with_functions, int limit, int64 **ids)
{
#define DUE_SQL(due) \
		"SELECT h.msg_id FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)" \
		" WHERE h.state = 'half'" \
		"   AND " due " <= now()" \
		"   AND (t.check_function IS NOT NULL) = $2" \
		" ORDER BY h.sent_at, h.msg_id LIMIT $1"
	static const char *due_sql_1_0 = DUE_SQL(TXM_CHECK_DUE_1_0);
	static const char *due_sql = DUE_SQL(TXM_CHECK_DUE);
	Oid			types[2] = {INT4OID, BOOLOID};
	Datum		values[2];
	MemoryContext outer = CurrentMemoryContext;
	int			n;

	values[0] = Int32GetDatum(limit);
	values[1] = BoolGetDatum(with_functions);
	SPI_connect();
	n = txm_spi_exec(txm_catalog()->v1_1 ? due_sql : due_sql_1_0, 2, types, values, NULL, 0);
	*ids = MemoryContextAlloc(outer, sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		(*ids)[i] = DatumGetInt64(txm_spi_value(i, 1, &isnull));
	}
	SPI_finish();
	return n;
}

/*
 * Lock a half message if it is still due and nobody else holds it, and read
 * it into *h.  Runs in the caller's SPI connection.
 */
static bool
lock_due_half(int64 msg_id, bool with_functions, DueHalf *h)
{
#define LOCK_SQL(due) \
		"SELECT h.msg_id, t.topic, h.key, h.tags, h.headers, h.payload, h.sent_at," \
		"       h.checks, t.check_function, t.check_max, coalesce(t.check_owner, t.owner)" \
		"  FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)" \
		" WHERE h.msg_id = $1 AND h.state = 'half'" \
		"   AND " due " <= now()" \
		"   AND (t.check_function IS NOT NULL) = $2" \
		"   AND (t.check_function IS NULL" \
		"        OR pg_has_role($3, coalesce(t.check_owner, t.owner), 'USAGE'))" \
		"   FOR UPDATE OF h SKIP LOCKED"
	static const char *lock_sql_1_0 = LOCK_SQL(TXM_CHECK_DUE_1_0);
	static const char *lock_sql = LOCK_SQL(TXM_CHECK_DUE);
	Oid			types[3] = {INT8OID, BOOLOID, OIDOID};
	Datum		values[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		fn;

	values[0] = Int64GetDatum(msg_id);
	values[1] = BoolGetDatum(with_functions);
	/*
	 * tx_run_maintenance() leaves the check functions of roles whose
	 * privileges its caller lacks to the worker (usercode.c says why), and
	 * does not lock their half messages meanwhile.
	 */
	values[2] = ObjectIdGetDatum(GetUserId());
	if (txm_spi_exec(txm_catalog()->v1_1 ? lock_sql : lock_sql_1_0, 3, types, values, NULL, 1) == 0)
		return false;
	/* the check function runs statements of its own: keep a copy */
	row = SPI_copytuple(SPI_tuptable->vals[0]);
	desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	h->msg_id = msg_id;
	h->topic = TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull));
	h->key = SPI_getvalue(row, desc, 3);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
		h->cols[k] = SPI_getbinval(row, desc, 3 + k, &h->isnull[k]);
	h->sent_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 7, &isnull));
	h->checks = DatumGetInt32(SPI_getbinval(row, desc, 8, &isnull));
	fn = SPI_getbinval(row, desc, 9, &isnull);
	h->check_function = isnull ? InvalidOid : DatumGetObjectId(fn);
	h->check_max = DatumGetInt32(SPI_getbinval(row, desc, 10, &isnull));
	h->owner = DatumGetObjectId(SPI_getbinval(row, desc, 11, &isnull));
	return true;
}

/* Keep every check and its answer for tx_trace (a database at 1.0 has no table for it). */
static void
record_check(int64 msg_id, CheckOutcome outcome, const char *detail)
{
	static const char *sql =
		"INSERT INTO tx_message.half_checks (msg_id, checked_at, answer, detail)"
		" VALUES ($1, clock_timestamp(), $2, $3)";
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	if (!OidIsValid(txm_catalog()->half_checks))
		return;
	values[0] = Int64GetDatum(msg_id);
	values[1] = CStringGetTextDatum(outcome == CHECK_COMMIT ? "commit" :
									outcome == CHECK_ROLLBACK ? "rollback" : "unknown");
	values[2] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	nulls[2] = txm_spi_null(detail == NULL);
	txm_spi_exec(sql, 3, types, values, nulls, 0);
}

/*
 * Ask the topic's check function.  Returns its decision; *detail says what
 * happened otherwise.  The function may also have decided the message
 * itself, with tx_commit_half or tx_rollback_half: that counts too.
 */
static CheckOutcome
ask_check_function(const DueHalf *h, char **detail)
{
	static const char *state_sql =
		"SELECT state FROM tx_message.half_messages WHERE msg_id = $1";
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	Datum		answer;
	bool		isnull;
	char	   *error;
	CheckOutcome outcome = CHECK_UNKNOWN;

	/* deciding a half message is sending it: its runner needs 'send' still */
	if (!txm_has_topic_privilege(txm_lookup_topic(h->topic, false), h->owner, TXM_PRIV_SEND))
	{
		const char *name = GetUserNameFromId(h->owner, true);

		*detail = psprintf("check function not run: role \"%s\" no longer holds \"send\" on topic \"%s\"",
						   name ? name : "?", h->topic);
	}
	else if (!txm_run_user_code(h->check_function, h->owner,
						   txm_message_datum(h->msg_id, h->topic, h->cols, h->isnull,
											 h->sent_at, 0),
						   txm_check_timeout, &answer, &isnull, &error))
		*detail = psprintf("check function failed: %s", error);
	else if (isnull)
		*detail = pstrdup("check function returned NULL");
	else
	{
		char	   *said = TextDatumGetCString(answer);

		if (pg_strcasecmp(said, "commit") == 0)
			outcome = CHECK_COMMIT;
		else if (pg_strcasecmp(said, "rollback") == 0)
			outcome = CHECK_ROLLBACK;
		else
			*detail = psprintf("check function returned '%s'", said);
	}

	values[0] = Int64GetDatum(h->msg_id);
	if (txm_spi_exec(state_sql, 1, types, values, NULL, 1) == 1)
	{
		char	   *state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (strcmp(state, "committed") == 0)
			outcome = CHECK_COMMIT;
		else if (strcmp(state, "rolled_back") == 0)
			outcome = CHECK_ROLLBACK;
	}
	return outcome;
}

/* NOTIFY tx_message_check: an external producer is asked to decide. */
static void
notify_check(const DueHalf *h)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"topic\": ");
	escape_json(&buf, h->topic);
	appendStringInfo(&buf, ", \"msg_id\": " INT64_FORMAT ", \"key\": ", h->msg_id);
	txm_json_string_or_null(&buf, h->key);
	appendStringInfo(&buf, ", \"checks\": %d}", h->checks + 1);
	Async_Notify("tx_message_check", buf.data);
	/* and the topic's own channel, for a producer that listens to its topics only */
	{
		TxmTopic   *t = txm_lookup_topic(h->topic, true);

		if (t != NULL && t->notify_channel[0] != '\0')
			Async_Notify(t->notify_channel, buf.data);
	}
	pfree(buf.data);
}

/*
 * A check gave no decision: count it.  After the topic's check_max unknown
 * checks the message still waits one check_interval for an answer to the
 * last one (check_one dead-letters it at the scan after that).
 */
static void
record_unknown(const DueHalf *h, const char *detail, TxmMaintStats *stats)
{
	static const char *unknown_sql =
		"UPDATE tx_message.half_messages"
		"   SET checks = checks + 1, last_check_at = now(),"
		"       first_checked_at = coalesce(first_checked_at, now()), last_check_error = $2"
		" WHERE msg_id = $1 RETURNING checks";
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	int32		checks;

	stats->check_unknown++;
	values[0] = Int64GetDatum(h->msg_id);
	values[1] = CStringGetTextDatum(detail);
	txm_spi_exec(unknown_sql, 2, types, values, NULL, 1);
	checks = DatumGetInt32(txm_spi_value(0, 1, &isnull));
	if (OidIsValid(h->check_function))
		ereport(LOG,
				(errmsg("check-back %d of half message " INT64_FORMAT " of topic \"%s\" gave no decision",
						checks, h->msg_id, h->topic),
				 errdetail("%s.", detail)));
}

/*
 * Check one half message in the current transaction, if it is still due and
 * nobody else holds it.  Returns false if there was nothing to do.
 */
static bool
check_one(int64 msg_id, bool with_functions, TxmMaintStats *stats)
{
	DueHalf		h;
	CheckOutcome outcome;
	char	   *detail = NULL;

	if (!lock_due_half(msg_id, with_functions, &h))
		return false;

	/*
	 * The last allowed check was made one check_interval ago and nobody
	 * answered it: as RocketMQ, discard on the scan after the last check, so
	 * that an answer to every check is accepted for check_interval.
	 */
	if (h.checks >= h.check_max)
	{
		txm_dead_letter_half(msg_id, h.topic, h.key, NULL);
		stats->dead_lettered++;
		return true;
	}
	stats->checks++;
	txm_count(TXM_COUNTER_CHECKS, 1);
	{
		TxmTopic   *t = txm_lookup_topic(h.topic, true);

		if (t != NULL)
			txm_at_commit_count(t->topic_id, 0, TXM_TOTAL_CHECKS, 1);
	}

	if (OidIsValid(h.check_function))
		outcome = ask_check_function(&h, &detail);
	else
	{
		notify_check(&h);
		detail = pstrdup("no answer to NOTIFY tx_message_check");
		outcome = CHECK_UNKNOWN;
	}

	record_check(msg_id, outcome, detail);
	if (outcome == CHECK_COMMIT)
	{
		txm_resolve_half(msg_id, true, "check-back");
		stats->check_commits++;
	}
	else if (outcome == CHECK_ROLLBACK)
	{
		txm_resolve_half(msg_id, false, "check-back");
		stats->check_rollbacks++;
	}
	else
		record_unknown(&h, detail, stats);
	return true;
}

/*
 * Check one half message in the current transaction, if it is still due and
 * nobody else holds it.  The worker gives each check a transaction of its
 * own; tx_run_maintenance() runs them in the caller's.
 */
bool
txm_check_one(int64 msg_id, bool with_functions, TxmMaintStats *stats)
{
	bool		done;

	SPI_connect();
	done = check_one(msg_id, with_functions, stats);
	SPI_finish();
	return done;
}
