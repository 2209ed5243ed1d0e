/*-------------------------------------------------------------------------
 *
 * subcache.h
 *	  Subscriptions as consumers need them, cached per backend.
 *
 * IDENTIFICATION
 *	  src/base/subcache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_SUBCACHE_H
#define TXM_SUBCACHE_H

#include "utils/jsonpath.h"
#include "utils/timestamp.h"

#include "src/base/layout.h"

/* A subscription: one (topic, consumer group) pair and its options. */
typedef struct TxmSub
{
	int32		sub_id;
	int32		topic_id;
	char		topic[TXM_NAME_MAX + 1];
	char		group[TXM_NAME_MAX + 1];
	int			ntags;			/* -1: no filter */
	char	  **tags;
	Oid			handler;
	int32		max_retries;
	int			nbackoff;
	Interval   *backoff;
	Interval	lease;
	bool		ordered;
	Oid			owner;			/* the role that named the handler: runs it */
	Oid			group_owner;	/* the role that owns the consumer group */
	JsonPath   *filter;			/* on the headers; NULL: none */
	char		dead_letter_topic[TXM_NAME_MAX + 1];	/* "": none */
	Oid			dead_letter_owner;	/* the role that named it: sends as it */
	int			handler_executors;	/* how many executors may run its batches at once */
} TxmSub;

/* Whether a subscription wants only some messages (tags or a filter). */
#define txm_sub_filters(sub) ((sub)->ntags >= 0 || (sub)->filter != NULL)

extern void txm_subcache_init(void);
extern TxmSub *txm_group_subs(const char *group, int *nsubs, bool missing_ok);
extern TxmSub *txm_handler_subs(int *nsubs);

#endif							/* TXM_SUBCACHE_H */
