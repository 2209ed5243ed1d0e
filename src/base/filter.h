/*-------------------------------------------------------------------------
 *
 * filter.h
 *	  Subscription filters on message headers (jsonpath predicates).
 *
 * IDENTIFICATION
 *	  src/base/filter.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_FILTER_H
#define TXM_FILTER_H

#include "utils/jsonpath.h"

extern void txm_check_filter(JsonPath *filter);
extern bool txm_filter_matches(JsonPath *filter, const Datum *cols, const bool *isnull);

#endif							/* TXM_FILTER_H */
