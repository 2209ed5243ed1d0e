/*-------------------------------------------------------------------------
 *
 * lineage.h
 *	  Where message ids continue after a restore: the take-over of a
 *	  dumped database's messages, and the state the dump carries for it.
 *
 * IDENTIFICATION
 *	  src/storage/lineage.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_LINEAGE_H
#define TXM_LINEAGE_H

extern bool txm_take_over_restore(bool holding_ticks);
extern void txm_take_over_if_restored(void);
extern void txm_lineage_save_slots(void);
extern bool txm_lineage_internal_write(void);
extern int	txm_repair_identities(void);

#endif							/* TXM_LINEAGE_H */
