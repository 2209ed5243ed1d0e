/*-------------------------------------------------------------------------
 *
 * grants.c
 *	  tx_grant and tx_revoke, and the privilege test of the views.
 *
 * Grants are rows of tx_message.topic_grants, one per privilege; 'all'
 * stands for send, receive and admin.  Granting and revoking need 'admin'
 * on the topic.  Each change invalidates tx_message.topic_grants, which
 * makes every backend forget the privileges it cached (acl.c).
 *
 * IDENTIFICATION
 *	  src/api/grants.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "src/api/topics.h"
#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/base/validate.h"

PG_FUNCTION_INFO_V1(tx_grant);
PG_FUNCTION_INFO_V1(tx_revoke);
PG_FUNCTION_INFO_V1(tx_message_may);
PG_FUNCTION_INFO_V1(tx_message_may_id);

/*
 * The arguments of tx_grant and tx_revoke, checked: the topic (which the
 * caller must administer), the grantee (InvalidOid for public) and the
 * privileges as a mask.
 */
static void
grant_args(FunctionCallInfo fcinfo, char *topic, Oid *grantee, int *mask)
{
	char	   *role;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "role");
	txm_require_arg(fcinfo, 2, "privilege");
	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", topic);
	*mask = txm_parse_privilege(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	role = NameStr(*PG_GETARG_NAME(1));
	*grantee = strcmp(role, "public") == 0 ? InvalidOid : get_role_oid(role, false);
	txm_require_topic_privilege(txm_lookup_topic(topic, false), TXM_PRIV_ADMIN);
}

/*
 * Insert or delete one row per privilege of mask.  In an SPI connection.
 */
static void
change_grants(const char *sql, int nargs, const char *topic, Oid grantee, int mask)
{
	Oid			types[4] = {TEXTOID, REGROLEOID, TEXTOID, REGROLEOID};
	Datum		values[4];

	values[0] = CStringGetTextDatum(topic);
	values[1] = ObjectIdGetDatum(grantee);
	values[3] = ObjectIdGetDatum(GetUserId());
	for (int bit = TXM_PRIV_SEND; bit <= TXM_PRIV_MONITOR; bit <<= 1)
	{
		if ((mask & bit) == 0)
			continue;
		values[2] = CStringGetTextDatum(txm_privilege_name(bit));
		txm_spi_exec(sql, nargs, types, values, NULL, 0);
	}
	txm_invalidate(txm_catalog()->topic_grants);
}

/* tx_grant(topic text, role name, privilege text) RETURNS void */
Datum
tx_grant(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"INSERT INTO tx_message.topic_grants (topic, grantee, privilege, granted_by)"
		" VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
	char		topic[TXM_NAME_MAX + 1];
	Oid			grantee;
	int			mask;

	txm_check_can_change("tx_grant()");
	grant_args(fcinfo, topic, &grantee, &mask);
	SPI_connect();
	txm_lock_topic(topic, false);
	change_grants(sql, 4, topic, grantee, mask);
	SPI_finish();
	/* a handler that was stopped for want of 'receive' may run again */
	txm_at_commit_request_maintenance();
	PG_RETURN_VOID();
}

/*
 * tx_revoke(topic text, role name, privilege text) RETURNS void
 *
 * Revoking 'all' also takes 'monitor'.  The owner's implicit privileges
 * cannot be revoked, and revoking what was not granted does nothing.
 */
Datum
tx_revoke(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"DELETE FROM tx_message.topic_grants"
		" WHERE topic = $1 AND grantee = $2 AND privilege = $3";
	char		topic[TXM_NAME_MAX + 1];
	Oid			grantee;
	int			mask;

	txm_check_can_change("tx_revoke()");
	grant_args(fcinfo, topic, &grantee, &mask);
	if (strcmp(text_to_cstring(PG_GETARG_TEXT_PP(2)), "all") == 0)
		mask = TXM_PRIV_EVERY;
	SPI_connect();
	change_grants(sql, 3, topic, grantee, mask);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * tx_message._may(topic text, privilege text) RETURNS boolean: whether the
 * current user holds privilege on the topic, for the views' row filters.
 */
Datum
tx_message_may(PG_FUNCTION_ARGS)
{
	char	   *topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			mask = txm_parse_privilege(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	PG_RETURN_BOOL(txm_may(topic, GetUserId(), mask));
}

/* tx_message._may(topic_id integer, privilege text) RETURNS boolean */
Datum
tx_message_may_id(PG_FUNCTION_ARGS)
{
	int			mask = txm_parse_privilege(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	PG_RETURN_BOOL(txm_may_id(PG_GETARG_INT32(0), GetUserId(), mask));
}
