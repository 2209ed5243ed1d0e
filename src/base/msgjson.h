/*-------------------------------------------------------------------------
 *
 * msgjson.h
 *	  JSON text of a message's fields, for NOTIFY payloads, dead-letter
 *	  headers, filter variables and change data capture.
 *
 * IDENTIFICATION
 *	  src/base/msgjson.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_MSGJSON_H
#define TXM_MSGJSON_H

#include "lib/stringinfo.h"

extern void txm_json_string_or_null(StringInfo buf, const char *s);
extern void txm_json_key_and_tags(StringInfo buf, const Datum *cols, const bool *isnull);

#endif							/* TXM_MSGJSON_H */
