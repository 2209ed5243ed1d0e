/*-------------------------------------------------------------------------
 *
 * packed.h
 *	  The compact form of a slice's log positions (tx_message.slices.packed,
 *	  since 1.1).
 *
 * IDENTIFICATION
 *	  src/base/packed.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_PACKED_H
#define TXM_PACKED_H

extern bytea *txm_pack_positions(const int64 *positions, int n);
extern int	txm_unpack_positions(const bytea *packed, int64 *out, int max);

#endif							/* TXM_PACKED_H */
