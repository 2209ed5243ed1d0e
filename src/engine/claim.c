/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  Claiming: which messages a receive (or a handler batch) takes, and the
 *	  lease rows that record it.
 *
 * Each topic has a dense, commit-ordered position stream (tick.c); a
 * subscription consumes it in blocks of TXM_BLOCK positions.  Claiming a
 * block happens in two steps:
 *
 *	1. A first look, without any lock: the open claims in the registry
 *	   (shmem_claims.c), the block's slices, lease rows and the watermark,
 *	   read with one snapshot, give the free positions; their messages are
 *	   read and matched against the subscription's tags and filter.
 *	2. The decision, under the database's claim lock: the registry first,
 *	   then a fresh snapshot for the lease rows, so every claim is seen
 *	   either in the registry or as a committed lease.  The claimer covers
 *	   the first free positions, publishes its claim in the registry, and
 *	   after releasing the lock inserts ONE lease row: a bitmap of the
 *	   positions it covers, a bitmap of those done (gone, or filtered out by
 *	   tags or filter), and a deadline.
 *
 * Competing consumers therefore never share a row and never wait for each
 * other.  Claimers also take a transaction-scoped lock on (subscription,
 * block) without waiting: in share mode when they publish in the registry,
 * exclusively when they cannot (no shared memory), so the two kinds never
 * claim in the same block at once.  A receive that rolls back leaves no
 * lease, and its positions are free again (shmem_xact.c).
 *
 * Ordered subscriptions take one more lock, on the subscription, so their
 * claims are serialized; a message is taken only if no message with its key
 * is pending in a lease or in retries.  A blocked message stays free, ahead
 * of the later messages of its key.
 *
 * Due retries are claimed before the streams.  Receivers start scanning at
 * a hint kept in shared memory (the lowest position that may be free) and
 * skip the look-up in retries while the hints say none is due; neither is
 * needed for correctness, only for speed.
 *
 * IDENTIFICATION
 *	  src/engine/claim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "src/base/filter.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/claim.h"
#include "src/engine/housekeeping.h"
#include "src/storage/failures.h"
#include "src/storage/lease.h"

#define TXM_ORDERED_LOCK	UINT64CONST(0xFFFFFFFF)
#define TXM_LOCK_FIELD4		0x7478	/* "tx": keeps our locks apart from user advisory locks */

/* longest key an ordered subscription tells apart */
#define TXM_KEY_MAX			(NAMEDATALEN * 4)

/* did the current transaction claim anything (it then cannot be prepared)? */
static bool xact_claimed = false;

/* when this backend last looked for expired leases without shared-memory hints */
static TimestampTz last_expiry_scan = 0;

/* did the claim registry refuse a claim during the current txm_claim()? */
static bool registry_full = false;

/* One block being claimed. */
typedef struct BlockClaim
{
	int64		block;
	int64		start;			/* its first position */
	TxmBlockSlices bs;
	TxmMsg	   *msgs;			/* the candidates, in offset order */
	int		   *offs;
	bool	   *wanted;
	int			nmsgs;
	TxmBlockBits free_bits;		/* free when the decision began */
	TxmBlockBits covered;		/* what the claim takes */
	TxmBlockBits done;			/* of those, what is finished already */
	int			first_off;		/* first covered offset, -1: none */
	int			delivered_before;	/* deliveries of the call before this block */
} BlockClaim;

/* What a first look at a block found. */
typedef enum BlockLook
{
	LOOK_NO_SLICES,				/* the stream ends before this block */
	LOOK_ALL_TAKEN,				/* nothing free */
	LOOK_CANDIDATES				/* free positions, read into msgs */
} BlockLook;

void
txm_claim_xact_callback(XactEvent event)
{
	if (event == XACT_EVENT_PRE_PREPARE && xact_claimed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot PREPARE a transaction that has received messages"),
				 errhint("Receive and acknowledge messages outside prepared transactions.")));
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		xact_claimed = false;
}

static bool
tags_match(const TxmSub *sub, const TxmMsg *m)
{
	ArrayType  *tags;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (sub->ntags < 0)
		return true;
	if (m->isnull[TXM_COL_TAGS])
		return false;
	tags = DatumGetArrayTypeP(m->cols[TXM_COL_TAGS]);
	deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *tag;

		if (nulls[i])
			continue;
		tag = TextDatumGetCString(elems[i]);
		for (int j = 0; j < sub->ntags; j++)
			if (strcmp(tag, sub->tags[j]) == 0)
				return true;
	}
	return false;
}

/* Lock (subscription, block) for this transaction, without waiting. */
static bool
try_lock(int32 sub_id, uint64 block, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) sub_id, (uint32) block, TXM_LOCK_FIELD4);
	return LockAcquire(&tag, mode, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
add_delivery(List **out, int sub_index, const TxmMsg *m, int32 attempt,
			 TimestampTz lease_until, bool from_retry, int64 block, int16 off)
{
	TxmDelivery *d = palloc0(sizeof(TxmDelivery));

	d->sub_index = sub_index;
	d->msg = *m;
	d->attempt = attempt;
	d->lease_until = lease_until;
	d->from_retry = from_retry;
	d->block = block;
	d->off = off;
	*out = lappend(*out, d);
}

/* free = available minus what leases or open claims cover minus what lies below done_seq */
static void
free_positions(const TxmBlockSlices *bs, const TxmLeaseRow *rows, int nrows,
			   const TxmBlockBits *inflight, int64 block_start, int64 done_seq,
			   TxmBlockBits *free_bits)
{
	*free_bits = bs->avail;
	for (int off = 0; off < TXM_BLOCK; off++)
	{
		bool		taken = block_start + off < done_seq ||
			(inflight && txm_bit_get(inflight, off));

		for (int r = 0; r < nrows && !taken; r++)
			taken = txm_bit_get(&rows[r].covered, off);
		if (taken)
			txm_bit_clear(free_bits, off);
	}
}

static void
block_claim_init(BlockClaim *bc)
{
	memset(bc, 0, sizeof(BlockClaim));
	bc->msgs = palloc(sizeof(TxmMsg) * TXM_BLOCK);
	bc->offs = palloc(sizeof(int) * TXM_BLOCK);
	bc->wanted = palloc(sizeof(bool) * TXM_BLOCK);
}

static void
block_claim_at(BlockClaim *bc, int64 block, List *out)
{
	bc->block = block;
	bc->start = block * TXM_BLOCK;
	bc->nmsgs = 0;
	bc->delivered_before = list_length(out);
}

static void
block_claim_free(BlockClaim *bc)
{
	pfree(bc->msgs);
	pfree(bc->offs);
	pfree(bc->wanted);
}

/* Read the messages at the candidate positions with snap. */
static void
read_candidates(const TxmSub *sub, BlockClaim *bc, Snapshot snap)
{
	txm_fetch_messages(bc->msgs, bc->nmsgs, bc->bs.slots, snap);
	for (int i = 0; i < bc->nmsgs; i++)
		bc->wanted[i] = bc->msgs[i].found && tags_match(sub, &bc->msgs[i]) &&
			(sub->filter == NULL ||
			 txm_filter_matches(sub->filter, bc->msgs[i].cols, bc->msgs[i].isnull));
}

/*
 * Take a block for the decision: its lock without waiting (false if busy),
 * then, with shared memory, the claim lock (held on return) and the
 * registry, then a fresh snapshot for the lease rows (and the watermark if
 * reread_done_seq).  Sets bc->free_bits to what is free now.
 */
static bool
decide_begin(TxmDbSlot *slot, const TxmLeaseRels *rels, const TxmSub *sub, BlockClaim *bc,
			 int64 *done_seq, bool reread_done_seq)
{
	TxmBlockBits inflight;
	TxmLeaseRow *rows;
	int			nrows;
	Snapshot	snap;

	if (!try_lock(sub->sub_id, (uint64) bc->block, slot ? ShareLock : ExclusiveLock))
		return false;
	memset(&inflight, 0, sizeof(inflight));
	if (slot)
	{
		txm_claims_lock(slot, LW_EXCLUSIVE);
		txm_claims_taken(slot, sub->sub_id, bc->block, inflight.b);
	}
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (reread_done_seq)
		*done_seq = txm_read_done_seq(rels, sub->sub_id, snap);
	nrows = txm_read_block_leases(rels, sub->sub_id, bc->block, snap, &rows);
	UnregisterSnapshot(snap);
	free_positions(&bc->bs, rows, nrows, slot ? &inflight : NULL, bc->start, *done_seq,
				   &bc->free_bits);
	memset(&bc->covered, 0, sizeof(bc->covered));
	memset(&bc->done, 0, sizeof(bc->done));
	bc->first_off = -1;
	return true;
}

/* The claim takes offset off (covered in increasing order). */
static void
cover(BlockClaim *bc, int off)
{
	txm_bit_set(&bc->covered, off);
	if (bc->first_off < 0)
		bc->first_off = off;
}

/*
 * End the decision: publish what the claim covers and release the claim
 * lock.  Returns false if the registry was full: then the block is left to
 * others for now, and its deliveries are withdrawn (*withdrawn says how
 * many).  txm_claim() reports a full registry if that leaves it nothing.
 */
static bool
decide_end(TxmDbSlot *slot, const TxmSub *sub, BlockClaim *bc, TimestampTz lease_until,
		   List **out, int *withdrawn)
{
	bool		registered = true;

	*withdrawn = 0;
	if (slot == NULL)
		return true;
	if (bc->first_off >= 0)
		registered = txm_claims_publish(slot, sub->sub_id, bc->block, bc->covered.b,
										bc->start + bc->first_off, lease_until);
	txm_claims_unlock(slot);
	if (registered)
		return true;
	while (list_length(*out) > bc->delivered_before)
	{
		*out = list_delete_last(*out);
		(*withdrawn)++;
	}
	registry_full = true;
	return false;
}

/*
 * Record a decided claim: insert its lease row, and tell the block's
 * deliveries which lease holds them.
 */
static void
record_claim(const TxmSub *sub, const BlockClaim *bc, Datum keys, bool keys_null,
			 TimestampTz lease_until, List *out)
{
	if (bc->first_off < 0)
		return;
	txm_insert_lease(sub->sub_id, bc->block, (int16) bc->first_off, &bc->covered, &bc->done,
					 keys, keys_null, lease_until);
	xact_claimed = true;
	txm_hint_expiry_min(sub->sub_id, lease_until);
	for (int k = bc->delivered_before; k < list_length(out); k++)
		((TxmDelivery *) list_nth(out, k))->first_off = (int16) bc->first_off;
}

/*----------
 * Unordered subscriptions
 *----------
 */

/*
 * The first look at a block, without any lock.  With LOOK_CANDIDATES, the
 * free positions (at most want + 16 of them without a tag filter, which
 * needs them all) are read into bc.
 */
static BlockLook
stream_first_look(TxmDbSlot *slot, const TxmLeaseRels *rels, const TxmSub *sub, int want,
				  BlockClaim *bc, int64 *done_seq)
{
	TxmBlockBits inflight;
	TxmLeaseRow *rows;
	int			nrows;
	Snapshot	snap;

	memset(&inflight, 0, sizeof(inflight));
	if (slot)
	{
		txm_claims_lock(slot, LW_SHARED);
		txm_claims_taken(slot, sub->sub_id, bc->block, inflight.b);
		txm_claims_unlock(slot);
	}
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (!txm_read_block_slices(sub->topic_id, bc->block, snap, &bc->bs))
	{
		UnregisterSnapshot(snap);
		return LOOK_NO_SLICES;
	}
	*done_seq = txm_read_done_seq(rels, sub->sub_id, snap);
	nrows = txm_read_block_leases(rels, sub->sub_id, bc->block, snap, &rows);
	free_positions(&bc->bs, rows, nrows, &inflight, bc->start, *done_seq, &bc->free_bits);
	if (txm_bits_empty(&bc->free_bits))
	{
		UnregisterSnapshot(snap);
		return LOOK_ALL_TAKEN;
	}
	for (int off = 0; off < TXM_BLOCK; off++)
	{
		if (!txm_bit_get(&bc->free_bits, off))
			continue;
		if (!txm_sub_filters(sub) && bc->nmsgs >= want + 16)
			break;
		bc->msgs[bc->nmsgs].pos = bc->bs.pos[off];
		bc->offs[bc->nmsgs++] = off;
	}
	read_candidates(sub, bc, snap);
	UnregisterSnapshot(snap);
	return LOOK_CANDIDATES;
}

/*
 * Cover the candidates still free, in order, until need wanted messages are
 * delivered; unwanted ones are covered as done.  Returns the first free
 * candidate left over, or -1.
 */
static int
stream_cover(int sub_index, BlockClaim *bc, int need, int *got, TimestampTz lease_until,
			 List **out)
{
	for (int i = 0; i < bc->nmsgs; i++)
	{
		int			off = bc->offs[i];

		if (!txm_bit_get(&bc->free_bits, off))
			continue;			/* someone else was quicker */
		if (*got >= need)
			return off;
		cover(bc, off);
		if (!bc->wanted[i])
			txm_bit_set(&bc->done, off);	/* gone, or not for this group */
		else
		{
			add_delivery(out, sub_index, &bc->msgs[i], 1, lease_until, false, bc->block, (int16) off);
			(*got)++;
		}
	}
	/* is anything left free in this block? */
	for (int off = 0; off < TXM_BLOCK; off++)
		if (txm_bit_get(&bc->free_bits, off) && !txm_bit_get(&bc->covered, off))
			return off;
	return -1;
}

/*
 * Claim up to need messages of one (unordered) subscription from its
 * stream.  Returns how many were delivered.
 */
static int
claim_stream(const TxmSub *sub, int sub_index, int need, TimestampTz lease_until,
			 List **out)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmLeaseRels rels;
	BlockClaim	bc;
	Snapshot	snap;
	uint32		epoch;
	int64		hint_read = txm_hint_claim_from(sub->sub_id, &epoch);
	int64		done_seq;
	int64		block;
	int			got = 0;
	int			retries_left = 8;

	txm_lease_rels_open(&rels);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = txm_read_done_seq(&rels, sub->sub_id, snap);
	UnregisterSnapshot(snap);
	block = Max(done_seq, hint_read) / TXM_BLOCK;
	block_claim_init(&bc);

	while (got < need)
	{
		BlockLook	look;
		int			next_free;
		int			withdrawn;

		CHECK_FOR_INTERRUPTS();
		block_claim_at(&bc, block, *out);
		look = stream_first_look(slot, &rels, sub, need - got, &bc, &done_seq);
		if (look == LOOK_NO_SLICES)
			break;
		if (look == LOOK_ALL_TAKEN || !decide_begin(slot, &rels, sub, &bc, &done_seq, true))
		{
			if (!bc.bs.full)
				break;
			if (look == LOOK_ALL_TAKEN)
				txm_hint_after_claim(sub->sub_id, hint_read, epoch, bc.start + TXM_BLOCK);
			block++;
			continue;
		}
		next_free = stream_cover(sub_index, &bc, need, &got, lease_until, out);
		if (!decide_end(slot, sub, &bc, lease_until, out, &withdrawn))
		{
			got -= withdrawn;
			break;
		}
		record_claim(sub, &bc, (Datum) 0, true, lease_until, *out);
		if (next_free >= 0)
		{
			txm_hint_after_claim(sub->sub_id, hint_read, epoch, bc.start + next_free);
			/* free positions we did not read yet, or others took ours: look again */
			if (got < need && retries_left-- > 0)
				continue;
			break;
		}
		if (!bc.bs.full)
			break;
		txm_hint_after_claim(sub->sub_id, hint_read, epoch, bc.start + TXM_BLOCK);
		block++;
	}
	block_claim_free(&bc);
	txm_lease_rels_close(&rels);
	return got;
}

/*----------
 * Ordered subscriptions
 *----------
 */

/*
 * Keys that must not be delivered now to an ordered subscription: those of
 * messages pending in its leases or waiting in its retries.  Read with a
 * fresh snapshot, whatever the caller's isolation level: ordered claimers
 * are serialized, and each must see what the previous one committed.
 */
static HTAB *
blocked_keys(const TxmSub *sub, int64 done_seq)
{
	static const char *lease_sql =
		"SELECT covered, done, keys FROM tx_message.leases"
		" WHERE sub_id = $1 AND block >= $2 AND keys IS NOT NULL";
	static const char *retry_sql =
		"SELECT DISTINCT key FROM tx_message.retries_data WHERE sub_id = $1 AND key IS NOT NULL";
	HASHCTL		ctl;
	HTAB	   *keys;
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];
	int			n;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TXM_KEY_MAX;
	ctl.entrysize = TXM_KEY_MAX;
	ctl.hcxt = CurrentMemoryContext;
	keys = hash_create("tx_message blocked keys", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	values[0] = Int32GetDatum(sub->sub_id);
	values[1] = Int64GetDatum(done_seq / TXM_BLOCK);
	SPI_connect();
	n = txm_spi_exec_latest(lease_sql, 2, types, values, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		TxmBlockBits covered;
		TxmBlockBits done;
		Datum	   *elems;
		bool	   *nulls;
		int			nk;

		txm_bits_from_datum(txm_spi_value(i, 1, &isnull), &covered);
		txm_bits_from_datum(txm_spi_value(i, 2, &isnull), &done);
		deconstruct_array(DatumGetArrayTypeP(txm_spi_value(i, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nk);
		for (int off = 0; off < Min(nk, TXM_BLOCK); off++)
			if (txm_bit_get(&covered, off) && !txm_bit_get(&done, off) && !nulls[off])
				hash_search(keys, text_to_cstring(DatumGetTextPP(elems[off])), HASH_ENTER, NULL);
	}
	n = txm_spi_exec_latest(retry_sql, 1, types, values, NULL, 0);
	for (int i = 0; i < n; i++)
		hash_search(keys, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
					HASH_ENTER, NULL);
	SPI_finish();
	return keys;
}

/* The first look at a block: its messages from the watermark on.  False at the stream's end. */
static bool
ordered_first_look(const TxmSub *sub, BlockClaim *bc, int64 done_seq)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

	if (!txm_read_block_slices(sub->topic_id, bc->block, snap, &bc->bs))
	{
		UnregisterSnapshot(snap);
		return false;
	}
	for (int off = 0; off < TXM_BLOCK; off++)
	{
		if (!txm_bit_get(&bc->bs.avail, off) || bc->start + off < done_seq)
			continue;
		bc->msgs[bc->nmsgs].pos = bc->bs.pos[off];
		bc->offs[bc->nmsgs++] = off;
	}
	read_candidates(sub, bc, snap);
	UnregisterSnapshot(snap);
	return true;
}

/*
 * Cover the free candidates in order, skipping those whose key is busy (and
 * keeping later ones of that key behind them), until need are delivered.
 * keys receives the key of every covered offset.
 */
static void
ordered_cover(int sub_index, BlockClaim *bc, HTAB *blocked, int need, int *got,
			  int *scanned, Datum *keys, bool *key_nulls, TimestampTz lease_until, List **out)
{
	for (int i = 0; i < TXM_BLOCK; i++)
		key_nulls[i] = true;
	for (int i = 0; i < bc->nmsgs && *got < need; i++)
	{
		int			off = bc->offs[i];
		TxmMsg	   *m = &bc->msgs[i];

		if (!txm_bit_get(&bc->free_bits, off))
			continue;			/* claimed already */
		(*scanned)++;
		if (!bc->wanted[i])
		{
			cover(bc, off);
			txm_bit_set(&bc->done, off);
			continue;
		}
		if (!m->isnull[TXM_COL_KEY])
		{
			char	   *key = TextDatumGetCString(m->cols[TXM_COL_KEY]);
			bool		found;

			if (strlen(key) >= TXM_KEY_MAX)
				key[TXM_KEY_MAX - 1] = '\0';
			hash_search(blocked, key, HASH_ENTER, &found);
			if (found)
				continue;		/* its key is busy: wait, and keep later ones behind it */
			keys[off] = m->cols[TXM_COL_KEY];
			key_nulls[off] = false;
		}
		/* (a message without a key has no order to keep) */
		cover(bc, off);
		add_delivery(out, sub_index, m, 1, lease_until, false, bc->block, (int16) off);
		(*got)++;
	}
}

/*
 * Ordered subscriptions: per key, in commit order, one at a time.  Claims
 * are serialized by a lock on the subscription; like unordered claims, they
 * take the block in share mode and publish their claims, so that both kinds
 * (a subscription may change) never take the same positions.
 */
static int
claim_ordered(const TxmSub *sub, int sub_index, int need, TimestampTz lease_until,
			  List **out)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmLeaseRels rels;
	BlockClaim	bc;
	Snapshot	snap;
	int64		done_seq;
	HTAB	   *blocked;
	int64		block;
	int			got = 0;
	int			scanned = 0;
	int			lookahead = Max(need * 10, 4 * TXM_BLOCK);
	Datum	   *keys = palloc0(sizeof(Datum) * TXM_BLOCK);
	bool	   *key_nulls = palloc(sizeof(bool) * TXM_BLOCK);

	if (!try_lock(sub->sub_id, TXM_ORDERED_LOCK, ExclusiveLock))
		return 0;				/* another receiver is claiming for this subscription */
	txm_lease_rels_open(&rels);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = txm_read_done_seq(&rels, sub->sub_id, snap);
	UnregisterSnapshot(snap);
	blocked = blocked_keys(sub, done_seq);
	block = done_seq / TXM_BLOCK;
	block_claim_init(&bc);

	while (got < need && scanned < lookahead)
	{
		int			withdrawn;

		CHECK_FOR_INTERRUPTS();
		block_claim_at(&bc, block, *out);
		if (!ordered_first_look(sub, &bc, done_seq))
			break;
		if (!decide_begin(slot, &rels, sub, &bc, &done_seq, false))
			break;				/* a claimer without shared memory is in this block */
		ordered_cover(sub_index, &bc, blocked, need, &got, &scanned, keys, key_nulls,
					  lease_until, out);
		if (!decide_end(slot, sub, &bc, lease_until, out, &withdrawn))
		{
			got -= withdrawn;
			break;
		}
		if (bc.first_off >= 0)
		{
			int			dims[1] = {TXM_BLOCK};
			int			lbs[1] = {1};
			ArrayType  *keyarr = construct_md_array(keys, key_nulls, 1, dims, lbs,
													TEXTOID, -1, false, TYPALIGN_INT);

			record_claim(sub, &bc, PointerGetDatum(keyarr), false, lease_until, *out);
		}
		if (!bc.bs.full)
			break;
		block++;
	}
	hash_destroy(blocked);
	block_claim_free(&bc);
	txm_lease_rels_close(&rels);
	return got;
}

/*----------
 * Retries
 *----------
 */

/* A retry row of the due query, as a message. */
static void
retry_row_msg(HeapTuple row, TupleDesc desc, TxmMsg *m)
{
	bool		isnull;

	memset(m, 0, sizeof(TxmMsg));
	m->found = true;
	m->msg_id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	m->pos = m->msg_id;
	m->topic_id = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
	m->sent_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull));
	for (int k = 0; k < TXM_MSG_NCOLS; k++)
	{
		m->cols[k] = SPI_getbinval(row, desc, 5 + k, &m->isnull[k]);
		/* the delivery outlives this SPI connection */
		if (!m->isnull[k])
			m->cols[k] = SPI_datumTransfer(m->cols[k], false, -1);
	}
}

/*
 * Lock the first need due retries of each pulled subscription (skipping
 * those locked by others) and return how many, in SPI_tuptable, with
 * *order their row numbers in (due_at, msg_id) order.  A receive thus reads a
 * batch of them per subscription however many are due, along retries_due.
 * With several subscriptions, rows beyond those delivered stay locked until
 * the transaction ends, and other receivers skip them meanwhile.  Runs in
 * the caller's SPI connection.
 */
static int
lock_due_retries(Datum sub_ids, int need, int **order)
{
	static const char *due_sql =
		"SELECT d.sub_id, d.msg_id, d.topic_id, d.sent_at, d.key, d.tags, d.headers, d.payload,"
		"       d.attempt, d.state, d.first_failed_at, d.due_at"
		"  FROM unnest($1) AS s(sub_id),"
		"       LATERAL (SELECT * FROM tx_message.retries_data r WHERE r.sub_id = s.sub_id AND r.due_at <= $3"
		"                 ORDER BY r.due_at, r.msg_id LIMIT $2 FOR UPDATE OF r SKIP LOCKED) d";
	Oid			types[3] = {INT4ARRAYOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[3];
	int			nest_level;
	int			n;

	values[0] = sub_ids;
	values[1] = Int32GetDatum(need);
	/* a parameter, where clock_timestamp() would not bound the index scan */
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());

	/*
	 * Planned without sorts: statistics lag behind a burst of retries (a
	 * crashed consumer's leases, a failing downstream), and a plan for the
	 * few rows they show would sort every due row on each receive.  The
	 * plan left has no sort, and so none of the cost that disables one
	 * (on a database still at 1.0, whose index ends at due_at, retries that
	 * fell due at the same moment still go through an incremental sort on
	 * msg_id; the update adds msg_id to the index).  Nor JIT: the generic
	 * plan's LIMIT $2 is costed at a tenth of the due rows, which with many
	 * of them would compile it on every receive.
	 */
	nest_level = NewGUCNestLevel();
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	n = txm_spi_exec(due_sql, 3, types, values, NULL, 0);
	AtEOXact_GUC(true, nest_level);

	*order = txm_spi_rows_in_order(n, 12, 2);
	return n;
}

/*
 * Take up to need due retries (and expired retry leases) of the pulled
 * subscriptions.  A retry whose lease expired on its last allowed attempt
 * goes to the dead letters instead.  Runs in the caller's SPI connection.
 */
static int
take_due_retries(TxmSub *subs, int nsubs, Datum sub_ids, int need,
				 const TimestampTz *lease_until, List **out, MemoryContext outer, int *ndue)
{
	static const char *lease_sql =
		"UPDATE tx_message.retries_data"
		"   SET state = 'leased', attempt = attempt + 1, due_at = $3, leased_at = clock_timestamp(), holder = $4"
		" WHERE sub_id = $1 AND msg_id = $2";
	static const char *delete_sql =
		"DELETE FROM tx_message.retries_data WHERE sub_id = $1 AND msg_id = $2";
	Oid			ktypes[4] = {INT4OID, INT8OID, TIMESTAMPTZOID, INT4OID};
	SPITupleTable *rows;
	int		   *order;
	int			got = 0;

	*ndue = lock_due_retries(sub_ids, need, &order);
	rows = SPI_tuptable;
	/* a retry that goes to the dead letters leaves its place to the next */
	for (int j = 0; j < *ndue && got < need; j++)
	{
		int			i = order[j];
		bool		isnull;
		int32		sub_id = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
		int32		attempt = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 9, &isnull));
		char	   *state = SPI_getvalue(rows->vals[i], rows->tupdesc, 10);
		int			si = -1;
		Datum		kvalues[4];
		TxmMsg		m;
		MemoryContext spi;

		for (int k = 0; k < nsubs; k++)
			if (subs[k].sub_id == sub_id)
				si = k;
		if (si < 0)
			continue;
		retry_row_msg(rows->vals[i], rows->tupdesc, &m);
		kvalues[0] = Int32GetDatum(sub_id);
		kvalues[1] = Int64GetDatum(m.msg_id);
		if (strcmp(state, "leased") == 0 && attempt >= subs[si].max_retries + 1)
		{
			/* its last lease expired: a crashed consumer, or a poison message */
			TimestampTz first = DatumGetTimestampTz(SPI_getbinval(rows->vals[i], rows->tupdesc, 11, &isnull));

			txm_spi_exec(delete_sql, 2, ktypes, kvalues, NULL, 0);
			/*
			 * The trigger that voids the retry hints fires on inserts and
			 * updates only; a hint set after this deletion would hide the
			 * row again if the deletion is rolled back.
			 */
			txm_at_commit_retries_written();
			txm_dead_letter(&subs[si], m.msg_id, m.sent_at, m.cols, m.isnull, attempt,
							"max_retries exceeded", "lease expired", first);
			continue;
		}
		kvalues[2] = TimestampTzGetDatum(lease_until[si]);
		kvalues[3] = Int32GetDatum(MyProcPid);
		txm_spi_exec(lease_sql, 4, ktypes, kvalues, NULL, 0);
		spi = MemoryContextSwitchTo(outer);
		add_delivery(out, si, &m, attempt + 1, lease_until[si], true, 0, 0);
		MemoryContextSwitchTo(spi);
		got++;
	}
	return got;
}

/*
 * Deliver due retries (and expired retry leases) of the given
 * subscriptions.  When all that was due is taken, note in the hints when the
 * next one falls due, read with a snapshot newer than the hint version; not
 * after this transaction wrote retries: its commit voids the hints anyway.
 */
static int
claim_retries(TxmSub *subs, int nsubs, const bool *pull, int need,
			  const TimestampTz *lease_until, List **out)
{
	static const char *next_due_sql =
		"SELECT min(due_at) FROM tx_message.retries_data WHERE sub_id = $1";
	Datum	   *ids = palloc(sizeof(Datum) * nsubs);
	int32	   *sub_ids = palloc(sizeof(int32) * nsubs);
	uint32		version;
	int			nids = 0;
	int			ndue;
	int			got;
	MemoryContext outer = CurrentMemoryContext;

	for (int i = 0; i < nsubs; i++)
		if (pull[i])
		{
			sub_ids[nids] = subs[i].sub_id;
			ids[nids++] = Int32GetDatum(subs[i].sub_id);
		}
	if (nids == 0)
		return 0;
	if (!txm_hint_retries_possible(sub_ids, nids, GetCurrentTimestamp(), &version))
		return 0;
	SPI_connect();
	got = take_due_retries(subs, nsubs,
						   PointerGetDatum(construct_array(ids, nids, INT4OID, 4, true, TYPALIGN_INT)),
						   need, lease_until, out, outer, &ndue);
	if (ndue < need && txm_my_slot() != NULL && !txm_xact_wrote_retries())
	{
		for (int i = 0; i < nids; i++)
		{
			Oid			types[1] = {INT4OID};
			Datum		values[1];
			bool		isnull;
			Datum		d;

			values[0] = Int32GetDatum(sub_ids[i]);
			txm_spi_exec_latest(next_due_sql, 1, types, values, NULL, 1);
			d = txm_spi_value(0, 1, &isnull);
			txm_hint_retry_set(sub_ids[i], version, isnull ? DT_NOEND : DatumGetTimestampTz(d));
		}
	}
	SPI_finish();
	return got;
}

/*----------
 * Claiming for a group
 *----------
 */

static TimestampTz
lease_deadline(const TxmSub *sub, Interval *lease, TimestampTz now)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(now),
												   IntervalPGetDatum(lease ? lease : (Interval *) &sub->lease)));
}

/*
 * Claim up to need messages for a group: expire what is due first, then due
 * retries, then each subscription's stream.  pull[i] says which
 * subscriptions to serve; lease overrides their lease interval.  The
 * deliveries are remembered by this session for tx_ack and tx_nack.
 */
List *
txm_claim(TxmSub *subs, int nsubs, const bool *pull, int need, Interval *lease)
{
	List	   *out = NIL;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz *deadlines = palloc(sizeof(TimestampTz) * nsubs);
	/* without shared memory there are no expiry hints: look ten times a second */
	bool		local_turn = now - last_expiry_scan >= 100 * 1000;
	int			got;
	ListCell   *lc;

	if (local_turn)
		last_expiry_scan = now;
	registry_full = false;
	for (int i = 0; i < nsubs; i++)
	{
		deadlines[i] = lease_deadline(&subs[i], lease, now);
		if (pull[i] && txm_hint_expiry_possible(subs[i].sub_id, now, local_turn))
			txm_expire_leases(&subs[i]);
	}
	got = claim_retries(subs, nsubs, pull, need, deadlines, &out);
	for (int i = 0; i < nsubs && got < need; i++)
	{
		if (!pull[i])
			continue;
		if (subs[i].ordered)
			got += claim_ordered(&subs[i], i, need - got, deadlines[i], &out);
		else
			got += claim_stream(&subs[i], i, need - got, deadlines[i], &out);
	}
	/* never an empty answer while messages wait, without saying why */
	if (out == NIL && registry_full)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many open transactions of this database hold received messages"),
				 errdetail("Each open transaction that received messages holds an entry of the database's claim registry until it ends; it has %d.",
						   txm_claims_capacity()),
				 errhint("End receiving transactions sooner, or raise max_connections.")));
	if (out != NIL)
	{
		uint64	   *delivered = palloc0(sizeof(uint64) * nsubs);

		foreach(lc, out)
		{
			TxmDelivery *d = lfirst(lc);

			txm_deliveries_remember(subs[d->sub_index].sub_id, d);
			delivered[d->sub_index]++;
		}
		for (int i = 0; i < nsubs; i++)
			txm_at_commit_count(subs[i].topic_id, subs[i].sub_id, TXM_TOTAL_DELIVERED, delivered[i]);
		pfree(delivered);
	}
	return out;
}
