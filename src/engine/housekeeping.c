/*-------------------------------------------------------------------------
 *
 * housekeeping.c
 *	  The worker's regular chores: release delayed messages, expire leases
 *	  and advance watermarks, report prepared transactions, trim the tick
 *	  history, and compute when the next delayed message or check-back is
 *	  due.  Retention has a file of its own (retention.c).
 *
 * Each chore runs in the caller's transaction: the worker gives the cycle a
 * transaction of its own, tx_run_maintenance() runs it in the caller's.
 *
 * IDENTIFICATION
 *	  src/engine/housekeeping.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/checkback.h"
#include "src/engine/housekeeping.h"
#include "src/storage/failures.h"
#include "src/storage/lease.h"
#include "src/storage/lineage.h"
#include "src/storage/log.h"

/* gids of prepared transactions already warned about, in this process */
static List *warned_gids = NIL;

/* how long txm_user_code() trusts what it read without an invalidation */
#define TXM_USER_CODE_REREAD_MS 60000

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
	int		   *order;
	int			n;

	values[0] = Int32GetDatum(limit);
	SPI_connect();
	n = txm_spi_exec(sql, 1, types, values, NULL, 0);

	/* RETURNING has no order: by deliver_at, msg_id */
	order = txm_spi_rows_in_order(n, 4, 2);
	for (int i = 0; i < n; i++)
	{
		int			row = order[i];
		Datum		cols[TXM_MSG_NCOLS];
		bool		isnull[TXM_MSG_NCOLS];
		bool		n1;

		for (int k = 0; k < TXM_MSG_NCOLS; k++)
			cols[k] = txm_spi_value(row, 5 + k, &isnull[k]);
		txm_log_insert(DatumGetInt32(txm_spi_value(row, 1, &n1)),
					   DatumGetInt64(txm_spi_value(row, 2, &n1)),
					   DatumGetTimestampTz(txm_spi_value(row, 3, &n1)),
					   DatumGetTimestampTz(txm_spi_value(row, 4, &n1)),
					   cols, isnull);
	}
	SPI_finish();
	return n;
}

/*
 * The pending messages of one expired lease move to retries (attempt 1
 * failed), or to the dead letters when no retry is allowed.  Returns how
 * many moved.  Runs in the caller's SPI connection.
 */
static int
expire_lease(const TxmSub *sub, int64 block, const TxmBlockBits *covered,
			 const TxmBlockBits *done)
{
	TxmBlockSlices bs;
	TxmMsg	   *msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
	int			nmsgs = 0;
	int			moved = 0;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

	txm_read_block_slices(sub->topic_id, block, snap, &bs);
	for (int off = 0; off < TXM_BLOCK; off++)
		if (txm_bit_get(covered, off) && !txm_bit_get(done, off) && txm_bit_get(&bs.avail, off))
			msgs[nmsgs++].pos = bs.pos[off];
	txm_fetch_messages(msgs, nmsgs, bs.slots, snap);
	UnregisterSnapshot(snap);
	for (int k = 0; k < nmsgs; k++)
	{
		if (!msgs[k].found)
			continue;
		if (sub->max_retries < 1)
			txm_dead_letter(sub, msgs[k].msg_id, msgs[k].sent_at, msgs[k].cols,
							msgs[k].isnull, 1, "max_retries exceeded", "lease expired",
							GetCurrentTimestamp());
		else
			txm_retry_insert(sub, &msgs[k], NULL, "lease expired");
		moved++;
	}
	pfree(msgs);
	return moved;
}

/*
 * Leases of a subscription whose deadline passed: their pending messages
 * move to retries or dead letters, and the lease is then done.  Notes the
 * next deadline in the hints.  Returns how many messages moved.
 */
int
txm_expire_leases(const TxmSub *sub)
{
	static const char *expired_sql =
		"SELECT block, first_off, covered, done FROM tx_message.leases"
		" WHERE sub_id = $1 AND lease_until < clock_timestamp() AND done <> covered"
		" ORDER BY lease_until LIMIT 100 FOR UPDATE SKIP LOCKED";
	static const char *done_sql =
		"UPDATE tx_message.leases SET done = covered"
		" WHERE sub_id = $1 AND block = $2 AND first_off = $3";
	static const char *next_sql =
		"SELECT min(lease_until) FROM tx_message.leases"
		" WHERE sub_id = $1 AND lease_until >= clock_timestamp() AND done <> covered";
	Oid			types[3] = {INT4OID, INT8OID, INT2OID};
	Datum		values[3];
	int			n;
	int			moved = 0;
	SPITupleTable *rows;
	bool		isnull;
	Datum		next;

	values[0] = Int32GetDatum(sub->sub_id);
	SPI_connect();
	n = txm_spi_exec(expired_sql, 1, types, values, NULL, 0);
	rows = SPI_tuptable;
	for (int i = 0; i < n; i++)
	{
		TxmBlockBits covered;
		TxmBlockBits done;

		values[1] = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		values[2] = SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull);
		txm_bits_from_datum(SPI_getbinval(rows->vals[i], rows->tupdesc, 3, &isnull), &covered);
		txm_bits_from_datum(SPI_getbinval(rows->vals[i], rows->tupdesc, 4, &isnull), &done);
		moved += expire_lease(sub, DatumGetInt64(values[1]), &covered, &done);
		txm_spi_exec(done_sql, 3, types, values, NULL, 0);
	}
	/* the next deadline of this subscription's leases */
	txm_spi_exec(next_sql, 1, types, values, NULL, 1);
	next = txm_spi_value(0, 1, &isnull);
	txm_hint_expiry_set(sub->sub_id, isnull ? DT_NOEND : DatumGetTimestampTz(next));
	SPI_finish();
	if (moved > 0)
		txm_at_commit_broadcast();
	return moved;
}

/*
 * Advance a subscription's watermark over finished positions and delete
 * the leases of finished blocks.  Returns the new watermark.  The caller
 * holds the subscription's position lock.
 */
int64
txm_advance_watermark(const TxmSub *sub)
{
	TxmLeaseRels rels;
	Snapshot	snap;
	int64		done_seq;
	int64		seq;

	txm_lease_rels_open(&rels);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = txm_read_done_seq(&rels, sub->sub_id, snap);
	seq = done_seq;
	for (;;)
	{
		int64		block = seq / TXM_BLOCK;
		TxmBlockSlices bs;
		TxmLeaseRow *rows;
		int			nrows;
		int			off;

		if (!txm_read_block_slices(sub->topic_id, block, snap, &bs))
			break;
		nrows = txm_read_block_leases(&rels, sub->sub_id, block, snap, &rows);
		for (off = (int) (seq % TXM_BLOCK); off < TXM_BLOCK; off++)
		{
			bool		finished = false;

			if (!txm_bit_get(&bs.avail, off))
				break;
			for (int r = 0; r < nrows; r++)
				if (txm_bit_get(&rows[r].covered, off))
					finished = txm_bit_get(&rows[r].done, off);
			if (!finished)
				break;
		}
		pfree(rows);
		seq = block * TXM_BLOCK + off;
		if (off < TXM_BLOCK)
			break;
	}
	UnregisterSnapshot(snap);
	txm_lease_rels_close(&rels);
	return txm_store_done_seq(sub->sub_id, done_seq, seq);
}

/*
 * The consumer groups of this database that have housekeeping to do, in one
 * order for every process (so that their row locks cannot deadlock),
 * allocated in cxt.  Only a subscription with lease rows has a lease that
 * may expire or a watermark that may move (every position a watermark
 * passes is covered by a lease row until then), so groups without any are
 * left alone, and a database with thousands of idle groups costs a cycle
 * one query.  A subscription whose hint still holds a lease deadline is
 * looked at all the same: the deadline may be a receive's that rolled back,
 * which its housekeeping clears.
 */
char	  **
txm_group_names(MemoryContext cxt, int *ngroups)
{
	static const char *leased_sql = "SELECT DISTINCT sub_id FROM tx_message.leases";
	static const char *groups_sql =
		"SELECT DISTINCT consumer_group FROM tx_message.subscriptions WHERE sub_id = ANY ($1) ORDER BY 1";
	Oid			types[1] = {INT4ARRAYOID};
	Datum		values[1];
	int32		hinted[TXM_MAX_HINTED_SUBS];
	int			nhinted = txm_hint_subs_with_deadline(hinted, TXM_MAX_HINTED_SUBS);
	Datum	   *ids;
	int			nids;
	char	  **names;

	SPI_connect();
	nids = txm_spi_exec(leased_sql, 0, NULL, NULL, NULL, 0);
	ids = palloc(sizeof(Datum) * (nids + nhinted + 1));
	for (int i = 0; i < nids; i++)
	{
		bool		isnull;

		ids[i] = txm_spi_value(i, 1, &isnull);
	}
	for (int i = 0; i < nhinted; i++)
		ids[nids++] = Int32GetDatum(hinted[i]);
	/* the idle case: no subscription to look up */
	*ngroups = 0;
	if (nids > 0)
	{
		values[0] = PointerGetDatum(construct_array(ids, nids, INT4OID, 4, true, TYPALIGN_INT));
		*ngroups = txm_spi_exec(groups_sql, 1, types, values, NULL, 0);
	}
	names = MemoryContextAlloc(cxt, sizeof(char *) * Max(*ngroups, 1));
	for (int i = 0; i < *ngroups; i++)
		names[i] = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return names;
}

/* Housekeeping of one consumer group: lease expiry and watermarks. */
void
txm_maintain_group(const char *group, TxmMaintStats *stats)
{
	int			nsubs;
	TxmSub	   *subs = txm_group_subs(group, &nsubs, true);

	for (int i = 0; i < nsubs; i++)
	{
		/*
		 * tx_seek may not move the position between our reading and storing
		 * it; taken before any row lock, as tx_seek takes it.
		 */
		txm_lock_sub_position(subs[i].sub_id, ShareLock);
		stats->leases_expired += txm_expire_leases(&subs[i]);
		txm_advance_watermark(&subs[i]);
	}
}

/* Housekeeping of every subscription of this database. */
void
txm_maintain_subscriptions(TxmMaintStats *stats)
{
	int			ngroups;
	char	  **names = txm_group_names(CurrentMemoryContext, &ngroups);

	for (int g = 0; g < ngroups; g++)
		txm_maintain_group(names[g], stats);
}

/* Does any log table, half_messages or delayed hold rows of this virtual xid? */
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

static bool
warned_about(const char *gid)
{
	ListCell   *lc;

	foreach(lc, warned_gids)
		if (strcmp((char *) lfirst(lc), gid) == 0)
			return true;
	return false;
}

/*
 * Prepared transactions of this database, older than the shortest
 * check_after, that sent messages: they are reported (never resolved: that
 * is the transaction manager's call), with a WARNING the first time the
 * worker sees each when warn.  Returns how many there are.
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
		MemoryContext spi;

		if (xid > XidFromFullTransactionId(next))
			epoch--;
		if (!xid_has_messages(U64FromFullTransactionId(FullTransactionIdFromEpochAndXid(epoch, xid)) +
							  txm_instance()->id_base))
			continue;
		stale++;
		if (warn && !warned_about(gid))
			ereport(WARNING,
					(errmsg("prepared transaction \"%s\" holds tx_message messages and has been waiting since %s",
							gid, SPI_getvalue(row, SPI_tuptable->tupdesc, 3)),
					 errdetail("Its messages stay invisible until COMMIT PREPARED, and are lost with ROLLBACK PREPARED."),
					 errhint("Resolve it with COMMIT PREPARED or ROLLBACK PREPARED; tx_message never resolves prepared transactions.")));
		/* the list outlives this SPI connection: build it in TopMemoryContext */
		spi = MemoryContextSwitchTo(TopMemoryContext);
		still_there = lappend(still_there, pstrdup(gid));
		MemoryContextSwitchTo(spi);
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

/*
 * Rows that outlived their subscription or topic: a transaction that was
 * still open when tx_unsubscribe or tx_drop_topic removed the others wrote
 * them (a lease of a receive, a retry of a nack, a half message) and
 * committed after.  Nothing else ever reads or removes them.  Returns how
 * many went.
 */
int64
txm_remove_orphans(void)
{
	/* rows someone still holds locked wait for the next time */
	static const char *sql =
		"WITH l AS (DELETE FROM tx_message.leases WHERE ctid IN (SELECT ctid FROM tx_message.leases x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.subscriptions s WHERE s.sub_id = x.sub_id)"
		"  FOR UPDATE SKIP LOCKED) RETURNING 1),"
		" r AS (DELETE FROM tx_message.retries_data WHERE ctid IN (SELECT ctid FROM tx_message.retries_data x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.subscriptions s WHERE s.sub_id = x.sub_id)"
		"  FOR UPDATE SKIP LOCKED) RETURNING 1),"
		" st AS (DELETE FROM tx_message.sub_state WHERE ctid IN (SELECT ctid FROM tx_message.sub_state x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.subscriptions s WHERE s.sub_id = x.sub_id)"
		"  FOR UPDATE SKIP LOCKED) RETURNING 1),"
		" h AS (DELETE FROM tx_message.half_messages WHERE ctid IN (SELECT ctid FROM tx_message.half_messages x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.topics t WHERE t.topic_id = x.topic_id)"
		"  FOR UPDATE SKIP LOCKED) RETURNING 1),"
		" d AS (DELETE FROM tx_message.delayed WHERE ctid IN (SELECT ctid FROM tx_message.delayed x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.topics t WHERE t.topic_id = x.topic_id)"
		"  FOR UPDATE SKIP LOCKED) RETURNING 1)"
		" SELECT (SELECT count(*) FROM l) + (SELECT count(*) FROM r) + (SELECT count(*) FROM st)"
		"      + (SELECT count(*) FROM h) + (SELECT count(*) FROM d)";
	/* since 1.1: what tx_trace keeps of messages the tables no longer hold */
	static const char *trace_sql =
		"WITH m AS (DELETE FROM tx_message.moved x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.log_0 l WHERE l.pos = x.pos)"
		"    AND NOT EXISTS (SELECT FROM tx_message.log_1 l WHERE l.pos = x.pos)"
		"    AND NOT EXISTS (SELECT FROM tx_message.log_2 l WHERE l.pos = x.pos) RETURNING 1),"
		" c AS (DELETE FROM tx_message.half_checks x"
		"  WHERE NOT EXISTS (SELECT FROM tx_message.half_messages h WHERE h.msg_id = x.msg_id)"
		"    AND NOT EXISTS (SELECT FROM tx_message.dead_letters_data d"
		"                     WHERE d.consumer_group IS NULL AND d.msg_id = x.msg_id) RETURNING 1)"
		" SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM c)";
	/*
	 * Since 1.1: dedup keys of messages no longer stored, and of topics
	 * dropped while a send was in progress.  A message stays at least its
	 * topic's retention: rows younger than the shortest are not looked at
	 * (dedup_sent_at).
	 */
	static const char *dedup_sql =
		"DELETE FROM tx_message.dedup WHERE ctid IN (SELECT x.ctid FROM tx_message.dedup x"
		"  LEFT JOIN tx_message.topics t ON t.topic_id = x.topic_id"
		"  WHERE x.sent_at < now() - (SELECT coalesce(min(retention), '0') FROM tx_message.topics)"
		"    AND (t.topic_id IS NULL"
		"     OR (x.sent_at < now() - t.retention"
		"    AND NOT EXISTS (SELECT FROM tx_message.log_0 l WHERE l.pos = x.msg_id)"
		"    AND NOT EXISTS (SELECT FROM tx_message.log_1 l WHERE l.pos = x.msg_id)"
		"    AND NOT EXISTS (SELECT FROM tx_message.log_2 l WHERE l.pos = x.msg_id)"
		"    AND NOT EXISTS (SELECT FROM tx_message.moved m WHERE m.msg_id = x.msg_id)"
		"    AND NOT EXISTS (SELECT FROM tx_message.half_messages h WHERE h.msg_id = x.msg_id)"
		"    AND NOT EXISTS (SELECT FROM tx_message.delayed d WHERE d.msg_id = x.msg_id)))"
		"  LIMIT 10000 FOR UPDATE OF x SKIP LOCKED)";
	bool		isnull;
	int64		n;

	SPI_connect();
	txm_spi_exec(sql, 0, NULL, NULL, NULL, 1);
	n = DatumGetInt64(txm_spi_value(0, 1, &isnull));
	if (OidIsValid(txm_catalog()->moved) && OidIsValid(txm_catalog()->half_checks))
	{
		txm_spi_exec(trace_sql, 0, NULL, NULL, NULL, 1);
		n += DatumGetInt64(txm_spi_value(0, 1, &isnull));
	}
	if (txm_catalog()->v1_1)
		n += txm_spi_exec(dedup_sql, 0, NULL, NULL, NULL, 0);
	SPI_finish();
	return n;
}

/*
 * After a restore: take the dump over if that is still to be done (the
 * worker's tick would do it too, but only when it has something to tick),
 * and move the identity sequences past restored rows, which a dump does not
 * carry (cheap when there is nothing to move).
 */
void
txm_restore_check(void)
{
	txm_take_over_if_restored();
	SPI_connect();
	if (txm_repair_identities() > 0)
		ereport(WARNING,
				(errmsg("tx_message identities were behind the restored topics or subscriptions, and were moved past them")));
	SPI_finish();
}

/*
 * Move the totals counted since the last cycle (shmem_totals.c) into
 * tx_message.totals, one statement for all; a database still at 1.0 has
 * no such table and they are dropped.  Returns how many rows changed.
 */
int
txm_store_totals(void)
{
	static const char *sql =
		"INSERT INTO tx_message.totals AS t (topic_id, sub_id, delivered, acked, nacked, checks, updated_at)"
		" SELECT *, now() FROM unnest($1::integer[], $2::integer[], $3::bigint[], $4::bigint[],"
		"                            $5::bigint[], $6::bigint[]) u"
		"  ORDER BY 1, 2"		/* one order of row locks for the worker and tx_run_maintenance() */
		" ON CONFLICT (topic_id, sub_id) DO UPDATE"
		"   SET delivered = t.delivered + excluded.delivered, acked = t.acked + excluded.acked,"
		"       nacked = t.nacked + excluded.nacked, checks = t.checks + excluded.checks,"
		"       updated_at = excluded.updated_at";
	const TxmCatalog *c = txm_catalog();
	TxmTotalDelta *d;
	int			n;
	Oid			types[6] = {INT4ARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[6];
	Datum	   *cols[6];

	d = palloc(sizeof(TxmTotalDelta) * txm_totals_capacity());
	n = txm_totals_take(d, txm_totals_capacity());
	if (n == 0 || !OidIsValid(c->totals))
		return 0;
	for (int k = 0; k < 6; k++)
		cols[k] = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		cols[0][i] = Int32GetDatum(d[i].topic_id);
		cols[1][i] = Int32GetDatum(d[i].sub_id);
		for (int k = 0; k < TXM_NTOTALS; k++)
			cols[2 + k][i] = Int64GetDatum((int64) d[i].n[k]);
	}
	for (int k = 0; k < 6; k++)
		values[k] = PointerGetDatum(k < 2
									? construct_array(cols[k], n, INT4OID, 4, true, TYPALIGN_INT)
									: construct_array(cols[k], n, INT8OID, 8, FLOAT8PASSBYVAL,
													  TYPALIGN_DOUBLE));
	/* counted and not stored (an error, a rollback): given back for the next cycle */
	SPI_connect();
	txm_spi_exec(sql, 6, types, values, NULL, 0);
	SPI_finish();
	return n;
}

/* When the next delayed message or check-back falls due (0: none). */
TimestampTz
txm_next_deadline(void)
{
	static const char *sql =
		"SELECT least((SELECT min(deliver_at) FROM tx_message.delayed),"
		"             (SELECT min(" TXM_CHECK_DUE_1_0 ")"
		"                FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)"
		"               WHERE h.state = 'half'))";
	static const char *sql_1_1 =
		"SELECT least((SELECT min(deliver_at) FROM tx_message.delayed),"
		"             (SELECT min(" TXM_CHECK_DUE ")"
		"                FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)"
		"               WHERE h.state = 'half'))";
	TimestampTz next = 0;
	bool		isnull;

	SPI_connect();
	if (txm_spi_exec(txm_catalog()->v1_1 ? sql_1_1 : sql, 0, NULL, NULL, NULL, 1) == 1)
	{
		Datum		d = txm_spi_value(0, 1, &isnull);

		if (!isnull)
			next = DatumGetTimestampTz(d);
	}
	SPI_finish();
	return next;
}

/*
 * When a worker that leaves the database must be back at the latest: the
 * next delayed message or check-back, or lease or retry falling due (0:
 * none).  Asked only when the worker is about to leave, so the scans of the
 * (small) lease and retry tables are paid once per departure.
 */
TimestampTz
txm_next_wakeup(void)
{
	/*
	 * Of the leases and the retries of pull consumers, only what falls due
	 * later counts: what is due already was expired in this cycle, or waits
	 * for a receiver, and must not keep the worker.  A lease whose messages
	 * are all acked (kept until its block is complete) has nothing left to
	 * expire.  A handler's retry is taken by an executor: one already due
	 * keeps the worker, as does a delayed message or check-back already due.  A delayed message
	 * or check-back due already is still to be done: it keeps the worker.
	 */
	static const char *sql =
		"SELECT least((SELECT min(lease_until) FROM tx_message.leases"
		"               WHERE lease_until > now() AND done <> covered),"
		"             (SELECT min(r.due_at) FROM tx_message.retries_data r"
		"               WHERE (r.due_at > now() AND r.state = 'leased')"
		"                  OR r.sub_id IN (SELECT sub_id FROM tx_message.subscriptions"
		"                                   WHERE handler IS NOT NULL)))";
	TimestampTz next = txm_next_deadline();
	bool		isnull;

	SPI_connect();
	if (txm_spi_exec(sql, 0, NULL, NULL, NULL, 1) == 1)
	{
		Datum		d = txm_spi_value(0, 1, &isnull);

		if (!isnull && (next == 0 || DatumGetTimestampTz(d) < next))
			next = DatumGetTimestampTz(d);
	}
	SPI_finish();
	return next;
}

/* Read what txm_user_code() answers. */
static void
read_user_code(bool *checks, int *handlers)
{
#define USER_CODE_SQL(executors) \
		"SELECT EXISTS (SELECT 1 FROM tx_message.topics WHERE check_function IS NOT NULL)," \
		"       (SELECT least(coalesce(sum(" executors "), 0), 1024)::integer" \
		"          FROM tx_message.subscriptions WHERE handler IS NOT NULL)"
	bool		isnull;

	SPI_connect();
	/* a database still at 1.0 runs each handler subscription in one executor */
	txm_spi_exec(txm_catalog()->v1_1 ? USER_CODE_SQL("handler_executors") : USER_CODE_SQL("1"),
				 0, NULL, NULL, NULL, 1);
	*checks = DatumGetBool(txm_spi_value(0, 1, &isnull));
	*handlers = DatumGetInt32(txm_spi_value(0, 2, &isnull));
	SPI_finish();
}

/*
 * The user code of the database: whether a topic has a check function, and
 * how many executors the subscriptions with a handler can use at once (the
 * sum of their handler_executors).  Both scan their tables, which the
 * worker asks about every cycle: the answer is kept until an invalidation
 * was processed (tx_create_topic, tx_alter_topic, tx_subscribe and the
 * other functions that change them send one) or a minute has passed.
 */
void
txm_user_code(bool *checks, int *handlers)
{
	static uint64 read_at_changes = 0;
	static TimestampTz read_at = 0;
	static bool last_checks;
	static int	last_handlers;
	TimestampTz now = GetCurrentTimestamp();

	if (read_at != 0 && read_at_changes == txm_catalog_changes() &&
		!TimestampDifferenceExceeds(read_at, now, TXM_USER_CODE_REREAD_MS))
	{
		*checks = last_checks;
		*handlers = last_handlers;
		return;
	}
	/* counted before reading: an invalidation met while reading makes the next call read again */
	read_at_changes = txm_catalog_changes();
	read_user_code(checks, handlers);
	read_at = now;
	last_checks = *checks;
	last_handlers = *handlers;
}
