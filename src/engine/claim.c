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
 * Ordered subscriptions take one more lock, on the subscription, while
 * claiming, so their claims are made one at a time; a message is taken only
 * if no message with its key is pending in a lease, in retries or in an
 * open claim (whose keys the registry holds), so competing consumers take
 * different keys at once.  A blocked message stays free, ahead of the
 * later messages of its key.  Their first look reads no registry: it reads
 * the messages no lease covers, and the decision, under the claim lock,
 * excludes those of open claims as for any claim.
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
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "src/base/catalog.h"
#include "src/base/filter.h"
#include "src/base/shmem.h"
#include "src/base/spi.h"
#include "src/engine/claim.h"
#include "src/engine/claim_retries.h"
#include "src/engine/housekeeping.h"
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
	bool		keyed;			/* an ordered claim: publish the keys it covers */
	TxmKeyFilter keys;
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
	pfree(rows);
	memset(&bc->covered, 0, sizeof(bc->covered));
	memset(&bc->done, 0, sizeof(bc->done));
	if (bc->keyed)
		memset(&bc->keys, 0, sizeof(bc->keys));
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
										bc->keyed ? &bc->keys : NULL,
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
	pfree(rows);
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
			txm_delivery_add(out, sub_index, &bc->msgs[i], 1, lease_until, false, bc->block, (int16) off);
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
	uint64		hint_version;
	int64		hint_read = txm_hint_claim_from(sub->sub_id, &hint_version);
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
				txm_hint_after_claim(sub->sub_id, hint_read, hint_version, bc.start + TXM_BLOCK);
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
			txm_hint_after_claim(sub->sub_id, hint_read, hint_version, bc.start + next_free);
			/* free positions we did not read yet, or others took ours: look again */
			if (got < need && retries_left-- > 0)
				continue;
			break;
		}
		if (!bc.bs.full)
			break;
		txm_hint_after_claim(sub->sub_id, hint_read, hint_version, bc.start + TXM_BLOCK);
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
 * Keys that must not be delivered now to an ordered subscription, from its
 * leases: those of messages pending in them (retry_keys adds those waiting
 * in its retries, a block at a time).  Read with a fresh snapshot, whatever
 * the caller's isolation level: ordered claimers are serialized, and each
 * must see what the previous one committed.  A lease whose messages are
 * all finished (kept until its block is complete) holds up no key.
 */
static HTAB *
blocked_keys(const TxmSub *sub, int64 done_seq)
{
	static const char *lease_sql =
		"SELECT covered, done, keys FROM tx_message.leases"
		" WHERE sub_id = $1 AND block >= $2 AND keys IS NOT NULL AND done <> covered";
	static const char *retry_sql_1_0 =
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
	/* a database still at 1.0 has no retries_keys: all its retry keys, at once */
	if (!txm_catalog()->v1_1)
	{
		n = txm_spi_exec_latest(retry_sql_1_0, 1, types, values, NULL, 0);
		for (int i = 0; i < n; i++)
			hash_search(keys, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
						HASH_ENTER, NULL);
	}
	SPI_finish();
	return keys;
}

/*
 * Add to blocked the keys of a block's candidates that wait in the
 * subscription's retries.  Only the candidates' keys are looked up (along
 * retries_keys), so a claim costs the same whether a thousand retries wait
 * or a million; keys known to be blocked already are not asked again.
 */
static void
retry_keys(const TxmSub *sub, const BlockClaim *bc, HTAB *blocked)
{
	/*
	 * A look-up per key: with key = ANY ($2) the planner may scan all of
	 * the subscription's keys, filtering, when statistics lag behind a burst
	 * of retries.
	 */
	static const char *retry_sql =
		"SELECT k.key FROM unnest($2) AS k(key),"
		"       LATERAL (SELECT 1 FROM tx_message.retries_data r"
		"                 WHERE r.sub_id = $1 AND r.key = k.key LIMIT 1) r";
	Datum	   *asked;
	int			nasked = 0;
	Oid			types[2] = {INT4OID, TEXTARRAYOID};
	Datum		values[2];
	int			n;

	if (!txm_catalog()->v1_1)
		return;					/* blocked_keys read them all */
	asked = palloc(sizeof(Datum) * Max(bc->nmsgs, 1));
	for (int i = 0; i < bc->nmsgs; i++)
	{
		const TxmMsg *m = &bc->msgs[i];
		char	   *key;

		if (!bc->wanted[i] || m->isnull[TXM_COL_KEY])
			continue;
		key = TextDatumGetCString(m->cols[TXM_COL_KEY]);
		if (strlen(key) >= TXM_KEY_MAX)
			key[TXM_KEY_MAX - 1] = '\0';
		if (hash_search(blocked, key, HASH_FIND, NULL) == NULL)
			asked[nasked++] = m->cols[TXM_COL_KEY];
		pfree(key);
	}
	if (nasked > 0)
	{
		values[0] = Int32GetDatum(sub->sub_id);
		values[1] = PointerGetDatum(construct_array(asked, nasked, TEXTOID, -1, false,
													TYPALIGN_INT));
		SPI_connect();
		n = txm_spi_exec_latest(retry_sql, 2, types, values, NULL, 0);
		for (int i = 0; i < n; i++)
			hash_search(blocked, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
						HASH_ENTER, NULL);
		SPI_finish();
	}
	pfree(asked);
}

/*
 * The first look at a block: the messages no lease covers, from the
 * watermark on.  Those leased or finished are not read: the keys of the
 * pending ones are blocked already, and between the watermark and the
 * stream's head most positions are finished (the watermark moves with
 * the worker's cycles, not with each ack).  False at the stream's end.
 */
static bool
ordered_first_look(const TxmLeaseRels *rels, const TxmSub *sub, BlockClaim *bc, int64 *done_seq)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TxmLeaseRow *rows;
	int			nrows;
	TxmBlockBits maybe_free;

	if (!txm_read_block_slices(sub->topic_id, bc->block, snap, &bc->bs))
	{
		UnregisterSnapshot(snap);
		return false;
	}
	/* the watermark with the lease rows: moving it deletes those below it */
	*done_seq = txm_read_done_seq(rels, sub->sub_id, snap);
	nrows = txm_read_block_leases(rels, sub->sub_id, bc->block, snap, &rows);
	free_positions(&bc->bs, rows, nrows, NULL, bc->start, *done_seq, &maybe_free);
	pfree(rows);
	for (int off = 0; off < TXM_BLOCK; off++)
	{
		if (!txm_bit_get(&maybe_free, off))
			continue;
		bc->msgs[bc->nmsgs].pos = bc->bs.pos[off];
		bc->offs[bc->nmsgs++] = off;
	}
	if (bc->nmsgs > 0)
		read_candidates(sub, bc, snap);
	UnregisterSnapshot(snap);
	return true;
}

/*
 * Cover the free candidates in order, skipping those whose key is busy (and
 * keeping later ones of that key behind them), until need are delivered.
 * Busy: pending in a committed lease or in retries (blocked), or in an open
 * claim of another transaction (open, NULL if there is none).  keys
 * receives the key of every covered offset.
 */
static void
ordered_cover(int sub_index, BlockClaim *bc, HTAB *blocked, const TxmKeyFilter *open,
			  int need, int *got, int *scanned, Datum *keys, bool *key_nulls,
			  TimestampTz lease_until, List **out)
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
			if (found || (open && txm_key_filter_test(open, key)))
				continue;		/* its key is busy: wait, and keep later ones behind it */
			keys[off] = m->cols[TXM_COL_KEY];
			key_nulls[off] = false;
			txm_key_filter_add(&bc->keys, key);
		}
		/* (a message without a key has no order to keep) */
		cover(bc, off);
		txm_delivery_add(out, sub_index, m, 1, lease_until, false, bc->block, (int16) off);
		(*got)++;
	}
}

/*
 * Take the ordered lock of a subscription: held while claiming when the
 * claim registry publishes the claim and its keys (true), else, without
 * shared memory, to the end of the transaction, and not waited for (false,
 * and *busy if another receiver holds it).
 */
static bool
ordered_lock(TxmDbSlot *slot, int32 sub_id, bool *busy)
{
	LOCKTAG		tag;

	*busy = false;
	if (slot == NULL)
	{
		*busy = !try_lock(sub_id, TXM_ORDERED_LOCK, ExclusiveLock);
		return false;
	}
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) sub_id, (uint32) TXM_ORDERED_LOCK,
						 TXM_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	return true;
}

static void
ordered_unlock(int32 sub_id)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) sub_id, (uint32) TXM_ORDERED_LOCK,
						 TXM_LOCK_FIELD4);
	LockRelease(&tag, ExclusiveLock, false);
}

/*
 * Ordered subscriptions: per key, in commit order, one at a time.  Claims
 * are serialized by a lock on the subscription, held while claiming; the
 * keys of the claims of transactions still open are read from the
 * registry before the committed leases, so that each claim's keys are seen
 * in one or the other.  Like unordered claims, they take the block in share
 * mode and publish their claims, so that both kinds (a subscription may
 * change) never take the same positions.
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
	uint64		hint_version;
	int64		hint_read;
	bool		all_taken = true;
	int			got = 0;
	int			scanned = 0;
	int			lookahead = Max(need * 10, 4 * TXM_BLOCK);
	Datum	   *keys = palloc0(sizeof(Datum) * TXM_BLOCK);
	bool	   *key_nulls = palloc(sizeof(bool) * TXM_BLOCK);
	bool		busy;
	bool		unlock = ordered_lock(slot, sub->sub_id, &busy);
	TxmKeyFilter open;
	bool		any_open;

	if (busy)
		return 0;				/* another receiver is claiming for this subscription */
	txm_lease_rels_open(&rels);

	/*
	 * The keys of open claims, and the hint, read once the lock is ours:
	 * read before, the hint could still be past the positions of a claim
	 * that aborted while we waited, and whose keys we no longer see.
	 */
	memset(&open, 0, sizeof(open));
	any_open = txm_claims_open_keys(sub->sub_id, &open, &hint_read, &hint_version);
	snap = RegisterSnapshot(GetLatestSnapshot());
	done_seq = txm_read_done_seq(&rels, sub->sub_id, snap);
	UnregisterSnapshot(snap);
	blocked = blocked_keys(sub, done_seq);
	/* nothing before the hint is free: the keys pending there are blocked already */
	block = Max(done_seq, hint_read) / TXM_BLOCK;
	block_claim_init(&bc);
	bc.keyed = true;

	while (got < need && scanned < lookahead)
	{
		int			withdrawn;

		CHECK_FOR_INTERRUPTS();
		block_claim_at(&bc, block, *out);
		if (!ordered_first_look(&rels, sub, &bc, &done_seq))
			break;
		if (bc.nmsgs == 0)
		{
			if (!bc.bs.full)
				break;
			/* a blocked message stays free: the hint moves over taken blocks only */
			if (all_taken)
				txm_hint_after_claim(sub->sub_id, hint_read, hint_version, bc.start + TXM_BLOCK);
			block++;
			continue;
		}
		all_taken = false;
		retry_keys(sub, &bc, blocked);
		if (!decide_begin(slot, &rels, sub, &bc, &done_seq, true))
			break;				/* a claimer without shared memory is in this block */
		ordered_cover(sub_index, &bc, blocked, any_open ? &open : NULL, need, &got, &scanned,
					  keys, key_nulls, lease_until, out);
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
	if (unlock)
		ordered_unlock(sub->sub_id);
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
	got = txm_claim_retries(subs, nsubs, pull, need, deadlines, &out);
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
