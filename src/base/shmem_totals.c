/*-------------------------------------------------------------------------
 *
 * shmem_totals.c
 *	  The totals of tx_message.stats on their way to the catalog.
 *
 * Transactions add what they count (messages delivered, acked, nacked,
 * check-backs) to their database's entry for the subscription when they
 * commit (shmem_xact.c); the worker takes the sums every cycle and adds
 * them to tx_message.totals in one statement, so nothing is written per
 * message.  Adding takes the totals lock in shared mode and an atomic add;
 * only making an entry or emptying them takes it exclusively.  A crash loses
 * what was counted since the last cycle.  When every entry is taken (more
 * subscriptions counted in one cycle than TXM_TOTALS), what does not fit
 * is not counted.
 *
 * IDENTIFICATION
 *	  src/base/shmem_totals.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "src/base/shmem_internal.h"

static TxmTotal *
find_total(TxmDbSlot *slot, int32 topic_id, int32 sub_id)
{
	Assert(LWLockHeldByMe(slot->totals_lock));
	for (int i = 0; i < TXM_TOTALS; i++)
		if (slot->totals[i].topic_id == topic_id && slot->totals[i].sub_id == sub_id)
			return &slot->totals[i];
	return NULL;
}

/* Add n (TXM_NTOTALS counts) to the entry of (topic_id, sub_id). */
void
shmem_totals_add(TxmDbSlot *slot, int32 topic_id, int32 sub_id, const uint64 *n)
{
	TxmTotal   *t;

	Assert(topic_id != 0);
	LWLockAcquire(slot->totals_lock, LW_SHARED);
	t = find_total(slot, topic_id, sub_id);
	if (t == NULL)
	{
		LWLockRelease(slot->totals_lock);
		LWLockAcquire(slot->totals_lock, LW_EXCLUSIVE);
		t = find_total(slot, topic_id, sub_id);
		if (t == NULL)
			t = find_total(slot, 0, 0);
		if (t != NULL && t->topic_id == 0)
		{
			t->topic_id = topic_id;
			t->sub_id = sub_id;
		}
	}
	if (t != NULL)
		for (int k = 0; k < TXM_NTOTALS; k++)
			if (n[k] > 0)
				pg_atomic_fetch_add_u64(&t->n[k], n[k]);
	LWLockRelease(slot->totals_lock);
}

/* A slot handed to another database starts with no totals. */
void
shmem_totals_clear(TxmDbSlot *slot)
{
	LWLockAcquire(slot->totals_lock, LW_EXCLUSIVE);
	for (int i = 0; i < TXM_TOTALS; i++)
	{
		slot->totals[i].topic_id = 0;
		slot->totals[i].sub_id = 0;
		for (int k = 0; k < TXM_NTOTALS; k++)
			pg_atomic_write_u64(&slot->totals[i].n[k], 0);
	}
	LWLockRelease(slot->totals_lock);
}

int
txm_totals_capacity(void)
{
	return TXM_TOTALS;
}

/*
 * Take this database's totals (at most max entries; pass
 * txm_totals_capacity()) and empty their entries, to store them in the
 * current transaction: if it, or the subtransaction that took them, rolls
 * back, they are given back (shmem_xact.c).  Returns how many.
 */
int
txm_totals_take(TxmTotalDelta *out, int max)
{
	TxmDbSlot  *slot = txm_my_slot();
	int			n = 0;

	if (slot == NULL)
		return 0;
	LWLockAcquire(slot->totals_lock, LW_EXCLUSIVE);
	for (int i = 0; i < TXM_TOTALS && n < max; i++)
	{
		TxmTotal   *t = &slot->totals[i];
		bool		any = false;

		if (t->topic_id == 0)
			continue;
		out[n].topic_id = t->topic_id;
		out[n].sub_id = t->sub_id;
		for (int k = 0; k < TXM_NTOTALS; k++)
		{
			out[n].n[k] = pg_atomic_exchange_u64(&t->n[k], 0);
			any |= out[n].n[k] > 0;
		}
		t->topic_id = 0;
		t->sub_id = 0;
		if (any)
			n++;
	}
	LWLockRelease(slot->totals_lock);
	shmem_totals_taken(slot, out, n);
	return n;
}
