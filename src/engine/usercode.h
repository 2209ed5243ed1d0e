/*-------------------------------------------------------------------------
 *
 * usercode.h
 *	  Running user code (check functions and handlers) safely.
 *
 * IDENTIFICATION
 *	  src/engine/usercode.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_USERCODE_H
#define TXM_USERCODE_H

#include "utils/timestamp.h"

extern bool txm_run_user_code(Oid fn, Oid role, Datum arg, int timeout_ms,
							  Datum *result, bool *isnull, char **error);
extern Datum txm_message_datum(int64 msg_id, const char *topic, const Datum *cols,
							   const bool *isnull, TimestampTz sent_at, int32 attempt);

#endif							/* TXM_USERCODE_H */
