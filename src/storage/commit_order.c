/*-------------------------------------------------------------------------
 *
 * commit_order.c
 *	  The commit order of the transactions a tick found.
 *
 * A tick puts the transactions it found in the order of their commit
 * records in the WAL, as logical decoding does: a transaction that could
 * see another's commit (read its rows, waited for its row locks) wrote its
 * own commit record after that one's.  The ends of the commit records come
 * from the database's commit ring (shmem_ring.c), read before the tick's
 * snapshot, so every entry read is of a transaction that snapshot sees as
 * committed.
 *
 * A commit is visible, and its row locks stop making others wait, before
 * its commit callbacks run, and it is the callback that appends to the
 * ring.  So a tick can find a transaction whose entry was not in the ring
 * yet when it read it: that backend then shows the xid as committing, and
 * the tick waits for its entry (microseconds), reading the entries
 * appended meanwhile as it goes.  COMMIT PREPARED does the same for the
 * prepared transaction (src/process/launcher.c).  Transactions found
 * without an entry are ordered by the caller, before the others: their
 * entries were lost to a restart or to the ring wrapping before the tick
 * read it (shmem_ring_append hurries the tick long before), both of which
 * lose only the oldest.  The ring's order is the order of the appends, so
 * where the wrap cut between a transaction and one that saw its commit but
 * appended first, these two come out of order.  Two rarer cases are placed
 * with them and logged: a transaction still committing when the wait timed
 * out, and one whose entry the ring wrapped over while the tick waited.
 *
 * IDENTIFICATION
 *	  src/storage/commit_order.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "src/storage/commit_order.h"

/* How long a tick waits for a visible commit's ring entry at most. */
#define TXM_COMMITTING_WAIT_MS	10000
/* how often it looks at who is still committing */
#define TXM_COMMITTING_LOOK_US	100
/*
 * ... and at every how many looks it reads the ring appended meanwhile
 * (about a millisecond): 4 096 commits in that time are out of reach.
 */
#define TXM_RING_READ_EVERY		10

typedef struct CommitEnd
{
	uint64		xid;			/* hash key: virtual xid */
	XLogRecPtr	commit_end;
} CommitEnd;

static void
add_entries(TxmCommitOrder *co, const TxmRingEntry *entries, int n,
			const uint64 *only, int nonly)
{
	for (int i = 0; i < n; i++)
	{
		uint64		xid = entries[i].xid + co->base;
		bool		found;
		CommitEnd  *e;

		if (entries[i].xid == 0)
			continue;
		if (only != NULL && bsearch(&xid, only, nonly, sizeof(uint64), txm_cmp_xid64) == NULL)
			continue;
		e = hash_search(co->ends, &xid, HASH_ENTER, &found);
		if (!found)
			e->commit_end = entries[i].commit_end;
	}
}

/*
 * Read the ring's unticked entries; call before taking the tick's snapshot.
 * When the current transaction commits, the ring counts as ticked up to
 * co->ring_upto.
 */
void
txm_commit_order_read(TxmCommitOrder *co, TxmDbSlot *slot, uint64 base)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(CommitEnd);
	ctl.hcxt = CurrentMemoryContext;
	co->ends = hash_create("tx_message commit order", 256, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	co->slot = slot;
	co->base = base;
	co->ring_upto = 0;
	if (slot != NULL)
	{
		int			n;
		TxmRingEntry *entries = txm_ring_unticked(slot, &n, &co->ring_upto);

		add_entries(co, entries, n, NULL, 0);
		pfree(entries);
	}
}

/*
 * xids (virtual, n of them; sorted here) were found by the tick but had no
 * entry: wait for those whose commit callbacks have not appended yet, and
 * take their entries.  The entries appended meanwhile are read as the wait
 * goes on, often enough that the ring cannot wrap over them in between.
 */
void
txm_commit_order_complete(TxmCommitOrder *co, uint64 *xids, int n)
{
	uint64	   *real;
	TxmRingEntry *entries;
	uint64		from = co->ring_upto;
	uint64		lost = 0;
	bool		pending;
	int			unfound = 0;
	TimestampTz until;

	if (co->slot == NULL || n == 0)
		return;
	qsort(xids, n, sizeof(uint64), txm_cmp_xid64);
	real = palloc(sizeof(uint64) * n);
	for (int i = 0; i < n; i++)
		real[i] = xids[i] - co->base;
	entries = palloc(sizeof(TxmRingEntry) * TXM_RING_SIZE);
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TXM_COMMITTING_WAIT_MS);
	for (int look = 0;; look++)
	{
		/* first the look at who is committing, then at what they appended */
		pending = txm_ring_committing_any(real, n);
		if (!pending || look % TXM_RING_READ_EVERY == 0)
		{
			uint64		head;
			int			nentries = txm_ring_since(co->slot, from, entries, &head);

			lost += head - from - nentries;
			add_entries(co, entries, nentries, xids, n);
			from = head;
		}
		if (!pending || GetCurrentTimestamp() >= until)
			break;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(TXM_COMMITTING_LOOK_US);
	}
	pfree(entries);
	pfree(real);

	for (int i = 0; i < n; i++)
		unfound += hash_search(co->ends, &xids[i], HASH_FIND, NULL) == NULL;
	if (unfound > 0 && pending)
		ereport(LOG,
				(errmsg("tx_message: a tick goes on without the commit order of a transaction still committing after %d ms",
						TXM_COMMITTING_WAIT_MS),
				 errdetail("Its messages are placed before those of the transactions committed with it.")));
	else if (unfound > 0 && lost > 0)
		ereport(LOG,
				(errmsg("tx_message: a tick may have lost the commit order of transactions it found"),
				 errdetail("The commit ring wrapped over %llu entries while the tick ran; the messages of %d transactions without an entry are placed before the others of the tick.",
						   (unsigned long long) lost, unfound)));
}

bool
txm_commit_order_lookup(const TxmCommitOrder *co, uint64 xid, XLogRecPtr *commit_end)
{
	CommitEnd  *e = hash_search(co->ends, &xid, HASH_FIND, NULL);

	if (e == NULL)
		return false;
	*commit_end = e->commit_end;
	return true;
}

void
txm_commit_order_end(TxmCommitOrder *co)
{
	hash_destroy(co->ends);
	co->ends = NULL;
}
