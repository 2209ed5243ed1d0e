/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Retention without DELETE: rotate, seal and truncate the log tables.
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
 *
 * Resolved half messages are deleted after their topic's retention, and the
 * slices and leases tables are truncated once they are empty, so that they
 * return to their initial size.  Only conditional locks are taken: a busy
 * table is simply tried again on the next pass.
 *
 * IDENTIFICATION
 *	  src/engine/retention.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/engine/retention.h"
#include "src/storage/lineage.h"
#include "src/storage/tick.h"

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

/* {topic_id: first free position} of every topic, as a jsonb datum (1.0, 1.1) */
#define HEADS_SQL(POSITIONS) \
	"SELECT coalesce(jsonb_object_agg(t.topic_id," \
	"                                 greatest((SELECT s.first_seq + cardinality(" POSITIONS ")" \
	"                                             FROM tx_message.slices s WHERE s.topic_id = t.topic_id" \
	"                                            ORDER BY s.first_seq DESC LIMIT 1), t.retired_seq))," \
	"                '{}')" \
	"  FROM tx_message.topics t"
static const char *heads_sql[2] = {HEADS_SQL(TXM_SLICE_POSITIONS_1_0), HEADS_SQL(TXM_SLICE_POSITIONS_1_1)};

static bool
seal_slot(int slot)
{
	static const char *seal_sql =
		"UPDATE tx_message.log_slots SET sealed_heads = coalesce($2, '{}') WHERE slot = $1";
	Oid			types[2] = {INT2OID, JSONBOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;

	if (!ConditionalLockRelationOid(txm_catalog()->log[slot], ShareLock))
		return false;			/* a transaction still writes to it */
	if (txm_tick(false) < 0)
		return false;			/* someone else is ticking: next time */
	txm_spi_exec(heads_sql[txm_catalog()->v1_1], 0, NULL, NULL, NULL, 1);
	values[1] = txm_spi_value(0, 1, &isnull);
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
#define SLICES_SQL(POSITIONS) \
		"DELETE FROM tx_message.slices s USING tx_message.log_slots l" \
		" WHERE l.slot = $1 AND (s.slots & (1 << $1)::smallint) <> 0" \
		"   AND s.first_seq + cardinality(" POSITIONS ")" \
		"       <= coalesce((l.sealed_heads->>s.topic_id::text)::bigint, 0)"
	static const char *slices_sql[2] = {SLICES_SQL(TXM_SLICE_POSITIONS_1_0),
		SLICES_SQL(TXM_SLICE_POSITIONS_1_1)};
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

	values[0] = Int16GetDatum(slot);
	if (txm_spi_exec(ready_sql, 1, types, values, NULL, 1) != 1 ||
		!DatumGetBool(txm_spi_value(0, 1, &isnull)) || isnull)
		return false;
	if (!ConditionalLockRelationOid(c->log[slot], AccessExclusiveLock))
		return false;			/* a consumer is still reading it */
	txm_spi_exec(slices_sql[txm_catalog()->v1_1], 1, types, values, NULL, 0);
	txm_spi_exec(retire_sql, 1, types, values, NULL, 0);
	txm_spi_utility(psprintf("TRUNCATE tx_message.log_%d", slot));
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
	/* an empty table is not rotated: looked at first, as it costs one page */
	if (!log_has_rows(cur))
		return false;
	txm_spi_exec(period_sql, 0, NULL, NULL, NULL, 1);
	d = txm_spi_value(0, 1, &isnull);
	if (isnull)
		return false;			/* no topics */
	period = DatumGetFloat8(d);
	if (slots[cur].open_secs < period)
		return false;
	txm_spi_exec(heads_sql[txm_catalog()->v1_1], 0, NULL, NULL, NULL, 1);
	values[1] = SPI_datumTransfer(txm_spi_value(0, 1, &isnull), false, -1);
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
	txm_spi_utility(psprintf("TRUNCATE tx_message.%s", name));
}

/*
 * One retention pass.  Returns the number of log tables truncated; *rotated
 * says whether the current table changed.
 */
int
txm_retention(bool *rotated)
{
	/* a topic's retention looked up per decided half message, not per topic */
	static const char *half_sql =
		"DELETE FROM tx_message.half_messages h"
		" WHERE h.state <> 'half'"
		"   AND h.resolved_at < clock_timestamp() - (SELECT t.retention FROM tx_message.topics t"
		"                                             WHERE t.topic_id = h.topic_id)";
	SlotState	slots[TXM_LOG_SLOTS];
	int			n;
	int			truncated = 0;
	bool		sealed = false;

	*rotated = false;
	SPI_connect();
	n = load_slots(slots);
	for (int i = 0; i < n; i++)
	{
		if (slots[i].current || !slots[i].closed)
			continue;
		if (!slots[i].sealed)
			sealed |= slots[i].sealed = seal_slot(i);
		if (slots[i].sealed && truncate_slot(i))
		{
			slots[i].open = slots[i].closed = slots[i].sealed = false;
			truncated++;
		}
	}
	*rotated = rotate(slots, n);
	/* a dump carries log_slots through this database's lineage row */
	if (sealed || truncated > 0 || *rotated)
		txm_lineage_save_slots();
	txm_spi_exec(half_sql, 0, NULL, NULL, NULL, 0);
	if (truncated > 0)
	{
		truncate_if_empty(txm_catalog()->slices, "slices");
		truncate_if_empty(txm_catalog()->leases, "leases");
	}
	SPI_finish();
	return truncated;
}
