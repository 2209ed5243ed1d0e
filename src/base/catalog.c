/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Backend-local caches of the extension's relations, its topics and the
 *	  current log table.
 *
 * The producer path must not look anything up in the catalogs per call.
 * So the OIDs of our relations, the topics and the current log table are
 * cached here, and kept honest by relcache invalidations: the functions that
 * change topics, subscriptions or the current log table call
 * txm_invalidate() on the table they changed, which every backend of the
 * database processes at that transaction's commit (and this one at command
 * end and on abort).  DROP EXTENSION drops the schema, which a syscache
 * callback on pg_namespace catches even in a backend that never opened our
 * tables: everything is forgotten and loaded again at the next use.
 *
 * Loading checks what the direct heap and index access of the other
 * modules relies on: every table uses the heap access method and has as
 * many columns as catalog.h numbers, every index is a btree with the
 * expected number of columns, and each log table has one of the two column
 * orders, which is noted.  Any invalidation of one of our relations (ALTER
 * TABLE, but also VACUUM, a rotation or a TRUNCATE) has that relation
 * checked again at the next use; only that one, since the busy tables are
 * vacuumed often.
 *
 * IDENTIFICATION
 *	  src/base/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stddef.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "src/base/catalog.h"
#include "src/base/validate.h"

/*
 * The relations of the extension: where their OID goes in TxmCatalog, and
 * how many attributes they must have (key columns for an index).  The
 * first is tx_message.topics, whose owner runs the internal SQL.
 */
typedef struct RelSpec
{
	const char *name;
	size_t		offset;
	bool		is_index;
	int			natts;
	int			natts_1_0;		/* what it has while a database is at 1.0 */
	bool		since_1_1;		/* absent while a database is at 1.0: InvalidOid */
	int			log_slot;		/* a log table: its slot, else -1 */
} RelSpec;

#define TABLE(name, field, natts) {name, offsetof(TxmCatalog, field), false, natts, natts, false, -1}
#define INDEX(name, field, natts) {name, offsetof(TxmCatalog, field), true, natts, natts, false, -1}
#define TABLE_1_1(name, field, natts) {name, offsetof(TxmCatalog, field), false, natts, natts, true, -1}
#define TABLE_GREW(name, field, natts, natts_1_0) \
	{name, offsetof(TxmCatalog, field), false, natts, natts_1_0, false, -1}
#define LOG_TABLE(name, slot) \
	{name, offsetof(TxmCatalog, log[slot]), false, Natts_log, Natts_log, false, slot}

static const RelSpec rel_specs[] = {
	TABLE_GREW("topics", topics, Natts_topics, Natts_topics_1_0),
	INDEX("topics_pkey", topics_pkey, 1),
	INDEX("topics_topic_id_key", topics_topic_id_key, 1),
	TABLE("topic_grants", topic_grants, Natts_topic_grants),
	INDEX("topic_grants_pkey", topic_grants_pkey, 3),
	LOG_TABLE("log_0", 0),
	INDEX("log_0_pos", log_pos[0], 1),
	LOG_TABLE("log_1", 1),
	INDEX("log_1_pos", log_pos[1], 1),
	LOG_TABLE("log_2", 2),
	INDEX("log_2_pos", log_pos[2], 1),
	TABLE("log_slots", log_slots, Natts_log_slots),
	TABLE_GREW("half_messages", half_messages, Natts_half_messages, Natts_half_messages_1_0),
	INDEX("half_messages_pkey", half_messages_pkey, 1),
	TABLE("delayed", delayed, Natts_delayed),
	INDEX("delayed_pkey", delayed_pkey, 1),
	TABLE("ticks", ticks, Natts_ticks),
	INDEX("ticks_pkey", ticks_pkey, 1),
	TABLE_GREW("slices", slices, Natts_slices, Natts_slices_1_0),
	INDEX("slices_pkey", slices_pkey, 2),
	TABLE_GREW("subscriptions", subscriptions, Natts_subscriptions,
			   Natts_subscriptions_1_0),
	TABLE("consumer_groups", consumer_groups, Natts_consumer_groups),
	TABLE("sub_state", sub_state, Natts_sub_state),
	INDEX("sub_state_pkey", sub_state_pkey, 1),
	TABLE("leases", leases, Natts_leases),
	INDEX("leases_pkey", leases_pkey, 3),
	TABLE("retries_data", retries, Natts_retries),
	TABLE_GREW("instance", instance, Natts_instance, Natts_instance_1_0),
	TABLE("lineage", lineage, Natts_lineage),
	TABLE_1_1("totals", totals, Natts_totals),
	TABLE_1_1("half_checks", half_checks, Natts_half_checks),
	TABLE_1_1("moved", moved, Natts_moved),
	TABLE_1_1("dedup", dedup, Natts_dedup),
	TABLE("dead_letters_data", dead_letters, Natts_dead_letters),
};

#define REL_OID(c, spec) (*(Oid *) ((char *) (c) + (spec)->offset))

/*
 * The two column orders of the log tables: 1.0's, and 1.1's, in which a
 * row leaves out its trailing NULL columns (storage/log.c).
 */
static const TxmLogLayout log_layout_1_0 = {
	.topic_id = 2, .sent_at = 3, .msg_id = 4, .deliver_at = 5,
	.cols = {[TXM_COL_KEY] = 6,[TXM_COL_TAGS] = 7,[TXM_COL_HEADERS] = 8,[TXM_COL_PAYLOAD] = 9}
};
static const TxmLogLayout log_layout_1_1 = {
	.sent_at = 2, .topic_id = 3, .msg_id = 8, .deliver_at = 9,
	.cols = {[TXM_COL_PAYLOAD] = 4,[TXM_COL_KEY] = 5,[TXM_COL_TAGS] = 6,[TXM_COL_HEADERS] = 7}
};

StaticAssertDecl(lengthof(rel_specs) <= 64, "rel_specs must fit a uint64 bitmap");

static TxmCatalog cat;
static bool cat_valid = false;
static uint64 recheck = 0;		/* rel_specs invalidated since they were checked */
static uint64 catalog_changes = 0;	/* invalidations processed: txm_catalog_changes() */
static HTAB *topics_by_name = NULL;
static HTAB *topic_names_by_id = NULL;
static int	current_slot = -1;
static TxmInstance instance;
static bool instance_valid = false;

typedef struct TopicNameEntry
{
	int32		topic_id;		/* hash key */
	char		name[TXM_NAME_MAX + 1];
} TopicNameEntry;

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

static void
forget_everything(void)
{
	cat_valid = false;
	recheck = 0;
	forget_topics();
	current_slot = -1;
	instance_valid = false;
}

/*
 * Relcache invalidation callback.  It must not fail or touch the catalogs,
 * so it only marks what has to be loaded or checked again: the topics or
 * the current log table when their table changed, and in any case the shape
 * of the relation itself.
 */
static void
txm_relcache_callback(Datum arg, Oid relid)
{
	catalog_changes++;
	if (!cat_valid)
		return;
	if (relid == InvalidOid)
	{
		forget_everything();
		return;
	}
	for (int i = 0; i < lengthof(rel_specs); i++)
	{
		if (REL_OID(&cat, &rel_specs[i]) != relid)
			continue;
		recheck |= ((uint64) 1) << i;
		if (relid == cat.topics)
			forget_topics();
		else if (relid == cat.log_slots)
			current_slot = -1;
		else if (relid == cat.instance || relid == cat.lineage)
			instance_valid = false;
	}
}

static void
txm_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	catalog_changes++;
	forget_everything();
}

/*
 * A counter of the relcache and schema invalidations this backend has
 * processed, of any relation: what a caller derived from our tables (not
 * through this module's caches) needs reading again only when it moved.
 * The functions that change a table send an invalidation for it; data
 * loaded otherwise (a restore's COPY, a superuser's own UPDATE) is not
 * announced, so such callers also read again after a while.
 */
uint64
txm_catalog_changes(void)
{
	return catalog_changes;
}

void
txm_catalog_init(void)
{
	CacheRegisterRelcacheCallback(txm_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, txm_namespace_callback, (Datum) 0);
}

/*
 * Look up one of our relations and check its access method and attribute
 * count (the other modules read and write them with heap and btree
 * functions and fixed attribute numbers), from the pg_class row the name
 * look-up finds anyway.  relnatts also counts dropped columns, whose
 * numbers stay taken: a column added is caught, a column dropped is not.
 * Returns the relation's OID; *owner receives its owner.
 */
static Oid
lookup_rel(const RelSpec *spec, Oid *owner)
{
	HeapTuple	tup;
	Form_pg_class form;
	Oid			relid;
	Oid			am;
	int			natts;

	tup = SearchSysCache2(RELNAMENSP, CStringGetDatum(spec->name),
						  ObjectIdGetDatum(cat.namespace));
	if (!HeapTupleIsValid(tup) && spec->since_1_1)
	{
		*owner = InvalidOid;
		return InvalidOid;
	}
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"tx_message.%s\" does not exist", spec->name),
				 errhint("The tx_message extension may be damaged; reinstall it.")));
	form = (Form_pg_class) GETSTRUCT(tup);
	relid = form->oid;
	am = form->relam;
	natts = form->relnatts;
	*owner = form->relowner;
	ReleaseSysCache(tup);

	if (am != (spec->is_index ? BTREE_AM_OID : HEAP_TABLE_AM_OID))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"tx_message.%s\" does not use the %s access method",
						spec->name, spec->is_index ? "btree" : "heap"),
				 errdetail("tx_message reads and writes its relations directly; this one uses \"%s\".",
						   get_am_name(am) ? get_am_name(am) : "?"),
				 errhint("The tx_message extension may be damaged; reinstall it.")));
	if (natts != spec->natts && natts != spec->natts_1_0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"tx_message.%s\" has %d columns, not %d",
						spec->name, natts, spec->natts),
				 errhint("The tx_message extension may be damaged; reinstall it.")));
	return relid;
}

/* Whether column attnum of relation relid is named name. */
static bool
column_is(Oid relid, AttrNumber attnum, const char *name)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		is;

	if (!HeapTupleIsValid(tup))
		return false;
	is = strcmp(NameStr(((Form_pg_attribute) GETSTRUCT(tup))->attname), name) == 0;
	ReleaseSysCache(tup);
	return is;
}

/*
 * xid as a full transaction id: it is not in the future, and not more than
 * 2^32 transactions old (an unfrozen tuple's xmin, a snapshot's xmin).
 */
static FullTransactionId
full_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

/*
 * The transaction that made relation relid: the xmin of its first
 * column's pg_attribute row, which TRUNCATE, VACUUM and ANALYZE leave
 * alone (its pg_class row is updated by each TRUNCATE of a rotation).
 * Kept as a full id: a backend may check it again long after.
 */
static FullTransactionId
made_by(Oid relid)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(1));
	TransactionId xmin;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for attribute 1 of relation %u", relid);
	xmin = HeapTupleHeaderGetXmin(tup->t_data);
	ReleaseSysCache(tup);
	return TransactionIdIsNormal(xmin) ? full_xid(xmin) : InvalidFullTransactionId;
}

/*
 * Which of the two column orders a log table has: every column checked by
 * name, since the other modules read and write them by number.
 */
static const TxmLogLayout *
log_layout_of(Oid relid, const char *relname)
{
	const TxmLogLayout *layouts[2] = {&log_layout_1_1, &log_layout_1_0};

	for (int i = 0; i < lengthof(layouts); i++)
	{
		const TxmLogLayout *l = layouts[i];

		if (column_is(relid, Anum_log_pos, "pos") &&
			column_is(relid, l->topic_id, "topic_id") &&
			column_is(relid, l->sent_at, "sent_at") &&
			column_is(relid, l->msg_id, "msg_id") &&
			column_is(relid, l->deliver_at, "deliver_at") &&
			column_is(relid, l->cols[TXM_COL_KEY], "key") &&
			column_is(relid, l->cols[TXM_COL_TAGS], "tags") &&
			column_is(relid, l->cols[TXM_COL_HEADERS], "headers") &&
			column_is(relid, l->cols[TXM_COL_PAYLOAD], "payload"))
			return l;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("relation \"tx_message.%s\" does not have the columns of a message log table", relname),
			 errhint("The tx_message extension may be damaged; reinstall it.")));
	return NULL;				/* keep compiler quiet */
}

/* Look up (again) relation i of rel_specs; the first's owner runs internal SQL. */
static void
load_rel(int i)
{
	const RelSpec *spec = &rel_specs[i];
	Oid			owner;

	REL_OID(&cat, spec) = lookup_rel(spec, &owner);
	if (i == 0)
		cat.owner = owner;
	if (spec->log_slot >= 0)
	{
		cat.log_layout[spec->log_slot] = log_layout_of(REL_OID(&cat, spec), spec->name);
		cat.log_made_by[spec->log_slot] = made_by(REL_OID(&cat, spec));
	}
}

/*
 * A log table made after snap was taken (the update to 1.1 makes them
 * again, copying their rows in its own transaction) looks empty to it:
 * reading it would take every message for gone.  So such a read fails, to
 * be tried again with a new snapshot.  Callers have the table open (which
 * may have processed invalidations, but none clears these values).  Once
 * the table is older than a snapshot's xmin it is forgotten: every later
 * snapshot sees it.
 */
void
txm_check_log_snapshot(int slot, Snapshot snap)
{
	FullTransactionId made = cat.log_made_by[slot];
	TransactionId xmin = XidFromFullTransactionId(made);

	if (!FullTransactionIdIsValid(made))
		return;
	if (FullTransactionIdPrecedes(made, full_xid(snap->xmin)))
	{
		cat.log_made_by[slot] = InvalidFullTransactionId;
		return;
	}
	if (!TransactionIdIsCurrentTransactionId(xmin) && XidInMVCCSnapshot(xmin, snap))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("tx_message.log_%d was made again after this transaction's snapshot was taken", slot),
				 errdetail("ALTER EXTENSION tx_message UPDATE makes the message log again."),
				 errhint("Try again.")));
}

/*
 * Look up the relations of the extension, or return NULL when it is not
 * installed in this database.
 */
const TxmCatalog *
txm_catalog_if_installed(void)
{
	if (cat_valid && recheck == 0)
		return &cat;
	if (cat_valid)
	{
		/* a bit is cleared only once its relation passed, so a failure repeats */
		for (int i = 0; i < lengthof(rel_specs); i++)
		{
			if ((recheck & (((uint64) 1) << i)) == 0)
				continue;
			load_rel(i);
			recheck &= ~(((uint64) 1) << i);
		}
		cat.v1_1 = OidIsValid(cat.dedup);
		return &cat;
	}

	if (!OidIsValid(get_extension_oid("tx_message", true)))
		return NULL;
	cat.namespace = get_namespace_oid("tx_message", true);
	if (!OidIsValid(cat.namespace))
		return NULL;

	for (int i = 0; i < lengthof(rel_specs); i++)
		load_rel(i);
	cat.v1_1 = OidIsValid(cat.dedup);
	cat.message_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("message"),
									   ObjectIdGetDatum(cat.namespace));
	if (!OidIsValid(cat.message_type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type \"tx_message.message\" does not exist"),
				 errhint("The tx_message extension may be damaged; reinstall it.")));

	forget_everything();
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

/*
 * The row of topics (rel) whose column attno equals value, found through
 * index and read with a fresh snapshot (a topic created or changed a moment
 * ago is seen), copied; NULL if there is none.
 */
static HeapTuple
fetch_topic_row(Relation rel, Oid index, AttrNumber attno, RegProcedure eq, Datum value)
{
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

	ScanKeyInit(&key, attno, BTEqualStrategyNumber, eq, value);
	scan = systable_beginscan(rel, index, true, snap, 1, &key);
	tup = systable_getnext(scan);
	if (tup != NULL)
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	return tup;
}

/* Read one topic row into *t; returns false if there is no such topic. */
static bool
load_topic(const char *name, TxmTopic *t)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel;
	HeapTuple	tup;
	bool		found = false;

	rel = table_open(c->topics, AccessShareLock);
	tup = fetch_topic_row(rel, c->topics_pkey, Anum_topics_topic, F_TEXTEQ,
						  CStringGetTextDatum(name));
	if (tup != NULL)
	{
		Datum		values[Natts_topics];
		bool		nulls[Natts_topics];

		heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
		strlcpy(t->name, name, sizeof(t->name));
		t->topic_id = DatumGetInt32(values[Anum_topics_topic_id - 1]);
		t->retention = *DatumGetIntervalP(values[Anum_topics_retention - 1]);
		t->check_function = nulls[Anum_topics_check_function - 1] ? InvalidOid :
			DatumGetObjectId(values[Anum_topics_check_function - 1]);
		t->check_after = *DatumGetIntervalP(values[Anum_topics_check_after - 1]);
		t->check_interval = *DatumGetIntervalP(values[Anum_topics_check_interval - 1]);
		t->check_max = DatumGetInt32(values[Anum_topics_check_max - 1]);
		t->owner = DatumGetObjectId(values[Anum_topics_owner - 1]);
		t->check_owner = nulls[Anum_topics_check_owner - 1] ? t->owner :
			DatumGetObjectId(values[Anum_topics_check_owner - 1]);
		t->dead_letter_topic[0] = '\0';
		t->dead_letter_owner = InvalidOid;
		t->notify_channel[0] = '\0';
		if (RelationGetDescr(rel)->natts >= Anum_topics_notify_channel)
		{
			if (!nulls[Anum_topics_dead_letter_topic - 1])
				text_to_cstring_buffer(DatumGetTextPP(values[Anum_topics_dead_letter_topic - 1]),
									   t->dead_letter_topic, sizeof(t->dead_letter_topic));
			if (!nulls[Anum_topics_dead_letter_owner - 1])
				t->dead_letter_owner = DatumGetObjectId(values[Anum_topics_dead_letter_owner - 1]);
			if (!nulls[Anum_topics_notify_channel - 1])
				text_to_cstring_buffer(DatumGetTextPP(values[Anum_topics_notify_channel - 1]),
									   t->notify_channel, sizeof(t->notify_channel));
		}
		found = true;
		heap_freetuple(tup);
	}
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
		int32		id = DatumGetInt32(heap_getattr(tup, Anum_topics_topic_id,
													RelationGetDescr(rel), &isnull));
		char	   *name = TextDatumGetCString(heap_getattr(tup, Anum_topics_topic,
															RelationGetDescr(rel), &isnull));
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
 * A topic's retired_seq, read now (not cached: retention moves it), or
 * false if the topic is gone: one probe of its topic_id index, for the
 * tick's first look at a topic's stream.
 */
bool
txm_topic_retired_seq(int32 topic_id, int64 *retired)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel = table_open(c->topics, AccessShareLock);
	HeapTuple	tup = fetch_topic_row(rel, c->topics_topic_id_key, Anum_topics_topic_id,
									  F_INT4EQ, Int32GetDatum(topic_id));
	bool		found = (tup != NULL);
	bool		isnull;

	if (found)
	{
		*retired = DatumGetInt64(heap_getattr(tup, Anum_topics_retired_seq,
											  RelationGetDescr(rel), &isnull));
		heap_freetuple(tup);
	}
	table_close(rel, AccessShareLock);
	return found;
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

		if (DatumGetBool(heap_getattr(tup, Anum_log_slots_is_current,
									  RelationGetDescr(rel), &isnull)))
			slot = DatumGetInt16(heap_getattr(tup, Anum_log_slots_slot,
											  RelationGetDescr(rel), &isnull));
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

/* Find a topic by id; an unknown one is an error. */
TxmTopic *
txm_lookup_topic_by_id(int32 topic_id)
{
	const char *cached = txm_topic_name(topic_id);
	char		name[TXM_NAME_MAX + 1];

	if (cached == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic with id %d does not exist", topic_id)));
	/* the look-up may free the cached name */
	strlcpy(name, cached, sizeof(name));
	return txm_lookup_topic(name, false);
}

/* Forget the cached instance: this backend loaded rows into lineage. */
void
txm_forget_instance(void)
{
	instance_valid = false;
}

/*
 * This database's id space, read once and again after any invalidation of
 * tx_message.instance or tx_message.lineage (the take-over of a dump
 * changes the first, a restore loading rows the second: its trigger sends
 * one).  Producers lock instance before they read this, so a take-over,
 * which locks it exclusively, is never half seen.
 */
const TxmInstance *
txm_instance(void)
{
	const TxmCatalog *c;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	bool		found = false;
	Datum		token = (Datum) 0;
	Datum		problem;
	Relation	lineage;

	if (instance_valid)
		return &instance;

	c = txm_catalog();
	/* open both first: that processes pending invalidations, then read */
	rel = table_open(c->instance, AccessShareLock);
	lineage = table_open(c->lineage, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;

		instance.id_base = (uint64) DatumGetInt64(heap_getattr(tup, Anum_instance_id_base,
															   RelationGetDescr(rel), &isnull));
		instance.id_floor = (uint64) DatumGetInt64(heap_getattr(tup, Anum_instance_id_floor,
																RelationGetDescr(rel), &isnull));
		token = datumCopy(heap_getattr(tup, Anum_instance_token, RelationGetDescr(rel), &isnull),
						  false, UUID_LEN);
		(void) heap_getattr(tup, Anum_instance_restored_at, RelationGetDescr(rel), &isnull);
		instance.restored = !isnull;
		problem = heap_getattr(tup, Anum_instance_restore_problem, RelationGetDescr(rel), &isnull);
		instance.restore_problem[0] = '\0';
		if (!isnull)
			text_to_cstring_buffer(DatumGetTextPP(problem), instance.restore_problem,
								   sizeof(instance.restore_problem));
		instance.cdc = false;
		if (RelationGetDescr(rel)->natts >= Anum_instance_cdc)
		{
			Datum		cdc = heap_getattr(tup, Anum_instance_cdc, RelationGetDescr(rel), &isnull);

			instance.cdc = !isnull && DatumGetBool(cdc);
		}
		found = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("tx_message.instance has no row"),
				 errhint("The tx_message extension may be damaged; reinstall it.")));

	/* a lineage row of another database: a restored dump */
	instance.restore_pending = false;
	rel = lineage;
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		t = heap_getattr(tup, Anum_lineage_token, RelationGetDescr(rel), &isnull);

		if (isnull || memcmp(DatumGetPointer(t), DatumGetPointer(token), UUID_LEN) != 0)
			instance.restore_pending = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snap);
	pfree(DatumGetPointer(token));
	instance_valid = true;
	return &instance;
}
