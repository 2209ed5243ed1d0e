/*-------------------------------------------------------------------------
 *
 * layout.h
 *	  The shapes every layer of tx_message agrees on: message ids, the
 *	  blocks of a topic's position stream, the log tables, the columns a
 *	  message carries, and names.
 *
 * docs/design.md explains the message ids (section 1) and the blocks
 * (section 3).
 *
 * IDENTIFICATION
 *	  src/base/layout.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_LAYOUT_H
#define TXM_LAYOUT_H

#include "access/transam.h"

/*
 * Message ids: ((top-level FullTransactionId + id_base) << TXM_POS_SHIFT) | n,
 * where n counts the messages of that transaction and id_base is 0 unless
 * the database was restored from a dump (tx_message.instance).  The
 * shifted-out part is the transaction's "virtual" xid.
 */
#define TXM_POS_SHIFT		20
#define TXM_MAX_PER_XACT	(INT64CONST(1) << TXM_POS_SHIFT)
#define TXM_MAX_FXID		(UINT64CONST(1) << (63 - TXM_POS_SHIFT))
#define TXM_POS_XID(pos)	((uint64) (pos) >> TXM_POS_SHIFT)

/*
 * The 64-bit form of xid, of a transaction that began before next by less
 * than 2^31 (an xid of a snapshot, of the commit ring or of
 * pg_prepared_xacts); special xids stay as they are.
 */
static inline uint64
txm_widen_xid(TransactionId xid, FullTransactionId next)
{
	uint32		epoch = EpochFromFullTransactionId(next);

	if (!TransactionIdIsNormal(xid))
		return (uint64) xid;
	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return U64FromFullTransactionId(FullTransactionIdFromEpochAndXid(epoch, xid));
}

/* Positions of a topic's stream are claimed in blocks of this many. */
#define TXM_BLOCK			256
#define TXM_BLOCK_BYTES		(TXM_BLOCK / 8)

/* The message log is this many tables, one of them current. */
#define TXM_LOG_SLOTS		3

/* Topic and consumer group names: RocketMQ's limit. */
#define TXM_NAME_MAX		127

/*
 * The four columns a message carries wherever it is stored (the log,
 * delayed, half_messages, retries, dead_letters), in this order.
 */
#define TXM_COL_KEY			0
#define TXM_COL_TAGS		1
#define TXM_COL_HEADERS		2
#define TXM_COL_PAYLOAD		3
#define TXM_MSG_NCOLS		4

#endif							/* TXM_LAYOUT_H */
