/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  The extension's relations as the C code sees them: their OIDs, the
 *	  attribute numbers of the columns read or written directly, and the
 *	  backend-local caches of topics and of the current log table.
 *
 * The tables are defined in tx_message--1.0.sql.  Each block of constants
 * below mirrors one table there, in column order; loading the catalog
 * checks every table's attribute count and access method against them, so
 * a table that no longer matches is an error rather than misread rows.
 *
 * IDENTIFICATION
 *	  src/base/catalog.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_CATALOG_H
#define TXM_CATALOG_H

#include "access/attnum.h"
#include "access/transam.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "src/base/layout.h"

/*
 * Tables that 1.1 gave columns: Natts_X_1_0 is their count in a database
 * still at 1.0 (catalog.c accepts both; TxmCatalog.v1_1 says which).
 */

/* tx_message.topics */
#define Natts_topics				15
#define Natts_topics_1_0			12
#define Anum_topics_topic			1
#define Anum_topics_topic_id		2
#define Anum_topics_retention		3
#define Anum_topics_check_function	4
#define Anum_topics_check_after		5
#define Anum_topics_check_interval	6
#define Anum_topics_check_max		7
#define Anum_topics_owner			8
#define Anum_topics_created_at		9
#define Anum_topics_altered_at		10
#define Anum_topics_retired_seq		11
#define Anum_topics_check_owner		12
#define Anum_topics_dead_letter_topic 13
#define Anum_topics_dead_letter_owner 14
#define Anum_topics_notify_channel	15

/* tx_message.topic_grants, and topic_grants_pkey (topic, grantee, privilege) */
#define Natts_topic_grants			5
#define Anum_topic_grants_topic		1
#define Anum_topic_grants_grantee	2
#define Anum_topic_grants_privilege	3
#define Anum_topic_grants_pkey_topic 1

/*
 * tx_message.log_0, log_1, log_2, and their index log_N_pos (pos).  Version
 * 1.1 put the columns in a new order (pos, sent_at, topic_id, payload, key,
 * tags, headers, msg_id, deliver_at: no alignment padding, and the columns
 * usually NULL last, where a row that leaves them out needs no null
 * bitmap); TxmLogLayout says where each column of a log table is, in either
 * order.  pos is the first in both.
 */
#define Natts_log					9
#define Anum_log_pos				1
#define Anum_log_pos_idx_pos		1

typedef struct TxmLogLayout
{
	AttrNumber	topic_id;
	AttrNumber	sent_at;
	AttrNumber	msg_id;
	AttrNumber	deliver_at;
	AttrNumber	cols[TXM_MSG_NCOLS];	/* key, tags, headers, payload */
} TxmLogLayout;

/* tx_message.log_slots */
#define Natts_log_slots				7
#define Anum_log_slots_slot			1
#define Anum_log_slots_log_table	2
#define Anum_log_slots_is_current	3
#define Anum_log_slots_opened_at	4
#define Anum_log_slots_closed_at	5
#define Anum_log_slots_opened_heads 6
#define Anum_log_slots_sealed_heads 7

/* tx_message.half_messages and tx_message.delayed: read and written by SQL */
#define Natts_half_messages			15
#define Natts_half_messages_1_0		14
#define Natts_delayed				8

/* tx_message.ticks, and ticks_pkey (tick_id) */
#define Natts_ticks					3
#define Anum_ticks_tick_id			1
#define Anum_ticks_snapshot			2
#define Anum_ticks_created_at		3
#define Anum_ticks_pkey_tick_id		1

/* tx_message.slices, and slices_pkey (topic_id, first_seq) */
#define Natts_slices				7
#define Natts_slices_1_0			5
#define Anum_slices_topic_id		1
#define Anum_slices_first_seq		2
#define Anum_slices_tick_id			3
#define Anum_slices_slots			4
#define Anum_slices_positions		5	/* NULL when packed holds them (1.1) */
#define Anum_slices_created_at		6
#define Anum_slices_packed			7
#define Anum_slices_pkey_topic_id	1
#define Anum_slices_pkey_first_seq	2
/* a slices row "s"'s positions as an array, in SQL: at 1.0, at 1.1 */
#define TXM_SLICE_POSITIONS_1_0		"s.positions"
#define TXM_SLICE_POSITIONS_1_1		"tx_message._slice_positions(s.positions, s.packed)"

/* tx_message.subscriptions and tx_message.consumer_groups: read and written by SQL */
#define Natts_subscriptions			17
#define Natts_subscriptions_1_0		13
#define Natts_consumer_groups		3

/* tx_message.sub_state, and sub_state_pkey (sub_id) */
#define Natts_sub_state				3
#define Anum_sub_state_sub_id		1
#define Anum_sub_state_done_seq		2
#define Anum_sub_state_updated_at	3
#define Anum_sub_state_pkey_sub_id	1

/* tx_message.leases, and leases_pkey (sub_id, block, first_off) */
#define Natts_leases				9
#define Anum_leases_sub_id			1
#define Anum_leases_block			2
#define Anum_leases_first_off		3
#define Anum_leases_covered			4
#define Anum_leases_done			5
#define Anum_leases_keys			6
#define Anum_leases_lease_until		7
#define Anum_leases_leased_at		8
#define Anum_leases_holder			9
#define Anum_leases_pkey_sub_id		1
#define Anum_leases_pkey_block		2
#define Anum_leases_pkey_first_off	3

/* tx_message.instance (one row) and tx_message.lineage (written by SQL) */
#define Natts_instance				7
#define Natts_instance_1_0			6
#define Anum_instance_token			2
#define Anum_instance_id_base		3
#define Anum_instance_id_floor		4
#define Anum_instance_restored_at	5
#define Anum_instance_restore_problem 6
#define Anum_instance_cdc			7
#define Natts_lineage				4
#define Anum_lineage_token			1

/* tx_message.totals, half_checks, moved and dedup (since 1.1): written by SQL */
#define Natts_totals				7
#define Natts_half_checks			4
#define Natts_moved					2
#define Natts_dedup					4

/* tx_message.retries_data and tx_message.dead_letters_data: read and written by SQL */
#define Natts_retries				15
#define Natts_dead_letters			14

/*
 * OIDs of the extension's relations in the current database, looked up once
 * per backend and forgotten on any invalidation of one of them.
 */
typedef struct TxmCatalog
{
	Oid			namespace;
	Oid			owner;			/* owner of the relations: runs internal SQL */
	Oid			topics;
	Oid			topics_pkey;
	Oid			topics_topic_id_key;
	Oid			topic_grants;
	Oid			topic_grants_pkey;
	Oid			log[TXM_LOG_SLOTS];
	Oid			log_pos[TXM_LOG_SLOTS];
	const TxmLogLayout *log_layout[TXM_LOG_SLOTS];	/* each log table's column order */
	FullTransactionId log_made_by[TXM_LOG_SLOTS];	/* the transaction that made it */
	Oid			log_slots;
	Oid			half_messages;
	Oid			half_messages_pkey;
	Oid			delayed;
	Oid			delayed_pkey;
	Oid			ticks;
	Oid			ticks_pkey;
	Oid			slices;
	Oid			slices_pkey;
	Oid			subscriptions;
	Oid			consumer_groups;
	Oid			sub_state;
	Oid			sub_state_pkey;
	Oid			leases;
	Oid			leases_pkey;
	Oid			retries;
	Oid			dead_letters;
	Oid			instance;
	Oid			lineage;
	Oid			totals;			/* since 1.1; InvalidOid in a database at 1.0 */
	Oid			half_checks;	/* since 1.1 */
	Oid			moved;			/* since 1.1 */
	Oid			dedup;			/* since 1.1 */
	bool		v1_1;			/* the database is at 1.1: its columns exist */
	Oid			message_type;	/* tx_message.message */
} TxmCatalog;

/* What the producer path needs to know about a topic. */
typedef struct TxmTopic
{
	char		name[TXM_NAME_MAX + 1]; /* hash key */
	int32		topic_id;
	Oid			owner;
	Oid			check_function;
	Oid			check_owner;	/* the role check_function runs as */
	Interval	retention;
	Interval	check_after;
	Interval	check_interval;
	int32		check_max;
	char		dead_letter_topic[TXM_NAME_MAX + 1];	/* "": none */
	Oid			dead_letter_owner;	/* the role that named it: sends as it */
	char		notify_channel[NAMEDATALEN];	/* "": none */
} TxmTopic;

/*
 * This database's message id space (tx_message.instance): id_base is added
 * to transaction ids; ids below id_floor come from a dump taken over.
 * restore_pending: lineage holds a row of another database, a dump not yet
 * taken over (storage/lineage.c).
 */
typedef struct TxmInstance
{
	uint64		id_base;
	uint64		id_floor;
	bool		restore_pending;
	bool		restored;		/* a dump was taken over */
	char		restore_problem[128];	/* what it lacked ("": nothing) */
	bool		cdc;			/* every message is also a logical decoding message */
} TxmInstance;

extern void txm_catalog_init(void);
extern const TxmCatalog *txm_catalog(void);
extern const TxmCatalog *txm_catalog_if_installed(void);
extern void txm_invalidate(Oid relid);
extern uint64 txm_catalog_changes(void);
extern void txm_check_log_snapshot(int slot, Snapshot snap);
extern TxmTopic *txm_lookup_topic(const char *name, bool missing_ok);
extern const char *txm_topic_name(int32 topic_id);
extern bool txm_topic_retired_seq(int32 topic_id, int64 *retired);
extern TxmTopic *txm_lookup_topic_by_id(int32 topic_id);
extern int	txm_current_log_slot(void);
extern const TxmInstance *txm_instance(void);
extern void txm_forget_instance(void);

#endif							/* TXM_CATALOG_H */
