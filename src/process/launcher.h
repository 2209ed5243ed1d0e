/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher, and the hook that lets commands have a database alone.
 *
 * IDENTIFICATION
 *	  src/process/launcher.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_LAUNCHER_H
#define TXM_LAUNCHER_H

extern void txm_register_launcher(void);
extern void txm_utility_init(void);

#endif							/* TXM_LAUNCHER_H */
