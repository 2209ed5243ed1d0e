/*-------------------------------------------------------------------------
 *
 * handlers.h
 *	  In-database handlers: subscriptions consumed by the executor.
 *
 * IDENTIFICATION
 *	  src/engine/handlers.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_HANDLERS_H
#define TXM_HANDLERS_H

#include "src/base/subcache.h"
#include "src/engine/stats.h"

/* tx_message.handler_timeout and tx_message.handler_batch_size */
extern int	txm_handler_timeout;
extern int	txm_handler_batch_size;

extern int	txm_run_handler_batch(TxmSub *sub, int batch_size, TxmMaintStats *stats);

#endif							/* TXM_HANDLERS_H */
