/*-------------------------------------------------------------------------
 *
 * maintenance.h
 *	  The maintenance cycle: its steps, in the one order every caller uses.
 *
 * IDENTIFICATION
 *	  src/engine/maintenance.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_MAINTENANCE_H
#define TXM_MAINTENANCE_H

#include "src/engine/stats.h"

/* tx_message.batch_size */
extern int	txm_batch_size;

/* The steps of a cycle; they always run in this order. */
#define TXM_STEP_TICK				(1 << 0)
#define TXM_STEP_RELEASE_DELAYED	(1 << 1)
#define TXM_STEP_CHECK_BACKS		(1 << 2)
#define TXM_STEP_SUBSCRIPTIONS		(1 << 3)
#define TXM_STEP_HANDLERS			(1 << 4)
#define TXM_STEP_RETENTION			(1 << 5)
#define TXM_STEP_PREPARED			(1 << 6)
#define TXM_STEP_TRIM_TICKS			(1 << 7)
#define TXM_STEP_ORPHANS			(1 << 8)
#define TXM_STEP_TOTALS				(1 << 9)
#define TXM_STEPS_ALL				0x3FF

/*
 * The steps the database worker runs as one unit: it ticks, checks back and
 * runs handlers in units (and a process) of their own.
 */
#define TXM_STEPS_HOUSEKEEPING \
	(TXM_STEP_RELEASE_DELAYED | TXM_STEP_SUBSCRIPTIONS | TXM_STEP_RETENTION | \
	 TXM_STEP_PREPARED | TXM_STEP_TRIM_TICKS | TXM_STEP_ORPHANS | TXM_STEP_TOTALS)

extern void txm_maintenance_cycle(int steps, bool warn_prepared, TxmMaintStats *stats);

#endif							/* TXM_MAINTENANCE_H */
