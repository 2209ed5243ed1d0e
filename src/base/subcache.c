/*-------------------------------------------------------------------------
 *
 * subcache.c
 *	  The backend cache that tx_receive, tx_ack and the worker use to
 *	  resolve a consumer group to its subscriptions.
 *
 * A subscription is a (topic, consumer_group) pair.  The cache follows the
 * same rule as the topic cache of catalog.c, with an invalidation callback
 * of its own: tx_subscribe, tx_unsubscribe and the topic functions send a
 * relcache invalidation on tx_message.subscriptions or tx_message.topics,
 * and any invalidation of either (or of everything) empties the cache.
 * Lookups hand out copies, so an invalidation processed while a caller
 * works never pulls memory from under it.
 *
 * IDENTIFICATION
 *	  src/base/subcache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonpath.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/base/subcache.h"
#include "src/base/validate.h"

typedef struct GroupEntry
{
	char		name[TXM_NAME_MAX + 1]; /* hash key */
	int			nsubs;
	TxmSub	   *subs;
} GroupEntry;

static MemoryContext groups_cxt = NULL;
static HTAB *groups = NULL;
static bool groups_stale = false;

/* the relations the cached rows came from */
static Oid	cached_topics = InvalidOid;
static Oid	cached_subscriptions = InvalidOid;

/* Forget at the next lookup: the callbacks must not free or touch catalogs. */
static void
subcache_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == cached_topics || relid == cached_subscriptions)
		groups_stale = true;
}

/* DROP EXTENSION drops the schema too: forget, as catalog.c does. */
static void
subcache_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	groups_stale = true;
}

void
txm_subcache_init(void)
{
	CacheRegisterRelcacheCallback(subcache_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, subcache_namespace_callback, (Datum) 0);
}

static void
ensure_groups(void)
{
	HASHCTL		ctl;

	if (groups_cxt == NULL)
		groups_cxt = AllocSetContextCreate(CacheMemoryContext, "tx_message groups",
										   ALLOCSET_SMALL_SIZES);
	if (groups_stale && groups != NULL)
	{
		MemoryContextReset(groups_cxt);
		groups = NULL;
	}
	groups_stale = false;
	if (groups)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TXM_NAME_MAX + 1;
	ctl.entrysize = sizeof(GroupEntry);
	ctl.hcxt = groups_cxt;
	groups = hash_create("tx_message groups", 32, &ctl,
						 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

#define SUBS_COLUMNS(since_1_1) \
	"SELECT s.sub_id, t.topic_id, s.topic, s.consumer_group, s.tags, s.handler," \
	"       s.max_retries, s.backoff, s.lease, s.ordered, s.owner, g.owner, " since_1_1 \
	"  FROM tx_message.subscriptions s JOIN tx_message.topics t USING (topic)" \
	"  JOIN tx_message.consumer_groups g USING (consumer_group)"

/* The columns 1.1 added; a database still at 1.0 has none of them. */
static const char *
subs_columns(void)
{
	return txm_catalog()->v1_1 ?
		SUBS_COLUMNS("s.dead_letter_topic, s.dead_letter_owner, s.filter, s.handler_executors") :
		SUBS_COLUMNS("NULL::text, NULL::oid, NULL::jsonpath, 1");
}

/* Fill sub from a row of subs_columns, allocating in cxt. */
static void
sub_from_row(TxmSub *sub, HeapTuple row, TupleDesc desc, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	int			n;
	MemoryContext old = MemoryContextSwitchTo(cxt);

	memset(sub, 0, sizeof(TxmSub));
	sub->sub_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	sub->topic_id = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
	strlcpy(sub->topic, TextDatumGetCString(SPI_getbinval(row, desc, 3, &isnull)), sizeof(sub->topic));
	strlcpy(sub->group, TextDatumGetCString(SPI_getbinval(row, desc, 4, &isnull)), sizeof(sub->group));
	d = SPI_getbinval(row, desc, 5, &isnull);
	sub->ntags = -1;
	if (!isnull)
	{
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &n);
		sub->ntags = n;
		sub->tags = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			sub->tags[i] = TextDatumGetCString(elems[i]);
	}
	d = SPI_getbinval(row, desc, 6, &isnull);
	sub->handler = isnull ? InvalidOid : DatumGetObjectId(d);
	sub->max_retries = DatumGetInt32(SPI_getbinval(row, desc, 7, &isnull));
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(row, desc, 8, &isnull)),
					  INTERVALOID, sizeof(Interval), false, TYPALIGN_DOUBLE,
					  &elems, NULL, &n);
	sub->nbackoff = n;
	sub->backoff = palloc(sizeof(Interval) * Max(n, 1));
	for (int i = 0; i < n; i++)
		sub->backoff[i] = *DatumGetIntervalP(elems[i]);
	sub->lease = *DatumGetIntervalP(SPI_getbinval(row, desc, 9, &isnull));
	sub->ordered = DatumGetBool(SPI_getbinval(row, desc, 10, &isnull));
	sub->owner = DatumGetObjectId(SPI_getbinval(row, desc, 11, &isnull));
	sub->group_owner = DatumGetObjectId(SPI_getbinval(row, desc, 12, &isnull));
	d = SPI_getbinval(row, desc, 13, &isnull);
	if (!isnull)
		text_to_cstring_buffer(DatumGetTextPP(d), sub->dead_letter_topic,
							   sizeof(sub->dead_letter_topic));
	d = SPI_getbinval(row, desc, 14, &isnull);
	sub->dead_letter_owner = isnull ? InvalidOid : DatumGetObjectId(d);
	d = SPI_getbinval(row, desc, 15, &isnull);
	sub->filter = isnull ? NULL : DatumGetJsonPathPCopy(d);
	sub->handler_executors = DatumGetInt32(SPI_getbinval(row, desc, 16, &isnull));
	MemoryContextSwitchTo(old);
}

static void
copy_sub(TxmSub *dst, const TxmSub *src)
{
	*dst = *src;
	if (src->ntags > 0)
	{
		dst->tags = palloc(sizeof(char *) * src->ntags);
		for (int i = 0; i < src->ntags; i++)
			dst->tags[i] = pstrdup(src->tags[i]);
	}
	dst->backoff = palloc(sizeof(Interval) * Max(src->nbackoff, 1));
	memcpy(dst->backoff, src->backoff, sizeof(Interval) * src->nbackoff);
	if (src->filter)
	{
		dst->filter = palloc(VARSIZE(src->filter));
		memcpy(dst->filter, src->filter, VARSIZE(src->filter));
	}
}

/*
 * Read a group's subscriptions into the cache, or, if an invalidation came
 * in while they were read, into *once in the caller's memory context: used
 * for this call and not kept.  The entry is entered into the cache only once
 * it is complete, so an error while reading leaves nothing behind.
 */
static GroupEntry *
load_group(const char *group, GroupEntry *once)
{
	static char *sql_where[2] = {NULL, NULL};
	const TxmCatalog *c = txm_catalog();
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext cxt;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int			n;
	TxmSub	   *subs;
	GroupEntry *entry;

	if (sql_where[c->v1_1] == NULL)
		sql_where[c->v1_1] =
			MemoryContextStrdup(TopMemoryContext,
								psprintf("%s WHERE s.consumer_group = $1 ORDER BY s.sub_id",
										 subs_columns()));
	cached_topics = c->topics;
	cached_subscriptions = c->subscriptions;
	values[0] = CStringGetTextDatum(group);
	SPI_connect();
	n = txm_spi_exec(sql_where[c->v1_1], 1, types, values, NULL, 0);
	cxt = groups_stale ? outer : groups_cxt;
	subs = MemoryContextAlloc(cxt, sizeof(TxmSub) * Max(n, 1));
	for (int i = 0; i < n; i++)
		sub_from_row(&subs[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc, cxt);
	SPI_finish();
	entry = groups_stale ? once : hash_search(groups, group, HASH_ENTER, NULL);
	entry->nsubs = n;
	entry->subs = subs;
	return entry;
}

/*
 * The subscriptions of a consumer group, copied into the caller's memory
 * context.  An unknown group is an error unless missing_ok.
 */
TxmSub *
txm_group_subs(const char *group, int *nsubs, bool missing_ok)
{
	GroupEntry *entry;
	GroupEntry	once;
	TxmSub	   *copy;

	if (strlen(group) > TXM_NAME_MAX)
		txm_check_name("consumer group", group);
	txm_catalog();
	ensure_groups();
	entry = hash_search(groups, group, HASH_FIND, NULL);
	if (entry == NULL)
	{
		txm_check_name("consumer group", group);
		entry = load_group(group, &once);
	}

	if (entry->nsubs == 0 && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("consumer group \"%s\" does not exist", group),
				 errhint("Subscribe it to a topic with tx_subscribe(topic, '%s').", group)));
	*nsubs = entry->nsubs;
	copy = palloc(sizeof(TxmSub) * Max(entry->nsubs, 1));
	for (int i = 0; i < entry->nsubs; i++)
		copy_sub(&copy[i], &entry->subs[i]);
	return copy;
}

/* All subscriptions with a handler, for the executor, in the caller's context. */
TxmSub *
txm_handler_subs(int *nsubs)
{
	static char *sql[2] = {NULL, NULL};
	TxmSub	   *subs;
	MemoryContext outer = CurrentMemoryContext;
	int			n;
	bool		v1_1 = txm_catalog()->v1_1;

	if (sql[v1_1] == NULL)
		sql[v1_1] = MemoryContextStrdup(TopMemoryContext,
										psprintf("%s WHERE s.handler IS NOT NULL ORDER BY s.sub_id",
												 subs_columns()));
	SPI_connect();
	n = txm_spi_exec(sql[v1_1], 0, NULL, NULL, NULL, 0);
	subs = MemoryContextAlloc(outer, sizeof(TxmSub) * Max(n, 1));
	for (int i = 0; i < n; i++)
		sub_from_row(&subs[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc, outer);
	SPI_finish();
	*nsubs = n;
	return subs;
}
