/*-------------------------------------------------------------------------
 *
 * retention.h
 *	  Rotating, sealing and truncating the log tables.
 *
 * IDENTIFICATION
 *	  src/engine/retention.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_RETENTION_H
#define TXM_RETENTION_H

extern int	txm_retention(bool *rotated);

#endif							/* TXM_RETENTION_H */
