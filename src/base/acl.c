/*-------------------------------------------------------------------------
 *
 * acl.c
 *	  Privileges on topics and ownership of consumer groups.
 *
 * A topic's owner (the role that created it), members of the owner role
 * and members of the extension's owner hold every privilege; other roles
 * hold what tx_grant gave them or a role whose privileges they have, in
 * tx_message.topic_grants.  Role membership is PostgreSQL's own:
 * has_privs_of_role, so NOINHERIT and superusers behave as in every ACL
 * check of the server.  'monitor' comes with any other privilege.
 *
 * Producers check 'send' on every call, so the answer for a (topic, role)
 * pair is cached per backend.  The cache is forgotten whenever
 * tx_message.topics or tx_message.topic_grants is invalidated (every
 * change to a topic or a grant invalidates them) and whenever a role or a
 * role membership changes.
 *
 * IDENTIFICATION
 *	  src/base/acl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"

typedef struct PrivKey
{
	int32		topic_id;
	Oid			role;
} PrivKey;

typedef struct PrivEntry
{
	PrivKey		key;
	int			mask;
} PrivEntry;

static HTAB *privs = NULL;
static bool privs_stale = false;
static Oid	cached_topics = InvalidOid;
static Oid	cached_grants = InvalidOid;

static const struct
{
	const char *name;
	int			mask;
}			privilege_names[] =
{
	{"send", TXM_PRIV_SEND},
	{"receive", TXM_PRIV_RECEIVE},
	{"admin", TXM_PRIV_ADMIN},
	{"monitor", TXM_PRIV_MONITOR},
	{"all", TXM_PRIV_SEND | TXM_PRIV_RECEIVE | TXM_PRIV_ADMIN},
};

/* The callbacks only mark the cache stale: they must not touch catalogs. */
static void
acl_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == cached_topics || relid == cached_grants)
		privs_stale = true;
}

static void
acl_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	privs_stale = true;
}

void
txm_acl_init(void)
{
	CacheRegisterRelcacheCallback(acl_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, acl_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, acl_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, acl_syscache_callback, (Datum) 0);
}

/* 'send', 'receive', 'admin', 'monitor' or 'all', as a mask; else 22023. */
int
txm_parse_privilege(const char *name)
{
	for (int i = 0; i < lengthof(privilege_names); i++)
		if (strcmp(name, privilege_names[i].name) == 0)
			return privilege_names[i].mask;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unrecognized topic privilege \"%s\"", name),
			 errhint("Use 'send', 'receive', 'admin', 'monitor' or 'all'.")));
	return 0;					/* keep the compiler quiet */
}

/* The name of one privilege bit. */
const char *
txm_privilege_name(int privilege)
{
	for (int i = 0; i < lengthof(privilege_names); i++)
		if (privilege_names[i].mask == privilege)
			return privilege_names[i].name;
	elog(ERROR, "unexpected topic privilege mask %d", privilege);
	return NULL;				/* keep the compiler quiet */
}

/* Every role that holds the privileges of the extension's or the topic's owner. */
static bool
is_owner(Oid role, Oid topic_owner)
{
	return superuser_arg(role) || has_privs_of_role(role, txm_catalog()->owner) ||
		(OidIsValid(topic_owner) && has_privs_of_role(role, topic_owner));
}

/*
 * Read the grants of a topic and add up those that reach role.  Opening the
 * table may process invalidations that free the topic cache: the caller
 * passes the name by value.
 */
static int
granted_mask(const char *topic, Oid role)
{
	const TxmCatalog *c = txm_catalog();
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snap;
	int			mask = 0;

	rel = table_open(c->topic_grants, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&key, Anum_topic_grants_pkey_topic, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(topic));
	scan = systable_beginscan(rel, c->topic_grants_pkey, true, snap, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;
		Oid			grantee;
		char	   *privilege;

		grantee = DatumGetObjectId(heap_getattr(tup, Anum_topic_grants_grantee,
												RelationGetDescr(rel), &isnull));
		privilege = TextDatumGetCString(heap_getattr(tup, Anum_topic_grants_privilege,
													 RelationGetDescr(rel), &isnull));
		if (grantee == InvalidOid || has_privs_of_role(role, grantee))
			mask |= txm_parse_privilege(privilege);
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return mask;
}

/* What role holds on the topic of that name and owner, from the grants. */
static int
privileges_of(const char *name, Oid owner, Oid role)
{
	int			mask;

	if (is_owner(role, owner))
		return TXM_PRIV_EVERY;
	mask = granted_mask(name, role);
	if (mask != 0)
		mask |= TXM_PRIV_MONITOR;
	return mask;
}

/*
 * The privileges role holds on topic, as a mask.  topic points into the
 * topic cache, which a look-up here may free: callers copy what they need
 * from it first.
 */
int
txm_topic_privileges(const TxmTopic *topic, Oid role)
{
	PrivKey		key;
	PrivEntry  *entry;
	int			mask;
	char		name[TXM_NAME_MAX + 1];
	Oid			owner = topic->owner;

	memset(&key, 0, sizeof(key));
	key.topic_id = topic->topic_id;
	key.role = role;
	if (privs_stale && privs != NULL)
	{
		hash_destroy(privs);
		privs = NULL;
	}
	privs_stale = false;
	if (privs != NULL)
	{
		entry = hash_search(privs, &key, HASH_FIND, NULL);
		if (entry)
			return entry->mask;
	}

	/* all from the entry first: what follows may process invalidations */
	strlcpy(name, topic->name, sizeof(name));
	topic = NULL;
	if (privs == NULL)
	{
		const TxmCatalog *c = txm_catalog();
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(PrivKey);
		ctl.entrysize = sizeof(PrivEntry);
		ctl.hcxt = CacheMemoryContext;
		privs = hash_create("tx_message topic privileges", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		cached_topics = c->topics;
		cached_grants = c->topic_grants;
	}

	mask = privileges_of(name, owner, role);

	/* reading may have processed an invalidation: enter only into a live cache */
	if (!privs_stale && privs != NULL)
	{
		entry = hash_search(privs, &key, HASH_ENTER, NULL);
		entry->mask = mask;
	}
	return mask;
}

bool
txm_has_topic_privilege(const TxmTopic *topic, Oid role, int privilege)
{
	return (txm_topic_privileges(topic, role) & privilege) == privilege;
}

/*
 * The same, read from the grants with a fresh snapshot rather than the
 * cache: for a check that must see every grant change that a snapshot
 * taken before it sees.  A committing transaction becomes visible before
 * it sends its invalidations, so the cache can lag behind such a snapshot.
 */
bool
txm_has_topic_privilege_now(const TxmTopic *topic, Oid role, int privilege)
{
	char		name[TXM_NAME_MAX + 1];
	Oid			owner = topic->owner;

	/* from the entry first: reading the grants may free it */
	strlcpy(name, topic->name, sizeof(name));
	return (privileges_of(name, owner, role) & privilege) == privilege;
}

/* 42501 unless the current user holds privilege on topic. */
void
txm_require_topic_privilege(const TxmTopic *topic, int privilege)
{
	Oid			role = GetUserId();
	int32		topic_id = topic->topic_id;
	const char *name;

	if (txm_has_topic_privilege(topic, role, privilege))
		return;
	/* the check may have freed the entry: find the name again */
	name = txm_topic_name(topic_id);
	if (name == NULL)
		name = "?";
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for topic \"%s\"", name),
			 errdetail("Role \"%s\" needs the \"%s\" privilege on it.",
					   GetUserNameFromId(role, false), txm_privilege_name(privilege)),
			 errhint("The topic's owner or a role with \"admin\" on it can run tx_grant('%s', '%s', '%s').",
					 name, GetUserNameFromId(role, false),
					 txm_privilege_name(privilege))));
}

/*
 * Whether role holds privilege on the topic of that name.  A topic that no
 * longer exists (its dead letters stay) is the extension owner's.
 */
bool
txm_may(const char *topic, Oid role, int privilege)
{
	const TxmTopic *t = txm_lookup_topic(topic, true);

	if (t == NULL)
		return is_owner(role, InvalidOid);
	return txm_has_topic_privilege(t, role, privilege);
}

/* The same for a topic by id: rows that outlive their topic keep its id. */
bool
txm_may_id(int32 topic_id, Oid role, int privilege)
{
	const char *cached = txm_topic_name(topic_id);
	char		name[TXM_NAME_MAX + 1];

	if (cached == NULL)
		return is_owner(role, InvalidOid);
	/* the look-up may free the cached name */
	strlcpy(name, cached, sizeof(name));
	return txm_may(name, role, privilege);
}

/*
 * 42501 unless the current user has the privileges of the role that owns
 * a consumer group: its services are members of the team role that owns it.
 */
void
txm_require_group_member(const char *group, Oid group_owner)
{
	Oid			role = GetUserId();
	const char *owner_name;

	if (has_privs_of_role(role, group_owner) || is_owner(role, InvalidOid))
		return;
	owner_name = GetUserNameFromId(group_owner, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for consumer group \"%s\"", group),
			 errdetail("The group belongs to role \"%s\"; only roles with its privileges may use it.",
					   owner_name ? owner_name : "?")));
}

/*
 * The id of the topic of that name, after checking that the current user
 * holds privilege on it: 42704 for an unknown topic, 42501 without it.
 */
int32
txm_topic_id_for(const char *name, int privilege)
{
	const TxmTopic *t = txm_lookup_topic(name, false);
	int32		topic_id = t->topic_id;

	txm_require_topic_privilege(t, privilege);
	return topic_id;
}
