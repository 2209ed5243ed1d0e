/*-------------------------------------------------------------------------
 *
 * log.c
 *	  Message ids and the rows messages are stored as: the log, delayed
 *	  messages, half messages and their resolution.
 *
 * A message is one row inserted into the current log table in the sending
 * transaction, so it commits or vanishes with that transaction.  Its id is
 * (top-level FullTransactionId << 20) | n: nothing shared is touched to
 * allocate it, and the one index on the log serves both as the message-id
 * index and as the "messages of transaction T" index the ticker needs.  The
 * insert goes straight to heap_insert()/index_insert(), with the current
 * log table taken from the backend-local cache (catalog.c).  The commit of
 * a transaction that inserted appends its xid to the commit ring; one that
 * stored delayed or half messages asks the worker to look at its deadlines
 * again (both through shmem_xact.c).
 *
 * IDENTIFICATION
 *	  src/storage/log.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "src/base/catalog.h"
#include "src/base/msgjson.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/storage/log.h"

/* the current top-level transaction's ids: its virtual xid and next n */
static FullTransactionId pos_fxid;
static uint64 pos_xid;
static int64 pos_next_n = 0;

/* IndexInfo of each log table's index, built once per log table OID */
static Oid	log_index_oid[TXM_LOG_SLOTS];
static IndexInfo *log_index_info[TXM_LOG_SLOTS];

/* tx_send_batch inserts this many rows per table_multi_insert() */
#define TXM_MULTI_INSERT_CHUNK 1000

/*
 * Next message id of this transaction.  Assigns the top-level xid if the
 * transaction has none yet; the row insert that follows would anyway.  The
 * first id of a transaction locks tx_message.instance in RowShareLock (a
 * fast-path lock) before it reads the id base: the take-over of a restored
 * dump locks it exclusively, so it waits for every transaction that made
 * ids with the old base, and those that come after see the new one.
 */
int64
txm_next_pos(void)
{
	FullTransactionId fxid = GetTopFullTransactionId();

	if (!FullTransactionIdEquals(fxid, pos_fxid))
	{
		uint64		xid;
		ResourceOwner owner = CurrentResourceOwner;

		/* held to the end of the transaction, even after ROLLBACK TO SAVEPOINT */
		CurrentResourceOwner = TopTransactionResourceOwner;
		LockRelationOid(txm_catalog()->instance, RowShareLock);
		CurrentResourceOwner = owner;
		xid = U64FromFullTransactionId(fxid) + txm_instance()->id_base;
		if (xid >= TXM_MAX_FXID)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("transaction ID %llu is too large for a message id",
							(unsigned long long) xid),
					 errdetail("Message ids hold transaction IDs (plus the id base of a restored dump) below 2^%d.",
							   63 - TXM_POS_SHIFT)));
		pos_xid = xid;
		pos_fxid = fxid;
		pos_next_n = 0;
	}
	if (pos_next_n >= TXM_MAX_PER_XACT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many messages in one transaction"),
				 errdetail("A transaction can send at most %lld messages.",
						   (long long) TXM_MAX_PER_XACT),
				 errhint("Split the work into several transactions.")));
	return (int64) ((pos_xid << TXM_POS_SHIFT) | (uint64) pos_next_n++);
}

/* Forget this transaction's id base: a dump was taken over in it. */
void
txm_forget_pos(void)
{
	pos_fxid = InvalidFullTransactionId;
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
 * Open the log table messages go to now, and its index.  Lock, then look
 * again: taking the lock processes the invalidation of a rotation that
 * committed meanwhile.
 */
static Relation
open_current_log(int *slot, Relation *index)
{
	for (;;)
	{
		const TxmCatalog *c = txm_catalog();
		Relation	rel;

		*slot = txm_current_log_slot();
		rel = try_table_open(c->log[*slot], RowExclusiveLock);
		/* dropped while we waited (the update to 1.1 makes the log again) */
		if (rel == NULL)
		{
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (txm_current_log_slot() == *slot)
		{
			*index = index_open(c->log_pos[*slot], RowExclusiveLock);
			return rel;
		}
		table_close(rel, RowExclusiveLock);
	}
}

static void
close_current_log(Relation rel, Relation index, int32 topic_id)
{
	index_close(index, NoLock);
	table_close(rel, NoLock);
	/* the commit appends this transaction to the commit ring */
	txm_at_commit_ring_append(U64FromFullTransactionId(pos_fxid), topic_id);
}

/* Fill a log row's values; msg_id and deliver_at 0 are stored as NULL. */
static void
log_row(const TxmLogLayout *l, Datum *values, bool *nulls, int64 pos, int32 topic_id,
		int64 msg_id, TimestampTz sent_at, TimestampTz deliver_at, const Datum *cols,
		const bool *isnull)
{
	values[Anum_log_pos - 1] = Int64GetDatum(pos);
	nulls[Anum_log_pos - 1] = false;
	values[l->topic_id - 1] = Int32GetDatum(topic_id);
	nulls[l->topic_id - 1] = false;
	values[l->sent_at - 1] = TimestampTzGetDatum(sent_at);
	nulls[l->sent_at - 1] = false;
	values[l->msg_id - 1] = Int64GetDatum(msg_id);
	nulls[l->msg_id - 1] = (msg_id == 0);
	values[l->deliver_at - 1] = TimestampTzGetDatum(deliver_at);
	nulls[l->deliver_at - 1] = (deliver_at == 0);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		values[l->cols[k] - 1] = cols[k];
		nulls[l->cols[k] - 1] = isnull[k];
	}
}

/*
 * Form a log row without its trailing NULL columns.  A heap tuple may have
 * fewer attributes than its relation (as after ALTER TABLE ADD COLUMN): the
 * missing ones read as NULL, since the log's columns have no default.  A
 * tuple of nine attributes with a NULL needs a two-byte null bitmap, which
 * moves its data from offset 24 to 32; with eight or fewer the bitmap fits
 * in the header's padding.  heap_form_tuple takes the attribute count from
 * its descriptor, so it gets one of the first natts attributes of the
 * relation's, an anonymous record type; those are made again after any
 * relcache invalidation this backend processed.
 */
static HeapTuple
form_log_tuple(Relation rel, Datum *values, bool *nulls)
{
	static TupleDesc prefix[Natts_log];
	static Oid	prefix_relid = InvalidOid;
	static uint64 prefix_changes = 0;
	TupleDesc	desc = RelationGetDescr(rel);
	int			natts = desc->natts;

	Assert(natts == Natts_log);
	while (natts > 1 && nulls[natts - 1])
		natts--;
	if (natts == desc->natts)
		return heap_form_tuple(desc, values, nulls);
	if (prefix_relid != RelationGetRelid(rel) || prefix_changes != txm_catalog_changes())
	{
		for (int n = 0; n < Natts_log; n++)
		{
			if (prefix[n])
				FreeTupleDesc(prefix[n]);
			prefix[n] = NULL;
		}
		prefix_relid = RelationGetRelid(rel);
		prefix_changes = txm_catalog_changes();
	}
	if (prefix[natts] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(CacheMemoryContext);

		prefix[natts] = CreateTemplateTupleDesc(natts);
		for (AttrNumber a = 1; a <= natts; a++)
			TupleDescCopyEntry(prefix[natts], a, desc, a);
		MemoryContextSwitchTo(old);
	}
	return heap_form_tuple(prefix[natts], values, nulls);
}

/*
 * With change data capture on (tx_cdc_enable), every message that enters
 * the log is also a transactional logical decoding message with the prefix
 * "tx_message": decoders get it once, when and only if its transaction
 * commits, in commit order, as JSON {"id" (a string: ids exceed 2^53),
 * "topic", "key", "tags", "headers", "payload", "sent_at"}.  Off, it costs
 * a test of the cached instance row.
 */
static void
emit_cdc(int64 id, int32 topic_id, TimestampTz sent_at, const Datum *cols, const bool *isnull)
{
	StringInfoData buf;
	const char *topic = txm_topic_name(topic_id);
	char		ts[MAXDATELEN + 1];
	int			utc = 0;
	Jsonb	   *jb;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"id\": \"" INT64_FORMAT "\", \"topic\": ", id);
	escape_json(&buf, topic ? topic : "");
	appendStringInfoString(&buf, ", ");
	txm_json_key_and_tags(&buf, cols, isnull);
	appendStringInfoString(&buf, ", \"headers\": ");
	if (isnull[TXM_COL_HEADERS])
		appendStringInfoString(&buf, "null");
	else
	{
		jb = DatumGetJsonbP(cols[TXM_COL_HEADERS]);
		(void) JsonbToCString(&buf, &jb->root, VARSIZE(jb));
	}
	appendStringInfoString(&buf, ", \"payload\": ");
	jb = DatumGetJsonbP(cols[TXM_COL_PAYLOAD]);
	(void) JsonbToCString(&buf, &jb->root, VARSIZE(jb));
	JsonEncodeDateTime(ts, TimestampTzGetDatum(sent_at), TIMESTAMPTZOID, &utc);
	appendStringInfo(&buf, ", \"sent_at\": \"%s\"}", ts);
	LogLogicalMessage(TXM_CDC_PREFIX, buf.data, buf.len, true);
	pfree(buf.data);
}

/*
 * A half or delayed message moved into the log keeps its id, which is not
 * its position there: say where it went, for tx_trace (a database at 1.0
 * has no table for it).  Off the success path of tx_send.
 */
static void
record_moved(int64 msg_id, int64 pos)
{
	static const char *sql =
		"INSERT INTO tx_message.moved (msg_id, pos) VALUES ($1, $2)"
		" ON CONFLICT (msg_id) DO UPDATE SET pos = excluded.pos";
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];

	if (!OidIsValid(txm_catalog()->moved))
		return;
	values[0] = Int64GetDatum(msg_id);
	values[1] = Int64GetDatum(pos);
	SPI_connect();
	txm_spi_exec(sql, 2, types, values, NULL, 0);
	SPI_finish();
}

/*
 * Insert one message row into the current log table.  msg_id and
 * deliver_at are 0 for ordinary sends; rows moved in from half_messages or
 * delayed keep the id their producer was given.  cols and isnull are the
 * message's key, tags, headers and payload.  Returns the row's position
 * (its id when msg_id is 0).
 */
int64
txm_log_insert(int32 topic_id, int64 msg_id, TimestampTz sent_at,
			   TimestampTz deliver_at, const Datum *cols, const bool *isnull)
{
	return txm_log_insert_at(txm_next_pos(), topic_id, msg_id, sent_at, deliver_at,
							 cols, isnull);
}

/*
 * The same at a position the caller took from txm_next_pos(): a send with a
 * dedup key needs its id before it knows whether it stores anything.
 */
int64
txm_log_insert_at(int64 pos, int32 topic_id, int64 msg_id, TimestampTz sent_at,
				  TimestampTz deliver_at, const Datum *cols, const bool *isnull)
{
	int			slot;
	Relation	rel;
	Relation	index;
	HeapTuple	tup;
	Datum		values[Natts_log];
	bool		nulls[Natts_log];

	rel = open_current_log(&slot, &index);
	log_row(txm_catalog()->log_layout[slot], values, nulls, pos, topic_id, msg_id, sent_at,
			deliver_at, cols, isnull);
	tup = form_log_tuple(rel, values, nulls);
	heap_insert(rel, tup, GetCurrentCommandId(true), 0, NULL);
	index_insert(index, &values[Anum_log_pos - 1], &nulls[Anum_log_pos - 1], &tup->t_self,
				 rel, UNIQUE_CHECK_NO, false, log_index_info_for(slot, index));
	close_current_log(rel, index, topic_id);
	heap_freetuple(tup);
	if (msg_id != 0)
		record_moved(msg_id, pos);
	if (txm_instance()->cdc)
		emit_cdc(msg_id != 0 ? msg_id : pos, topic_id, sent_at, cols, isnull);
	return pos;
}

/*
 * tx_send_batch's messages of one topic: the same rows as txm_log_insert,
 * but put in the heap with table_multi_insert, one WAL record per page
 * instead of one per row.  Positions are returned in payload order.
 */
void
txm_log_insert_many(int32 topic_id, TimestampTz sent_at, int n, const Datum *keys,
					const bool *key_nulls, Datum tags, bool tags_null, Datum headers,
					bool headers_null, const Datum *payloads, int64 *positions)
{
	int			slot;
	Relation	rel;
	Relation	index;
	TupleDesc	desc;
	TupleTableSlot **slots;
	int			nslots = Min(n, TXM_MULTI_INSERT_CHUNK);
	CommandId	cid = GetCurrentCommandId(true);

	rel = open_current_log(&slot, &index);
	desc = RelationGetDescr(rel);
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	for (int i = 0; i < nslots; i++)
		slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	for (int done = 0; done < n; done += nslots)
	{
		int			k = Min(nslots, n - done);

		for (int i = 0; i < k; i++)
		{
			Datum		values[Natts_log];
			bool		nulls[Natts_log];
			Datum		cols[TXM_MSG_NCOLS];
			bool		isnull[TXM_MSG_NCOLS];

			positions[done + i] = txm_next_pos();
			cols[TXM_COL_KEY] = keys ? keys[done + i] : (Datum) 0;
			isnull[TXM_COL_KEY] = keys ? key_nulls[done + i] : true;
			cols[TXM_COL_TAGS] = tags;
			isnull[TXM_COL_TAGS] = tags_null;
			cols[TXM_COL_HEADERS] = headers;
			isnull[TXM_COL_HEADERS] = headers_null;
			cols[TXM_COL_PAYLOAD] = payloads[done + i];
			isnull[TXM_COL_PAYLOAD] = false;
			log_row(txm_catalog()->log_layout[slot], values, nulls, positions[done + i],
					topic_id, 0, sent_at, 0, cols, isnull);
			ExecStoreHeapTuple(form_log_tuple(rel, values, nulls), slots[i], true);
			/* read after txm_next_pos() locked instance: the setting holds to our commit */
			if (txm_instance()->cdc)
				emit_cdc(positions[done + i], topic_id, sent_at, cols, isnull);
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
	close_current_log(rel, index, topic_id);
}

/* Store a committed message that is delivered at deliver_at. */
void
txm_delayed_insert(int64 msg_id, int32 topic_id, TimestampTz sent_at,
				   TimestampTz deliver_at, const Datum *cols, const bool *isnull)
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
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		values[4 + k] = cols[k];
		nulls[4 + k] = txm_spi_null(isnull[k]);
	}
	SPI_connect();
	txm_spi_exec(sql, 8, types, values, nulls, 0);
	SPI_finish();
	txm_at_commit_request_maintenance();
}

/*
 * Store a half message: invisible to consumers until it is committed.
 * check_after (NULL: the topic's) delays its first check-back; only a
 * database at 1.1 has the column, and only its tx_send_half passes one.
 */
void
txm_half_insert(int64 msg_id, int32 topic_id, TimestampTz sent_at,
				const Datum *cols, const bool *isnull, Interval *check_after)
{
	static const char *sql =
		"INSERT INTO tx_message.half_messages"
		" (msg_id, topic_id, sent_at, key, tags, headers, payload)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)";
	static const char *sql_check_after =
		"INSERT INTO tx_message.half_messages"
		" (msg_id, topic_id, sent_at, key, tags, headers, payload, check_after)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
	Oid			types[8] = {INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID,
	TEXTARRAYOID, JSONBOID, JSONBOID, INTERVALOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(msg_id);
	values[1] = Int32GetDatum(topic_id);
	values[2] = TimestampTzGetDatum(sent_at);
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		values[3 + k] = cols[k];
		nulls[3 + k] = txm_spi_null(isnull[k]);
	}
	values[7] = check_after ? IntervalPGetDatum(check_after) : (Datum) 0;
	SPI_connect();
	if (check_after)
		txm_spi_exec(sql_check_after, 8, types, values, nulls, 0);
	else
		txm_spi_exec(sql, 7, types, values, nulls, 0);
	SPI_finish();
	txm_at_commit_request_maintenance();
}

void
txm_no_half_message(int64 msg_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("half message %lld does not exist", (long long) msg_id),
			 errhint("It was never sent with tx_send_half(), its transaction has not committed, or it was removed after its topic's retention.")));
}

/* The topic of a half message, or 0 if there is no such half message. */
int32
txm_half_topic(int64 msg_id)
{
	static const char *sql =
		"SELECT topic_id FROM tx_message.half_messages WHERE msg_id = $1";
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	int32		topic_id = 0;

	values[0] = Int64GetDatum(msg_id);
	SPI_connect();
	if (txm_spi_exec(sql, 1, types, values, NULL, 1) == 1)
	{
		bool		isnull;

		topic_id = DatumGetInt32(txm_spi_value(0, 1, &isnull));
	}
	SPI_finish();
	return topic_id;
}

/*
 * Decide a half message.  Returns true if this call decided it, false if it
 * already had that outcome; a conflicting outcome or an unknown id is an
 * error.  The row lock taken by the UPDATE makes a concurrent producer call
 * or check-back wait, and the loser sees the winner's outcome.  Committing
 * moves the message into the log in the current transaction.
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
	bool		decided = true;

	values[0] = Int64GetDatum(msg_id);
	values[1] = CStringGetTextDatum(resolved_by);

	SPI_connect();
	if (txm_spi_exec(commit ? commit_sql : rollback_sql, 2, types, values, NULL, 0) == 1)
	{
		if (commit)
		{
			Datum		cols[TXM_MSG_NCOLS];
			bool		isnull[TXM_MSG_NCOLS];
			bool		n;
			int32		topic_id = DatumGetInt32(txm_spi_value(0, 1, &n));
			TimestampTz sent_at = DatumGetTimestampTz(txm_spi_value(0, 2, &n));

			for (int k = 0; k < TXM_MSG_NCOLS; k++)
				cols[k] = txm_spi_value(0, 3 + k, &isnull[k]);
			txm_log_insert(topic_id, msg_id, sent_at, 0, cols, isnull);
		}
	}
	else
	{
		char	   *state;

		if (txm_spi_exec(state_sql, 1, types, values, NULL, 1) == 0)
			txm_no_half_message(msg_id);
		state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (strcmp(state, commit ? "committed" : "rolled_back") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("half message %lld was already %s", (long long) msg_id,
							commit ? "rolled back" : "committed"),
					 errdetail("A half message is either committed or rolled back, never both.")));
		decided = false;
	}
	SPI_finish();
	return decided;
}
