/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Checks of user input shared by the SQL functions: names, payloads,
 *	  headers, tags, intervals, arrays, functions, and whether this session
 *	  may write at all.
 *
 * IDENTIFICATION
 *	  src/base/validate.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_VALIDATE_H
#define TXM_VALIDATE_H

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* Bounds of options: intervals, counts (check_max, max_retries), backoff steps. */
#define TXM_MAX_INTERVAL_YEARS	100
#define TXM_MAX_COUNT			10000
#define TXM_MAX_BACKOFF_STEPS	100
#define TXM_MAX_KEY_BYTES		1024

/* tx_message.max_payload_size */
extern int	txm_max_payload_size;

/* An argument of a SQL function that must not be NULL. */
#define txm_require_arg(fcinfo, n, name) \
	do { \
		if (PG_ARGISNULL(n)) \
			ereport(ERROR, \
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), \
					 errmsg("%s must not be null", (name)))); \
	} while (0)

extern void txm_check_name(const char *kind, const char *name);
extern void txm_name_arg(text *arg, const char *kind, char *buf);
extern char *txm_group_arg(FunctionCallInfo fcinfo, int argno);
extern void txm_check_payload(Jsonb *payload, const char *what);
extern void txm_check_key(Datum key);
extern void txm_check_dedup_key(Datum key);
extern void txm_check_headers(Jsonb *headers);
extern void txm_check_tags(ArrayType *tags, const char *what);
extern void txm_check_one_dimension(ArrayType *array, const char *what);
extern void txm_check_int_range(const char *what, int64 value, int64 min, int64 max);
extern void txm_check_positive_interval(const char *what, Interval *value);
extern void txm_check_not_negative(const char *what, Interval *value);
extern void txm_check_backoff(ArrayType *backoff);
extern void txm_check_message_function(Oid fn, const char *what, Oid message_type,
									   Oid required_rettype);
extern void txm_check_can_send(const char *function);
extern void txm_check_can_consume(const char *function);
extern void txm_check_can_change(const char *function);
extern int64 *txm_id_array(ArrayType *array, int *n);
extern int	txm_sort_unique_ids(int64 *ids, int n);

#endif							/* TXM_VALIDATE_H */
