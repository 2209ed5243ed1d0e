/*-------------------------------------------------------------------------
 *
 * find.c
 *	  Where is my message: tx_find, the stored messages of a topic with a
 *	  given key; tx_recent, the latest ones of a topic; tx_trace, where one
 *	  is for each consumer group; and a slice's positions, for the SQL that
 *	  reads slices.
 *
 * Keys are not indexed: an index would cost every tx_send of every topic
 * (the log is written with direct heap and index inserts), and most topics
 * never look a key up.  tx_find scans what retention keeps of the topic
 * since the time given, newest first; bench/ states what that costs.
 *
 * IDENTIFICATION
 *	  src/api/find.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/packed.h"
#include "src/base/spi.h"
#include "src/base/validate.h"
#include "src/storage/stream.h"

PG_FUNCTION_INFO_V1(tx_find);
PG_FUNCTION_INFO_V1(tx_recent);
PG_FUNCTION_INFO_V1(tx_trace);
PG_FUNCTION_INFO_V1(tx_message_slice_positions);

#define TXM_MAX_FIND 10000
#define TXM_MAX_RECENT 1000

/*
 * tx_find(topic text, key text, since timestamptz, max integer)
 *	RETURNS SETOF tx_message.messages
 */
Datum
tx_find(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"SELECT m.msg_id, $5::text, m.key, m.tags, m.headers, m.payload, m.state, m.sent_at, m.deliver_at"
		"  FROM (SELECT coalesce(l.msg_id, l.pos) AS msg_id, l.key, l.tags, l.headers, l.payload,"
		"               'committed'::text AS state, l.sent_at, coalesce(l.deliver_at, l.sent_at) AS deliver_at"
		"          FROM (SELECT * FROM tx_message.log_0 UNION ALL SELECT * FROM tx_message.log_1"
		"                UNION ALL SELECT * FROM tx_message.log_2) l"
		"         WHERE l.topic_id = $1 AND l.key = $2 AND l.sent_at >= $3"
		"        UNION ALL"
		"        SELECT d.msg_id, d.key, d.tags, d.headers, d.payload, 'committed', d.sent_at, d.deliver_at"
		"          FROM tx_message.delayed d"
		"         WHERE d.topic_id = $1 AND d.key = $2 AND d.sent_at >= $3"
		"        UNION ALL"
		"        SELECT h.msg_id, h.key, h.tags, h.headers, h.payload, h.state, h.sent_at, NULL"
		"          FROM tx_message.half_messages h"
		"         WHERE h.topic_id = $1 AND h.key = $2 AND h.sent_at >= $3 AND h.state <> 'committed') m"
		" ORDER BY m.sent_at DESC, m.msg_id DESC LIMIT $4";
	Oid			types[5] = {INT4OID, TEXTOID, TIMESTAMPTZOID, INT4OID, TEXTOID};
	Datum		values[5];
	char		name[TXM_NAME_MAX + 1];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max;
	int			n;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "key");
	txm_require_arg(fcinfo, 2, "since");
	txm_require_arg(fcinfo, 3, "max");
	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", name);
	txm_check_key(PG_GETARG_DATUM(1));
	max = PG_GETARG_INT32(3);
	txm_check_int_range("max", max, 1, TXM_MAX_FIND);

	values[0] = Int32GetDatum(txm_topic_id_for(name, TXM_PRIV_RECEIVE));
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = Int32GetDatum(max);
	values[4] = CStringGetTextDatum(name);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	n = txm_spi_exec(sql, 5, types, values, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		Datum		row[9];
		bool		nulls[9];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * Up to max positions of a topic's stream, newest first, after skipping
 * the skip newest ones: read block by block from the head down, as the
 * slices of each block give them.  Returns how many; *slots gets the log
 * tables that hold them.
 */
static int
recent_positions(int32 topic_id, int64 skip, int max, Snapshot snap, TxmMsg *msgs, int16 *slots)
{
	int64		head = txm_stream_head(topic_id, snap);
	int			n = 0;

	*slots = 0;
	if (skip >= head)
		return 0;
	for (int64 block = (head - 1 - skip) / TXM_BLOCK; block >= 0 && n < max; block--)
	{
		TxmBlockSlices bs;

		if (!txm_read_block_slices(topic_id, block, snap, &bs))
			break;				/* retention dropped what comes before */
		*slots |= bs.slots;
		for (int off = TXM_BLOCK - 1; off >= 0 && n < max; off--)
		{
			if (!txm_bit_get(&bs.avail, off) || block * TXM_BLOCK + off >= head - skip)
				continue;
			msgs[n++].pos = bs.pos[off];
		}
	}
	return n;
}

/*
 * tx_recent(topic text, max integer, skip bigint)
 *	RETURNS SETOF tx_message.messages
 *
 * The latest messages of a topic in the order consumers get them (commit
 * order), newest first, skipping the skip newest: what an operator looks
 * at, paged.  It reads the stream's last slices and their log rows by
 * position, a few index probes whatever the backlog.  deliver_at is not
 * kept in the stream: NULL.
 */
Datum
tx_recent(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		name[TXM_NAME_MAX + 1];
	int32		topic_id;
	int32		max;
	int64		skip;
	TxmMsg	   *msgs;
	int16		slots;
	int			n;
	Snapshot	snap;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "max");
	txm_require_arg(fcinfo, 2, "skip");
	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", name);
	max = PG_GETARG_INT32(1);
	skip = PG_GETARG_INT64(2);
	txm_check_int_range("max", max, 1, TXM_MAX_RECENT);
	txm_check_int_range("skip", skip, 0, PG_INT64_MAX / 2);
	topic_id = txm_topic_id_for(name, TXM_PRIV_RECEIVE);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	msgs = palloc0(sizeof(TxmMsg) * max);
	snap = RegisterSnapshot(GetLatestSnapshot());
	/* the stream's head may need a statement; the rows are copied outside SPI's memory */
	SPI_connect();
	n = recent_positions(topic_id, skip, max, snap, msgs, &slots);
	SPI_finish();
	txm_fetch_messages(msgs, n, slots, snap);
	UnregisterSnapshot(snap);
	for (int i = 0; i < n; i++)
	{
		Datum		row[9];
		bool		nulls[9] = {false, false, false, false, false, false, false, false, true};

		if (!msgs[i].found)
			continue;
		row[0] = Int64GetDatum(msgs[i].msg_id);
		row[1] = CStringGetTextDatum(name);
		for (int k = 0; k < TXM_MSG_NCOLS; k++)
		{
			row[2 + k] = msgs[i].cols[k];
			nulls[2 + k] = msgs[i].isnull[k];
		}
		row[6] = CStringGetTextDatum("committed");
		row[7] = TimestampTzGetDatum(msgs[i].sent_at);
		row[8] = (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	return (Datum) 0;
}

/* One row of tx_trace. */
typedef struct TraceRow
{
	Datum		values[10];
	bool		nulls[10];
} TraceRow;

enum
{
	TR_GROUP, TR_STATE, TR_ATTEMPTS, TR_PID, TR_LEASE_UNTIL, TR_ERROR, TR_SENT_AT,
	TR_DELIVERABLE_AT, TR_FIRST_DELIVERED_AT, TR_FINISHED_AT
};

static void
trace_row_init(TraceRow *r, const char *group, Datum sent_at, bool sent_null)
{
	for (int i = 0; i < 10; i++)
		r->nulls[i] = true;
	if (group)
	{
		r->values[TR_GROUP] = CStringGetTextDatum(group);
		r->nulls[TR_GROUP] = false;
	}
	r->values[TR_SENT_AT] = sent_at;
	r->nulls[TR_SENT_AT] = sent_null;
}

static void
trace_set(TraceRow *r, int col, Datum v, bool isnull)
{
	r->values[col] = v;
	r->nulls[col] = isnull;
}

/* Column col of the last statement's row 0, copied out of SPI's memory. */
static Datum
spi_copy(int col, bool *isnull)
{
	Datum		v = txm_spi_value(0, col, isnull);
	Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, col - 1);

	return *isnull ? (Datum) 0 : SPI_datumTransfer(v, att->attbyval, att->attlen);
}

/* Copy column col of the last statement's row 0 into column to of r. */
static void
trace_take(TraceRow *r, int to, int col)
{
	bool		isnull;
	Datum		v = spi_copy(col, &isnull);

	trace_set(r, to, v, isnull);
}

/*
 * The fate of a message for one subscription: its dead letter, its retry,
 * its position against the group's watermark, or the lease row that covers
 * it.  seq < 0: the message has no position yet (not ticked, or delayed).
 */
static void
trace_group(TraceRow *r, int32 sub_id, const char *group, int64 msg_id, int64 seq,
			int64 done_seq, bool filtered)
{
	static const char *dead_sql =
		"SELECT attempts, last_error, dead_at FROM tx_message.dead_letters_data"
		" WHERE consumer_group = $1 AND msg_id = $2";
	static const char *retry_sql =
		"SELECT attempt, state, CASE WHEN state = 'leased' THEN due_at END, holder, last_error"
		"  FROM tx_message.retries_data WHERE sub_id = $1 AND msg_id = $2";
	static const char *lease_sql =
		"SELECT get_bit(done, $3 - first_off) = 1, lease_until > now(), lease_until, holder, leased_at"
		"  FROM tx_message.leases"
		" WHERE sub_id = $1 AND block = $2 AND first_off <= $3"
		"   AND CASE WHEN $3 - first_off < length(covered) THEN get_bit(covered, $3 - first_off) = 1"
		"            ELSE false END";
	Oid			dtypes[2] = {TEXTOID, INT8OID};
	Oid			rtypes[2] = {INT4OID, INT8OID};
	Oid			ltypes[3] = {INT4OID, INT8OID, INT4OID};
	Datum		values[3];
	bool		isnull;

	values[0] = CStringGetTextDatum(group);
	values[1] = Int64GetDatum(msg_id);
	if (txm_spi_exec(dead_sql, 2, dtypes, values, NULL, 1) == 1)
	{
		trace_set(r, TR_STATE, CStringGetTextDatum("dead"), false);
		trace_take(r, TR_ATTEMPTS, 1);
		trace_take(r, TR_ERROR, 2);
		trace_take(r, TR_FINISHED_AT, 3);
		return;
	}
	values[0] = Int32GetDatum(sub_id);
	if (txm_spi_exec(retry_sql, 2, rtypes, values, NULL, 1) == 1)
	{
		char	   *state = TextDatumGetCString(txm_spi_value(0, 2, &isnull));

		trace_set(r, TR_STATE, CStringGetTextDatum(strcmp(state, "leased") == 0 ? "leased" : "retrying"),
				  false);
		trace_take(r, TR_ATTEMPTS, 1);
		trace_take(r, TR_LEASE_UNTIL, 3);
		trace_take(r, TR_PID, 4);
		trace_take(r, TR_ERROR, 5);
		return;
	}
	if (seq < 0)
	{
		trace_set(r, TR_STATE, CStringGetTextDatum("pending"), false);
		return;
	}
	if (seq < done_seq)
	{
		/* finished; when is not kept (that would be a write per message) */
		trace_set(r, TR_STATE, CStringGetTextDatum(filtered ? "filtered" : "acked"), false);
		return;
	}
	values[0] = Int32GetDatum(sub_id);
	values[1] = Int64GetDatum(seq / TXM_BLOCK);
	values[2] = Int32GetDatum((int32) (seq % TXM_BLOCK));
	if (txm_spi_exec(lease_sql, 3, ltypes, values, NULL, 1) == 1)
	{
		bool		done = DatumGetBool(txm_spi_value(0, 1, &isnull));
		bool		held = DatumGetBool(txm_spi_value(0, 2, &isnull));

		trace_take(r, TR_FIRST_DELIVERED_AT, 5);
		if (done)
		{
			trace_set(r, TR_STATE, CStringGetTextDatum(filtered ? "filtered" : "acked"), false);
			return;
		}
		trace_set(r, TR_ATTEMPTS, Int32GetDatum(1), false);
		/* an expired lease: the message comes again */
		trace_set(r, TR_STATE, CStringGetTextDatum(held ? "leased" : "pending"), false);
		if (held)
		{
			trace_take(r, TR_LEASE_UNTIL, 3);
			trace_take(r, TR_PID, 4);
		}
		return;
	}
	trace_set(r, TR_STATE, CStringGetTextDatum("pending"), false);
	trace_set(r, TR_ATTEMPTS, Int32GetDatum(0), false);
}

/*
 * The position of a logged message in its topic's stream: from the first
 * tick whose snapshot sees its transaction, the slices of that tick (found
 * by bisection over the stream, stream.c); a message whose tick was trimmed
 * is looked for in every slice of the topic.  -1 if it has none yet.
 * *tick_at: when it became deliverable, if known.
 */
static int64
trace_position(int32 topic_id, int64 pos, Datum *tick_at, bool *tick_null)
{
	static const char *tick_sql =
		"SELECT tick_id, created_at FROM tx_message.ticks"
		" WHERE pg_catalog.pg_visible_in_snapshot(($1::text)::xid8, snapshot)"
		" ORDER BY tick_id LIMIT 1";
	/* OFFSET 0: a subquery pulled up would decode a packed slice once per use */
#define SCAN_SQL(POSITIONS) \
		"SELECT s.first_seq + array_position(p.positions, $2) - 1" \
		"  FROM tx_message.slices s, LATERAL (SELECT " POSITIONS " AS positions OFFSET 0) p" \
		" WHERE s.topic_id = $1 AND p.positions @> ARRAY[$2]"
	static const char *scan_sql[2] = {SCAN_SQL(TXM_SLICE_POSITIONS_1_0), SCAN_SQL(TXM_SLICE_POSITIONS_1_1)};
	Oid			ttypes[1] = {INT8OID};
	Oid			stypes[2] = {INT4OID, INT8OID};
	Datum		values[2];
	bool		isnull;

	*tick_null = true;
	values[0] = Int64GetDatum((int64) TXM_POS_XID(pos));
	if (txm_spi_exec_latest(tick_sql, 1, ttypes, values, NULL, 1) == 1)
	{
		Datum		at = txm_spi_value(0, 2, &isnull);
		int64		tick_id = DatumGetInt64(txm_spi_value(0, 1, &isnull));
		Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
		int64		seq = txm_stream_seq_in_tick(topic_id, tick_id, pos, snap);

		UnregisterSnapshot(snap);
		if (seq >= 0)
		{
			*tick_at = at;
			*tick_null = false;
			return seq;
		}
	}
	values[0] = Int32GetDatum(topic_id);
	values[1] = Int64GetDatum(pos);
	if (txm_spi_exec_latest(scan_sql[txm_catalog()->v1_1], 2, stypes, values, NULL, 1) == 1)
		return DatumGetInt64(txm_spi_value(0, 1, &isnull));
	return -1;
}

/* The rows of the subscriptions of the message's topic, in group order. */
static void
trace_groups(ReturnSetInfo *rsinfo, int32 topic_id, int64 msg_id, int64 seq, Datum tags,
			 bool tags_null, Datum sent_at, Datum deliverable, bool deliverable_null)
{
	static const char *subs_sql =
		"SELECT s.sub_id, s.consumer_group, coalesce(st.done_seq, 0),"
		"       s.tags IS NOT NULL AND NOT coalesce($2::text[] && s.tags, false)"
		"  FROM tx_message.subscriptions s JOIN tx_message.topics t ON t.topic = s.topic"
		"  LEFT JOIN tx_message.sub_state st ON st.sub_id = s.sub_id"
		" WHERE t.topic_id = $1 ORDER BY s.consumer_group";
	Oid			types[2] = {INT4OID, TEXTARRAYOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	int			nsubs;
	SPITupleTable *subs;

	values[0] = Int32GetDatum(topic_id);
	values[1] = tags;
	nulls[1] = txm_spi_null(tags_null);
	nsubs = txm_spi_exec_latest(subs_sql, 2, types, values, nulls, 0);
	subs = SPI_tuptable;
	for (int i = 0; i < nsubs; i++)
	{
		TraceRow	r;
		char	   *group = SPI_getvalue(subs->vals[i], subs->tupdesc, 2);

		trace_row_init(&r, group, sent_at, false);
		trace_set(&r, TR_DELIVERABLE_AT, deliverable, deliverable_null);
		trace_group(&r, DatumGetInt32(SPI_getbinval(subs->vals[i], subs->tupdesc, 1, &isnull)),
					group, msg_id, seq,
					DatumGetInt64(SPI_getbinval(subs->vals[i], subs->tupdesc, 3, &isnull)),
					DatumGetBool(SPI_getbinval(subs->vals[i], subs->tupdesc, 4, &isnull)));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, r.values, r.nulls);
	}
}

/*
 * tx_trace(msg_id bigint) RETURNS TABLE (consumer_group, state, attempts,
 *	lease_pid, lease_until, last_error, sent_at, deliverable_at,
 *	first_delivered_at, finished_at)
 *
 * One row per subscription of the message's topic, and one with
 * consumer_group NULL for its life as a half message.  Needs 'receive' on
 * the topic.  Index look-ups, except for a message whose tick was trimmed.
 */
Datum
tx_trace(PG_FUNCTION_ARGS)
{
	static const char *find_sql =
		"SELECT x.pos, x.topic_id, x.sent_at, x.tags, x.deliver_at FROM ("
		"  SELECT l.pos, l.topic_id, l.sent_at, l.tags, NULL::timestamptz AS deliver_at"
		"    FROM (SELECT * FROM tx_message.log_0 UNION ALL SELECT * FROM tx_message.log_1"
		"          UNION ALL SELECT * FROM tx_message.log_2) l"
		"   WHERE l.pos = coalesce((SELECT pos FROM tx_message.moved WHERE msg_id = $1), $1)"
		"  UNION ALL"
		"  SELECT NULL, d.topic_id, d.sent_at, d.tags, d.deliver_at FROM tx_message.delayed d"
		"   WHERE d.msg_id = $1) x LIMIT 1";
	static const char *half_sql =
		"SELECT h.topic_id, h.sent_at, h.state, h.resolved_at, h.last_check_error,"
		"       (SELECT count(*)::integer FROM tx_message.half_checks c WHERE c.msg_id = h.msg_id)"
		"  FROM tx_message.half_messages h WHERE h.msg_id = $1"
		" UNION ALL"
		" SELECT d.topic_id, d.sent_at, 'dead', d.dead_at, d.last_error, d.attempts"
		"  FROM tx_message.dead_letters_data d WHERE d.consumer_group IS NULL AND d.msg_id = $1"
		" LIMIT 1";
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	int64		msg_id;
	bool		isnull;
	bool		logged = false;
	bool		half = false;
	int32		topic_id = 0;
	int64		pos = 0;
	Datum		sent_at = (Datum) 0;
	Datum		tags = (Datum) 0;
	bool		tags_null = true;
	Datum		deliverable = (Datum) 0;
	bool		deliverable_null = true;
	TraceRow	half_row;
	TxmTopic   *topic;

	txm_require_arg(fcinfo, 0, "msg_id");
	msg_id = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(msg_id);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();

	/* its life as a half message, if it had one */
	if (txm_spi_exec_latest(half_sql, 1, types, values, NULL, 1) == 1)
	{
		half = true;
		topic_id = DatumGetInt32(txm_spi_value(0, 1, &isnull));
		trace_row_init(&half_row, NULL, spi_copy(2, &isnull), false);
		trace_take(&half_row, TR_STATE, 3);
		trace_take(&half_row, TR_FINISHED_AT, 4);
		trace_take(&half_row, TR_ERROR, 5);
		trace_take(&half_row, TR_ATTEMPTS, 6);
	}
	/* where it is now, if it was committed */
	if (txm_spi_exec_latest(find_sql, 1, types, values, NULL, 1) == 1)
	{
		Datum		p = txm_spi_value(0, 1, &isnull);

		logged = !isnull;
		pos = logged ? DatumGetInt64(p) : 0;
		topic_id = DatumGetInt32(txm_spi_value(0, 2, &isnull));
		sent_at = spi_copy(3, &isnull);
		tags = spi_copy(4, &tags_null);
		deliverable = spi_copy(5, &deliverable_null);
	}
	else if (!half)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("message " INT64_FORMAT " does not exist", msg_id),
				 errdetail("Neither the log, delayed messages, half messages nor check-back dead letters hold it: it was never sent, or retention removed it.")));

	/* the caller must be allowed to see its payload */
	topic = txm_lookup_topic_by_id(topic_id);
	txm_require_topic_privilege(topic, TXM_PRIV_RECEIVE);

	if (logged || !deliverable_null)
	{
		int64		seq = -1;

		if (logged)
			seq = trace_position(topic_id, pos, &deliverable, &deliverable_null);
		trace_groups(rsinfo, topic_id, msg_id, seq, tags, tags_null, sent_at,
					 deliverable, deliverable_null);
	}
	if (half)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, half_row.values, half_row.nulls);
	SPI_finish();
	return (Datum) 0;
}

/*
 * tx_message._slice_positions(positions bigint[], packed bytea)
 *	RETURNS bigint[]
 *
 * A slice's log positions for SQL, whichever of the two columns holds them
 * (packed.c).  It reads nothing but its arguments, so anyone may call it;
 * like the library's readers it takes at most a slice's TXM_BLOCK.
 */
Datum
tx_message_slice_positions(PG_FUNCTION_ARGS)
{
	bytea	   *packed;
	int64	   *positions;
	Datum	   *elems;
	int			n;

	if (!PG_ARGISNULL(0))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	packed = PG_GETARG_BYTEA_PP(1);
	positions = palloc(sizeof(int64) * TXM_BLOCK);
	n = txm_unpack_positions(packed, positions, TXM_BLOCK);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(positions[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
