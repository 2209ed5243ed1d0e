/*-------------------------------------------------------------------------
 *
 * failures.c
 *	  Retries and dead letters.
 *
 * Anything that fails is handled per message: a nack or an expired lease
 * puts a self-contained copy of the message in tx_message.retries_data (so that
 * retention can truncate the log underneath it), which also serves as the
 * lease of its redelivery.  A message whose last allowed attempt failed, or
 * a half message whose check-backs are exhausted, moves to
 * tx_message.dead_letters_data; that sends NOTIFY tx_message_dead_letter at
 * commit and writes a WARNING to the server log.  When the subscription
 * (or, for a half message, the topic) names a dead-letter topic, a copy of
 * the message is sent to it in the same transaction, with the privileges of
 * the role that named it, its headers telling where it came from: dead
 * letters become a topic that any consumer group or handler can subscribe
 * to, with retries of its own.
 *
 * IDENTIFICATION
 *	  src/storage/failures.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/msgjson.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/storage/failures.h"
#include "src/storage/log.h"

/*
 * Schedule a retry of a message of a subscription, its first attempt
 * failed: due after delay (now if NULL).  Runs in the caller's SPI
 * connection.
 */
void
txm_retry_insert(const TxmSub *sub, const TxmMsg *m, Interval *delay, const char *error)
{
	static const char *sql =
		"INSERT INTO tx_message.retries_data"
		" (sub_id, msg_id, topic_id, sent_at, key, tags, headers, payload, attempt, state,"
		"  due_at, last_error, first_failed_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, 'waiting', clock_timestamp() + $9, $10,"
		"         clock_timestamp())"
		" ON CONFLICT (sub_id, msg_id) DO NOTHING";
	Oid			types[10] = {INT4OID, INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
	TEXTARRAYOID, JSONBOID, JSONBOID, INTERVALOID, TEXTOID};
	Datum		values[10];
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Interval	now;

	memset(&now, 0, sizeof(now));
	values[0] = Int32GetDatum(sub->sub_id);
	values[1] = Int64GetDatum(m->msg_id);
	values[2] = Int32GetDatum(m->topic_id);
	values[3] = TimestampTzGetDatum(m->sent_at);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		values[4 + k] = m->cols[k];
		nulls[4 + k] = txm_spi_null(m->isnull[k]);
	}
	values[8] = IntervalPGetDatum(delay ? delay : &now);
	values[9] = error ? CStringGetTextDatum(error) : (Datum) 0;
	nulls[9] = txm_spi_null(error == NULL);
	txm_spi_exec(sql, 10, types, values, nulls, 0);
}

/* A WARNING for the server log, not for the client whose call caused it. */
static void
log_warning(const char *msg, const char *detail)
{
	int			saved = client_min_messages;

	if (client_min_messages < ERROR)
		client_min_messages = ERROR;
	ereport(WARNING, (errmsg_internal("%s", msg), errdetail_internal("%s", detail)));
	client_min_messages = saved;
}

/* A dead letter as its copy's headers tell it. */
typedef struct DeadLetterInfo
{
	const char *topic;
	const char *consumer_group; /* NULL: a half message */
	int64		msg_id;
	int32		attempts;
	const char *reason;
	const char *last_error;
} DeadLetterInfo;

/*
 * The headers of a dead letter's copy: the message's own, plus
 * "dead_letter": {topic, consumer_group, msg_id (a string: ids exceed
 * 2^53), attempts, reason, last_error}.
 */
static Datum
dead_letter_headers(const DeadLetterInfo *dl, Datum headers, bool headers_null)
{
	StringInfoData buf;
	Datum		added;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"dead_letter\": {\"topic\": ");
	escape_json(&buf, dl->topic);
	appendStringInfoString(&buf, ", \"consumer_group\": ");
	txm_json_string_or_null(&buf, dl->consumer_group);
	appendStringInfo(&buf, ", \"msg_id\": \"" INT64_FORMAT "\", \"attempts\": %d, \"reason\": ",
					 dl->msg_id, dl->attempts);
	escape_json(&buf, dl->reason);
	appendStringInfoString(&buf, ", \"last_error\": ");
	txm_json_string_or_null(&buf, dl->last_error);
	appendStringInfoString(&buf, "}}");
	added = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	pfree(buf.data);
	if (headers_null)
		return added;
	return DirectFunctionCall2(jsonb_concat, headers, added);
}

/*
 * Send a copy of a dead letter to a dead-letter topic as role sender, in the
 * current transaction.  A dead-letter topic dropped since, or on which the
 * sender lost 'send', leaves the dead letter in the table only: a WARNING
 * says so.
 */
static void
send_dead_letter_copy(const char *dead_letter_topic, Oid sender, const DeadLetterInfo *dl,
					  const Datum *cols, const bool *isnull)
{
	TxmTopic   *t = txm_lookup_topic(dead_letter_topic, true);
	int32		topic_id = t ? t->topic_id : 0;
	Datum		copy[TXM_MSG_NCOLS];
	bool		copy_null[TXM_MSG_NCOLS];

	/* the privilege check may process invalidations that free *t: not used after it */
	if (t == NULL || !txm_has_topic_privilege(t, sender, TXM_PRIV_SEND))
	{
		const char *name = GetUserNameFromId(sender, true);

		log_warning(psprintf("dead letter " INT64_FORMAT " of topic \"%s\" was not sent to dead-letter topic \"%s\"",
							 dl->msg_id, dl->topic, dead_letter_topic),
					topic_id == 0 ? "That topic does not exist." :
					psprintf("Role \"%s\", which named it, no longer holds \"send\" on it.",
							 name ? name : "?"));
		return;
	}
	memcpy(copy, cols, sizeof(copy));
	memcpy(copy_null, isnull, sizeof(copy_null));
	copy[TXM_COL_HEADERS] = dead_letter_headers(dl, cols[TXM_COL_HEADERS],
												isnull[TXM_COL_HEADERS]);
	copy_null[TXM_COL_HEADERS] = false;
	txm_log_insert(topic_id, 0, GetCurrentTimestamp(), 0, copy, copy_null);
}

/*
 * NOTIFY tx_message_dead_letter and a WARNING in the server log: "listen to
 * the dead-letter queue, log, and alert".  The notification goes out when
 * the current transaction commits.  The WARNING is for the log, not for the
 * client whose nack or maintenance call caused it.
 */
static void
notify_dead_letter(const char *topic, const char *consumer_group,
				   int64 msg_id, const char *key, const char *reason)
{
	StringInfoData buf;
	int			saved = client_min_messages;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"topic\": ");
	escape_json(&buf, topic);
	appendStringInfoString(&buf, ", \"consumer_group\": ");
	txm_json_string_or_null(&buf, consumer_group);
	appendStringInfo(&buf, ", \"msg_id\": " INT64_FORMAT ", \"key\": ", msg_id);
	txm_json_string_or_null(&buf, key);
	appendStringInfoString(&buf, ", \"reason\": ");
	escape_json(&buf, reason);
	appendStringInfoChar(&buf, '}');
	Async_Notify("tx_message_dead_letter", buf.data);

	if (client_min_messages < ERROR)
		client_min_messages = ERROR;
	ereport(WARNING,
			(errmsg("message " INT64_FORMAT " of topic \"%s\" moved to the dead letters",
					msg_id, topic),
			 consumer_group ?
			 errdetail("Consumer group \"%s\": %s.", consumer_group, reason) :
			 errdetail("Half message: %s.", reason)));
	client_min_messages = saved;
	txm_count(TXM_COUNTER_DEAD_LETTERED, 1);
	pfree(buf.data);
}

/*
 * Move a message that failed for good to tx_message.dead_letters_data, notify
 * and log.  Runs in the caller's SPI connection.
 */
void
txm_dead_letter(const TxmSub *sub, int64 msg_id, TimestampTz sent_at,
				const Datum *cols, const bool *isnull, int32 attempts, const char *reason,
				const char *last_error, TimestampTz first_failed_at)
{
	static const char *sql =
		"INSERT INTO tx_message.dead_letters_data AS d"
		" (msg_id, topic, key, tags, headers, payload, sent_at, consumer_group,"
		"  attempts, reason, last_error, first_failed_at, dead_at, topic_id)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), $13)"
		" ON CONFLICT (consumer_group, msg_id) DO UPDATE"
		"   SET attempts = excluded.attempts, reason = excluded.reason,"
		"       last_error = excluded.last_error, first_failed_at = excluded.first_failed_at,"
		"       dead_at = excluded.dead_at";
	Oid			types[13] = {INT8OID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, JSONBOID,
	TIMESTAMPTZOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[13];
	char		nulls[13] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(msg_id);
	values[1] = CStringGetTextDatum(sub->topic);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		values[2 + k] = cols[k];
		nulls[2 + k] = txm_spi_null(isnull[k]);
	}
	values[6] = TimestampTzGetDatum(sent_at);
	values[7] = CStringGetTextDatum(sub->group);
	values[8] = Int32GetDatum(attempts);
	values[9] = CStringGetTextDatum(reason);
	values[10] = last_error ? CStringGetTextDatum(last_error) : (Datum) 0;
	nulls[10] = txm_spi_null(last_error == NULL);
	values[11] = TimestampTzGetDatum(first_failed_at);
	values[12] = Int32GetDatum(sub->topic_id);
	txm_spi_exec(sql, 13, types, values, nulls, 0);
	if (sub->dead_letter_topic[0] != '\0')
	{
		DeadLetterInfo dl = {sub->topic, sub->group, msg_id, attempts, reason, last_error};

		send_dead_letter_copy(sub->dead_letter_topic, sub->dead_letter_owner, &dl, cols, isnull);
	}
	notify_dead_letter(sub->topic, sub->group, msg_id,
					   isnull[TXM_COL_KEY] ? NULL : TextDatumGetCString(cols[TXM_COL_KEY]),
					   reason);
}

/*
 * Move a half message whose check-backs are exhausted to the dead letters
 * (consumer group NULL), notify and log.  last_error NULL keeps the reason
 * its last check gave no decision.  Runs in the caller's SPI connection.
 */
void
txm_dead_letter_half(int64 msg_id, const char *topic, const char *key, const char *last_error)
{
	static const char *sql =
		"WITH h AS (DELETE FROM tx_message.half_messages WHERE msg_id = $1 RETURNING *)"
		" INSERT INTO tx_message.dead_letters_data AS d"
		"  (msg_id, topic, key, tags, headers, payload, sent_at, consumer_group,"
		"   attempts, reason, last_error, first_failed_at, dead_at, topic_id)"
		" SELECT h.msg_id, $2, h.key, h.tags, h.headers, h.payload, h.sent_at, NULL,"
		"        h.checks, 'check-back exhausted', coalesce($3, h.last_check_error),"
		"        h.first_checked_at, now(), h.topic_id FROM h"
		" ON CONFLICT (consumer_group, msg_id) DO UPDATE"
		"   SET attempts = excluded.attempts, reason = excluded.reason,"
		"       last_error = excluded.last_error, dead_at = excluded.dead_at"
		" RETURNING d.key, d.tags, d.headers, d.payload, d.attempts, d.last_error";
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	TxmTopic   *t;

	values[0] = Int64GetDatum(msg_id);
	values[1] = CStringGetTextDatum(topic);
	values[2] = last_error ? CStringGetTextDatum(last_error) : (Datum) 0;
	nulls[2] = last_error ? ' ' : 'n';
	if (txm_spi_exec(sql, 3, types, values, nulls, 0) == 1 &&
		(t = txm_lookup_topic(topic, true)) != NULL && t->dead_letter_topic[0] != '\0')
	{
		char		dead_letter_topic[TXM_NAME_MAX + 1];
		Oid			sender = t->dead_letter_owner;
		Datum		cols[TXM_MSG_NCOLS];
		bool		isnull[TXM_MSG_NCOLS];
		bool		n;
		DeadLetterInfo dl = {topic, NULL, msg_id, 0, "check-back exhausted", NULL};
		Datum		error;

		strlcpy(dead_letter_topic, t->dead_letter_topic, sizeof(dead_letter_topic));
		for (int k = 0; k < TXM_MSG_NCOLS; k++)
			cols[k] = txm_spi_value(0, 1 + k, &isnull[k]);
		dl.attempts = DatumGetInt32(txm_spi_value(0, 5, &n));
		error = txm_spi_value(0, 6, &n);
		dl.last_error = n ? NULL : TextDatumGetCString(error);
		send_dead_letter_copy(dead_letter_topic, sender, &dl, cols, isnull);
	}
	notify_dead_letter(topic, NULL, msg_id, key, "check-back exhausted");
}
