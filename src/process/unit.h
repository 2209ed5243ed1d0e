/*-------------------------------------------------------------------------
 *
 * unit.h
 *	  What the background processes share: their settings, starting one,
 *	  attaching to a database, and running a unit of work in a transaction
 *	  of its own.
 *
 * IDENTIFICATION
 *	  src/process/unit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_UNIT_H
#define TXM_UNIT_H

#include "postmaster/bgworker.h"

/* tx_message.enabled, .naptime, .tick_interval, .executors, .max_workers, .worker_idle_timeout */
extern bool txm_enabled;
extern int	txm_naptime;
extern int	txm_tick_interval;
extern int	txm_executors;
extern int	txm_max_workers;
extern int	txm_worker_idle_timeout;

extern BackgroundWorkerHandle *txm_start_worker(const char *function, const char *type,
												int slot_index, int executor, Oid dboid,
												pid_t notify_pid);
extern int	txm_my_executor(void);
extern void txm_attach_to_database(Datum main_arg, bool executor);
extern void txm_process_checkpoint(bool executor);
extern bool txm_run_in_transaction(void (*fn) (void *), void *arg, const char *activity);
extern bool txm_lock_extension(void);
extern int	txm_run_due_checks(bool with_functions, bool executor);

#endif							/* TXM_UNIT_H */
