/*-------------------------------------------------------------------------
 *
 * commit_pause.c
 *	  A test module: holds a session's commits between the moment they
 *	  become visible and the commit callbacks of the libraries loaded
 *	  before it (t/020_commit_order.pl).
 *
 * LOAD it into a session after tx_message: transaction callbacks run
 * newest first, so its callback runs before tx_message's, and
 * commit_pause.ms (SET LOCAL in the transaction) keeps the committed
 * transaction there that long.  Others already see the commit meanwhile,
 * and can take its row locks and commit themselves.
 *
 * IDENTIFICATION
 *	  t/commit_pause/commit_pause.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static int	pause_ms = 0;

static void
pause_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && pause_ms > 0)
		pg_usleep(pause_ms * 1000L);
}

void
_PG_init(void)
{
	DefineCustomIntVariable("commit_pause.ms",
							"How long a commit of this session pauses once it is visible.",
							NULL, &pause_ms, 0, 0, 60000, PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	RegisterXactCallback(pause_at_commit, NULL);
}
