/*-------------------------------------------------------------------------
 *
 * deliveries.h
 *	  Messages handed out by a claim, and where this session holds them.
 *
 * IDENTIFICATION
 *	  src/engine/deliveries.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_DELIVERIES_H
#define TXM_DELIVERIES_H

#include "access/xact.h"
#include "nodes/pg_list.h"

#include "src/storage/stream.h"

/* A message handed out by a claim, and where it is held. */
typedef struct TxmDelivery
{
	int			sub_index;		/* into the subscriptions the claim served */
	TxmMsg		msg;
	int32		attempt;
	TimestampTz lease_until;
	bool		from_retry;		/* held by its retry row, not by a lease row */
	int64		block;
	int16		first_off;		/* of the lease row holding it */
	int16		off;
} TxmDelivery;

/* Where a message of a group is held now. */
typedef struct TxmHolding
{
	int			sub_index;
	bool		from_retry;
	int64		block;
	int16		first_off;
	int16		off;
	int32		attempt;		/* of this session's delivery, or 0 if unknown */
} TxmHolding;

extern void txm_delivery_add(List **out, int sub_index, const TxmMsg *m, int32 attempt,
							 TimestampTz lease_until, bool from_retry, int64 block, int16 off);
extern void txm_deliveries_remember(int32 sub_id, const TxmDelivery *d);
/* What a session knows of a delivery */
typedef enum TxmHeld
{
	TXM_HELD_UNKNOWN,			/* never received here */
	TXM_HELD_HERE,				/* received here, not settled yet */
	TXM_HELD_SETTLED			/* acked or nacked here already */
} TxmHeld;

extern TxmHeld txm_deliveries_lookup(int32 sub_id, int64 msg_id, TxmHolding *h, bool take);
extern void txm_deliveries_settle(int32 sub_id, int64 msg_id, const TxmHolding *h);
extern int64 *txm_deliveries_held_in_xact(const int32 *sub_ids, int nsub_ids, int *n);
extern void txm_deliveries_xact_callback(XactEvent event);
extern void txm_deliveries_subxact_callback(SubXactEvent event);

#endif							/* TXM_DELIVERIES_H */
