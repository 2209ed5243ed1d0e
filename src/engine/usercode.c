/*-------------------------------------------------------------------------
 *
 * usercode.c
 *	  The one way tx_message runs user code: check functions and handlers.
 *
 * User code runs in a subtransaction, as the role that named it (never as
 * the calling worker or session's role), as a security-restricted operation
 * (as PostgreSQL runs index expressions in maintenance commands: no SET
 * ROLE, no temporary objects), under a statement timeout of its own.  Every
 * call starts from the settings a fresh session of that role in this
 * database would have: the caller's SET commands are undone (RESET ALL), the
 * ALTER ROLE / ALTER DATABASE ... SET defaults of that role are applied, and
 * whatever the code sets is undone when it returns, in a GUC nest level of
 * its own.  So nothing one handler or check function sets reaches the next,
 * nor the extension's own statements.  If it fails or times out, its
 * subtransaction is rolled back, so nothing it did survives, and the error
 * message is handed to the caller, who decides what the failure means (an
 * unknown check-back, a failed delivery).
 *
 * IDENTIFICATION
 *	  src/engine/usercode.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_db_role_setting.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/typcache.h"

#include "src/base/catalog.h"
#include "src/engine/usercode.h"

/*
 * User code runs under a statement timeout of its own.  An outer
 * statement_timeout (in tx_run_maintenance) is restored afterwards, and an
 * earlier one is kept.  Disarming twice (after an error that follows the
 * call) restores nothing twice.
 */
static bool armed = false;
static TimestampTz outer_timeout_at = 0;

static void
arm_timeout(int timeout_ms)
{
	TimestampTz ours;

	outer_timeout_at = get_timeout_active(STATEMENT_TIMEOUT) ?
		get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
	armed = true;
	if (timeout_ms <= 0)
		return;
	ours = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	if (outer_timeout_at == 0 || ours < outer_timeout_at)
		enable_timeout_at(STATEMENT_TIMEOUT, ours);
}

static void
disarm_timeout(void)
{
	if (!armed)
		return;
	armed = false;
	disable_timeout(STATEMENT_TIMEOUT, false);
	if (outer_timeout_at != 0)
		enable_timeout_at(STATEMENT_TIMEOUT, outer_timeout_at);
	outer_timeout_at = 0;
}

/*
 * The ALTER ROLE / ALTER DATABASE ... SET defaults of one role in this
 * database, as "name=value" strings in the order a new session applies
 * them (later ones win): every database and role, this database, the role,
 * the role in this database.  Read once per role and transaction: a
 * handler batch calls the same role's code many times.
 */
static struct
{
	Oid			role;
	LocalTransactionId lxid;
	List	   *settings;
}			defaults = {InvalidOid, InvalidLocalTransactionId, NIL};

static List *
read_settings(Relation rel, Oid database, Oid role, List *settings)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(database));
	ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(role));
	scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, keys);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;
		Datum		config = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
										  RelationGetDescr(rel), &isnull);
		Datum	   *elems;
		int			n;

		if (isnull)
			continue;
		deconstruct_array(DatumGetArrayTypeP(config), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &n);
		for (int i = 0; i < n; i++)
			settings = lappend(settings, TextDatumGetCString(elems[i]));
	}
	systable_endscan(scan);
	return settings;
}

static List *
role_defaults(Oid role)
{
	MemoryContext old;
	Relation	rel;

	List	   *settings = NIL;

	if (defaults.role == role && defaults.lxid == MyProc->lxid)
		return defaults.settings;
	/* an error while reading must leave no half-read list behind */
	defaults.role = InvalidOid;
	old = MemoryContextSwitchTo(TopTransactionContext);
	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	settings = read_settings(rel, InvalidOid, InvalidOid, settings);
	settings = read_settings(rel, MyDatabaseId, InvalidOid, settings);
	settings = read_settings(rel, InvalidOid, role, settings);
	settings = read_settings(rel, MyDatabaseId, role, settings);
	table_close(rel, AccessShareLock);
	MemoryContextSwitchTo(old);
	defaults.settings = settings;
	defaults.role = role;
	defaults.lxid = MyProc->lxid;
	return settings;
}

/*
 * In the current GUC nest level: undo the session's SET commands and apply
 * role's defaults.  A default that cannot be set now (one that only takes
 * effect at connection start) is skipped, as it would be by SET.
 */
static void
fresh_settings(Oid role)
{
	ListCell   *lc;

	ResetAllOptions();
	foreach(lc, role_defaults(role))
	{
		char	   *name;
		char	   *value;

		ParseLongOption((const char *) lfirst(lc), &name, &value);
		if (value != NULL)
			(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
									 GUC_ACTION_SET, true, DEBUG1, false);
		/* ParseLongOption allocates with malloc before PostgreSQL 16 */
#if PG_VERSION_NUM >= 160000
		pfree(name);
		if (value)
			pfree(value);
#else
		free(name);
		if (value)
			free(value);
#endif
	}
}

/*
 * Call fn(arg) as role, in a subtransaction, bounded by timeout_ms (0: no
 * bound).  Returns true if it returned: then *result and *isnull hold its
 * result, copied into the caller's memory context, when result is not
 * NULL.  Returns false if it failed: then nothing it did survives, and
 * *error holds the error message.
 */
bool
txm_run_user_code(Oid fn, Oid role, Datum arg, int timeout_ms,
				  Datum *result, bool *isnull, char **error)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner outer_owner = CurrentResourceOwner;

	/* a dropped function is a failure of the call, not of the worker */
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(fn)))
	{
		*error = psprintf("function with OID %u does not exist", fn);
		return false;
	}
	/* the right to run it is checked now, not only when it was named */
	if (pg_proc_aclcheck(fn, role, ACL_EXECUTE) != ACLCHECK_OK)
	{
		const char *name = GetUserNameFromId(role, true);

		*error = psprintf("permission denied for function %s (role \"%s\")",
						  format_procedure(fn), name ? name : "?");
		return false;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		Oid			saved_user;
		int			saved_sec;
		int			nest_level;
		FmgrInfo	flinfo;
		Datum		value;
		LOCAL_FCINFO(fcinfo, 1);

		GetUserIdAndSecContext(&saved_user, &saved_sec);
		SetUserIdAndSecContext(role, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		nest_level = NewGUCNestLevel();
		fresh_settings(role);
		fmgr_info(fn, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = arg;
		fcinfo->args[0].isnull = false;
		arm_timeout(timeout_ms);
		value = FunctionCallInvoke(fcinfo);
		disarm_timeout();
		/* on an error, the subtransaction's abort undoes both */
		AtEOXact_GUC(false, nest_level);
		SetUserIdAndSecContext(saved_user, saved_sec);
		if (result)
		{
			int16		typlen;
			bool		typbyval;

			*isnull = fcinfo->isnull;
			*result = (Datum) 0;
			if (!fcinfo->isnull)
			{
				/* a copy that owes nothing to the subtransaction, not even TOAST */
				get_typlenbyval(get_func_rettype(fn), &typlen, &typbyval);
				MemoryContextSwitchTo(outer);
				*result = typlen == -1 ? PointerGetDatum(PG_DETOAST_DATUM_COPY(value)) :
					datumCopy(value, typbyval, typlen);
			}
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = outer_owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disarm_timeout();
		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = outer_owner;
		*error = pstrdup(edata->message);
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();
	return true;
}

/* The composite tx_message.message that check functions and handlers receive. */
Datum
txm_message_datum(int64 msg_id, const char *topic, const Datum *cols, const bool *isnull,
				  TimestampTz sent_at, int32 attempt)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(txm_catalog()->message_type, -1);
	Datum		values[8];
	bool		nulls[8];
	HeapTuple	tup;

	values[0] = Int64GetDatum(msg_id);
	nulls[0] = false;
	values[1] = CStringGetTextDatum(topic);
	nulls[1] = false;
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		values[2 + k] = cols[k];
		nulls[2 + k] = isnull[k];
	}
	values[6] = TimestampTzGetDatum(sent_at);
	nulls[6] = false;
	values[7] = Int32GetDatum(attempt);
	nulls[7] = (attempt == 0);
	tup = heap_form_tuple(desc, values, nulls);
	ReleaseTupleDesc(desc);
	return HeapTupleGetDatum(tup);
}
