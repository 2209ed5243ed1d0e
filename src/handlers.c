/*-------------------------------------------------------------------------
 *
 * handlers.c
 *	  In-database handlers: subscriptions consumed by the executor.
 *
 * A batch is one transaction: claim up to tx_message.handler_batch_size
 * messages like tx_receive does, call the handler for each one in a
 * subtransaction, as the subscription's owner and under
 * tx_message.handler_timeout, then acknowledge the successful ones in the
 * same transaction.  The handler's effects and the ack therefore commit
 * together (exactly-once effects); a failing message's effects are rolled
 * back alone and it is retried with the subscription's backoff, then
 * dead-lettered with the error text.
 *
 * IDENTIFICATION
 *	  src/handlers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "tx_message.h"

/* Call the handler in a subtransaction; false and *error if it failed. */
static bool
call_handler(const TxmSub *sub, Datum message, char **error)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner outer_owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		Oid			saved_user;
		int			saved_sec;
		FmgrInfo	flinfo;
		LOCAL_FCINFO(fcinfo, 1);

		GetUserIdAndSecContext(&saved_user, &saved_sec);
		SetUserIdAndSecContext(sub->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
		/* any result, NULL included (a void SQL function returns NULL), is fine */
		fmgr_info(sub->handler, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = message;
		fcinfo->args[0].isnull = false;
		txm_arm_timeout(txm_handler_timeout);
		(void) FunctionCallInvoke(fcinfo);
		txm_disarm_timeout();
		SetUserIdAndSecContext(saved_user, saved_sec);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = outer_owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		txm_disarm_timeout();
		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = outer_owner;
		*error = pstrdup(edata->message);
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();
	return true;
}

/*
 * Run one batch of a handler subscription in the current transaction.
 * Returns how many messages were handled (successfully or not).
 */
int
txm_run_handler_batch(TxmSub *sub, int batch_size, TxmMaintStats *stats)
{
	bool		pull = true;
	List	   *deliveries;
	int64	   *done;
	int			ndone = 0;
	int			n;
	TxmDbSlot  *slot = txm_my_slot();

	deliveries = txm_claim(sub, 1, &pull, batch_size, NULL);
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
		message = txm_message_datum(d->msg.msg_id, sub->topic, d->msg.cols[0], d->msg.cols[1],
									d->msg.cols[2], d->msg.cols[3], d->msg.sent_at, d->attempt,
									d->msg.isnull);
		if (call_handler(sub, message, &error))
		{
			done[ndone++] = d->msg.msg_id;
			stats->handled++;
		}
		else
		{
			const char *outcome = txm_nack(sub, 1, d->msg.msg_id, error, NULL);

			ereport(LOG,
					(errmsg("handler %s failed on message " INT64_FORMAT " of topic \"%s\" (attempt %d): %s",
							format_procedure(sub->handler), d->msg.msg_id, sub->topic,
							d->attempt, error),
					 errdetail("The message goes to %s.",
							   outcome && strcmp(outcome, "dead_letter") == 0 ?
							   "the dead letters" : "a retry")));
			stats->handler_errors++;
		}
	}
	if (ndone > 0)
		txm_ack(sub, 1, done, ndone);
	if (slot)
		txm_count(&slot->handled, (uint64) ndone);
	pfree(done);
	return n;
}
