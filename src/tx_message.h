/*-------------------------------------------------------------------------
 *
 * tx_message.h
 *	  Declarations shared by the C files of the tx_message extension.
 *
 * IDENTIFICATION
 *	  src/tx_message.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TX_MESSAGE_H
#define TX_MESSAGE_H

#include "access/htup.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

/*
 * Message ids: (top-level FullTransactionId << TXM_POS_SHIFT) | n, where n
 * counts the messages of that transaction.  See docs/design.md.
 */
#define TXM_POS_SHIFT		20
#define TXM_MAX_PER_XACT	(INT64CONST(1) << TXM_POS_SHIFT)
#define TXM_MAX_FXID		(UINT64CONST(1) << (63 - TXM_POS_SHIFT))
#define TXM_POS_XID(pos)	((uint64) (pos) >> TXM_POS_SHIFT)

/* Positions of a topic's stream are claimed in blocks of this many. */
#define TXM_BLOCK			256
#define TXM_LOG_SLOTS		3
#define TXM_NAME_MAX		127

/* GUC variables (tx_message.c) */
extern int	txm_max_payload_size;

/*
 * OIDs of the extension's relations in the current database, looked up once
 * per backend and forgotten on any relcache invalidation of one of them.
 */
typedef struct TxmCatalog
{
	Oid			namespace;
	Oid			owner;			/* owner of the relations: runs internal SQL */
	Oid			topics;
	Oid			topics_pkey;
	Oid			log[TXM_LOG_SLOTS];
	Oid			log_pos[TXM_LOG_SLOTS];
	Oid			log_slots;
	Oid			half_messages;
	Oid			delayed;
	Oid			ticks;
	Oid			slices;
	Oid			slices_pkey;
	Oid			subscriptions;
	Oid			sub_state;
	Oid			leases;
	Oid			leases_pkey;
	Oid			retries;
	Oid			dead_letters;
	Oid			message_type;
} TxmCatalog;

/* What the producer path needs to know about a topic. */
typedef struct TxmTopic
{
	char		name[TXM_NAME_MAX + 1];	/* hash key */
	int32		topic_id;
	Oid			owner;
	Oid			check_function;
	Interval	retention;
	Interval	check_after;
	Interval	check_interval;
	int32		check_max;
} TxmTopic;

/* catalog.c */
extern void txm_catalog_init(void);
extern const TxmCatalog *txm_catalog(void);
extern const TxmCatalog *txm_catalog_if_installed(void);
extern TxmTopic *txm_lookup_topic(const char *name, bool missing_ok);
extern const char *txm_topic_name(int32 topic_id);
extern int	txm_current_log_slot(void);
extern void txm_invalidate(Oid relid);
extern void txm_check_name(const char *kind, const char *name);

/*
 * Internal SQL runs as the owner of the extension's relations (as RI
 * triggers run as the owner of the referenced table): callers of the public
 * functions need no privileges on the internal tables.
 */
typedef struct TxmSavedUser
{
	Oid			userid;
	int			sec_context;
} TxmSavedUser;

extern void txm_become_owner(TxmSavedUser *saved);
extern void txm_restore_user(const TxmSavedUser *saved);
extern int	txm_spi_exec(const char *sql, int nargs, const Oid *argtypes,
						 Datum *values, const char *nulls, long count);

/* send.c */
extern int64 txm_next_pos(void);
extern int64 txm_log_insert(int32 topic_id, int64 msg_id, TimestampTz sent_at,
							TimestampTz deliver_at, Datum key, Datum tags,
							Datum headers, Datum payload, const bool *isnull);
extern void txm_check_payload(Jsonb *payload, const char *what);
extern void txm_check_headers(Jsonb *headers);
extern void txm_check_tags(ArrayType *tags, const char *what);
extern bool txm_resolve_half(int64 msg_id, bool commit, const char *resolved_by);
extern void txm_send_xact_callback(XactEvent event);
extern bool txm_xact_sent_messages(void);

/* topics.c */
extern void txm_check_positive_interval(const char *what, Interval *value);
extern void txm_check_message_function(Oid fn, const char *what, Oid required_rettype);

/* helpers */
#define txm_require_arg(fcinfo, n, name) \
	do { \
		if (PG_ARGISNULL(n)) \
			ereport(ERROR, \
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), \
					 errmsg("%s must not be null", (name)))); \
	} while (0)

#endif							/* TX_MESSAGE_H */
