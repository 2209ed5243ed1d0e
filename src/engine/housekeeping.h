/*-------------------------------------------------------------------------
 *
 * housekeeping.h
 *	  The worker's regular chores, apart from retention: delayed messages,
 *	  lease expiry and watermarks, prepared transactions, tick history, and
 *	  the next deadline.
 *
 * IDENTIFICATION
 *	  src/engine/housekeeping.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_HOUSEKEEPING_H
#define TXM_HOUSEKEEPING_H

#include "utils/timestamp.h"

#include "src/base/subcache.h"
#include "src/engine/stats.h"

extern int64 txm_release_delayed(int limit);
extern int	txm_expire_leases(const TxmSub *sub);
extern int64 txm_advance_watermark(const TxmSub *sub);
extern char **txm_group_names(MemoryContext cxt, int *ngroups);
extern void txm_maintain_group(const char *group, TxmMaintStats *stats);
extern void txm_maintain_subscriptions(TxmMaintStats *stats);
extern int	txm_report_prepared(bool warn);
extern int64 txm_trim_ticks(void);
extern int64 txm_remove_orphans(void);
extern void txm_restore_check(void);
extern int	txm_store_totals(void);
extern TimestampTz txm_next_deadline(void);
extern TimestampTz txm_next_wakeup(void);
extern void txm_user_code(bool *checks, int *handlers);

#endif							/* TXM_HOUSEKEEPING_H */
