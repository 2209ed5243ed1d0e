/*-------------------------------------------------------------------------
 *
 * packed.c
 *	  The compact form of a slice's log positions.
 *
 * A slice lists the log positions of its messages in commit order.  As a
 * bigint[] that is 8 bytes a message and a 24-byte array header, more than
 * the rest of the slice's share of the WAL of a produced message.  A
 * position is (virtual xid << TXM_POS_SHIFT) | n (layout.h), and messages
 * committed one after another are mostly of transactions that began close
 * together: each position is stored as the difference of its xid from the
 * previous one's, zigzag-encoded so that a small step back is small too,
 * shifted left by one; the low bit says that n is the one expected (the
 * next n of the same transaction, or 0 in another), else n follows.  Both
 * numbers are unsigned LEB128 varints (7 bits a byte, low group first).
 * One message per transaction, or a batch in one, takes a byte a message
 * while the xids of neighbours are less than 32 apart.
 *
 * The decoder takes any bytes (SQL can call it through
 * tx_message._slice_positions): whatever does not decode to valid
 * positions is an error, never a read past the end.
 *
 * IDENTIFICATION
 *	  src/base/packed.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "src/base/layout.h"
#include "src/base/packed.h"

/* An uint64 takes at most ten 7-bit groups. */
#define VARINT_MAX_BYTES	10

static int
put_varint(uint8 *p, uint64 v)
{
	int			len = 0;

	while (v >= 0x80)
	{
		p[len++] = (uint8) (v | 0x80);
		v >>= 7;
	}
	p[len++] = (uint8) v;
	return len;
}

static uint64
get_varint(const uint8 **p, const uint8 *end)
{
	uint64		v = 0;

	for (int shift = 0; shift < 64; shift += 7)
	{
		uint8		b;

		if (*p >= end)
			break;
		b = *(*p)++;
		if (shift == 63 && b > 1)
			break;
		v |= (uint64) (b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return v;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid packed positions"),
			 errdetail("A number is cut short or longer than 64 bits.")));
	return 0;					/* keep the compiler quiet */
}

/* Pack n positions; the result is a palloc'd bytea. */
bytea *
txm_pack_positions(const int64 *positions, int n)
{
	bytea	   *result = palloc(VARHDRSZ + (Size) n * 2 * VARINT_MAX_BYTES);
	uint8	   *p = (uint8 *) VARDATA(result);
	uint64		prev_xid = 0;
	int64		prev_n = -1;

	for (int i = 0; i < n; i++)
	{
		uint64		xid = TXM_POS_XID(positions[i]);
		int64		k = positions[i] & (TXM_MAX_PER_XACT - 1);
		int64		step = (int64) (xid - prev_xid);
		uint64		zigzag = ((uint64) step << 1) ^ (uint64) (step >> 63);
		int64		expected = xid == prev_xid ? prev_n + 1 : 0;

		Assert(positions[i] >= 0);
		p += put_varint(p, zigzag << 1 | (k == expected ? 1 : 0));
		if (k != expected)
			p += put_varint(p, (uint64) k);
		prev_xid = xid;
		prev_n = k;
	}
	SET_VARSIZE(result, p - (uint8 *) result);
	return result;
}

/*
 * Unpack into out, which has room for max positions; returns how many.
 * With out NULL, only counts them (and checks them all the same).  packed
 * may have a short header.
 */
int
txm_unpack_positions(const bytea *packed, int64 *out, int max)
{
	const uint8 *p = (const uint8 *) VARDATA_ANY(packed);
	const uint8 *end = p + VARSIZE_ANY_EXHDR(packed);
	uint64		xid = 0;
	int64		k = -1;
	int			n = 0;

	while (p < end)
	{
		uint64		token = get_varint(&p, end);
		uint64		zigzag = token >> 1;
		int64		step = (int64) (zigzag >> 1) ^ -(int64) (zigzag & 1);

		k = step == 0 ? k + 1 : 0;
		xid += (uint64) step;
		if ((token & 1) == 0)
			k = (int64) get_varint(&p, end);
		if (xid >= TXM_MAX_FXID || k < 0 || k >= TXM_MAX_PER_XACT)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid packed positions"),
					 errdetail("Position %d is out of range.", n + 1)));
		if (n >= max)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid packed positions"),
					 errdetail("It holds more than %d positions.", max)));
		if (out != NULL)
			out[n] = (int64) (xid << TXM_POS_SHIFT) | k;
		n++;
	}
	return n;
}
