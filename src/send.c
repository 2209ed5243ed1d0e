/*-------------------------------------------------------------------------
 *
 * send.c
 *	  The producer API: tx_send, tx_send_batch and the half-message protocol.
 *
 * A message is one row inserted into the current log table in the caller's
 * transaction, so it commits or vanishes with that transaction.  Its id is
 * (top-level FullTransactionId << 20) | n: nothing shared is touched to
 * allocate it, and the one index on the log serves both as the message-id
 * index and as the "messages of transaction T" index the ticker needs.  The
 * insert goes straight to heap_insert()/index_insert(), with the topic and
 * the current log table taken from backend-local caches (catalog.c).
 *
 * IDENTIFICATION
 *	  src/send.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "tx_message.h"

PG_FUNCTION_INFO_V1(tx_send);
PG_FUNCTION_INFO_V1(tx_send_batch);
PG_FUNCTION_INFO_V1(tx_send_half);
PG_FUNCTION_INFO_V1(tx_commit_half);
PG_FUNCTION_INFO_V1(tx_rollback_half);

/* n of the next message id of the current top-level transaction */
static FullTransactionId pos_fxid;
static int64 pos_next_n = 0;

/* did the current transaction insert into the log (commit must wake the worker)? */
static bool xact_sent = false;

/* did it store delayed or half messages (the worker's next deadline moves)? */
static bool xact_needs_maintenance = false;

/* IndexInfo of each log table's index, built once per log table OID */
static Oid	log_index_oid[TXM_LOG_SLOTS];
static IndexInfo *log_index_info[TXM_LOG_SLOTS];

static void
check_can_send(const char *what)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot send messages during recovery"),
				 errhint("Send messages on the primary.")));
	PreventCommandIfReadOnly(what);
	PreventCommandIfParallelMode(what);
}

/*
 * Next message id of this transaction.  Assigns the top-level xid if the
 * transaction has none yet; the row insert that follows would anyway.
 */
int64
txm_next_pos(void)
{
	FullTransactionId fxid = GetTopFullTransactionId();
	uint64		xid64 = U64FromFullTransactionId(fxid);

	if (!FullTransactionIdEquals(fxid, pos_fxid))
	{
		pos_fxid = fxid;
		pos_next_n = 0;
	}
	if (xid64 >= TXM_MAX_FXID)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transaction ID %llu is too large for a message id",
						(unsigned long long) xid64),
				 errdetail("Message ids hold transaction IDs below 2^%d.",
						   63 - TXM_POS_SHIFT)));
	if (pos_next_n >= TXM_MAX_PER_XACT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many messages in one transaction"),
				 errdetail("A transaction can send at most %lld messages.",
						   (long long) TXM_MAX_PER_XACT),
				 errhint("Split the work into several transactions.")));
	return (int64) ((xid64 << TXM_POS_SHIFT) | (uint64) pos_next_n++);
}

bool
txm_xact_sent_messages(void)
{
	return xact_sent;
}

uint64
txm_xact_sent_xid(void)
{
	return U64FromFullTransactionId(pos_fxid);
}

bool
txm_xact_needs_maintenance(void)
{
	return xact_needs_maintenance;
}

void
txm_send_xact_callback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			xact_sent = false;
			xact_needs_maintenance = false;
			break;
		default:
			break;
	}
}

void
txm_check_payload(Jsonb *payload, const char *what)
{
	Size		size = VARSIZE_ANY(payload);

	if (txm_max_payload_size > 0 && size > (Size) txm_max_payload_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too large", what),
				 errdetail("The payload has %zu bytes; tx_message.max_payload_size is %d bytes.",
						   size, txm_max_payload_size)));
}

void
txm_check_headers(Jsonb *headers)
{
	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers must be a JSON object")));
}

void
txm_check_tags(ArrayType *tags, const char *what)
{
	if (ARR_NDIM(tags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	if (array_contains_nulls(tags))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain nulls", what)));
}

/* Copy a topic argument into buf, refusing names that cannot exist. */
static void
topic_arg(FunctionCallInfo fcinfo, int argno, char *buf)
{
	text	   *t = PG_GETARG_TEXT_PP(argno);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len > TXM_NAME_MAX)
		txm_check_name("topic", text_to_cstring(t));
	memcpy(buf, VARDATA_ANY(t), len);
	buf[len] = '\0';
}

static IndexInfo *
log_index_info_for(int slot, Relation index)
{
	if (log_index_oid[slot] != RelationGetRelid(index) || log_index_info[slot] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(CacheMemoryContext);

		if (log_index_info[slot])
			pfree(log_index_info[slot]);
		log_index_info[slot] = BuildIndexInfo(index);
		log_index_oid[slot] = RelationGetRelid(index);
		MemoryContextSwitchTo(old);
	}
	return log_index_info[slot];
}

/*
 * Open the log table messages go to now, and say which slot it is.  Lock,
 * then look again: taking the lock processes the invalidation of a rotation
 * that committed meanwhile.
 */
static Relation
open_current_log(int *slot)
{
	const TxmCatalog *c = txm_catalog();

	for (;;)
	{
		Relation	rel;

		*slot = txm_current_log_slot();
		rel = table_open(c->log[*slot], RowExclusiveLock);
		if (txm_current_log_slot() == *slot)
			return rel;
		table_close(rel, RowExclusiveLock);
	}
}

/*
 * Insert one message row into the current log table.  msg_id and
 * deliver_at are 0 for ordinary sends; rows moved in from half_messages or
 * delayed keep the id their producer was given.  isnull covers key, tags,
 * headers and payload.  Returns the row's position (its id when msg_id is 0).
 */
int64
txm_log_insert(int32 topic_id, int64 msg_id, TimestampTz sent_at,
			   TimestampTz deliver_at, Datum key, Datum tags,
			   Datum headers, Datum payload, const bool *isnull)
{
	const TxmCatalog *c = txm_catalog();
	int64		pos = txm_next_pos();
	int			slot;
	Relation	rel;
	Relation	index;
	HeapTuple	tup;
	Datum		values[9];
	bool		nulls[9];
	Datum		posdatum;
	bool		posnull = false;

	rel = open_current_log(&slot);

	posdatum = Int64GetDatum(pos);
	values[0] = posdatum;
	nulls[0] = false;
	values[1] = Int32GetDatum(topic_id);
	nulls[1] = false;
	values[2] = TimestampTzGetDatum(sent_at);
	nulls[2] = false;
	values[3] = Int64GetDatum(msg_id);
	nulls[3] = (msg_id == 0);
	values[4] = TimestampTzGetDatum(deliver_at);
	nulls[4] = (deliver_at == 0);
	values[5] = key;
	nulls[5] = isnull[0];
	values[6] = tags;
	nulls[6] = isnull[1];
	values[7] = headers;
	nulls[7] = isnull[2];
	values[8] = payload;
	nulls[8] = isnull[3];

	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	heap_insert(rel, tup, GetCurrentCommandId(true), 0, NULL);

	index = index_open(c->log_pos[slot], RowExclusiveLock);
	index_insert(index, &posdatum, &posnull, &tup->t_self, rel,
				 UNIQUE_CHECK_NO, false, log_index_info_for(slot, index));
	index_close(index, NoLock);
	table_close(rel, NoLock);
	heap_freetuple(tup);

	xact_sent = true;
	return pos;
}

/*
 * tx_send_batch's messages of one topic: the same rows as txm_log_insert,
 * but put in the heap with table_multi_insert, one WAL record per page
 * instead of one per row.  Positions are returned in payload order.
 */
#define TXM_MULTI_INSERT_CHUNK 1000

static void
log_insert_many(int32 topic_id, TimestampTz sent_at, int n, const Datum *keys,
				const bool *key_nulls, Datum tags, bool tags_null, Datum headers,
				bool headers_null, const Datum *payloads, int64 *positions)
{
	const TxmCatalog *c = txm_catalog();
	int			slot;
	Relation	rel;
	Relation	index;
	TupleDesc	desc;
	TupleTableSlot **slots;
	int			nslots = Min(n, TXM_MULTI_INSERT_CHUNK);
	CommandId	cid = GetCurrentCommandId(true);

	rel = open_current_log(&slot);
	index = index_open(c->log_pos[slot], RowExclusiveLock);
	desc = RelationGetDescr(rel);
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	for (int i = 0; i < nslots; i++)
		slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	for (int done = 0; done < n; done += nslots)
	{
		int			k = Min(nslots, n - done);

		for (int i = 0; i < k; i++)
		{
			Datum		values[9];
			bool		nulls[9];

			positions[done + i] = txm_next_pos();
			memset(nulls, 0, sizeof(nulls));
			values[0] = Int64GetDatum(positions[done + i]);
			values[1] = Int32GetDatum(topic_id);
			values[2] = TimestampTzGetDatum(sent_at);
			nulls[3] = true;	/* msg_id: the position */
			nulls[4] = true;	/* deliver_at: now */
			values[5] = keys ? keys[done + i] : (Datum) 0;
			nulls[5] = keys ? key_nulls[done + i] : true;
			values[6] = tags;
			nulls[6] = tags_null;
			values[7] = headers;
			nulls[7] = headers_null;
			values[8] = payloads[done + i];
			ExecStoreHeapTuple(heap_form_tuple(desc, values, nulls), slots[i], true);
		}
		table_multi_insert(rel, slots, k, cid, 0, NULL);
		for (int i = 0; i < k; i++)
		{
			Datum		posdatum = Int64GetDatum(positions[done + i]);
			bool		posnull = false;

			index_insert(index, &posdatum, &posnull, &slots[i]->tts_tid, rel,
						 UNIQUE_CHECK_NO, false, log_index_info_for(slot, index));
			ExecClearTuple(slots[i]);
		}
	}
	for (int i = 0; i < nslots; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	pfree(slots);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	xact_sent = true;
}

/* Store a committed message that is delivered later. */
static void
insert_delayed(int64 msg_id, int32 topic_id, TimestampTz sent_at,
			   TimestampTz deliver_at, Datum key, Datum tags, Datum headers,
			   Datum payload, const bool *isnull)
{
	static const char *sql =
		"INSERT INTO tx_message.delayed"
		" (msg_id, topic_id, sent_at, deliver_at, key, tags, headers, payload)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
	Oid			types[8] = {INT8OID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	TEXTOID, TEXTARRAYOID, JSONBOID, JSONBOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(msg_id);
	values[1] = Int32GetDatum(topic_id);
	values[2] = TimestampTzGetDatum(sent_at);
	values[3] = TimestampTzGetDatum(deliver_at);
	values[4] = key;
	values[5] = tags;
	values[6] = headers;
	values[7] = payload;
	for (int i = 0; i < 4; i++)
		nulls[4 + i] = isnull[i] ? 'n' : ' ';

	SPI_connect();
	txm_spi_exec(sql, 8, types, values, nulls, 0);
	SPI_finish();
	xact_needs_maintenance = true;
}

/*
 * The delay argument: NULL or zero means now; negative is refused.
 * Returns the delivery time, or 0 for immediate delivery.
 */
static TimestampTz
deliver_at_for(FunctionCallInfo fcinfo, int argno, TimestampTz now)
{
	Interval   *delay;
	Interval	zero;

	if (PG_ARGISNULL(argno))
		return 0;
	delay = PG_GETARG_INTERVAL_P(argno);
	memset(&zero, 0, sizeof(zero));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(delay),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delay must not be negative")));
	if (!DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(delay),
										  IntervalPGetDatum(&zero))))
		return 0;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(delay)));
}

/*
 * tx_send(topic text, payload jsonb, key text, tags text[], headers jsonb,
 *		   delay interval) RETURNS bigint
 */
Datum
tx_send(PG_FUNCTION_ARGS)
{
	char		name[TXM_NAME_MAX + 1];
	int32		topic_id;
	Jsonb	   *payload;
	Datum		values[4];
	bool		isnull[4];
	TimestampTz now;
	TimestampTz deliver_at;
	int64		id;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "payload");
	check_can_send("tx_send()");

	topic_arg(fcinfo, 0, name);
	topic_id = txm_lookup_topic(name, false)->topic_id;

	payload = PG_GETARG_JSONB_P(1);
	txm_check_payload(payload, "payload");
	values[0] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	isnull[0] = PG_ARGISNULL(2);
	values[1] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	isnull[1] = PG_ARGISNULL(3);
	if (!isnull[1])
		txm_check_tags(PG_GETARG_ARRAYTYPE_P(3), "tags");
	values[2] = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	isnull[2] = PG_ARGISNULL(4);
	if (!isnull[2])
		txm_check_headers(PG_GETARG_JSONB_P(4));
	values[3] = JsonbPGetDatum(payload);
	isnull[3] = false;

	now = GetCurrentTimestamp();
	deliver_at = deliver_at_for(fcinfo, 5, now);
	if (deliver_at == 0)
		PG_RETURN_INT64(txm_log_insert(topic_id, 0, now, 0, values[0],
									   values[1], values[2], values[3], isnull));

	id = txm_next_pos();
	insert_delayed(id, topic_id, now, deliver_at, values[0], values[1],
				   values[2], values[3], isnull);
	PG_RETURN_INT64(id);
}

/*
 * tx_send_batch(topic text, payloads jsonb[], keys text[], tags text[],
 *				 headers jsonb, delay interval) RETURNS SETOF bigint
 */
Datum
tx_send_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		name[TXM_NAME_MAX + 1];
	int32		topic_id;
	ArrayType  *payload_array;
	Datum	   *payloads;
	bool	   *payload_nulls;
	int			npayloads;
	Datum	   *keys = NULL;
	bool	   *key_nulls = NULL;
	int			nkeys = 0;
	Datum		values[4];
	bool		isnull[4];
	TimestampTz now;
	TimestampTz deliver_at;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "payloads");
	check_can_send("tx_send_batch()");

	topic_arg(fcinfo, 0, name);
	topic_id = txm_lookup_topic(name, false)->topic_id;

	payload_array = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(payload_array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("payloads must be a one-dimensional array")));
	deconstruct_array(payload_array, JSONBOID, -1, false, TYPALIGN_INT,
					  &payloads, &payload_nulls, &npayloads);
	for (int i = 0; i < npayloads; i++)
	{
		if (payload_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("payloads must not contain nulls"),
					 errdetail("Element %d is null.", i + 1)));
		txm_check_payload(DatumGetJsonbP(payloads[i]), "payload");
	}

	if (!PG_ARGISNULL(2))
	{
		ArrayType  *key_array = PG_GETARG_ARRAYTYPE_P(2);

		if (ARR_NDIM(key_array) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("keys must be a one-dimensional array")));
		deconstruct_array(key_array, TEXTOID, -1, false, TYPALIGN_INT,
						  &keys, &key_nulls, &nkeys);
		if (nkeys != npayloads)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("keys must have as many elements as payloads"),
					 errdetail("There are %d payloads and %d keys.", npayloads, nkeys)));
	}
	values[1] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	isnull[1] = PG_ARGISNULL(3);
	if (!isnull[1])
		txm_check_tags(PG_GETARG_ARRAYTYPE_P(3), "tags");
	values[2] = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	isnull[2] = PG_ARGISNULL(4);
	if (!isnull[2])
		txm_check_headers(PG_GETARG_JSONB_P(4));

	now = GetCurrentTimestamp();
	deliver_at = deliver_at_for(fcinfo, 5, now);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (deliver_at == 0 && npayloads > 0)
	{
		int64	   *positions = palloc(sizeof(int64) * npayloads);

		log_insert_many(topic_id, now, npayloads, keys, key_nulls, values[1], isnull[1],
						values[2], isnull[2], payloads, positions);
		for (int i = 0; i < npayloads; i++)
		{
			Datum		id = Int64GetDatum(positions[i]);
			bool		idnull = false;

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &idnull);
		}
		return (Datum) 0;
	}
	for (int i = 0; i < npayloads; i++)
	{
		Datum		id;
		bool		idnull = false;

		values[0] = keys ? keys[i] : (Datum) 0;
		isnull[0] = keys ? key_nulls[i] : true;
		values[3] = payloads[i];
		isnull[3] = false;
		if (deliver_at == 0)
			id = Int64GetDatum(txm_log_insert(topic_id, 0, now, 0, values[0], values[1],
											  values[2], values[3], isnull));
		else
		{
			int64		delayed_id = txm_next_pos();

			insert_delayed(delayed_id, topic_id, now, deliver_at, values[0],
						   values[1], values[2], values[3], isnull);
			id = Int64GetDatum(delayed_id);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &idnull);
	}
	return (Datum) 0;
}

/*
 * tx_send_half(topic text, payload jsonb, key text, tags text[],
 *				headers jsonb) RETURNS bigint
 */
Datum
tx_send_half(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"INSERT INTO tx_message.half_messages"
		" (msg_id, topic_id, sent_at, key, tags, headers, payload)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)";
	Oid			types[7] = {INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
	TEXTARRAYOID, JSONBOID, JSONBOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char		name[TXM_NAME_MAX + 1];
	int64		id;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "payload");
	check_can_send("tx_send_half()");

	topic_arg(fcinfo, 0, name);
	values[1] = Int32GetDatum(txm_lookup_topic(name, false)->topic_id);
	txm_check_payload(PG_GETARG_JSONB_P(1), "payload");
	if (!PG_ARGISNULL(3))
		txm_check_tags(PG_GETARG_ARRAYTYPE_P(3), "tags");
	if (!PG_ARGISNULL(4))
		txm_check_headers(PG_GETARG_JSONB_P(4));

	id = txm_next_pos();
	values[0] = Int64GetDatum(id);
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	for (int i = 0; i < 3; i++)
	{
		values[3 + i] = PG_ARGISNULL(2 + i) ? (Datum) 0 : PG_GETARG_DATUM(2 + i);
		nulls[3 + i] = PG_ARGISNULL(2 + i) ? 'n' : ' ';
	}
	values[6] = PG_GETARG_DATUM(1);

	SPI_connect();
	txm_spi_exec(sql, 7, types, values, nulls, 0);
	SPI_finish();
	xact_needs_maintenance = true;
	PG_RETURN_INT64(id);
}

/*
 * Decide a half message.  Returns true if this call decided it, false if it
 * already had that outcome; a conflicting outcome or an unknown id is an
 * error.  The row lock taken by the UPDATE makes a concurrent producer call
 * or check-back wait, and the loser sees the winner's outcome.
 */
bool
txm_resolve_half(int64 msg_id, bool commit, const char *resolved_by)
{
	static const char *commit_sql =
		"UPDATE tx_message.half_messages"
		"   SET state = 'committed', resolved_at = now(), resolved_by = $2"
		" WHERE msg_id = $1 AND state = 'half'"
		" RETURNING topic_id, sent_at, key, tags, headers, payload";
	static const char *rollback_sql =
		"UPDATE tx_message.half_messages"
		"   SET state = 'rolled_back', resolved_at = now(), resolved_by = $2"
		" WHERE msg_id = $1 AND state = 'half'";
	static const char *state_sql =
		"SELECT state FROM tx_message.half_messages WHERE msg_id = $1";
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	bool		decided;

	values[0] = Int64GetDatum(msg_id);
	values[1] = CStringGetTextDatum(resolved_by);

	SPI_connect();
	if (txm_spi_exec(commit ? commit_sql : rollback_sql, 2, types, values, NULL, 0) == 1)
	{
		decided = true;
		if (commit)
		{
			HeapTuple	row = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			Datum		cols[4];
			bool		isnull[4];
			bool		n;
			int32		topic_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &n));
			TimestampTz sent_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &n));

			for (int i = 0; i < 4; i++)
				cols[i] = SPI_getbinval(row, desc, 3 + i, &isnull[i]);
			txm_log_insert(topic_id, msg_id, sent_at, 0, cols[0], cols[1],
						   cols[2], cols[3], isnull);
		}
	}
	else
	{
		char	   *state;

		if (txm_spi_exec(state_sql, 1, types, values, NULL, 1) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("half message %lld does not exist", (long long) msg_id),
					 errhint("It was never sent with tx_send_half(), its transaction has not committed, or it was removed after its topic's retention.")));
		state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (strcmp(state, commit ? "committed" : "rolled_back") == 0)
			decided = false;
		else
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("half message %lld was already %s", (long long) msg_id,
							commit ? "rolled back" : "committed"),
					 errdetail("A half message is either committed or rolled back, never both.")));
	}
	SPI_finish();
	return decided;
}

static Datum
resolve_half_fn(FunctionCallInfo fcinfo, bool commit)
{
	txm_require_arg(fcinfo, 0, "msg_id");
	check_can_send(commit ? "tx_commit_half()" : "tx_rollback_half()");
	PG_RETURN_BOOL(txm_resolve_half(PG_GETARG_INT64(0), commit, "producer"));
}

Datum
tx_commit_half(PG_FUNCTION_ARGS)
{
	return resolve_half_fn(fcinfo, true);
}

Datum
tx_rollback_half(PG_FUNCTION_ARGS)
{
	return resolve_half_fn(fcinfo, false);
}
