/*-------------------------------------------------------------------------
 *
 * usercode.c
 *	  The one way tx_message runs user code: check functions and handlers.
 *
 * User code runs in a subtransaction, as the role that owns the topic or
 * subscription (never as the calling worker or session's role), under a
 * statement timeout of its own.  If it fails or times out, its
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

#include "access/htup_details.h"
#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
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

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		Oid			saved_user;
		int			saved_sec;
		FmgrInfo	flinfo;
		Datum		value;
		LOCAL_FCINFO(fcinfo, 1);

		GetUserIdAndSecContext(&saved_user, &saved_sec);
		SetUserIdAndSecContext(role, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
		fmgr_info(fn, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = arg;
		fcinfo->args[0].isnull = false;
		arm_timeout(timeout_ms);
		value = FunctionCallInvoke(fcinfo);
		disarm_timeout();
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
