/*-------------------------------------------------------------------------
 *
 * filter.c
 *	  Subscription filters on message headers: RocketMQ's SQL92 property
 *	  filters, written as a jsonpath predicate.
 *
 * The predicate is evaluated with jsonb_path_match(), the message's headers
 * as the document (an empty object when it has none) and its key and tags
 * as the variables $key and $tags.  It is evaluated silently: a predicate
 * that cannot be evaluated for a message (a strict-mode path that is
 * missing, a comparison of mismatched types) does not match it.  Only a
 * predicate is accepted, so that every evaluation gives a boolean.  What
 * raises an error even when silent is refused when the filter is named: a
 * variable other than $key and $tags, and .datetime(), whose results
 * compared across time zones raise one; an error there would fail every
 * receive of the group, whatever message a sender chose to make it.
 *
 * IDENTIFICATION
 *	  src/base/filter.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "src/base/filter.h"
#include "src/base/layout.h"
#include "src/base/msgjson.h"

/* The variables of a message: {"key": ..., "tags": [...]}, nulls as null. */
static Datum
filter_vars(const Datum *cols, const bool *isnull)
{
	StringInfoData buf;
	Datum		vars;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	txm_json_key_and_tags(&buf, cols, isnull);
	appendStringInfoChar(&buf, '}');
	vars = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	pfree(buf.data);
	return vars;
}

/* jsonb_path_match(doc, filter, vars, silent => true); NULL counts as false. */
static bool
path_match(JsonPath *filter, Datum doc, Datum vars)
{
	LOCAL_FCINFO(fcinfo, 4);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 4, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = doc;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = PointerGetDatum(filter);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = vars;
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = BoolGetDatum(true);
	fcinfo->args[3].isnull = false;
	result = jsonb_path_match(fcinfo);
	return !fcinfo->isnull && DatumGetBool(result);
}

/* Whether a message (its key, tags, headers and payload columns) passes a filter. */
bool
txm_filter_matches(JsonPath *filter, const Datum *cols, const bool *isnull)
{
	Datum		doc;

	doc = isnull[TXM_COL_HEADERS] ?
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) : cols[TXM_COL_HEADERS];
	return path_match(filter, doc, filter_vars(cols, isnull));
}

/*
 * Refuse any variable but $key and $tags, and .datetime(), in a jsonpath
 * item, its arguments and the items that follow it.  Every part is looked at: && and || do not
 * evaluate their right side when the left decides, so evaluating the filter
 * once would not find them all.
 */
static void
check_items(JsonPathItem *first)
{
	JsonPathItem item = *first;
	JsonPathItem a;
	JsonPathItem b;

	for (;;)
	{
		check_stack_depth();
		switch (item.type)
		{
			case jpiVariable:
				{
					int32		len;
					char	   *name = jspGetString(&item, &len);

					if (!(len == 3 && memcmp(name, "key", 3) == 0) &&
						!(len == 4 && memcmp(name, "tags", 4) == 0))
						ereport(ERROR,
								(errcode(ERRCODE_UNDEFINED_OBJECT),
								 errmsg("filter refers to an unknown variable $%.*s", (int) len, name),
								 errhint("A filter's variables are $key and $tags; the headers are $.")));
					break;
				}
			case jpiAnd:
			case jpiOr:
			case jpiEqual:
			case jpiNotEqual:
			case jpiLess:
			case jpiGreater:
			case jpiLessOrEqual:
			case jpiGreaterOrEqual:
			case jpiAdd:
			case jpiSub:
			case jpiMul:
			case jpiDiv:
			case jpiMod:
			case jpiStartsWith:
				jspGetLeftArg(&item, &a);
				check_items(&a);
				jspGetRightArg(&item, &b);
				check_items(&b);
				break;
			case jpiNot:
			case jpiIsUnknown:
			case jpiExists:
			case jpiPlus:
			case jpiMinus:
			case jpiFilter:
				jspGetArg(&item, &a);
				check_items(&a);
				break;
			case jpiLikeRegex:
				jspInitByBuffer(&a, item.base, item.content.like_regex.expr);
				check_items(&a);
				break;
			case jpiDatetime:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("filter must not use the .datetime() method"),
						 errdetail("Comparing its results can raise an error even in silent mode, which would fail every receive of the group."),
						 errhint("Compare times as strings in ISO 8601 form, or use tags or a key.")));
				break;
			case jpiIndexArray:
				for (int i = 0; i < item.content.array.nelems; i++)
				{
					bool		range = jspGetArraySubscript(&item, &a, &b, i);

					check_items(&a);
					if (range)
						check_items(&b);
				}
				break;
			default:
				break;
		}
		if (!jspGetNext(&item, &a))
			break;
		item = a;
	}
}

/*
 * A filter named by tx_subscribe: a predicate (its outermost item a
 * comparison, a boolean operator, exists, like_regex, starts with or is
 * unknown), whose variables are $key and $tags.
 */
void
txm_check_filter(JsonPath *filter)
{
	JsonPathItem item;
	Datum		cols[TXM_MSG_NCOLS];
	bool		isnull[TXM_MSG_NCOLS] = {true, true, true, true};

	jspInit(&item, filter);
	switch (item.type)
	{
		case jpiAnd:
		case jpiOr:
		case jpiNot:
		case jpiIsUnknown:
		case jpiEqual:
		case jpiNotEqual:
		case jpiLess:
		case jpiGreater:
		case jpiLessOrEqual:
		case jpiGreaterOrEqual:
		case jpiExists:
		case jpiStartsWith:
		case jpiLikeRegex:
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("filter must be a jsonpath predicate"),
					 errdetail("It is evaluated for each message to true or false, as by jsonb_path_match()."),
					 errhint("For example: '$.region == \"eu\" && $.amount > 100'.")));
	}
	check_items(&item);
	memset(cols, 0, sizeof(cols));
	(void) txm_filter_matches(filter, cols, isnull);
}
