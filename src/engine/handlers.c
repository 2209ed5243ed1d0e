/*-------------------------------------------------------------------------
 *
 * handlers.c
 *	  In-database handlers: subscriptions consumed by the executor.
 *
 * A batch is one transaction: claim up to tx_message.handler_batch_size
 * messages like tx_receive does, call the handler for each one through
 * usercode.c (in a subtransaction, as the subscription's owner, under
 * tx_message.handler_timeout), then acknowledge the successful ones in the
 * same transaction.  The handler's effects and the ack therefore commit
 * together (exactly-once effects); a failing message's effects are rolled
 * back alone and it is retried with the subscription's backoff, then
 * dead-lettered with the error text.
 *
 * IDENTIFICATION
 *	  src/engine/handlers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"

#include "src/base/acl.h"
#include "src/base/shmem.h"
#include "src/engine/claim.h"
#include "src/engine/handlers.h"
#include "src/engine/settle.h"
#include "src/engine/usercode.h"

/* keeps the handler locks apart from claim.c's and from user advisory locks */
#define TXM_HANDLER_LOCK_FIELD4	0x7468	/* "th" */

int			txm_handler_timeout = 30000;
int			txm_handler_batch_size = 100;

/* A handler failed on a delivery: retry or dead-letter it, and say so in the log. */
static void
handler_failed(TxmSub *sub, const TxmDelivery *d, const char *error)
{
	const char *outcome = txm_nack(sub, 1, d->msg.msg_id, error, NULL);

	ereport(LOG,
			(errmsg("handler %s failed on message " INT64_FORMAT " of topic \"%s\" (attempt %d): %s",
					format_procedure(sub->handler), d->msg.msg_id, sub->topic,
					d->attempt, error),
			 errdetail("The message goes to %s.",
					   outcome && strcmp(outcome, "dead_letter") == 0 ?
					   "the dead letters" : "a retry")));
}

/*
 * A handler runs only while the role that named it may still consume what
 * it is given: 'receive' on the topic and the privileges of the group's
 * owner.  Otherwise its messages wait, and the log says why, once a minute
 * per subscription.  fresh reads the grants rather than the cache
 * (txm_has_topic_privilege_now).
 */
static bool
handler_allowed(const TxmSub *sub, bool fresh)
{
	static HTAB *reported = NULL;
	typedef struct
	{
		int32		sub_id;
		TimestampTz at;
	} Reported;
	Reported   *r;
	bool		found;
	TimestampTz now;
	const char *name;
	const TxmTopic *topic = txm_lookup_topic_by_id(sub->topic_id);

	if ((fresh ? txm_has_topic_privilege_now(topic, sub->owner, TXM_PRIV_RECEIVE) :
		 txm_has_topic_privilege(topic, sub->owner, TXM_PRIV_RECEIVE)) &&
		has_privs_of_role(sub->owner, sub->group_owner))
		return true;

	if (reported == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(Reported);
		ctl.hcxt = TopMemoryContext;
		reported = hash_create("tx_message stopped handlers", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	now = GetCurrentTimestamp();
	r = hash_search(reported, &sub->sub_id, HASH_ENTER, &found);
	if (found && !TimestampDifferenceExceeds(r->at, now, 60 * 1000))
		return false;
	r->at = now;
	name = GetUserNameFromId(sub->owner, true);
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("handler %s of consumer group \"%s\" on topic \"%s\" is stopped",
					format_procedure(sub->handler), sub->group, sub->topic),
			 errdetail("Its role \"%s\" no longer holds \"receive\" on the topic or the privileges of the group's owner.",
					   name ? name : "?"),
			 errhint("Grant them again, or subscribe the group again with a handler of a role that holds them; its messages wait meanwhile.")));
	return false;
}

/*
 * Claim a batch for a subscription's handler, and keep it only if the
 * handler may still run on it.  The caller checked the cached privileges;
 * this check reads the grants afresh: a revoke that committed while the
 * claim ran (it may wait for locks) is seen by any snapshot that sees a
 * message sent after it, and the cache may not have its invalidation yet.
 * The claim is then rolled back, in its subtransaction, and its messages
 * wait with no attempt counted.
 */
static List *
claim_if_allowed(TxmSub *sub, int batch_size)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		pull = true;
	bool		allowed = false;
	List	   *deliveries = NIL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		deliveries = txm_claim(sub, 1, &pull, batch_size, NULL);
		allowed = deliveries == NIL || handler_allowed(sub, true);
		if (allowed)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* the subtransaction goes, the error to the caller's transaction */
		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return allowed ? deliveries : NIL;
}

/*
 * At most handler_executors executors at a time run a subscription's
 * handler, each holding one of as many locks while its batch runs (the lock
 * goes with the transaction); the others skip the subscription.  So a slow
 * handler takes no more executors than its subscription allows, and the
 * batches that do run at once claim apart, as competing consumers do.
 */
static bool
lock_subscription(const TxmSub *sub)
{
	for (int i = 0; i < sub->handler_executors; i++)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) sub->sub_id, (uint32) i,
							 TXM_HANDLER_LOCK_FIELD4);
		if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
	}
	return false;
}

/*
 * Run one batch of a handler subscription in the current transaction.  A
 * subscription whose handler_executors batches other processes are
 * running is skipped.
 * Returns how many messages were handled (successfully or not).
 */
int
txm_run_handler_batch(TxmSub *sub, int batch_size, TxmMaintStats *stats)
{
	List	   *deliveries;
	int64	   *done;
	int			ndone = 0;
	int			n;

	/*
	 * tx_run_maintenance() runs only the code of roles its caller has the
	 * privileges of: the calling session's state (its role's defaults, its
	 * temporary objects) must give nobody more than they have.  The worker
	 * runs everything.  A handler that may not run takes no lock: each
	 * process that visits it says so, whoever else holds the subscription.
	 */
	if (!has_privs_of_role(GetUserId(), sub->owner) || !handler_allowed(sub, false) ||
		!lock_subscription(sub))
		return 0;
	deliveries = claim_if_allowed(sub, batch_size);
	n = list_length(deliveries);
	if (n == 0)
		return 0;
	done = palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		TxmDelivery *d = list_nth(deliveries, i);
		char	   *error = NULL;
		Datum		message;

		CHECK_FOR_INTERRUPTS();
		message = txm_message_datum(d->msg.msg_id, sub->topic, d->msg.cols, d->msg.isnull,
									d->msg.sent_at, d->attempt);
		/* any result, NULL included (a void SQL function returns NULL), is fine */
		if (txm_run_user_code(sub->handler, sub->owner, message, txm_handler_timeout,
							  NULL, NULL, &error))
		{
			done[ndone++] = d->msg.msg_id;
			stats->handled++;
		}
		else
		{
			handler_failed(sub, d, error);
			stats->handler_errors++;
		}
	}
	if (ndone > 0)
		txm_ack(sub, 1, done, ndone);
	txm_count(TXM_COUNTER_HANDLED, (uint64) ndone);
	pfree(done);
	return n;
}
