/*-------------------------------------------------------------------------
 *
 * half.c
 *	  The half-message protocol: tx_send_half, tx_commit_half,
 *	  tx_rollback_half.
 *
 * A half message is stored invisible to consumers (RocketMQ's two-phase
 * send); the producer runs its local transaction and then commits or rolls
 * the message back.  If it never answers, the worker asks (checkback.c).
 * Committing moves the message into the log within the committing
 * transaction, so its place in commit order is the moment of the decision.
 *
 * IDENTIFICATION
 *	  src/api/half.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/validate.h"
#include "src/storage/dedup.h"
#include "src/storage/lineage.h"
#include "src/storage/log.h"

PG_FUNCTION_INFO_V1(tx_send_half);
PG_FUNCTION_INFO_V1(tx_commit_half);
PG_FUNCTION_INFO_V1(tx_rollback_half);

/*
 * tx_send_half(topic text, payload jsonb, key text, tags text[],
 *				headers jsonb, dedup_key text, check_after interval)
 *	RETURNS bigint
 */
Datum
tx_send_half(PG_FUNCTION_ARGS)
{
	char		name[TXM_NAME_MAX + 1];
	int32		topic_id;
	Datum		cols[TXM_MSG_NCOLS];
	bool		isnull[TXM_MSG_NCOLS];
	int64		id;
	Interval   *check_after = NULL;
	TimestampTz now;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "payload");
	txm_check_can_send("tx_send_half()");
	txm_take_over_if_restored();

	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", name);
	topic_id = txm_topic_id_for(name, TXM_PRIV_SEND);
	txm_check_payload(PG_GETARG_JSONB_P(1), "payload");
	if (!PG_ARGISNULL(2))
		txm_check_key(PG_GETARG_DATUM(2));
	if (!PG_ARGISNULL(3))
		txm_check_tags(PG_GETARG_ARRAYTYPE_P(3), "tags");
	if (!PG_ARGISNULL(4))
		txm_check_headers(PG_GETARG_JSONB_P(4));

	/* key, tags and headers are arguments 2 to 4, in column order */
	for (int k = TXM_COL_KEY; k <= TXM_COL_HEADERS; k++)
	{
		isnull[k] = PG_ARGISNULL(2 + k);
		cols[k] = isnull[k] ? (Datum) 0 : PG_GETARG_DATUM(2 + k);
	}
	cols[TXM_COL_PAYLOAD] = PG_GETARG_DATUM(1);
	isnull[TXM_COL_PAYLOAD] = false;

	/* a database still at 1.0 declares neither dedup_key nor check_after */
	if (PG_NARGS() > 6 && !PG_ARGISNULL(6))
	{
		check_after = PG_GETARG_INTERVAL_P(6);
		txm_check_positive_interval("check_after", check_after);
	}
	now = GetCurrentTimestamp();
	id = txm_next_pos();
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
	{
		int64		holder;

		txm_check_dedup_key(PG_GETARG_DATUM(5));
		holder = txm_dedup_claim(topic_id, PG_GETARG_DATUM(5), id, now);
		if (holder != 0)
			PG_RETURN_INT64(holder);
	}
	txm_half_insert(id, topic_id, now, cols, isnull, check_after);
	PG_RETURN_INT64(id);
}

static Datum
resolve_half_fn(FunctionCallInfo fcinfo, bool commit)
{
	int32		topic_id;

	txm_require_arg(fcinfo, 0, "msg_id");
	txm_check_can_send(commit ? "tx_commit_half()" : "tx_rollback_half()");
	txm_take_over_if_restored();
	/*
	 * Deciding a half message is sending it, or not: 'send' on its topic.
	 * One that is not there yet stays unknown even if its producer commits
	 * before the decision below would see it.
	 */
	topic_id = txm_half_topic(PG_GETARG_INT64(0));
	if (topic_id == 0)
		txm_no_half_message(PG_GETARG_INT64(0));
	txm_require_topic_privilege(txm_lookup_topic_by_id(topic_id), TXM_PRIV_SEND);
	PG_RETURN_BOOL(txm_resolve_half(PG_GETARG_INT64(0), commit, "producer"));
}

/* tx_commit_half(msg_id bigint) RETURNS boolean */
Datum
tx_commit_half(PG_FUNCTION_ARGS)
{
	return resolve_half_fn(fcinfo, true);
}

/* tx_rollback_half(msg_id bigint) RETURNS boolean */
Datum
tx_rollback_half(PG_FUNCTION_ARGS)
{
	return resolve_half_fn(fcinfo, false);
}
