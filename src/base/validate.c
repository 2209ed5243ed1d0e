/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Checks of user input shared by the SQL functions.
 *
 * Every check raises an error with its own SQLSTATE before anything has
 * been changed, so a bad argument never leaves a trace.  The checks depend
 * on nothing else in tx_message: callers pass what they need (the message
 * type of the current installation, say).
 *
 * IDENTIFICATION
 *	  src/base/validate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "src/base/layout.h"
#include "src/base/validate.h"

int			txm_max_payload_size = 1024 * 1024;

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

/*
 * Copy a name argument into buf (TXM_NAME_MAX + 1 bytes), refusing names
 * too long to exist.  The characters are checked where a name is first
 * looked up, so a cached name costs nothing more.
 */
void
txm_name_arg(text *arg, const char *kind, char *buf)
{
	int			len = VARSIZE_ANY_EXHDR(arg);

	if (len > TXM_NAME_MAX)
		txm_check_name(kind, text_to_cstring(arg));
	memcpy(buf, VARDATA_ANY(arg), len);
	buf[len] = '\0';
}

/* The consumer_group argument argno: required, and a valid name. */
char *
txm_group_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *group;

	txm_require_arg(fcinfo, argno, "consumer_group");
	group = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	txm_check_name("consumer group", group);
	return group;
}

/*
 * Every part of a message is bounded by tx_message.max_payload_size: the
 * payload, and also its key, tags and headers.
 */
static void
check_size(const char *what, Size size)
{
	if (txm_max_payload_size > 0 && size > (Size) txm_max_payload_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too large", what),
				 errdetail("It has %zu bytes; tx_message.max_payload_size is %d bytes.",
						   size, txm_max_payload_size)));
}

void
txm_check_payload(Jsonb *payload, const char *what)
{
	check_size(what, VARSIZE_ANY(payload));
}

/*
 * A key goes into the notifications of check-backs and dead letters, whose
 * payload PostgreSQL limits to 8000 bytes.
 */
void
txm_check_key(Datum key)
{
	/* the argument may still be compressed or stored out of line */
	Size		len = toast_raw_datum_size(key) - VARHDRSZ;

	if (len > TXM_MAX_KEY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("key is too long"),
				 errdetail("It has %zu bytes; a key has at most %d.", len, TXM_MAX_KEY_BYTES)));
}

/* A dedup key: what a key may be, and not empty. */
void
txm_check_dedup_key(Datum key)
{
	Size		len = toast_raw_datum_size(key) - VARHDRSZ;

	if (len > TXM_MAX_KEY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("dedup key is too long"),
				 errdetail("It has %zu bytes; a dedup key has at most %d.", len, TXM_MAX_KEY_BYTES)));
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dedup key must not be empty"),
				 errhint("Pass NULL to send without a dedup key.")));
}

void
txm_check_headers(Jsonb *headers)
{
	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers must be a JSON object")));
	check_size("headers", VARSIZE_ANY(headers));
}

void
txm_check_one_dimension(ArrayType *array, const char *what)
{
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
}

void
txm_check_tags(ArrayType *tags, const char *what)
{
	txm_check_one_dimension(tags, what);
	check_size(what, VARSIZE_ANY(tags));
	if (array_contains_nulls(tags))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain nulls", what)));
}

static int
interval_sign(Interval *value)
{
	Interval	zero;

	memset(&zero, 0, sizeof(zero));
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(value),
											 IntervalPGetDatum(&zero)));
}

/*
 * Refuse intervals over 100 years: every time computed from an option
 * (now() + lease, sent_at + check_after, ...) stays far inside the range
 * of timestamptz, so no worker cycle or receive can overflow on it.
 */
static void
check_interval_bound(const char *what, Interval *value)
{
	Interval	bound;

	memset(&bound, 0, sizeof(bound));
	bound.month = TXM_MAX_INTERVAL_YEARS * MONTHS_PER_YEAR;
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(value),
										  IntervalPGetDatum(&bound))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d years", what, TXM_MAX_INTERVAL_YEARS),
				 errdetail("The value given is \"%s\".",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(value))))));
}

/* An integer option within [min, max]. */
void
txm_check_int_range(const char *what, int64 value, int64 min, int64 max)
{
	if (value < min || value > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between " INT64_FORMAT " and " INT64_FORMAT, what, min, max),
				 errdetail("The value given is " INT64_FORMAT ".", value)));
}

/* Refuse intervals that are not strictly positive, or over the bound. */
void
txm_check_positive_interval(const char *what, Interval *value)
{
	check_interval_bound(what, value);
	if (interval_sign(value) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive interval", what),
				 errdetail("The value given is \"%s\".",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(value))))));
}

/* Refuse negative intervals (delays, waits), or over the bound. */
void
txm_check_not_negative(const char *what, Interval *value)
{
	check_interval_bound(what, value);
	if (interval_sign(value) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what)));
}

/* A retry schedule: at least one step, none null or negative. */
void
txm_check_backoff(ArrayType *backoff)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	txm_check_one_dimension(backoff, "backoff");
	deconstruct_array(backoff, INTERVALOID, sizeof(Interval), false, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backoff must have at least one step")));
	if (n > TXM_MAX_BACKOFF_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backoff must have at most %d steps", TXM_MAX_BACKOFF_STEPS),
				 errdetail("It has %d.", n)));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("backoff must not contain nulls")));
		check_interval_bound("a backoff step", DatumGetIntervalP(elems[i]));
		if (interval_sign(DatumGetIntervalP(elems[i])) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backoff steps must not be negative"),
					 errdetail("Step %d is \"%s\".", i + 1,
							   DatumGetCString(DirectFunctionCall1(interval_out, elems[i])))));
	}
}

/*
 * A function that the worker will call with one message (of message_type):
 * check its signature and that the calling role (who becomes its runner)
 * may execute it.
 */
void
txm_check_message_function(Oid fn, const char *what, Oid message_type, Oid required_rettype)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		ok;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", fn)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	/* the worker runs it later, from another session */
	if (isAnyTempNamespace(proc->pronamespace))
	{
		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("%s %s is a temporary function", what, format_procedure(fn)),
				 errdetail("The worker calls it from another session, where it does not exist.")));
	}
	ok = proc->prokind == PROKIND_FUNCTION && !proc->proretset &&
		proc->pronargs == 1 && proc->proargtypes.values[0] == message_type &&
		(required_rettype == InvalidOid || proc->prorettype == required_rettype);
	ReleaseSysCache(tup);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("%s %s has the wrong signature", what,
						format_procedure(fn)),
				 required_rettype == TEXTOID ?
				 errdetail("A %s must be declared as (tx_message.message) RETURNS text.", what) :
				 errdetail("A %s must be a function taking one tx_message.message.", what)));
	if (pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", format_procedure(fn)),
				 errdetail("The %s runs as the role that configures it.", what)));
}

/*
 * Every function that writes: not on a standby (with the SQLSTATE of every
 * write there, before it ticks or locks anything), in a read-only
 * transaction or in a parallel worker.
 */
static void
check_writable(const char *function, const char *recovery_msg, const char *hint)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg_internal("%s", recovery_msg),
				 errhint("%s", hint)));
	PreventCommandIfReadOnly(function);
	PreventCommandIfParallelMode(function);
}

/* Producers write the log. */
void
txm_check_can_send(const char *function)
{
	check_writable(function, "cannot send messages during recovery",
				   "Send messages on the primary.");
}

/* Consumers write leases, acks and retries. */
void
txm_check_can_consume(const char *function)
{
	check_writable(function, "cannot consume messages during recovery",
				   "Consume messages on the primary.");
}

/* Functions that change configuration or run the worker's cycle. */
void
txm_check_can_change(const char *function)
{
	check_writable(function, psprintf("cannot execute %s during recovery", function),
				   "Change tx_message on the primary.");
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * The message ids of a msg_ids argument, sorted, each once: acks and lease
 * extensions count every message once however often it is named.
 */
int64 *
txm_id_array(ArrayType *array, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int64	   *ids;

	txm_check_one_dimension(array, "msg_ids");
	deconstruct_array(array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
	ids = palloc(sizeof(int64) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("msg_ids must not contain nulls")));
		ids[i] = DatumGetInt64(elems[i]);
	}
	*n = txm_sort_unique_ids(ids, *n);
	return ids;
}

/* Sort n message ids and keep each once; returns how many are left. */
int
txm_sort_unique_ids(int64 *ids, int n)
{
	int			k = 0;

	if (n > 1)
		qsort(ids, n, sizeof(int64), cmp_int64);
	for (int i = 0; i < n; i++)
		if (k == 0 || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	return k;
}
