/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Backend-local caches of the extension's relations and topics, and the
 *	  helpers that run internal SQL.
 *
 * The producer path must not look anything up in the catalogs per call
 * (issue: "no per-call catalog look-up that a cache could avoid").  So the
 * OIDs of our relations, the topics and the current log table are cached
 * here.  The caches are kept honest by relcache invalidations: the functions
 * that change topics, subscriptions or the current log table call
 * CacheInvalidateRelcacheByRelid() on the table they changed.  The
 * invalidation is delivered to every backend of the database at commit, and
 * it is replayed locally at command end and on abort.  Dropping the extension
 * invalidates the relations themselves, which forgets everything.
 *
 * IDENTIFICATION
 *	  src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "tx_message.h"

static TxmCatalog cat;
static bool cat_valid = false;
static HTAB *topics_by_name = NULL;
static HTAB *topic_names_by_id = NULL;
static int	current_slot = -1;

typedef struct TopicNameEntry
{
	int32		topic_id;		/* hash key */
	char		name[TXM_NAME_MAX + 1];
} TopicNameEntry;

/* Plans of internal statements, keyed by the address of their SQL text. */
typedef struct PlanEntry
{
	const char *sql;			/* hash key */
	SPIPlanPtr	plan;
} PlanEntry;
static HTAB *plans = NULL;

static void
forget_topics(void)
{
	if (topics_by_name)
		hash_destroy(topics_by_name);
	if (topic_names_by_id)
		hash_destroy(topic_names_by_id);
	topics_by_name = NULL;
	topic_names_by_id = NULL;
}

/*
 * Relcache invalidation callback.  It must not fail or touch the catalogs,
 * so it only marks what has to be reloaded.
 */
static void
txm_relcache_callback(Datum arg, Oid relid)
{
	if (!cat_valid)
		return;
	if (relid == InvalidOid)
	{
		cat_valid = false;
		forget_topics();
		txm_forget_groups();
		current_slot = -1;
		return;
	}
	if (relid == cat.topics)
	{
		forget_topics();
		txm_forget_groups();	/* they carry topic ids */
	}
	else if (relid == cat.subscriptions)
		txm_forget_groups();
	else if (relid == cat.log_slots)
		current_slot = -1;
}

/*
 * The catalog cache is also dropped whenever the extension's schema might
 * have gone away.  A syscache callback on pg_namespace catches DROP
 * EXTENSION even in a backend that never opened one of our tables.
 */
static void
txm_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	cat_valid = false;
	forget_topics();
	txm_forget_groups();
	current_slot = -1;
}

void
txm_catalog_init(void)
{
	CacheRegisterRelcacheCallback(txm_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, txm_namespace_callback, (Datum) 0);
}

static Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

static Oid
lookup_rel(const char *name)
{
	Oid			relid = get_relname_relid(name, cat.namespace);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"tx_message.%s\" does not exist", name),
				 errhint("The tx_message extension may be damaged; reinstall it.")));
	return relid;
}

/*
 * Look up the relations of the extension, or return NULL when it is not
 * installed in this database.
 */
const TxmCatalog *
txm_catalog_if_installed(void)
{
	char		name[NAMEDATALEN];

	if (cat_valid)
		return &cat;

	if (!OidIsValid(get_extension_oid("tx_message", true)))
		return NULL;
	cat.namespace = get_namespace_oid("tx_message", true);
	if (!OidIsValid(cat.namespace))
		return NULL;

	cat.topics = lookup_rel("topics");
	cat.topics_pkey = lookup_rel("topics_pkey");
	for (int i = 0; i < TXM_LOG_SLOTS; i++)
	{
		snprintf(name, sizeof(name), "log_%d", i);
		cat.log[i] = lookup_rel(name);
		snprintf(name, sizeof(name), "log_%d_pos", i);
		cat.log_pos[i] = lookup_rel(name);
	}
	cat.log_slots = lookup_rel("log_slots");
	cat.half_messages = lookup_rel("half_messages");
	cat.half_messages_pkey = lookup_rel("half_messages_pkey");
	cat.delayed = lookup_rel("delayed");
	cat.delayed_pkey = lookup_rel("delayed_pkey");
	cat.ticks = lookup_rel("ticks");
	cat.ticks_pkey = lookup_rel("ticks_pkey");
	cat.slices = lookup_rel("slices");
	cat.slices_pkey = lookup_rel("slices_pkey");
	cat.subscriptions = lookup_rel("subscriptions");
	cat.sub_state = lookup_rel("sub_state");
	cat.sub_state_pkey = lookup_rel("sub_state_pkey");
	cat.leases = lookup_rel("leases");
	cat.leases_pkey = lookup_rel("leases_pkey");
	cat.retries = lookup_rel("retries");
	cat.dead_letters = lookup_rel("dead_letters");
	cat.message_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("message"),
									   ObjectIdGetDatum(cat.namespace));
	if (!OidIsValid(cat.message_type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type \"tx_message.message\" does not exist"),
				 errhint("The tx_message extension may be damaged; reinstall it.")));
	cat.owner = relation_owner(cat.topics);

	forget_topics();
	current_slot = -1;
	cat_valid = true;
	return &cat;
}

const TxmCatalog *
txm_catalog(void)
{
	const TxmCatalog *c = txm_catalog_if_installed();

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tx_message\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION tx_message.")));
	return c;
}

/*
 * Send a relcache invalidation for one of our tables: every backend of this
 * database forgets what it cached from it, at our commit.
 */
void
txm_invalidate(Oid relid)
{
	CacheInvalidateRelcacheByRelid(relid);
}

/*
 * Topic names follow RocketMQ's rule: 1 to 127 letters, digits, '.', '_'
 * or '-'.  Consumer group names follow the same rule.
 */
void
txm_check_name(const char *kind, const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > TXM_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s name \"%s\"", kind, name),
				 errdetail("A %s name must have between 1 and %d characters.",
						   kind, TXM_NAME_MAX)));
	for (const char *p = name; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid %s name \"%s\"", kind, name),
					 errdetail("A %s name may contain only letters, digits, \".\", \"_\" and \"-\".",
							   kind)));
	}
}

static void
ensure_topic_hashes(void)
{
	HASHCTL		ctl;

	if (topics_by_name)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TXM_NAME_MAX + 1;
	ctl.entrysize = sizeof(TxmTopic);
	ctl.hcxt = CacheMemoryContext;
	topics_by_name = hash_create("tx_message topics", 64, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int32);
	ctl.entrysize = sizeof(TopicNameEntry);
	ctl.hcxt = CacheMemoryContext;
	topic_names_by_id = hash_create("tx_message topic names", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Read one topic row into *t; returns false if there is no such topic. */
static bool
load_topic(const char *name, TxmTopic *t)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snap;
	bool		found = false;

	rel = table_open(c->topics, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	scan = systable_beginscan(rel, c->topics_pkey, true, snap, 1, &key);
	if ((tup = systable_getnext(scan)) != NULL)
	{
		Datum		values[10];
		bool		nulls[10];

		heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
		strlcpy(t->name, name, sizeof(t->name));
		t->topic_id = DatumGetInt32(values[1]);
		t->retention = *DatumGetIntervalP(values[2]);
		t->check_function = nulls[3] ? InvalidOid : DatumGetObjectId(values[3]);
		t->check_after = *DatumGetIntervalP(values[4]);
		t->check_interval = *DatumGetIntervalP(values[5]);
		t->check_max = DatumGetInt32(values[6]);
		t->owner = DatumGetObjectId(values[7]);
		found = true;
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Find a topic by name.  Unknown topics are an error with a hint, unless
 * missing_ok.  The result points into the cache and is valid until the next
 * invalidation is processed, so callers copy what they keep.
 */
TxmTopic *
txm_lookup_topic(const char *name, bool missing_ok)
{
	TxmTopic   *t;
	TxmTopic	loaded;
	bool		found;
	TopicNameEntry *n;

	if (strlen(name) > TXM_NAME_MAX)
	{
		if (missing_ok)
			return NULL;
		txm_check_name("topic", name);
	}
	txm_catalog();
	ensure_topic_hashes();
	t = hash_search(topics_by_name, name, HASH_FIND, NULL);
	if (t)
		return t;

	/* only names that can exist are looked up; a cache hit proves validity */
	if (!missing_ok)
		txm_check_name("topic", name);

	if (!load_topic(name, &loaded))
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic \"%s\" does not exist", name),
				 errhint("Create it with tx_create_topic('%s').", name)));
	}
	/* loading may have processed invalidations that dropped the hashes */
	ensure_topic_hashes();
	t = hash_search(topics_by_name, name, HASH_ENTER, &found);
	memcpy(t, &loaded, sizeof(TxmTopic));
	n = hash_search(topic_names_by_id, &loaded.topic_id, HASH_ENTER, &found);
	strlcpy(n->name, name, sizeof(n->name));
	return t;
}

/* Name of a topic by id, or NULL if it no longer exists. */
const char *
txm_topic_name(int32 topic_id)
{
	const TxmCatalog *c = txm_catalog();
	TopicNameEntry *n;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;

	ensure_topic_hashes();
	n = hash_search(topic_names_by_id, &topic_id, HASH_FIND, NULL);
	if (n)
		return n->name;

	/* topics are few: one scan fills the whole reverse map */
	rel = table_open(c->topics, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		int32		id = DatumGetInt32(heap_getattr(tup, 2, RelationGetDescr(rel), &isnull));
		char	   *name = TextDatumGetCString(heap_getattr(tup, 1, RelationGetDescr(rel), &isnull));
		bool		found;

		ensure_topic_hashes();
		n = hash_search(topic_names_by_id, &id, HASH_ENTER, &found);
		strlcpy(n->name, name, sizeof(n->name));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);

	ensure_topic_hashes();
	n = hash_search(topic_names_by_id, &topic_id, HASH_FIND, NULL);
	return n ? n->name : NULL;
}

/*
 * The log table producers insert into.  Callers lock the table and then
 * call this again: taking the lock processes pending invalidations, so a
 * rotation committed meanwhile is seen (docs/design.md, section 5).
 */
int
txm_current_log_slot(void)
{
	const TxmCatalog *c;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	int			slot = -1;

	if (current_slot >= 0)
		return current_slot;

	c = txm_catalog();
	rel = table_open(c->log_slots, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;

		if (DatumGetBool(heap_getattr(tup, 3, RelationGetDescr(rel), &isnull)))
			slot = DatumGetInt16(heap_getattr(tup, 1, RelationGetDescr(rel), &isnull));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);

	if (slot < 0 || slot >= TXM_LOG_SLOTS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("tx_message.log_slots has no current log table")));
	current_slot = slot;
	return slot;
}

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
 * Run one of the extension's own statements (a string constant: its address
 * identifies the cached plan) as the owner of the extension's relations.
 * The caller has done SPI_connect().  Returns SPI_processed.
 */
static int	spi_exec(const char *sql, int nargs, const Oid *argtypes,
					 Datum *values, const char *nulls, long count, bool latest);

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

static int
spi_exec(const char *sql, int nargs, const Oid *argtypes,
		 Datum *values, const char *nulls, long count, bool latest)
{
	PlanEntry  *entry;
	bool		found;
	int			rc;
	TxmSavedUser saved;

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
	if (entry->plan == NULL)
	{
		SPIPlanPtr	plan;
		OverrideSearchPath safe_path;

		/*
		 * Prepare under a search_path of pg_catalog alone, whatever the
		 * caller's: the plan cache re-plans with the path captured here, so
		 * a hostile search_path can never capture an operator or function
		 * of our statements.  This is what lets the hot-path functions go
		 * without a SET search_path clause, which costs 7% of tx_send.
		 */
		memset(&safe_path, 0, sizeof(safe_path));
		safe_path.schemas = NIL;
		safe_path.addCatalog = true;
		safe_path.addTemp = false;
		PushOverrideSearchPath(&safe_path);

		/*
		 * Generic plans: these statements are simple index look-ups whose
		 * best plan does not depend on the values, and a custom plan would
		 * be planned again at every call.
		 */
		plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, CURSOR_OPT_GENERIC_PLAN);	/* an error pops it at abort */
		PopOverrideSearchPath();

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		entry->plan = plan;
	}

	txm_become_owner(&saved);
	if (latest)
		rc = SPI_execute_snapshot(entry->plan, values, nulls, GetLatestSnapshot(),
								  InvalidSnapshot, true, false, count);
	else
		rc = SPI_execute_plan(entry->plan, values, nulls, false, count);
	txm_restore_user(&saved);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Direct row access for the hottest internal writes (a lease per receive,
 * a done bitmap per ack), where an SPI statement costs several times the
 * work itself.  The tables are ours: no triggers, no expression or partial
 * indexes, and the values are checked by the callers, so a heap operation
 * plus the index entries is exactly what the INSERT or UPDATE would do.
 */
static void
insert_index_entries(Relation rel, HeapTuple tup)
{
	List	   *indexes = RelationGetIndexList(rel);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ListCell   *lc;

	ExecStoreHeapTuple(tup, slot, false);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(index);
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		if (info->ii_Expressions != NIL || info->ii_Predicate != NIL)
			elog(ERROR, "index \"%s\" of an internal table has expressions",
				 RelationGetRelationName(index));
		FormIndexDatum(info, slot, NULL, values, isnull);
		index_insert(index, values, isnull, &tup->t_self, rel,
					 info->ii_Unique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, info);
		index_close(index, NoLock);
	}
	ExecDropSingleTupleTableSlot(slot);
	list_free(indexes);
}

/* INSERT a row into one of the extension's tables, opened RowExclusiveLock. */
void
txm_insert_row(Relation rel, Datum *values, bool *nulls)
{
	HeapTuple	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);

	simple_heap_insert(rel, tup);
	insert_index_entries(rel, tup);
	heap_freetuple(tup);
}

/*
 * UPDATE the row at tid, locked by the caller, to newtup.  Index entries
 * are added unless the update is HOT.
 */
void
txm_update_row(Relation rel, ItemPointer tid, HeapTuple newtup)
{
	simple_heap_update(rel, tid, newtup);
	if (!HeapTupleIsHeapOnly(newtup))
		insert_index_entries(rel, newtup);
}
