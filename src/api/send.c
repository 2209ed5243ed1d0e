/*-------------------------------------------------------------------------
 *
 * send.c
 *	  The producer API: tx_send and tx_send_batch.
 *
 * A message is one row inserted into the current log table in the caller's
 * transaction (log.c), so it commits or vanishes with that transaction; a
 * message sent with a delay waits in tx_message.delayed until the worker
 * releases it.  These are the hottest functions of the extension: they
 * resolve the topic through the backend's topic cache, go without a SET
 * search_path clause (they resolve no name through it), and write the heap
 * directly.
 *
 * IDENTIFICATION
 *	  src/api/send.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/validate.h"
#include "src/storage/dedup.h"
#include "src/storage/lineage.h"
#include "src/storage/log.h"

PG_FUNCTION_INFO_V1(tx_send);
PG_FUNCTION_INFO_V1(tx_send_batch);

/*
 * The delay argument: NULL or zero means now; negative is refused.
 * Returns the delivery time, or 0 for immediate delivery.
 */
static TimestampTz
deliver_at_arg(FunctionCallInfo fcinfo, int argno, TimestampTz now)
{
	Interval   *delay;
	Interval	zero;

	if (PG_ARGISNULL(argno))
		return 0;
	delay = PG_GETARG_INTERVAL_P(argno);
	txm_check_not_negative("delay", delay);
	memset(&zero, 0, sizeof(zero));
	if (!DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(delay),
										  IntervalPGetDatum(&zero))))
		return 0;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(delay)));
}

/* The tags and headers arguments, checked, into a message's columns. */
static void
tags_and_headers_args(FunctionCallInfo fcinfo, int tags_arg, Datum *cols, bool *isnull)
{
	isnull[TXM_COL_TAGS] = PG_ARGISNULL(tags_arg);
	cols[TXM_COL_TAGS] = isnull[TXM_COL_TAGS] ? (Datum) 0 : PG_GETARG_DATUM(tags_arg);
	if (!isnull[TXM_COL_TAGS])
		txm_check_tags(PG_GETARG_ARRAYTYPE_P(tags_arg), "tags");
	isnull[TXM_COL_HEADERS] = PG_ARGISNULL(tags_arg + 1);
	cols[TXM_COL_HEADERS] = isnull[TXM_COL_HEADERS] ? (Datum) 0 : PG_GETARG_DATUM(tags_arg + 1);
	if (!isnull[TXM_COL_HEADERS])
		txm_check_headers(PG_GETARG_JSONB_P(tags_arg + 1));
}

/*
 * Store one message at the id the caller took, unless its dedup key (if
 * any) is held by a stored message: returns the id the caller answers.
 */
static int64
store_one(int64 id, int32 topic_id, TimestampTz now, TimestampTz deliver_at,
		  Datum dedup_key, bool has_dedup_key, const Datum *cols, const bool *isnull)
{
	if (has_dedup_key)
	{
		int64		holder = txm_dedup_claim(topic_id, dedup_key, id, now);

		if (holder != 0)
			return holder;
	}
	if (deliver_at == 0)
		txm_log_insert_at(id, topic_id, 0, now, 0, cols, isnull);
	else
		txm_delayed_insert(id, topic_id, now, deliver_at, cols, isnull);
	return id;
}

/*
 * tx_send(topic text, payload jsonb, key text, tags text[], headers jsonb,
 *		   delay interval, dedup_key text) RETURNS bigint
 *
 * A database still at 1.0 declares no dedup_key (PG_NARGS() is 6).  A send
 * without one pays a test for it and nothing more.
 */
Datum
tx_send(PG_FUNCTION_ARGS)
{
	char		name[TXM_NAME_MAX + 1];
	int32		topic_id;
	Jsonb	   *payload;
	Datum		cols[TXM_MSG_NCOLS];
	bool		isnull[TXM_MSG_NCOLS];
	TimestampTz now;
	TimestampTz deliver_at;
	int64		id;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "payload");
	txm_check_can_send("tx_send()");
	txm_take_over_if_restored();

	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", name);
	topic_id = txm_topic_id_for(name, TXM_PRIV_SEND);

	payload = PG_GETARG_JSONB_P(1);
	txm_check_payload(payload, "payload");
	isnull[TXM_COL_KEY] = PG_ARGISNULL(2);
	cols[TXM_COL_KEY] = isnull[TXM_COL_KEY] ? (Datum) 0 : PG_GETARG_DATUM(2);
	if (!isnull[TXM_COL_KEY])
		txm_check_key(cols[TXM_COL_KEY]);
	tags_and_headers_args(fcinfo, 3, cols, isnull);
	cols[TXM_COL_PAYLOAD] = JsonbPGetDatum(payload);
	isnull[TXM_COL_PAYLOAD] = false;

	now = GetCurrentTimestamp();
	deliver_at = deliver_at_arg(fcinfo, 5, now);
	if (PG_NARGS() > 6 && !PG_ARGISNULL(6))
	{
		txm_check_dedup_key(PG_GETARG_DATUM(6));
		PG_RETURN_INT64(store_one(txm_next_pos(), topic_id, now, deliver_at,
								  PG_GETARG_DATUM(6), true, cols, isnull));
	}
	if (deliver_at == 0)
		PG_RETURN_INT64(txm_log_insert(topic_id, 0, now, 0, cols, isnull));

	id = txm_next_pos();
	txm_delayed_insert(id, topic_id, now, deliver_at, cols, isnull);
	PG_RETURN_INT64(id);
}

/* The payloads of tx_send_batch: one dimension, no nulls, none too large. */
static void
payloads_arg(FunctionCallInfo fcinfo, int argno, Datum **payloads, int *n)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(argno);
	bool	   *nulls;

	txm_check_one_dimension(array, "payloads");
	deconstruct_array(array, JSONBOID, -1, false, TYPALIGN_INT, payloads, &nulls, n);
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("payloads must not contain nulls"),
					 errdetail("Element %d is null.", i + 1)));
		txm_check_payload(DatumGetJsonbP((*payloads)[i]), "payload");
	}
}

/*
 * The keys or dedup keys of tx_send_batch: NULL, or one per payload, each
 * checked by check.
 */
static void
keys_arg(FunctionCallInfo fcinfo, int argno, const char *what, void (*check) (Datum),
		 int npayloads, Datum **keys, bool **key_nulls)
{
	ArrayType  *array;
	int			nkeys;

	*keys = NULL;
	*key_nulls = NULL;
	if (PG_ARGISNULL(argno))
		return;
	array = PG_GETARG_ARRAYTYPE_P(argno);
	txm_check_one_dimension(array, what);
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, keys, key_nulls, &nkeys);
	if (nkeys != npayloads)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have as many elements as payloads", what),
				 errdetail("There are %d payloads and %d %s.", npayloads, nkeys, what)));
	for (int i = 0; i < nkeys; i++)
		if (!(*key_nulls)[i])
			check((*keys)[i]);
}

/*
 * Messages of tx_send_batch one at a time: delayed ones, or those with dedup
 * keys (an element may be NULL: no key).  A key given twice in one batch
 * answers the first element's id for the second.
 */
static void
store_each(int32 topic_id, TimestampTz now, TimestampTz deliver_at, int n,
		   const Datum *payloads, const Datum *keys, const bool *key_nulls,
		   const Datum *dedup_keys, const bool *dedup_nulls, Datum *cols, bool *isnull,
		   int64 *ids)
{
	for (int i = 0; i < n; i++)
	{
		cols[TXM_COL_KEY] = keys ? keys[i] : (Datum) 0;
		isnull[TXM_COL_KEY] = keys ? key_nulls[i] : true;
		cols[TXM_COL_PAYLOAD] = payloads[i];
		isnull[TXM_COL_PAYLOAD] = false;
		ids[i] = store_one(txm_next_pos(), topic_id, now, deliver_at,
						   dedup_keys ? dedup_keys[i] : (Datum) 0,
						   dedup_keys != NULL && !dedup_nulls[i], cols, isnull);
	}
}

/*
 * tx_send_batch(topic text, payloads jsonb[], keys text[], tags text[],
 *				 headers jsonb, delay interval, dedup_keys text[])
 *	RETURNS SETOF bigint
 */
Datum
tx_send_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		name[TXM_NAME_MAX + 1];
	int32		topic_id;
	Datum	   *payloads;
	int			npayloads;
	Datum	   *keys;
	bool	   *key_nulls;
	Datum	   *dedup_keys = NULL;
	bool	   *dedup_nulls = NULL;
	Datum		cols[TXM_MSG_NCOLS];
	bool		isnull[TXM_MSG_NCOLS];
	int64	   *ids;
	TimestampTz now;
	TimestampTz deliver_at;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "payloads");
	txm_check_can_send("tx_send_batch()");
	txm_take_over_if_restored();

	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", name);
	topic_id = txm_topic_id_for(name, TXM_PRIV_SEND);
	payloads_arg(fcinfo, 1, &payloads, &npayloads);
	keys_arg(fcinfo, 2, "keys", txm_check_key, npayloads, &keys, &key_nulls);
	tags_and_headers_args(fcinfo, 3, cols, isnull);
	if (PG_NARGS() > 6)
		keys_arg(fcinfo, 6, "dedup_keys", txm_check_dedup_key, npayloads,
				 &dedup_keys, &dedup_nulls);

	now = GetCurrentTimestamp();
	deliver_at = deliver_at_arg(fcinfo, 5, now);
	ids = palloc(sizeof(int64) * Max(npayloads, 1));
	if (deliver_at == 0 && dedup_keys == NULL && npayloads > 0)
		txm_log_insert_many(topic_id, now, npayloads, keys, key_nulls,
							cols[TXM_COL_TAGS], isnull[TXM_COL_TAGS],
							cols[TXM_COL_HEADERS], isnull[TXM_COL_HEADERS], payloads, ids);
	else
		store_each(topic_id, now, deliver_at, npayloads, payloads, keys, key_nulls,
				   dedup_keys, dedup_nulls, cols, isnull, ids);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (int i = 0; i < npayloads; i++)
	{
		Datum		id = Int64GetDatum(ids[i]);
		bool		idnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &idnull);
	}
	return (Datum) 0;
}
