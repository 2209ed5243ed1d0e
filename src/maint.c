/*-------------------------------------------------------------------------
 *
 * maint.c
 *	  Maintenance work of the worker: delayed messages, check-backs,
 *	  prepared transactions, dead-letter alerts, tick history.
 *
 * Check-backs (RocketMQ's 回查): a half message older than its topic's
 * check_after and still unresolved is checked every check_interval.  With a
 * check function, the function is called with the message, as the topic's
 * owner, bounded by tx_message.check_timeout, in a subtransaction so that an
 * error or a timeout only counts as one unknown check.  Without one, a
 * NOTIFY tx_message_check asks an external producer to answer with
 * tx_commit_half/tx_rollback_half.  After check_max unknown checks the
 * message moves to tx_message.dead_letters.  The half message's row is
 * locked with SKIP LOCKED, and the due condition is checked again under the
 * lock, so a check racing with tx_commit_half, tx_rollback_half or another
 * checker ends with exactly one outcome.
 *
 * IDENTIFICATION
 *	  src/maint.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/typcache.h"

#include "tx_message.h"

typedef enum CheckOutcome
{
	CHECK_COMMIT,
	CHECK_ROLLBACK,
	CHECK_UNKNOWN
} CheckOutcome;

/* gids of prepared transactions already warned about, in this process */
static List *warned_gids = NIL;

/*
 * Release delayed messages that are due: move them into the log in the
 * current transaction, in due order.  Their commit position is the commit of
 * this transaction.
 */
int64
txm_release_delayed(int limit)
{
	static const char *sql =
		"WITH due AS ("
		"  SELECT msg_id FROM tx_message.delayed WHERE deliver_at <= now()"
		"  ORDER BY deliver_at, msg_id LIMIT $1 FOR UPDATE SKIP LOCKED)"
		" DELETE FROM tx_message.delayed d USING due WHERE d.msg_id = due.msg_id"
		" RETURNING d.topic_id, d.msg_id, d.sent_at, d.deliver_at, d.key, d.tags, d.headers, d.payload";
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	int			n;
	int		   *order;

	values[0] = Int32GetDatum(limit);
	SPI_connect();
	n = txm_spi_exec(sql, 1, types, values, NULL, 0);

	/* RETURNING has no order: sort by deliver_at, then id */
	order = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++)
	{
		for (int j = i; j > 0; j--)
		{
			bool		isnull;
			HeapTuple	a = SPI_tuptable->vals[order[j - 1]];
			HeapTuple	b = SPI_tuptable->vals[order[j]];
			TimestampTz ta = DatumGetTimestampTz(SPI_getbinval(a, SPI_tuptable->tupdesc, 4, &isnull));
			TimestampTz tb = DatumGetTimestampTz(SPI_getbinval(b, SPI_tuptable->tupdesc, 4, &isnull));
			int64		ia = DatumGetInt64(SPI_getbinval(a, SPI_tuptable->tupdesc, 2, &isnull));
			int64		ib = DatumGetInt64(SPI_getbinval(b, SPI_tuptable->tupdesc, 2, &isnull));

			if (ta < tb || (ta == tb && ia <= ib))
				break;
			order[j - 1] ^= order[j];
			order[j] ^= order[j - 1];
			order[j - 1] ^= order[j];
		}
	}
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[order[i]];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		cols[4];
		bool		isnull[4];
		bool		n1;

		for (int k = 0; k < 4; k++)
			cols[k] = SPI_getbinval(row, desc, 5 + k, &isnull[k]);
		txm_log_insert(DatumGetInt32(SPI_getbinval(row, desc, 1, &n1)),
					   DatumGetInt64(SPI_getbinval(row, desc, 2, &n1)),
					   DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &n1)),
					   DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &n1)),
					   cols[0], cols[1], cols[2], cols[3], isnull);
	}
	SPI_finish();
	return n;
}

/*
 * NOTIFY tx_message_dead_letter and a WARNING in the server log: the seed's
 * "listen to the dead-letter queue, log, and alert".  The notification goes
 * out when the current transaction commits.  The WARNING is for the log, not
 * for the client whose nack or maintenance call caused it.
 */
void
txm_dead_letter_notify(const char *topic, const char *consumer_group,
					   int64 msg_id, const char *key, const char *reason)
{
	StringInfoData buf;
	int			saved = client_min_messages;
	TxmDbSlot  *slot = txm_my_slot();

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"topic\": ");
	escape_json(&buf, topic);
	appendStringInfoString(&buf, ", \"consumer_group\": ");
	if (consumer_group)
		escape_json(&buf, consumer_group);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfo(&buf, ", \"msg_id\": " INT64_FORMAT ", \"key\": ", msg_id);
	if (key)
		escape_json(&buf, key);
	else
		appendStringInfoString(&buf, "null");
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
	if (slot)
		txm_count(&slot->dead_lettered, 1);
	pfree(buf.data);
}

/* The composite tx_message.message for a check function or handler. */
Datum
txm_message_datum(int64 msg_id, const char *topic, Datum key, Datum tags,
				  Datum headers, Datum payload, TimestampTz sent_at,
				  int32 attempt, const bool *isnull)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(txm_catalog()->message_type, -1);
	Datum		values[8];
	bool		nulls[8];
	HeapTuple	tup;

	values[0] = Int64GetDatum(msg_id);
	nulls[0] = false;
	values[1] = CStringGetTextDatum(topic);
	nulls[1] = false;
	values[2] = key;
	nulls[2] = isnull[0];
	values[3] = tags;
	nulls[3] = isnull[1];
	values[4] = headers;
	nulls[4] = isnull[2];
	values[5] = payload;
	nulls[5] = isnull[3];
	values[6] = TimestampTzGetDatum(sent_at);
	nulls[6] = false;
	values[7] = Int32GetDatum(attempt);
	nulls[7] = (attempt == 0);
	tup = heap_form_tuple(desc, values, nulls);
	ReleaseTupleDesc(desc);
	return HeapTupleGetDatum(tup);
}

/*
 * User code (check functions, handlers) runs under a statement timeout of
 * its own.  An outer statement_timeout (in tx_run_maintenance) is restored
 * afterwards, and an earlier one is kept.
 */
static TimestampTz outer_timeout_at = 0;

void
txm_arm_timeout(int timeout_ms)
{
	TimestampTz ours;

	outer_timeout_at = get_timeout_active(STATEMENT_TIMEOUT) ?
		get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
	if (timeout_ms <= 0)
		return;
	ours = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	if (outer_timeout_at == 0 || ours < outer_timeout_at)
		enable_timeout_at(STATEMENT_TIMEOUT, ours);
}

void
txm_disarm_timeout(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	if (outer_timeout_at != 0)
		enable_timeout_at(STATEMENT_TIMEOUT, outer_timeout_at);
	outer_timeout_at = 0;
}

/*
 * Call a check function as the topic's owner, in a subtransaction.  Returns
 * its decision; *detail says what happened otherwise.
 */
static CheckOutcome
call_check_function(Oid fn, Oid owner, Datum message, char **detail)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner outer_owner = CurrentResourceOwner;
	volatile CheckOutcome outcome = CHECK_UNKNOWN;
	char	   *volatile answer = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		Oid			saved_user;
		int			saved_sec;
		LOCAL_FCINFO(fcinfo, 1);
		FmgrInfo	flinfo;
		Datum		result;

		GetUserIdAndSecContext(&saved_user, &saved_sec);
		SetUserIdAndSecContext(owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
		fmgr_info(fn, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = message;
		fcinfo->args[0].isnull = false;
		txm_arm_timeout(txm_check_timeout);
		result = FunctionCallInvoke(fcinfo);
		txm_disarm_timeout();
		SetUserIdAndSecContext(saved_user, saved_sec);
		if (!fcinfo->isnull)
			answer = MemoryContextStrdup(outer, TextDatumGetCString(result));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = outer_owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		txm_disarm_timeout();
		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = outer_owner;
		*detail = psprintf("check function failed: %s", edata->message);
		FreeErrorData(edata);
		return CHECK_UNKNOWN;
	}
	PG_END_TRY();

	if (answer == NULL)
		*detail = pstrdup("check function returned NULL");
	else if (pg_strcasecmp(answer, "commit") == 0)
		outcome = CHECK_COMMIT;
	else if (pg_strcasecmp(answer, "rollback") == 0)
		outcome = CHECK_ROLLBACK;
	else
		*detail = psprintf("check function returned '%s'", answer);
	return outcome;
}

static void
notify_check(const char *topic, int64 msg_id, const char *key, int checks)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"topic\": ");
	escape_json(&buf, topic);
	appendStringInfo(&buf, ", \"msg_id\": " INT64_FORMAT ", \"key\": ", msg_id);
	if (key)
		escape_json(&buf, key);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfo(&buf, ", \"checks\": %d}", checks);
	Async_Notify("tx_message_check", buf.data);
	pfree(buf.data);
}

/*
 * Check one half message in the current transaction, if it is still due and
 * nobody else holds it.  Returns false if there was nothing to do.
 */
static bool
check_one(int64 msg_id, bool with_functions, TxmMaintStats *stats)
{
	static const char *lock_sql =
		"SELECT h.msg_id, t.topic, h.key, h.tags, h.headers, h.payload, h.sent_at,"
		"       h.checks, t.check_function, t.check_max, t.owner"
		"  FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)"
		" WHERE h.msg_id = $1 AND h.state = 'half'"
		"   AND coalesce(h.last_check_at + t.check_interval, h.sent_at + t.check_after) <= now()"
		"   AND (t.check_function IS NOT NULL) = $2"
		"   FOR UPDATE OF h SKIP LOCKED";
	static const char *state_sql =
		"SELECT state FROM tx_message.half_messages WHERE msg_id = $1";
	static const char *unknown_sql =
		"UPDATE tx_message.half_messages"
		"   SET checks = checks + 1, last_check_at = now(),"
		"       first_checked_at = coalesce(first_checked_at, now())"
		" WHERE msg_id = $1 RETURNING checks";
	static const char *dead_sql =
		"WITH h AS (DELETE FROM tx_message.half_messages WHERE msg_id = $1 RETURNING *)"
		" INSERT INTO tx_message.dead_letters AS d"
		"  (msg_id, topic, key, tags, headers, payload, sent_at, consumer_group,"
		"   attempts, reason, last_error, first_failed_at, dead_at)"
		" SELECT h.msg_id, $2, h.key, h.tags, h.headers, h.payload, h.sent_at, NULL,"
		"        h.checks, 'check-back exhausted', $3, h.first_checked_at, now() FROM h"
		" ON CONFLICT (consumer_group, msg_id) DO UPDATE"
		"   SET attempts = excluded.attempts, reason = excluded.reason,"
		"       last_error = excluded.last_error, dead_at = excluded.dead_at";
	Oid			types[3] = {INT8OID, BOOLOID, TEXTOID};
	Datum		values[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	char	   *topic;
	char	   *key;
	int32		checks;
	int32		check_max;
	Oid			fn;
	Oid			owner;
	CheckOutcome outcome;
	char	   *detail = NULL;
	TxmDbSlot  *slot = txm_my_slot();

	values[0] = Int64GetDatum(msg_id);
	values[1] = BoolGetDatum(with_functions);
	if (txm_spi_exec(lock_sql, 2, types, values, NULL, 1) == 0)
		return false;
	row = SPI_copytuple(SPI_tuptable->vals[0]);
	desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	topic = TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull));
	key = SPI_getvalue(row, desc, 3);
	checks = DatumGetInt32(SPI_getbinval(row, desc, 8, &isnull));
	fn = DatumGetObjectId(SPI_getbinval(row, desc, 9, &isnull));
	if (isnull)
		fn = InvalidOid;
	check_max = DatumGetInt32(SPI_getbinval(row, desc, 10, &isnull));
	owner = DatumGetObjectId(SPI_getbinval(row, desc, 11, &isnull));

	stats->checks++;
	if (slot)
		txm_count(&slot->checks, 1);

	if (OidIsValid(fn))
	{
		Datum		cols[4];
		bool		nulls[4];

		for (int i = 0; i < 4; i++)
			cols[i] = SPI_getbinval(row, desc, 3 + i, &nulls[i]);
		outcome = call_check_function(fn, owner,
									  txm_message_datum(msg_id, topic, cols[0], cols[1],
														cols[2], cols[3],
														DatumGetTimestampTz(SPI_getbinval(row, desc, 7, &isnull)),
														0, nulls),
									  &detail);

		/* the check function may have decided itself */
		if (txm_spi_exec(state_sql, 1, types, values, NULL, 1) == 1)
		{
			char	   *state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

			if (strcmp(state, "committed") == 0)
				outcome = CHECK_COMMIT;
			else if (strcmp(state, "rolled_back") == 0)
				outcome = CHECK_ROLLBACK;
		}
	}
	else
	{
		notify_check(topic, msg_id, key, checks + 1);
		detail = pstrdup("no answer to NOTIFY tx_message_check");
		outcome = CHECK_UNKNOWN;
	}

	if (outcome == CHECK_COMMIT)
	{
		txm_resolve_half(msg_id, true, "check-back");
		stats->check_commits++;
		return true;
	}
	if (outcome == CHECK_ROLLBACK)
	{
		txm_resolve_half(msg_id, false, "check-back");
		stats->check_rollbacks++;
		return true;
	}

	stats->check_unknown++;
	txm_spi_exec(unknown_sql, 1, types, values, NULL, 1);
	checks = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (OidIsValid(fn))
		ereport(LOG,
				(errmsg("check-back %d of half message " INT64_FORMAT " of topic \"%s\" gave no decision",
						checks, msg_id, topic),
				 errdetail("%s.", detail)));
	if (checks >= check_max)
	{
		values[1] = CStringGetTextDatum(topic);
		values[2] = CStringGetTextDatum(detail);
		types[1] = TEXTOID;
		txm_spi_exec(dead_sql, 3, types, values, NULL, 0);
		txm_dead_letter_notify(topic, NULL, msg_id, key, "check-back exhausted");
		stats->dead_lettered++;
	}
	return true;
}

/*
 * The half messages whose check-back is due, oldest first, at most limit:
 * those of topics with a check function (the executor calls them) or those
 * of topics without one (the worker NOTIFYs).  The ids are allocated in the
 * caller's context.
 */
int
txm_due_checks(bool with_functions, int limit, int64 **ids)
{
	static const char *due_sql =
		"SELECT h.msg_id FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)"
		" WHERE h.state = 'half'"
		"   AND coalesce(h.last_check_at + t.check_interval, h.sent_at + t.check_after) <= now()"
		"   AND (t.check_function IS NOT NULL) = $2"
		" ORDER BY h.sent_at, h.msg_id LIMIT $1";
	Oid			types[2] = {INT4OID, BOOLOID};
	Datum		values[2];
	MemoryContext outer = CurrentMemoryContext;
	int			n;

	values[0] = Int32GetDatum(limit);
	values[1] = BoolGetDatum(with_functions);
	SPI_connect();
	n = txm_spi_exec(due_sql, 2, types, values, NULL, 0);
	*ids = MemoryContextAlloc(outer, sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		(*ids)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	return n;
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

bool
txm_has_check_functions(void)
{
	static const char *sql =
		"SELECT 1 FROM tx_message.topics WHERE check_function IS NOT NULL LIMIT 1";
	bool		found;

	SPI_connect();
	found = txm_spi_exec(sql, 0, NULL, NULL, NULL, 1) > 0;
	SPI_finish();
	return found;
}

/* Does any log table, half_messages or delayed hold rows of this xid? */
static bool
xid_has_messages(uint64 xid)
{
	const TxmCatalog *c = txm_catalog();
	Oid			heaps[TXM_LOG_SLOTS + 2];
	Oid			indexes[TXM_LOG_SLOTS + 2];
	bool		found = false;

	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		heaps[i] = c->log[i];
		indexes[i] = c->log_pos[i];
	}
	heaps[TXM_LOG_SLOTS] = c->half_messages;
	indexes[TXM_LOG_SLOTS] = c->half_messages_pkey;
	heaps[TXM_LOG_SLOTS + 1] = c->delayed;
	indexes[TXM_LOG_SLOTS + 1] = c->delayed_pkey;

	for (int i = 0; i < TXM_LOG_SLOTS + 2 && !found; i++)
	{
		Relation	rel = table_open(heaps[i], AccessShareLock);
		Relation	idx = index_open(indexes[i], AccessShareLock);
		ScanKeyData keys[2];
		IndexScanDesc scan;

		/* the rows are uncommitted: look at index entries, whatever their visibility */
		ScanKeyInit(&keys[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE,
					Int64GetDatum((int64) (xid << TXM_POS_SHIFT)));
		ScanKeyInit(&keys[1], 1, BTLessStrategyNumber, F_INT8LT,
					Int64GetDatum((int64) ((xid + 1) << TXM_POS_SHIFT)));
		scan = index_beginscan(rel, idx, SnapshotAny, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		found = index_getnext_tid(scan, ForwardScanDirection) != NULL;
		index_endscan(scan);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	return found;
}

/*
 * Prepared transactions of this database, older than the shortest
 * check_after, that sent messages: they are reported (never resolved: that
 * is the transaction manager's call).  Returns how many there are.
 */
int
txm_report_prepared(bool warn)
{
	static const char *sql =
		"SELECT p.gid, p.transaction::text, p.prepared, p.owner"
		"  FROM pg_catalog.pg_prepared_xacts p"
		" WHERE p.database = pg_catalog.current_database()"
		"   AND p.prepared < now() - (SELECT min(check_after) FROM tx_message.topics)";
	int			n;
	int			stale = 0;
	List	   *still_there = NIL;
	FullTransactionId next = ReadNextFullTransactionId();
	MemoryContext outer = CurrentMemoryContext;

	SPI_connect();
	n = txm_spi_exec(sql, 0, NULL, NULL, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		char	   *gid = SPI_getvalue(row, SPI_tuptable->tupdesc, 1);
		TransactionId xid = (TransactionId) strtoul(SPI_getvalue(row, SPI_tuptable->tupdesc, 2), NULL, 10);
		uint32		epoch = EpochFromFullTransactionId(next);
		uint64		xid64;
		bool		warned = false;
		ListCell   *lc;

		if (xid > XidFromFullTransactionId(next))
			epoch--;
		xid64 = U64FromFullTransactionId(FullTransactionIdFromEpochAndXid(epoch, xid));
		if (!xid_has_messages(xid64))
			continue;
		stale++;
		foreach(lc, warned_gids)
			if (strcmp((char *) lfirst(lc), gid) == 0)
				warned = true;
		if (warn && !warned)
			ereport(WARNING,
					(errmsg("prepared transaction \"%s\" holds tx_message messages and has been waiting since %s",
							gid, SPI_getvalue(row, SPI_tuptable->tupdesc, 3)),
					 errdetail("Its messages stay invisible until COMMIT PREPARED, and are lost with ROLLBACK PREPARED."),
					 errhint("Resolve it with COMMIT PREPARED or ROLLBACK PREPARED; tx_message never resolves prepared transactions.")));
		{
			/* the list outlives this SPI connection: build it in TopMemoryContext */
			MemoryContext spi = MemoryContextSwitchTo(TopMemoryContext);

			still_there = lappend(still_there, pstrdup(gid));
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
	MemoryContextSwitchTo(outer);
	if (warn)
	{
		list_free_deep(warned_gids);
		warned_gids = still_there;
	}
	else
		list_free_deep(still_there);
	return stale;
}

/*
 * Keep the last thousand ticks; older ones serve nobody.  Skipped while a
 * tick is in progress elsewhere: never wait for the tick lock here, since
 * this runs after subscription housekeeping took row locks.
 */
int64
txm_trim_ticks(void)
{
	static const char *sql =
		"DELETE FROM tx_message.ticks"
		" WHERE tick_id < (SELECT max(tick_id) - 1000 FROM tx_message.ticks)";
	int64		n;

	if (!ConditionalLockRelationOid(txm_catalog()->ticks, RowExclusiveLock))
		return 0;
	SPI_connect();
	n = txm_spi_exec(sql, 0, NULL, NULL, NULL, 0);
	SPI_finish();
	return n;
}

/* When the next delayed message or check-back falls due (0: none). */
TimestampTz
txm_next_deadline(void)
{
	static const char *sql =
		"SELECT least((SELECT min(deliver_at) FROM tx_message.delayed),"
		"             (SELECT min(coalesce(h.last_check_at + t.check_interval, h.sent_at + t.check_after))"
		"                FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)"
		"               WHERE h.state = 'half'))";
	TimestampTz next = 0;
	bool		isnull;

	SPI_connect();
	if (txm_spi_exec(sql, 0, NULL, NULL, NULL, 1) == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			next = DatumGetTimestampTz(d);
	}
	SPI_finish();
	return next;
}

/*----------
 * Retention: rotate, seal and truncate the log tables
 *----------
 *
 * The log is three tables, one of them current (docs/design.md, section 5).
 *
 *	- rotate: when the current table has been open for half the shortest
 *	  topic retention (at least a second) and holds rows, and the next one
 *	  is empty, the next one becomes current.  Producers learn it through a
 *	  relcache invalidation of tx_message.log_slots.
 *	- seal: a table that stopped being current may still receive rows from
 *	  a transaction that locked it before the rotation committed.  Once a
 *	  ShareLock can be taken without waiting, nobody can add to it any more
 *	  (a later locker processes the invalidation and moves on); a tick made
 *	  under that lock slices all it holds, and the heads of every topic then
 *	  bound the positions that refer to it.
 *	- truncate: when every subscription has passed those heads and the
 *	  longest topic retention has passed since the table was closed, it is
 *	  truncated under an AccessExclusiveLock taken without waiting (a
 *	  consumer still reading it postpones this).  No row is deleted one by
 *	  one on the log.
 */

typedef struct SlotState
{
	int			slot;
	bool		current;
	bool		open;			/* opened_at is set: holds or may hold rows */
	bool		closed;
	bool		sealed;
	double		open_secs;		/* since opened_at */
	double		closed_secs;	/* since closed_at */
} SlotState;

static int
load_slots(SlotState *slots)
{
	static const char *sql =
		"SELECT slot, is_current, opened_at IS NOT NULL, closed_at IS NOT NULL,"
		"       sealed_heads IS NOT NULL,"
		"       coalesce(extract(epoch FROM clock_timestamp() - opened_at), 0)::float8,"
		"       coalesce(extract(epoch FROM clock_timestamp() - closed_at), 0)::float8"
		"  FROM tx_message.log_slots ORDER BY slot";
	int			n = txm_spi_exec(sql, 0, NULL, NULL, NULL, 0);

	for (int i = 0; i < n && i < TXM_LOG_SLOTS; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		slots[i].slot = DatumGetInt16(SPI_getbinval(row, desc, 1, &isnull));
		slots[i].current = DatumGetBool(SPI_getbinval(row, desc, 2, &isnull));
		slots[i].open = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
		slots[i].closed = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
		slots[i].sealed = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
		slots[i].open_secs = DatumGetFloat8(SPI_getbinval(row, desc, 6, &isnull));
		slots[i].closed_secs = DatumGetFloat8(SPI_getbinval(row, desc, 7, &isnull));
	}
	return n;
}

static bool
log_has_rows(int slot)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->log[slot], AccessShareLock);
	TableScanDesc scan = table_beginscan(rel, SnapshotAny, 0, NULL);
	bool		found = heap_getnext(scan, ForwardScanDirection) != NULL;

	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* {topic_id: first free position} of every topic, as a jsonb datum */
static const char *heads_sql =
	"SELECT coalesce(jsonb_object_agg(t.topic_id,"
	"                                 coalesce((SELECT s.first_seq + cardinality(s.positions)"
	"                                             FROM tx_message.slices s WHERE s.topic_id = t.topic_id"
	"                                            ORDER BY s.first_seq DESC LIMIT 1), t.retired_seq)),"
	"                '{}')"
	"  FROM tx_message.topics t";

static bool
seal_slot(int slot)
{
	static const char *seal_sql =
		"UPDATE tx_message.log_slots SET sealed_heads = coalesce($2, '{}') WHERE slot = $1";
	Oid			types[2] = {INT2OID, JSONBOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	uint64		upto;
	bool		isnull;

	if (!ConditionalLockRelationOid(txm_catalog()->log[slot], ShareLock))
		return false;			/* a transaction still writes to it */
	if (txm_tick(false, &upto) < 0)
		return false;			/* someone else is ticking: next time */
	if (txm_my_slot())
		txm_note_ticked(upto);
	txm_spi_exec(heads_sql, 0, NULL, NULL, NULL, 1);
	values[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	nulls[1] = isnull ? 'n' : ' ';
	if (!isnull)
		values[1] = SPI_datumTransfer(values[1], false, -1);
	values[0] = Int16GetDatum(slot);
	txm_spi_exec(seal_sql, 2, types, values, nulls, 0);
	return true;
}

static bool
truncate_slot(int slot)
{
	/*
	 * The topics with messages in this table are those whose stream moved
	 * while it was current (or before it was sealed): the longest of their
	 * retentions counts.
	 */
	static const char *ready_sql =
		"SELECT coalesce((SELECT max(t.retention) FROM tx_message.topics t"
		"                  WHERE coalesce((l.sealed_heads->>t.topic_id::text)::bigint, 0)"
		"                      > coalesce((l.opened_heads->>t.topic_id::text)::bigint, 0)), '0')"
		"         <= clock_timestamp() - l.closed_at"
		"   AND NOT EXISTS (SELECT 1 FROM tx_message.subscriptions s"
		"                     JOIN tx_message.topics t USING (topic)"
		"                     JOIN tx_message.sub_state st USING (sub_id)"
		"                    WHERE st.done_seq < coalesce((l.sealed_heads->>t.topic_id::text)::bigint, 0))"
		"  FROM tx_message.log_slots l WHERE l.slot = $1";
	/*
	 * Every group is past the sealed heads, so the slices below them go,
	 * including those that also point into a newer table: only a new
	 * subscription starting from 'earliest' could still want them.
	 */
	static const char *slices_sql =
		"DELETE FROM tx_message.slices s USING tx_message.log_slots l"
		" WHERE l.slot = $1 AND (s.slots & (1 << $1)::smallint) <> 0"
		"   AND s.first_seq + cardinality(s.positions) <= coalesce((l.sealed_heads->>s.topic_id::text)::bigint, 0)";
	/* the stream of a topic whose every slice went continues from there */
	static const char *retire_sql =
		"UPDATE tx_message.topics t SET retired_seq = (l.sealed_heads->>t.topic_id::text)::bigint"
		"  FROM tx_message.log_slots l"
		" WHERE l.slot = $1 AND (l.sealed_heads->>t.topic_id::text)::bigint > t.retired_seq";
	static const char *empty_sql =
		"UPDATE tx_message.log_slots"
		"   SET opened_at = NULL, closed_at = NULL, opened_heads = NULL, sealed_heads = NULL"
		" WHERE slot = $1";
	const TxmCatalog *c = txm_catalog();
	Oid			types[1] = {INT2OID};
	Datum		values[1];
	bool		isnull;
	char	   *sql;

	values[0] = Int16GetDatum(slot);
	if (txm_spi_exec(ready_sql, 1, types, values, NULL, 1) != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ||
		isnull)
		return false;
	if (!ConditionalLockRelationOid(c->log[slot], AccessExclusiveLock))
		return false;			/* a consumer is still reading it */
	txm_spi_exec(slices_sql, 1, types, values, NULL, 0);
	txm_spi_exec(retire_sql, 1, types, values, NULL, 0);
	sql = psprintf("TRUNCATE tx_message.log_%d", slot);
	{
		TxmSavedUser saved;

		txm_become_owner(&saved);
		if (SPI_execute(sql, false, 0) < 0)
			elog(ERROR, "could not truncate tx_message.log_%d", slot);
		txm_restore_user(&saved);
	}
	txm_spi_exec(empty_sql, 1, types, values, NULL, 0);
	return true;
}

static bool
rotate(SlotState *slots, int n)
{
	static const char *period_sql =
		"SELECT greatest(extract(epoch FROM min(retention)) / 2, 1)::float8 FROM tx_message.topics";
	/*
	 * Two statements, because log_slots_one_current is checked row by row:
	 * a single UPDATE of both rows would briefly see two current slots.
	 */
	static const char *close_sql =
		"UPDATE tx_message.log_slots SET is_current = false, closed_at = clock_timestamp()"
		" WHERE slot = $1";
	static const char *open_sql =
		"UPDATE tx_message.log_slots"
		"   SET is_current = true, opened_at = clock_timestamp(), opened_heads = $2"
		" WHERE slot = $1";
	Oid			types[2] = {INT2OID, JSONBOID};
	Datum		values[2];
	bool		isnull;
	double		period;
	int			cur = -1;
	int			next;
	Datum		d;

	for (int i = 0; i < n; i++)
		if (slots[i].current)
			cur = i;
	if (cur < 0)
		return false;
	next = (cur + 1) % TXM_LOG_SLOTS;
	if (slots[next].open || slots[next].closed)
		return false;			/* the next table still holds rows */
	txm_spi_exec(period_sql, 0, NULL, NULL, NULL, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;			/* no topics */
	period = DatumGetFloat8(d);
	if (slots[cur].open_secs < period || !log_has_rows(cur))
		return false;
	txm_spi_exec(heads_sql, 0, NULL, NULL, NULL, 1);
	values[1] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								  false, -1);
	values[0] = Int16GetDatum(cur);
	txm_spi_exec(close_sql, 1, types, values, NULL, 0);
	values[0] = Int16GetDatum(next);
	txm_spi_exec(open_sql, 2, types, values, NULL, 0);
	txm_invalidate(txm_catalog()->log_slots);
	return true;
}

/* Truncate a small side table once it is empty, so that it returns to its initial size. */
static void
truncate_if_empty(Oid relid, const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	Snapshot	snap;
	bool		empty;
	TxmSavedUser saved;

	if (!ConditionalLockRelationOid(relid, AccessExclusiveLock))
		return;
	rel = table_open(relid, NoLock);
	if (RelationGetNumberOfBlocks(rel) == 0)
	{
		table_close(rel, NoLock);
		return;
	}
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	empty = heap_getnext(scan, ForwardScanDirection) == NULL;
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
	if (!empty)
		return;
	txm_become_owner(&saved);
	if (SPI_execute(psprintf("TRUNCATE tx_message.%s", name), false, 0) < 0)
		elog(ERROR, "could not truncate tx_message.%s", name);
	txm_restore_user(&saved);
}

/*
 * One retention pass.  Returns the number of log tables truncated; *rotated
 * says whether the current table changed.
 */
int
txm_retention(bool *rotated)
{
	static const char *half_sql =
		"DELETE FROM tx_message.half_messages h USING tx_message.topics t"
		" WHERE h.topic_id = t.topic_id AND h.state <> 'half'"
		"   AND h.resolved_at < clock_timestamp() - t.retention";
	SlotState	slots[TXM_LOG_SLOTS];
	int			n;
	int			truncated = 0;

	*rotated = false;
	SPI_connect();
	n = load_slots(slots);
	for (int i = 0; i < n; i++)
	{
		if (slots[i].current || !slots[i].closed)
			continue;
		if (!slots[i].sealed)
			slots[i].sealed = seal_slot(i);
		if (slots[i].sealed && truncate_slot(i))
		{
			slots[i].open = slots[i].closed = slots[i].sealed = false;
			truncated++;
		}
	}
	*rotated = rotate(slots, n);
	txm_spi_exec(half_sql, 0, NULL, NULL, NULL, 0);
	if (truncated > 0)
	{
		truncate_if_empty(txm_catalog()->slices, "slices");
		truncate_if_empty(txm_catalog()->leases, "leases");
	}
	SPI_finish();
	return truncated;
}
