/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  What one maintenance cycle did, counted by the engine's steps and
 *	  reported by tx_run_maintenance().
 *
 * IDENTIFICATION
 *	  src/engine/stats.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_STATS_H
#define TXM_STATS_H

typedef struct TxmMaintStats
{
	int64		ticked;
	int64		delayed_released;
	int64		checks;
	int64		check_commits;
	int64		check_rollbacks;
	int64		check_unknown;
	int64		dead_lettered;
	int64		stale_prepared;
	int64		ticks_trimmed;
	int64		leases_expired;
	int64		truncated;
	int64		rotated;
	int64		handled;
	int64		handler_errors;
} TxmMaintStats;

#endif							/* TXM_STATS_H */
