/*-------------------------------------------------------------------------
 *
 * shmem_claims.c
 *	  Claim hints and the registry of open claims, per served database.
 *
 * Hints tell receivers where to start and what to skip: the lowest
 * position of a subscription's stream that may be free, the earliest lease
 * deadline, and the time before which no retry is due.  They are only ever
 * needed for speed; correctness comes from the lease rows and the registry.
 * A commit that wrote retries invalidates every retry hint of its database
 * at once by bumping the slot's retry_version: a hint counts only while it
 * carries the current version, so a reader that computed a due time before
 * the bump cannot store it after.
 *
 * The registry of open claims: a claim's lease row is invisible to other
 * transactions until it commits, so the claim is also published here,
 * under the slot's claim lock, until its transaction ends.  A claimer reads
 * the registry first and takes its snapshot second, both under that lock;
 * an entry is removed only after its transaction's commit became visible
 * (shmem_xact.c).  So every claim is seen either in the registry or as a
 * committed lease (docs/design.md, section 3).  An ordered claim also
 * publishes the keys of its messages, in its backend's Bloom filter (one
 * per backend, emptied when its transaction ends), so that another ordered
 * claimer holds back their later messages while the claim is open, as it
 * does for the keys of committed leases.
 *
 * IDENTIFICATION
 *	  src/base/shmem_claims.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "storage/proc.h"
#include "utils/memutils.h"

#include "src/base/shmem_internal.h"

static TxmClaim *slot_claims(TxmDbSlot *slot);

/*----------
 * Hints
 *----------
 */

/* The hint of a subscription, optionally made.  Caller holds the hint lock. */
static TxmHint *
hint_for(TxmDbSlot *slot, int32 sub_id, bool create)
{
	int			start = (int) ((uint32) sub_id % TXM_HINTS);

	Assert(create ? LWLockHeldByMeInMode(slot->hint_lock, LW_EXCLUSIVE) :
		   LWLockHeldByMe(slot->hint_lock));
	for (int i = 0; i < TXM_HINTS; i++)
	{
		TxmHint    *h = &slot->hints[(start + i) % TXM_HINTS];

		if (h->sub_id == sub_id)
			return h;
		if (h->sub_id == 0)
		{
			if (!create)
				return NULL;
			memset(h, 0, sizeof(TxmHint));
			h->sub_id = sub_id;
			return h;
		}
	}
	return NULL;
}

/* A slot goes to a (new installation in a) database, or a position went back: nothing known. */
void
shmem_hints_clear(TxmDbSlot *slot)
{
	LWLockAcquire(slot->hint_lock, LW_EXCLUSIVE);
	memset(slot->hints, 0, sizeof(slot->hints));
	slot->hints_epoch++;
	LWLockRelease(slot->hint_lock);
}

/* A transaction that wrote retries committed: every retry hint is void. */
void
shmem_hints_retry_reset(TxmDbSlot *slot)
{
	pg_atomic_fetch_add_u32(&slot->retry_version, 1);
}

/* A copy of a subscription's hint; false if it has none. */
static bool
read_hint(TxmDbSlot *slot, int32 sub_id, TxmHint *copy)
{
	TxmHint    *h;

	LWLockAcquire(slot->hint_lock, LW_SHARED);
	h = hint_for(slot, sub_id, false);
	if (h)
		*copy = *h;
	LWLockRelease(slot->hint_lock);
	return h != NULL;
}

/*
 * The lowest position of a subscription's stream that may be unclaimed, and
 * the version of the hint it was read in: the epoch of the slot's hints
 * (high half) and how often this hint was lowered (low half).
 */
int64
txm_hint_claim_from(int32 sub_id, uint64 *version)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;
	int64		claim_from = 0;

	*version = 0;
	if (slot == NULL)
		return 0;
	LWLockAcquire(slot->hint_lock, LW_SHARED);
	h = hint_for(slot, sub_id, false);
	if (h)
		claim_from = h->claim_from;
	*version = ((uint64) slot->hints_epoch << 32) | (h ? h->lowered : 0);
	LWLockRelease(slot->hint_lock);
	return claim_from;
}

/*
 * A claimer read the hint as hint_read in version and found every position
 * from there (or from the watermark, if higher) up to next_free claimed.
 * Move the hint to next_free, unless it was lowered meanwhile (a receive
 * that aborted gave positions back: the claimer may have counted them as
 * claimed, wherever they lie) or every hint was voided since (a position
 * that went back).
 */
void
txm_hint_after_claim(int32 sub_id, int64 hint_read, uint64 version, int64 next_free)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;
	LWLockAcquire(slot->hint_lock, LW_EXCLUSIVE);
	if (slot->hints_epoch == (uint32) (version >> 32))
	{
		h = hint_for(slot, sub_id, true);
		if (h && h->lowered == (uint32) version &&
			h->claim_from >= hint_read && h->claim_from < next_free)
			h->claim_from = next_free;
	}
	LWLockRelease(slot->hint_lock);
}

/*
 * Positions from seq on were given back.  The hint is counted as lowered
 * even where it lies below seq already (or did not exist): a claimer that
 * read it before may have seen those positions claimed, and must not move
 * the hint over them.  Hold the hint lock exclusively.
 */
static void
hint_lower(TxmDbSlot *slot, int32 sub_id, int64 seq)
{
	TxmHint    *h;

	Assert(LWLockHeldByMeInMode(slot->hint_lock, LW_EXCLUSIVE));
	h = hint_for(slot, sub_id, true);
	if (h)
	{
		if (h->claim_from > seq)
			h->claim_from = seq;
		h->lowered++;
	}
}

/* A lease of the subscription runs until t. */
void
txm_hint_expiry_min(int32 sub_id, TimestampTz t)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;
	LWLockAcquire(slot->hint_lock, LW_EXCLUSIVE);
	h = hint_for(slot, sub_id, true);
	if (h && (h->next_expiry == 0 || t < h->next_expiry))
		h->next_expiry = t;
	LWLockRelease(slot->hint_lock);
}

/*
 * No committed lease of the subscription runs out before t (DT_NOEND: none
 * pending).  The leases of open claims, which the caller could not see,
 * count too: read under the hint lock, so that a claim published after the
 * read lowers the hint after this.
 */
void
txm_hint_expiry_set(int32 sub_id, TimestampTz t)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;
	TxmClaim   *claims;

	if (slot == NULL)
		return;
	claims = slot_claims(slot);
	LWLockAcquire(slot->hint_lock, LW_EXCLUSIVE);
	LWLockAcquire(slot->claim_lock, LW_SHARED);
	for (int i = 0; i < txm_shared->claims_per_slot; i++)
		if (claims[i].sub_id == sub_id && claims[i].lease_until < t)
			t = claims[i].lease_until;
	LWLockRelease(slot->claim_lock);
	h = hint_for(slot, sub_id, true);
	if (h)
		h->next_expiry = t;
	LWLockRelease(slot->hint_lock);
}

/*
 * May a lease of this subscription have expired?  Without shared memory
 * there are no hints, and the caller says what to assume.
 */
bool
txm_hint_expiry_possible(int32 sub_id, TimestampTz now, bool without_hints)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint		h;

	if (slot == NULL)
		return without_hints;
	return !read_hint(slot, sub_id, &h) || h.next_expiry == 0 || h.next_expiry <= now;
}

/*
 * The subscriptions whose hint holds a lease deadline (neither unknown nor
 * DT_NOEND), at most max of them, into sub_ids; returns how many.
 */
int
txm_hint_subs_with_deadline(int32 *sub_ids, int max)
{
	TxmDbSlot  *slot = txm_my_slot();
	int			n = 0;

	StaticAssertStmt(TXM_MAX_HINTED_SUBS >= TXM_HINTS, "every hinted subscription fits");
	if (slot == NULL)
		return 0;
	LWLockAcquire(slot->hint_lock, LW_SHARED);
	for (int i = 0; i < TXM_HINTS && n < max; i++)
	{
		const TxmHint *h = &slot->hints[i];

		if (h->sub_id != 0 && h->next_expiry != 0 && h->next_expiry != DT_NOEND)
			sub_ids[n++] = h->sub_id;
	}
	LWLockRelease(slot->hint_lock);
	return n;
}

/* The earliest lease deadline of a subscription, or 0 if unknown. */
TimestampTz
txm_hint_next_expiry(int32 sub_id)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint		h;

	return slot && read_hint(slot, sub_id, &h) ? h.next_expiry : 0;
}

/*
 * May a retry of one of these subscriptions be due?  *version receives the
 * retry version the answer was read at, for txm_hint_retry_set().
 */
bool
txm_hint_retries_possible(const int32 *sub_ids, int n, TimestampTz now, uint32 *version)
{
	TxmDbSlot  *slot = txm_my_slot();
	bool		possible = false;

	*version = 0;
	/* this transaction wrote retries (expired leases, say): the hints do not know yet */
	if (slot == NULL || txm_xact_wrote_retries())
		return true;
	*version = pg_atomic_read_u32(&slot->retry_version);
	LWLockAcquire(slot->hint_lock, LW_SHARED);
	for (int i = 0; i < n && !possible; i++)
	{
		TxmHint    *h = hint_for(slot, sub_ids[i], false);

		possible = h == NULL || h->retry_version != *version ||
			h->retry_due == 0 || h->retry_due <= now;
	}
	LWLockRelease(slot->hint_lock);
	return possible;
}

/*
 * No retry of the subscription is due before due, as read at version.
 * Look again within a second regardless: a retry written by a prepared
 * transaction resets no hint when COMMIT PREPARED runs elsewhere.
 */
void
txm_hint_retry_set(int32 sub_id, uint32 version, TimestampTz due)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmHint    *h;

	if (slot == NULL)
		return;
	due = Min(due, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000));
	LWLockAcquire(slot->hint_lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&slot->retry_version) == version)
	{
		h = hint_for(slot, sub_id, true);
		if (h)
		{
			h->retry_due = due;
			h->retry_version = version;
		}
	}
	LWLockRelease(slot->hint_lock);
}

/*----------
 * The registry of open claims
 *----------
 */

/* A claim this backend published, and what an abort gives back. */
typedef struct OwnClaim
{
	TxmDbSlot  *slot;
	int			index;
	int32		sub_id;
	int64		first_seq;		/* the hint goes back here if it aborts */
	int			nest_level;
	bool		ordered;		/* its keys are in keys (and the backend's filter) */
	TxmKeyFilter keys;
} OwnClaim;

static List *own_claims = NIL;

/* the slot whose claims put keys in this backend's filter, NULL: none */
static TxmDbSlot *own_keys_slot = NULL;

static TxmKeyFilter *
key_filter(int index)
{
	Assert(index >= 0 && index < MaxBackends);
	return (TxmKeyFilter *) ((char *) txm_shared + txm_shared->key_filters_offset) + index;
}

/*
 * Add keys to this backend's filter, for its claim own in slot (which keeps
 * them too, for the filter to be made again without them if it rolls
 * back); hold the slot's claim lock exclusively.
 */
static int
own_keys_add(TxmDbSlot *slot, OwnClaim *own, const TxmKeyFilter *keys)
{
	TxmKeyFilter *mine = key_filter(MyBackendId - 1);

	Assert(LWLockHeldByMeInMode(slot->claim_lock, LW_EXCLUSIVE));
	for (int k = 0; k < sizeof(keys->b); k++)
	{
		mine->b[k] |= keys->b[k];
		own->keys.b[k] |= keys->b[k];
	}
	own->ordered = true;
	own_keys_slot = slot;
	return MyBackendId - 1;
}

static TxmClaim *
slot_claims(TxmDbSlot *slot)
{
	TxmClaim   *all = (TxmClaim *) ((char *) txm_shared + txm_shared->claims_offset);

	return all + (slot - txm_shared->slots) * txm_shared->claims_per_slot;
}

void
txm_claims_lock(TxmDbSlot *slot, LWLockMode mode)
{
	LWLockAcquire(slot->claim_lock, mode);
}

void
txm_claims_unlock(TxmDbSlot *slot)
{
	Assert(LWLockHeldByMe(slot->claim_lock));
	LWLockRelease(slot->claim_lock);
}

/* Add the positions of a block that open transactions claim to taken. */
void
txm_claims_taken(TxmDbSlot *slot, int32 sub_id, int64 block, uint8 *taken)
{
	TxmClaim   *claims = slot_claims(slot);

	Assert(LWLockHeldByMe(slot->claim_lock));
	for (int i = 0; i < txm_shared->claims_per_slot; i++)
	{
		if (claims[i].sub_id != sub_id || block < claims[i].block ||
			block > claims[i].last_block)
			continue;
		/* a range of blocks covers each of them whole, as its first */
		for (int k = 0; k < TXM_BLOCK_BYTES; k++)
			taken[k] |= claims[i].covered[k];
	}
}

/*
 * Where an ordered claim starts: OR into keys the keys of the open ordered
 * claims of other transactions (this one's own claims are in its lease
 * rows, which it sees), and read the subscription's claim hint as
 * txm_hint_claim_from() does, both at once.  An aborting claim lowers the
 * hint and leaves the registry at once too (shmem_claims_release_own), so
 * a claim that is gone from the registry has given its positions back to
 * the hint read here.  Returns whether any open claim has keys.
 */
bool
txm_claims_open_keys(int32 sub_id, TxmKeyFilter *keys, int64 *claim_from, uint64 *version)
{
	TxmDbSlot  *slot = txm_my_slot();
	TxmClaim   *claims;
	TxmHint    *h;
	bool		any = false;

	*claim_from = 0;
	*version = 0;
	if (slot == NULL)
		return false;
	claims = slot_claims(slot);
	LWLockAcquire(slot->hint_lock, LW_SHARED);
	LWLockAcquire(slot->claim_lock, LW_SHARED);
	for (int i = 0; i < txm_shared->claims_per_slot; i++)
	{
		const TxmKeyFilter *theirs;

		if (claims[i].sub_id != sub_id || claims[i].key_filter < 0 ||
			claims[i].pgprocno == MyProc->pgprocno)
			continue;
		theirs = key_filter(claims[i].key_filter);
		for (int k = 0; k < sizeof(keys->b); k++)
			keys->b[k] |= theirs->b[k];
		any = true;
	}
	LWLockRelease(slot->claim_lock);
	h = hint_for(slot, sub_id, false);
	if (h)
		*claim_from = h->claim_from;
	*version = ((uint64) slot->hints_epoch << 32) | (h ? h->lowered : 0);
	LWLockRelease(slot->hint_lock);
	return any;
}

/* The filter's three bits of a key, from one 64-bit hash. */
static void
key_filter_bits(const char *key, uint32 bits[3])
{
	uint64		h = hash_bytes_extended((const unsigned char *) key, strlen(key), 0);

	StaticAssertStmt(TXM_KEY_FILTER_BITS == 4096, "three 12-bit slices of the hash");
	for (int i = 0; i < 3; i++)
		bits[i] = (uint32) (h >> (12 * i)) % TXM_KEY_FILTER_BITS;
}

void
txm_key_filter_add(TxmKeyFilter *keys, const char *key)
{
	uint32		bits[3];

	key_filter_bits(key, bits);
	for (int i = 0; i < 3; i++)
		keys->b[bits[i] / 8] |= (uint8) (1 << (bits[i] % 8));
}

bool
txm_key_filter_test(const TxmKeyFilter *keys, const char *key)
{
	uint32		bits[3];

	key_filter_bits(key, bits);
	for (int i = 0; i < 3; i++)
		if ((keys->b[bits[i] / 8] & (1 << (bits[i] % 8))) == 0)
			return false;
	return true;
}

/* How many open claims one database's registry holds. */
int
txm_claims_capacity(void)
{
	return txm_shared ? txm_shared->claims_per_slot : 0;
}

static bool
covers_all(const uint8 *covered)
{
	for (int k = 0; k < TXM_BLOCK_BYTES; k++)
		if (covered[k] != 0xFF)
			return false;
	return true;
}

/*
 * A claim joins an entry this (sub)transaction already has: another part of
 * the same block goes into that block's entry, and a whole block right
 * after a range of whole blocks extends the range.  So a transaction that
 * receives a long run of messages, however many at a time, holds an entry
 * or two, however many blocks it covers.
 */
static bool
join_own_claim(TxmDbSlot *slot, int32 sub_id, int64 block, const uint8 *covered,
			   const TxmKeyFilter *keys, int64 first_seq, TimestampTz lease_until)
{
	TxmClaim   *claims = slot_claims(slot);
	int			level = GetCurrentTransactionNestLevel();
	bool		whole = covers_all(covered);
	ListCell   *lc;

	foreach(lc, own_claims)
	{
		OwnClaim   *own = lfirst(lc);
		TxmClaim   *claim = &claims[own->index];

		if (own->slot != slot || own->sub_id != sub_id || own->nest_level != level)
			continue;
		if (claim->block == block && claim->last_block == block)
		{
			for (int k = 0; k < TXM_BLOCK_BYTES; k++)
				claim->covered[k] |= covered[k];
		}
		else if (whole && claim->last_block == block - 1 && covers_all(claim->covered))
			claim->last_block = block;
		else
			continue;
		claim->lease_until = Min(claim->lease_until, lease_until);
		if (keys)
			claim->key_filter = own_keys_add(slot, own, keys);
		/* an abort gives back from the first position of any part */
		own->first_seq = Min(own->first_seq, first_seq);
		return true;
	}
	return false;
}

/*
 * Publish a claim of the current (sub)transaction until it ends, with the
 * keys of its messages if it is an ordered claim (else NULL).  False if the
 * registry is full.
 */
bool
txm_claims_publish(TxmDbSlot *slot, int32 sub_id, int64 block, const uint8 *covered,
				   const TxmKeyFilter *keys, int64 first_seq, TimestampTz lease_until)
{
	TxmClaim   *claims = slot_claims(slot);

	Assert(LWLockHeldByMeInMode(slot->claim_lock, LW_EXCLUSIVE));
	if (join_own_claim(slot, sub_id, block, covered, keys, first_seq, lease_until))
		return true;
	for (int i = 0; i < txm_shared->claims_per_slot; i++)
	{
		MemoryContext old;
		OwnClaim   *own;

		if (claims[i].sub_id != 0)
			continue;
		/* freed at transaction end, outside any transaction memory */
		old = MemoryContextSwitchTo(TopMemoryContext);
		own = palloc0(sizeof(OwnClaim));
		own->slot = slot;
		own->index = i;
		own->sub_id = sub_id;
		own->first_seq = first_seq;
		own->nest_level = GetCurrentTransactionNestLevel();
		own_claims = lappend(own_claims, own);
		MemoryContextSwitchTo(old);

		claims[i].sub_id = sub_id;
		claims[i].block = block;
		claims[i].last_block = block;
		claims[i].lease_until = lease_until;
		claims[i].pgprocno = MyProc->pgprocno;
		memcpy(claims[i].covered, covered, TXM_BLOCK_BYTES);
		claims[i].key_filter = keys ? own_keys_add(slot, own, keys) : -1;
		return true;
	}
	return false;
}

/*
 * Withdraw this backend's claims made at nesting level min_level or deeper
 * and, when they were rolled back, give their positions back to the hints.
 * Returns whether there were any.  Runs in transaction callbacks, so it
 * allocates nothing.
 */
bool
shmem_claims_release_own(int min_level, bool lower_hints)
{
	ListCell   *lc;
	bool		any = false;
	bool		keys_gone = false;

	foreach(lc, own_claims)
	{
		OwnClaim   *own = lfirst(lc);

		if (own->nest_level < min_level)
			continue;
		keys_gone |= own->ordered;

		/*
		 * The hint goes back before the claim leaves the registry, under both
		 * locks: an ordered claimer reads both under them too, so it never
		 * finds the claim gone and the hint still past its positions.
		 */
		if (lower_hints)
		{
			LWLockAcquire(own->slot->hint_lock, LW_EXCLUSIVE);
			LWLockAcquire(own->slot->claim_lock, LW_EXCLUSIVE);
			hint_lower(own->slot, own->sub_id, own->first_seq);
		}
		else
			LWLockAcquire(own->slot->claim_lock, LW_EXCLUSIVE);
		slot_claims(own->slot)[own->index].sub_id = 0;
		LWLockRelease(own->slot->claim_lock);
		if (lower_hints)
			LWLockRelease(own->slot->hint_lock);
		any = true;
		pfree(own);
		own_claims = foreach_delete_current(own_claims, lc);
	}
	/*
	 * No claim of the transaction is left to point at the keys; or a
	 * subtransaction's ordered claims went: the filter keeps the keys of
	 * those that stay only.
	 */
	if (min_level == 0 && own_keys_slot != NULL)
	{
		LWLockAcquire(own_keys_slot->claim_lock, LW_EXCLUSIVE);
		memset(key_filter(MyBackendId - 1), 0, sizeof(TxmKeyFilter));
		LWLockRelease(own_keys_slot->claim_lock);
		own_keys_slot = NULL;
	}
	else if (keys_gone && own_keys_slot != NULL)
	{
		TxmKeyFilter *mine = key_filter(MyBackendId - 1);

		LWLockAcquire(own_keys_slot->claim_lock, LW_EXCLUSIVE);
		memset(mine, 0, sizeof(TxmKeyFilter));
		foreach(lc, own_claims)
		{
			OwnClaim   *own = lfirst(lc);

			Assert(!own->ordered || own->slot == own_keys_slot);
			if (own->ordered)
				for (int k = 0; k < sizeof(mine->b); k++)
					mine->b[k] |= own->keys.b[k];
		}
		LWLockRelease(own_keys_slot->claim_lock);
	}
	return any;
}

/* A subtransaction committed: its claims now belong to its parent. */
void
shmem_claims_promote_own(int level)
{
	ListCell   *lc;

	foreach(lc, own_claims)
	{
		OwnClaim   *own = lfirst(lc);

		if (own->nest_level >= level)
			own->nest_level = level - 1;
	}
}
