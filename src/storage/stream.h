/*-------------------------------------------------------------------------
 *
 * stream.h
 *	  Reading a topic's position stream: its blocks of TXM_BLOCK positions,
 *	  the slices that fill them, and the log rows they point to.
 *
 * IDENTIFICATION
 *	  src/storage/stream.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_STREAM_H
#define TXM_STREAM_H

#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "src/base/layout.h"

/* A block's positions as a bitmap: bit i is position block * TXM_BLOCK + i. */
typedef struct TxmBlockBits
{
	uint8		b[TXM_BLOCK_BYTES];
} TxmBlockBits;

static inline bool
txm_bit_get(const TxmBlockBits *m, int off)
{
	Assert(off >= 0 && off < TXM_BLOCK);
	return (m->b[off >> 3] & (0x80 >> (off & 7))) != 0;
}

static inline void
txm_bit_set(TxmBlockBits *m, int off)
{
	Assert(off >= 0 && off < TXM_BLOCK);
	m->b[off >> 3] |= (0x80 >> (off & 7));
}

static inline void
txm_bit_clear(TxmBlockBits *m, int off)
{
	Assert(off >= 0 && off < TXM_BLOCK);
	m->b[off >> 3] &= ~(0x80 >> (off & 7));
}

extern bool txm_bits_empty(const TxmBlockBits *m);
extern Datum txm_bits_datum(const TxmBlockBits *m);
extern void txm_bits_from_datum(Datum d, TxmBlockBits *m);

/* The slices of one block of a topic's stream. */
typedef struct TxmBlockSlices
{
	TxmBlockBits avail;			/* positions that exist */
	int64		pos[TXM_BLOCK]; /* their log positions */
	int16		slots;			/* log tables holding them */
	bool		full;			/* all TXM_BLOCK positions exist */
} TxmBlockSlices;

/* A log row, copied out. */
typedef struct TxmMsg
{
	int64		pos;
	bool		found;
	int64		msg_id;
	int32		topic_id;
	TimestampTz sent_at;
	Datum		cols[TXM_MSG_NCOLS];	/* key, tags, headers, payload */
	bool		isnull[TXM_MSG_NCOLS];
} TxmMsg;

extern bool txm_read_block_slices(int32 topic_id, int64 block, Snapshot snap,
								  TxmBlockSlices *bs);
extern void txm_fetch_messages(TxmMsg *msgs, int n, int16 slots, Snapshot snap);
extern int64 txm_stream_head(int32 topic_id, Snapshot snap);
extern int64 txm_stream_start(int32 topic_id, bool earliest);
extern int64 txm_stream_seq_at(int32 topic_id, TimestampTz t);
extern int64 txm_stream_seq_in_tick(int32 topic_id, int64 tick_id, int64 pos, Snapshot snap);

#endif							/* TXM_STREAM_H */
