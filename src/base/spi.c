/*-------------------------------------------------------------------------
 *
 * spi.c
 *	  The extension's own statements and direct row writes.
 *
 * Internal statements are string constants: the address of the text
 * identifies a plan prepared once per backend, under a search_path of
 * pg_catalog alone, and executed as the owner of the extension's relations.
 * The hottest writes (a lease row per receive, a done bitmap per ack) skip
 * SQL and go straight to the heap and its indexes.
 *
 * IDENTIFICATION
 *	  src/base/spi.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"

/* Plans of internal statements, keyed by the address of their SQL text. */
typedef struct PlanEntry
{
	const char *sql;			/* hash key */
	SPIPlanPtr	plan;
} PlanEntry;
static HTAB *plans = NULL;

void
txm_become_owner(TxmSavedUser *saved)
{
	const TxmCatalog *c = txm_catalog();

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(c->owner,
						   saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
txm_restore_user(const TxmSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/*
 * Make pg_catalog alone the search_path until PopOverrideSearchPath().  An
 * error pops it at (sub)transaction abort.
 */
static void
push_safe_path(void)
{
	OverrideSearchPath safe_path;

	memset(&safe_path, 0, sizeof(safe_path));
	safe_path.schemas = NIL;
	safe_path.addCatalog = true;
	safe_path.addTemp = false;
	PushOverrideSearchPath(&safe_path);
}

static SPIPlanPtr
prepared_plan(const char *sql, int nargs, const Oid *argtypes)
{
	PlanEntry  *entry;
	bool		found;
	SPIPlanPtr	plan;

	if (plans == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(const char *);
		ctl.entrysize = sizeof(PlanEntry);
		ctl.hcxt = TopMemoryContext;
		plans = hash_create("tx_message plans", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(plans, &sql, HASH_ENTER, &found);
	if (!found)
		entry->plan = NULL;
	if (entry->plan != NULL)
		return entry->plan;

	/*
	 * Prepare under a search_path of pg_catalog alone, whatever the
	 * caller's, so that a hostile search_path can never capture an operator
	 * or function of our statements.  This is what lets the hot-path
	 * functions go without a SET search_path clause, which costs 7% of
	 * tx_send.  (Execution pushes the same path again: the plan cache
	 * re-parses a statement under the path current at execution when it
	 * differs from the one it was prepared under.)
	 */
	push_safe_path();

	/*
	 * Generic plans: these statements are simple index look-ups whose best
	 * plan does not depend on the values, and a custom plan would be planned
	 * again at every call.  An error pops the override path at abort.
	 */
	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, CURSOR_OPT_GENERIC_PLAN);
	PopOverrideSearchPath();

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	entry->plan = plan;
	return plan;
}

static int
spi_exec(const char *sql, int nargs, const Oid *argtypes,
		 Datum *values, const char *nulls, long count, bool latest)
{
	SPIPlanPtr	plan = prepared_plan(sql, nargs, argtypes);
	int			rc;
	TxmSavedUser saved;

	txm_become_owner(&saved);
	push_safe_path();
	if (latest)
		rc = SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								  InvalidSnapshot, true, false, count);
	else
		rc = SPI_execute_plan(plan, values, nulls, false, count);
	PopOverrideSearchPath();
	txm_restore_user(&saved);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Run one of the extension's own statements (a string constant: its address
 * identifies the cached plan) as the owner of the extension's relations.
 * The caller has done SPI_connect().  Returns SPI_processed.
 */
int
txm_spi_exec(const char *sql, int nargs, const Oid *argtypes,
			 Datum *values, const char *nulls, long count)
{
	return spi_exec(sql, nargs, argtypes, values, nulls, count, false);
}

/*
 * The same, but reading with a fresh snapshot whatever the caller's
 * isolation level: for reads that must see everything committed so far.
 */
int
txm_spi_exec_latest(const char *sql, int nargs, const Oid *argtypes,
					Datum *values, const char *nulls, long count)
{
	return spi_exec(sql, nargs, argtypes, values, nulls, count, true);
}

/*
 * Run a utility statement of the extension (a TRUNCATE of one of its
 * tables, whose name the caller built from constants) as the owner.
 */
void
txm_spi_utility(const char *sql)
{
	TxmSavedUser saved;

	txm_become_owner(&saved);
	push_safe_path();
	if (SPI_execute(sql, false, 0) < 0)
		elog(ERROR, "could not run \"%s\"", sql);
	PopOverrideSearchPath();
	txm_restore_user(&saved);
}

/* A column of a row the last statement returned. */
Datum
txm_spi_value(int row, int column, bool *isnull)
{
	Assert(SPI_tuptable != NULL && row < (int) SPI_processed);
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull);
}

/* A row of the last statement's result, by a timestamp and an id. */
typedef struct TimedRow
{
	TimestampTz at;
	int64		id;
	int			row;
} TimedRow;

static int
cmp_timed_rows(const void *a, const void *b)
{
	const TimedRow *x = a;
	const TimedRow *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * The numbers of the n rows the last statement returned, in the order of
 * their timestamptz column at_column, then their bigint column id_column:
 * for results whose order SQL cannot give (RETURNING, several LATERAL
 * scans merged).
 */
int *
txm_spi_rows_in_order(int n, int at_column, int id_column)
{
	TimedRow   *rows = palloc(sizeof(TimedRow) * Max(n, 1));
	int		   *order = palloc(sizeof(int) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		rows[i].at = DatumGetTimestampTz(txm_spi_value(i, at_column, &isnull));
		rows[i].id = DatumGetInt64(txm_spi_value(i, id_column, &isnull));
		rows[i].row = i;
	}
	qsort(rows, n, sizeof(TimedRow), cmp_timed_rows);
	for (int i = 0; i < n; i++)
		order[i] = rows[i].row;
	pfree(rows);
	return order;
}

/*
 * Direct row access for the hottest internal writes, where an SPI statement
 * costs several times the work itself.  The tables are ours (catalog.c
 * checked that they are heap tables with btree indexes): no triggers, no
 * expression or partial indexes, and the values are checked by the callers,
 * so a heap operation plus the index entries is exactly what the INSERT or
 * UPDATE would do.  An inserter opens the indexes and builds their
 * IndexInfo once for many rows: a tick writes a slices row per topic it
 * saw, thousands with thousands of busy topics.
 */
void
txm_inserter_open(TxmInserter *ins, Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	int			i = 0;

	Assert(rel->rd_rel->relam == HEAP_TABLE_AM_OID);
	ins->rel = rel;
	ins->nindexes = list_length(indexes);
	ins->indexes = palloc(sizeof(Relation) * Max(ins->nindexes, 1));
	ins->infos = palloc(sizeof(IndexInfo *) * Max(ins->nindexes, 1));
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(index);

		if (info->ii_Expressions != NIL || info->ii_Predicate != NIL)
			elog(ERROR, "index \"%s\" of an internal table has expressions",
				 RelationGetRelationName(index));
		/* as the executor does: an index still being built takes no entries */
		if (!info->ii_ReadyForInserts)
		{
			index_close(index, RowExclusiveLock);
			continue;
		}
		ins->indexes[i] = index;
		ins->infos[i] = info;
		i++;
	}
	list_free(indexes);
	ins->nindexes = i;
	ins->slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ins->batch = false;
	ins->nkept = 0;
	ins->kept_bytes = 0;
	ins->kept = NULL;
}

/*
 * The same for many rows: heap_multi_insert() writes a page's worth of
 * them in one WAL record instead of one record each (a tick's slices rows,
 * one per topic it saw: with thousands of busy topics, the headers of one
 * record per row were a fifth of what the topics added to a message's WAL).
 */
#define TXM_INSERTER_ROWS	1000
#define TXM_INSERTER_BYTES	(1024 * 1024)

void
txm_inserter_open_batch(TxmInserter *ins, Relation rel)
{
	txm_inserter_open(ins, rel);
	ins->batch = true;
	ins->kept = palloc0(sizeof(TupleTableSlot *) * TXM_INSERTER_ROWS);
}

/* Index entries for the row in slot, which the heap holds at tid. */
static void
index_slot(TxmInserter *ins, TupleTableSlot *slot, ItemPointer tid)
{
	for (int i = 0; i < ins->nindexes; i++)
	{
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		FormIndexDatum(ins->infos[i], slot, NULL, values, isnull);
		index_insert(ins->indexes[i], values, isnull, tid, ins->rel,
					 ins->infos[i]->ii_Unique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, ins->infos[i]);
	}
}

/* Index entries for a tuple just put in the heap (or updated, not HOT). */
static void
inserter_index(TxmInserter *ins, HeapTuple tup)
{
	ExecStoreHeapTuple(tup, ins->slot, false);
	index_slot(ins, ins->slot, &tup->t_self);
	ExecClearTuple(ins->slot);
}

/* Write the rows a batch inserter kept: the heap in one go, then their index entries. */
static void
inserter_flush(TxmInserter *ins)
{
	if (ins->nkept == 0)
		return;
	/* one row alone makes a smaller record as a plain insert */
	if (ins->nkept == 1)
	{
		bool		should_free;
		HeapTuple	tup = ExecFetchSlotHeapTuple(ins->kept[0], true, &should_free);

		simple_heap_insert(ins->rel, tup);
		ins->kept[0]->tts_tid = tup->t_self;
	}
	else
		heap_multi_insert(ins->rel, ins->kept, ins->nkept, GetCurrentCommandId(true), 0, NULL);
	for (int k = 0; k < ins->nkept; k++)
	{
		index_slot(ins, ins->kept[k], &ins->kept[k]->tts_tid);
		ExecClearTuple(ins->kept[k]);
	}
	ins->nkept = 0;
	ins->kept_bytes = 0;
}

void
txm_inserter_insert(TxmInserter *ins, Datum *values, bool *nulls)
{
	HeapTuple	tup = heap_form_tuple(RelationGetDescr(ins->rel), values, nulls);

	if (ins->batch)
	{
		if (ins->kept[ins->nkept] == NULL)
			ins->kept[ins->nkept] = MakeSingleTupleTableSlot(RelationGetDescr(ins->rel),
															 &TTSOpsHeapTuple);
		ExecStoreHeapTuple(tup, ins->kept[ins->nkept], true);
		ins->nkept++;
		ins->kept_bytes += tup->t_len;
		if (ins->nkept == TXM_INSERTER_ROWS || ins->kept_bytes >= TXM_INSERTER_BYTES)
			inserter_flush(ins);
		return;
	}
	simple_heap_insert(ins->rel, tup);
	inserter_index(ins, tup);
	heap_freetuple(tup);
}

/* Writes what a batch inserter kept: an error meanwhile loses it with the transaction. */
void
txm_inserter_close(TxmInserter *ins)
{
	if (ins->batch)
	{
		inserter_flush(ins);
		for (int k = 0; k < TXM_INSERTER_ROWS && ins->kept[k] != NULL; k++)
			ExecDropSingleTupleTableSlot(ins->kept[k]);
		pfree(ins->kept);
	}
	ExecDropSingleTupleTableSlot(ins->slot);
	for (int i = 0; i < ins->nindexes; i++)
		index_close(ins->indexes[i], NoLock);
	pfree(ins->indexes);
	pfree(ins->infos);
}

/* INSERT a row into one of the extension's tables, opened RowExclusiveLock. */
void
txm_insert_row(Relation rel, Datum *values, bool *nulls)
{
	TxmInserter ins;

	txm_inserter_open(&ins, rel);
	txm_inserter_insert(&ins, values, nulls);
	txm_inserter_close(&ins);
}

/*
 * UPDATE the row at tid, locked by the caller, to newtup.  Index entries
 * are added unless the update is HOT.
 */
void
txm_update_row(Relation rel, ItemPointer tid, HeapTuple newtup)
{
	Assert(rel->rd_rel->relam == HEAP_TABLE_AM_OID);
	simple_heap_update(rel, tid, newtup);
	if (!HeapTupleIsHeapOnly(newtup))
	{
		TxmInserter ins;

		txm_inserter_open(&ins, rel);
		inserter_index(&ins, newtup);
		txm_inserter_close(&ins);
	}
}

/*
 * The prepared transaction gid of this database (its full xid), or an
 * invalid one.  Runs as the caller, who may read pg_prepared_xacts: every
 * name is qualified, so the search path resolves none.
 */
FullTransactionId
txm_prepared_xid(const char *gid)
{
	static const char *sql =
		"SELECT p.transaction FROM pg_catalog.pg_prepared_xacts p"
		" WHERE p.gid OPERATOR(pg_catalog.=) $1"
		"   AND p.database OPERATOR(pg_catalog.=) pg_catalog.current_database()";
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	FullTransactionId result = InvalidFullTransactionId;

	values[0] = CStringGetTextDatum(gid);
	SPI_connect();
	if (SPI_execute_with_args(sql, 1, types, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		TransactionId xid = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
																  SPI_tuptable->tupdesc, 1, &isnull));

		/* prepared before next, by less than 2^31 (it holds back wraparound) */
		if (!isnull && TransactionIdIsNormal(xid))
			result = FullTransactionIdFromU64(txm_widen_xid(xid, ReadNextFullTransactionId()));
	}
	SPI_finish();
	return result;
}
