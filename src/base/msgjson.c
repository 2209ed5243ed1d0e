/*-------------------------------------------------------------------------
 *
 * msgjson.c
 *	  JSON text of a message's fields, for NOTIFY payloads, dead-letter
 *	  headers, filter variables and change data capture: one spelling of
 *	  a key and of tags (a JSON array of strings) wherever they are shown.
 *
 * IDENTIFICATION
 *	  src/base/msgjson.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "src/base/layout.h"
#include "src/base/msgjson.h"

/* A JSON string, or null. */
void
txm_json_string_or_null(StringInfo buf, const char *s)
{
	if (s)
		escape_json(buf, s);
	else
		appendStringInfoString(buf, "null");
}

/* "key": …, "tags": […] of a message's columns (nulls as null). */
void
txm_json_key_and_tags(StringInfo buf, const Datum *cols, const bool *isnull)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	appendStringInfoString(buf, "\"key\": ");
	txm_json_string_or_null(buf, isnull[TXM_COL_KEY] ? NULL : TextDatumGetCString(cols[TXM_COL_KEY]));
	appendStringInfoString(buf, ", \"tags\": ");
	if (isnull[TXM_COL_TAGS])
	{
		appendStringInfoString(buf, "null");
		return;
	}
	deconstruct_array(DatumGetArrayTypeP(cols[TXM_COL_TAGS]), TEXTOID, -1, false,
					  TYPALIGN_INT, &elems, &nulls, &n);
	appendStringInfoChar(buf, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		txm_json_string_or_null(buf, nulls[i] ? NULL : TextDatumGetCString(elems[i]));
	}
	appendStringInfoChar(buf, ']');
}
