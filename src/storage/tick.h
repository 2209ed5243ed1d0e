/*-------------------------------------------------------------------------
 *
 * tick.h
 *	  The ticker: committed log rows become per-topic position streams.
 *
 * IDENTIFICATION
 *	  src/storage/tick.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_TICK_H
#define TXM_TICK_H

#include "access/xact.h"

#include "src/base/shmem.h"

extern int64 txm_tick(bool wait);
extern void txm_sync_ticks(bool strict, uint64 topics, TxmWaiterKind kind);
extern bool txm_tick_lock_held(void);
extern void txm_tick_xact_callback(XactEvent event);
extern void txm_tick_subxact_callback(SubXactEvent event);

#endif							/* TXM_TICK_H */
