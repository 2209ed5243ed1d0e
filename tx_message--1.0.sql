/* tx_message--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION tx_message" to load this file. \quit

/*
 * Internal relations live in the schema tx_message; the tx_* functions live
 * in the extension's schema (by default the first schema of search_path,
 * normally public) so that they are callable unqualified after a plain
 * CREATE EXTENSION.  See docs/design.md for why the tables look like this.
 *
 * The tables are heap tables (with btree indexes) whatever
 * default_table_access_method says: the C code reads and writes some of
 * them directly.  src/base/catalog.h holds the attribute numbers of their
 * columns and checks them when it loads; keep the two in step.
 */
CREATE SCHEMA tx_message;
GRANT USAGE ON SCHEMA tx_message TO PUBLIC;

-- What check-back functions and handlers receive.
CREATE TYPE tx_message.message AS (
	msg_id bigint,
	topic text,
	key text,
	tags text[],
	headers jsonb,
	payload jsonb,
	sent_at timestamptz,
	attempt integer
);

CREATE TABLE tx_message.topics (
	topic text COLLATE "C" PRIMARY KEY,
	topic_id integer NOT NULL UNIQUE GENERATED ALWAYS AS IDENTITY,
	retention interval NOT NULL,
	check_function regprocedure,
	check_after interval NOT NULL,
	check_interval interval NOT NULL,
	check_max integer NOT NULL,
	owner regrole NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	altered_at timestamptz,
	retired_seq bigint NOT NULL DEFAULT 0,	-- positions below it were truncated with their log table
	check_owner regrole,				-- the role that named check_function: it runs as that role
	CHECK (retention > '0'::interval),
	CHECK (check_after > '0'::interval),
	CHECK (check_interval > '0'::interval),
	CHECK (check_max >= 1)
) USING heap;
COMMENT ON TABLE tx_message.topics IS 'tx_message topics; change them with tx_create_topic, tx_alter_topic and tx_drop_topic';

/*
 * Privileges on topics (tx_grant, tx_revoke).  The owner of a topic holds
 * every privilege without a row here; grantee 0 ('-') is PUBLIC.
 */
CREATE TABLE tx_message.topic_grants (
	topic text COLLATE "C" NOT NULL,	-- no foreign keys between dumped tables: see subscriptions
	grantee regrole NOT NULL,
	privilege text NOT NULL,
	granted_by regrole NOT NULL,
	granted_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (topic, grantee, privilege),
	CHECK (privilege IN ('send', 'receive', 'admin', 'monitor'))
) USING heap;

/*
 * The message log: three identical, insert-only tables of which one is
 * current (log_slots.is_current).  pos = (top-level fxid << 20) | n is both
 * the message id and the commit-order scan key; msg_id is set only for rows
 * moved in from half_messages or delayed, which keep the producer's id.
 */
CREATE TABLE tx_message.log_0 (
	pos bigint NOT NULL,
	topic_id integer NOT NULL,
	sent_at timestamptz NOT NULL,
	msg_id bigint,
	deliver_at timestamptz,
	key text,
	tags text[],
	headers jsonb,
	payload jsonb NOT NULL
) USING heap WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE INDEX log_0_pos ON tx_message.log_0 (pos);
CREATE TABLE tx_message.log_1 (LIKE tx_message.log_0) USING heap
	WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE INDEX log_1_pos ON tx_message.log_1 (pos);
CREATE TABLE tx_message.log_2 (LIKE tx_message.log_0) USING heap
	WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE INDEX log_2_pos ON tx_message.log_2 (pos);

CREATE TABLE tx_message.log_slots (
	slot smallint PRIMARY KEY,
	log_table regclass NOT NULL UNIQUE,
	is_current boolean NOT NULL,
	opened_at timestamptz,				-- when it last became current
	closed_at timestamptz,				-- when it last stopped being current
	opened_heads jsonb,					-- {topic_id: first free position} when it became current
	sealed_heads jsonb,					-- {topic_id: first position after it}, once sealed
	CHECK (slot BETWEEN 0 AND 2)
) USING heap;
CREATE UNIQUE INDEX log_slots_one_current ON tx_message.log_slots (is_current) WHERE is_current;
INSERT INTO tx_message.log_slots VALUES
	(0, 'tx_message.log_0', true, now(), NULL, '{}', NULL),
	(1, 'tx_message.log_1', false, NULL, NULL, NULL, NULL),
	(2, 'tx_message.log_2', false, NULL, NULL, NULL, NULL);

-- Half messages (RocketMQ's two-phase protocol) and their check-back state.
CREATE TABLE tx_message.half_messages (
	msg_id bigint PRIMARY KEY,
	topic_id integer NOT NULL,
	sent_at timestamptz NOT NULL,
	key text,
	tags text[],
	headers jsonb,
	payload jsonb NOT NULL,
	state text NOT NULL DEFAULT 'half',
	checks integer NOT NULL DEFAULT 0,
	first_checked_at timestamptz,
	last_check_at timestamptz,
	resolved_at timestamptz,
	resolved_by text,
	last_check_error text,				-- why the last check gave no decision
	CHECK (state IN ('half', 'committed', 'rolled_back'))
) USING heap;
CREATE INDEX half_messages_pending ON tx_message.half_messages (topic_id, sent_at) WHERE state = 'half';

-- Committed messages sent with a delay, until they fall due.
CREATE TABLE tx_message.delayed (
	msg_id bigint PRIMARY KEY,
	topic_id integer NOT NULL,
	sent_at timestamptz NOT NULL,
	deliver_at timestamptz NOT NULL,
	key text,
	tags text[],
	headers jsonb,
	payload jsonb NOT NULL
) USING heap;
CREATE INDEX delayed_due ON tx_message.delayed (deliver_at);

/*
 * Ticks: the snapshots that cut the log into deliverable batches, and the
 * per-topic position streams those batches were appended to.  A slice never
 * crosses a multiple of 256 positions (a claim block).
 */
CREATE TABLE tx_message.ticks (
	tick_id bigint PRIMARY KEY,
	snapshot pg_snapshot NOT NULL,
	created_at timestamptz NOT NULL
) USING heap;

CREATE TABLE tx_message.slices (
	topic_id integer NOT NULL,
	first_seq bigint NOT NULL,
	tick_id bigint NOT NULL,
	slots smallint NOT NULL,			-- bit mask of the log tables holding its messages
	positions bigint[] NOT NULL,
	PRIMARY KEY (topic_id, first_seq)
) USING heap;
-- A full slice (2 kB) would otherwise be compressed, and decompressed at every read.
ALTER TABLE tx_message.slices ALTER COLUMN positions SET STORAGE PLAIN;

/*
 * No foreign key to topics: pg_restore -j loads the data of dumped tables
 * in any order.  The functions that add rows referring to a topic lock its
 * row (FOR KEY SHARE), and tx_drop_topic, which locks it FOR UPDATE,
 * deletes them.
 */
CREATE TABLE tx_message.subscriptions (
	topic text COLLATE "C" NOT NULL,
	consumer_group text COLLATE "C" NOT NULL,
	sub_id integer NOT NULL UNIQUE GENERATED ALWAYS AS IDENTITY,
	tags text[],
	handler regprocedure,
	max_retries integer NOT NULL,
	backoff interval[] NOT NULL,
	lease interval NOT NULL,
	ordered boolean NOT NULL,
	start_from text NOT NULL,
	owner regrole NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	altered_at timestamptz,
	PRIMARY KEY (topic, consumer_group),
	CHECK (max_retries >= 0),
	CHECK (lease > '0'::interval),
	CHECK (start_from IN ('now', 'earliest'))
) USING heap;
CREATE INDEX subscriptions_group ON tx_message.subscriptions (consumer_group);

-- A consumer group belongs to the role that created its first subscription.
CREATE TABLE tx_message.consumer_groups (
	consumer_group text COLLATE "C" PRIMARY KEY,
	owner regrole NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
) USING heap;

-- Per-subscription progress: every position below done_seq is finished.
CREATE TABLE tx_message.sub_state (
	sub_id integer PRIMARY KEY,
	done_seq bigint NOT NULL,
	updated_at timestamptz NOT NULL
) USING heap;

/*
 * One row per received batch: which positions of a 256-position block it
 * covers, and which of those are done (acked, filtered out, or moved to
 * retries).  first_off is the first covered offset, so rows of one block
 * never collide.
 */
CREATE TABLE tx_message.leases (
	sub_id integer NOT NULL,
	block bigint NOT NULL,
	first_off smallint NOT NULL,
	covered bit varying NOT NULL,
	done bit varying NOT NULL,
	keys text[],						-- ordered subscriptions: key per offset
	lease_until timestamptz NOT NULL,
	leased_at timestamptz NOT NULL,
	holder integer NOT NULL,
	PRIMARY KEY (sub_id, block, first_off)
) USING heap;
CREATE INDEX leases_expiry ON tx_message.leases (sub_id, lease_until);

-- Failed deliveries waiting for their next attempt (or leased again).
CREATE TABLE tx_message.retries_data (
	sub_id integer NOT NULL,
	msg_id bigint NOT NULL,
	topic_id integer NOT NULL,
	sent_at timestamptz NOT NULL,
	key text,
	tags text[],
	headers jsonb,
	payload jsonb NOT NULL,
	attempt integer NOT NULL,			-- attempts delivered so far
	state text NOT NULL,				-- 'waiting' or 'leased'
	due_at timestamptz NOT NULL,		-- next attempt, or lease deadline when leased
	last_error text,
	first_failed_at timestamptz NOT NULL,
	leased_at timestamptz,
	holder integer,
	PRIMARY KEY (sub_id, msg_id),
	CHECK (state IN ('waiting', 'leased'))
) USING heap;
CREATE INDEX retries_due ON tx_message.retries_data (sub_id, due_at);

-- Receivers skip the look-up in retries while shared memory says none is due;
-- every statement that writes retries, from anyone, resets that at commit.
CREATE FUNCTION tx_message._retries_written() RETURNS trigger
	LANGUAGE C SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_message_retries_written';
REVOKE ALL ON FUNCTION tx_message._retries_written() FROM PUBLIC;
CREATE TRIGGER retries_written AFTER INSERT OR UPDATE ON tx_message.retries_data
	FOR EACH STATEMENT EXECUTE FUNCTION tx_message._retries_written();

CREATE TABLE tx_message.dead_letters_data (
	msg_id bigint NOT NULL,
	topic text NOT NULL,
	key text,
	tags text[],
	headers jsonb,
	payload jsonb NOT NULL,
	sent_at timestamptz NOT NULL,
	consumer_group text,				-- NULL: check-back exhausted
	attempts integer NOT NULL,
	reason text NOT NULL,
	last_error text,
	first_failed_at timestamptz,
	dead_at timestamptz NOT NULL DEFAULT now(),
	topic_id integer NOT NULL,			-- the topic's identity: a topic created
										-- again under the same name is another
	UNIQUE NULLS NOT DISTINCT (consumer_group, msg_id)
) USING heap;
CREATE INDEX dead_letters_dead_at ON tx_message.dead_letters_data (dead_at);

/*
 * Who may read what (docs/design.md, "Privileges").  The tables are not
 * readable by PUBLIC.  What holds payloads is read through security-barrier
 * views that show a role only the rows of topics it may receive from; the
 * configuration tables show it the topics it may monitor, by row-level
 * security (the extension's own statements run as the tables' owner, which
 * policies do not restrict).  These functions answer for the current user
 * and resolve no name through search_path.  They read the latest committed
 * topics and grants, which a parallel query may not: PARALLEL UNSAFE.
 */
CREATE FUNCTION tx_message._may(topic text, privilege text) RETURNS boolean
	LANGUAGE C STABLE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_message_may';
CREATE FUNCTION tx_message._may(topic_id integer, privilege text) RETURNS boolean
	LANGUAGE C STABLE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_message_may_id';
COMMENT ON FUNCTION tx_message._may(text, text)
	IS 'whether the current user holds a privilege on a topic';

CREATE VIEW tx_message.messages WITH (security_barrier) AS
	SELECT m.* FROM (
	SELECT coalesce(l.msg_id, l.pos) AS msg_id, t.topic, l.key, l.tags, l.headers,
		   l.payload, 'committed'::text AS state, l.sent_at,
		   coalesce(l.deliver_at, l.sent_at) AS deliver_at
	  FROM (SELECT * FROM tx_message.log_0
			UNION ALL SELECT * FROM tx_message.log_1
			UNION ALL SELECT * FROM tx_message.log_2) l
	  JOIN tx_message.topics t USING (topic_id)
	UNION ALL
	SELECT d.msg_id, t.topic, d.key, d.tags, d.headers, d.payload,
		   'committed', d.sent_at, d.deliver_at
	  FROM tx_message.delayed d JOIN tx_message.topics t USING (topic_id)
	UNION ALL
	SELECT h.msg_id, t.topic, h.key, h.tags, h.headers, h.payload,
		   h.state, h.sent_at, NULL
	  FROM tx_message.half_messages h JOIN tx_message.topics t USING (topic_id)
	 WHERE h.state <> 'committed') m
	 WHERE tx_message._may(m.topic, 'receive');
COMMENT ON VIEW tx_message.messages IS 'stored messages of the topics the current user may receive from: committed (delivered or not yet due), half and rolled back';

CREATE VIEW tx_message.retries WITH (security_barrier) AS
	SELECT * FROM tx_message.retries_data WHERE tx_message._may(topic_id, 'receive');
COMMENT ON VIEW tx_message.retries IS 'failed deliveries waiting for their next attempt, of the topics the current user may receive from';

CREATE VIEW tx_message.dead_letters WITH (security_barrier) AS
	SELECT * FROM tx_message.dead_letters_data WHERE tx_message._may(topic_id, 'receive');
COMMENT ON VIEW tx_message.dead_letters IS 'dead letters of the topics the current user may receive from';

-- The operators are spelled out: one that needs an implicit cast could be
-- captured by an exact match planted in the extension's schema.
CREATE VIEW tx_message.grants WITH (security_barrier) AS
	SELECT g.topic,
		   CASE WHEN g.grantee::oid OPERATOR(pg_catalog.=) 0::oid THEN 'public'::name
				ELSE r.rolname END AS grantee,
		   g.privilege
	  FROM tx_message.topic_grants g
	  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) g.grantee::oid
	 WHERE (g.grantee::oid OPERATOR(pg_catalog.=) 0::oid OR r.oid IS NOT NULL)
	   AND tx_message._may(g.topic, 'monitor');
COMMENT ON VIEW tx_message.grants IS 'privileges granted on the topics the current user may monitor (owners hold every privilege without a row)';

REVOKE ALL ON ALL TABLES IN SCHEMA tx_message FROM PUBLIC;
ALTER TABLE tx_message.topics ENABLE ROW LEVEL SECURITY;
CREATE POLICY monitor ON tx_message.topics FOR SELECT USING (tx_message._may(topic, 'monitor'));
ALTER TABLE tx_message.subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY monitor ON tx_message.subscriptions FOR SELECT USING (tx_message._may(topic, 'monitor'));
ALTER TABLE tx_message.consumer_groups ENABLE ROW LEVEL SECURITY;
CREATE POLICY member ON tx_message.consumer_groups FOR SELECT
	USING (pg_catalog.pg_has_role(owner, 'USAGE')
		   OR EXISTS (SELECT FROM tx_message.subscriptions s
					   WHERE s.consumer_group = consumer_groups.consumer_group));
GRANT SELECT ON tx_message.topics, tx_message.subscriptions, tx_message.consumer_groups,
	tx_message.messages,
	tx_message.retries, tx_message.dead_letters, tx_message.grants TO PUBLIC;

/*
 * Where message ids continue (docs/design.md, section 1, and "Dump and
 * restore").  An id is ((top-level FullTransactionId + id_base) << 20) | n.
 * instance is this database's own row, made by CREATE EXTENSION and never
 * dumped; lineage is dumped, and holds the row of the database the data
 * comes from.  After a restore, lineage holds a row whose token is not this
 * instance's: the restored data is then taken over (ids continue above
 * every restored one, the log tables' state is restored) before anything
 * sends, receives or ticks.
 */
CREATE TABLE tx_message.instance (
	one boolean PRIMARY KEY DEFAULT true,
	token uuid NOT NULL,
	id_base bigint NOT NULL,			-- added to transaction ids to make message ids
	id_floor bigint NOT NULL,			-- ids below it come from a dump taken over
	restored_at timestamptz,			-- when a dump was taken over
	restore_problem text,				-- what that dump lacked
	CHECK (one),
	CHECK (id_base >= 0 AND id_floor >= 0)
) USING heap;
CREATE TABLE tx_message.lineage (
	token uuid PRIMARY KEY,
	id_base bigint NOT NULL,
	slots jsonb,						-- log_slots as of the last change (NULL: as created)
	updated_at timestamptz NOT NULL
) USING heap;
WITH t AS (SELECT pg_catalog.gen_random_uuid() AS token)
INSERT INTO tx_message.lineage (token, id_base, updated_at) SELECT token, 0, now() FROM t;
INSERT INTO tx_message.instance (token, id_base, id_floor)
	SELECT token, 0, 0 FROM tx_message.lineage;

-- A change of lineage (a restore loading it) makes every backend look again.
CREATE FUNCTION tx_message._lineage_changed() RETURNS trigger
	LANGUAGE C SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_message_lineage_changed';
REVOKE ALL ON FUNCTION tx_message._lineage_changed() FROM PUBLIC;
CREATE TRIGGER lineage_changed AFTER INSERT OR UPDATE OR DELETE ON tx_message.lineage
	FOR EACH STATEMENT EXECUTE FUNCTION tx_message._lineage_changed();
REVOKE ALL ON tx_message.instance, tx_message.lineage FROM PUBLIC;

/*
 * pg_dump carries everything but instance and log_slots (whose rows
 * CREATE EXTENSION makes; lineage carries log_slots).  A restore is taken
 * over as described above; docs/design.md, "Dump and restore".
 */
SELECT pg_catalog.pg_extension_config_dump('tx_message.lineage', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.log_0', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.log_1', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.log_2', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.ticks', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.slices', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.sub_state', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.leases', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.retries_data', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.topics', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.topic_grants', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.consumer_groups', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.half_messages', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.delayed', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.dead_letters_data', '');

------------------------------------------------------------------------------
-- Internal helpers
------------------------------------------------------------------------------

-- Says whether the worker can run and tells the launcher about this database.
CREATE FUNCTION tx_message._installed() RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_message_installed';
REVOKE ALL ON FUNCTION tx_message._installed() FROM PUBLIC;
SELECT tx_message._installed();

------------------------------------------------------------------------------
-- Topics
------------------------------------------------------------------------------

CREATE FUNCTION tx_create_topic(topic text,
								retention interval DEFAULT '3 days',
								check_function regprocedure DEFAULT NULL,
								check_after interval DEFAULT '6 s',
								check_interval interval DEFAULT '30 s',
								check_max integer DEFAULT 15,
								if_not_exists boolean DEFAULT false)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_create_topic';
COMMENT ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean)
	IS 'create a topic; the check-back options apply to its half messages';
-- Who may create topics is decided with GRANT EXECUTE on this function.
REVOKE ALL ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean) FROM PUBLIC;

CREATE FUNCTION tx_alter_topic(topic text,
							   retention interval DEFAULT NULL,
							   check_function regprocedure DEFAULT NULL,
							   check_after interval DEFAULT NULL,
							   check_interval interval DEFAULT NULL,
							   check_max integer DEFAULT NULL)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_alter_topic';
COMMENT ON FUNCTION tx_alter_topic(text, interval, regprocedure, interval, interval, integer)
	IS 'change options of a topic; NULL leaves an option unchanged';

CREATE FUNCTION tx_drop_topic(topic text, "cascade" boolean DEFAULT false)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_drop_topic';
COMMENT ON FUNCTION tx_drop_topic(text, boolean)
	IS 'drop a topic with its pending messages; cascade also drops its subscriptions';

CREATE FUNCTION tx_grant(topic text, role name, privilege text)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_grant';
COMMENT ON FUNCTION tx_grant(text, name, text)
	IS 'grant send, receive, admin, monitor or all on a topic to a role (or public)';

CREATE FUNCTION tx_revoke(topic text, role name, privilege text)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_revoke';
COMMENT ON FUNCTION tx_revoke(text, name, text)
	IS 'revoke a privilege on a topic from a role (or public)';

------------------------------------------------------------------------------
-- Producers
--
-- Every function here runs with SET search_path = pg_catalog, pg_temp except
-- the hot paths (tx_send, tx_send_batch, tx_receive and tx_ack):
-- the clause sends each call through fmgr_security_definer, measured at 7%
-- of tx_send.  They never resolve a name through search_path: they use cached
-- OIDs, and their internal statements are prepared and executed under a
-- pg_catalog-only search_path (txm_spi_exec).  The same holds for the
-- tx_message._may functions of the views.
------------------------------------------------------------------------------

CREATE FUNCTION tx_send(topic text, payload jsonb,
						key text DEFAULT NULL,
						tags text[] DEFAULT NULL,
						headers jsonb DEFAULT NULL,
						delay interval DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_send';
COMMENT ON FUNCTION tx_send(text, jsonb, text, text[], jsonb, interval)
	IS 'send a message in the current transaction; returns its id';

CREATE FUNCTION tx_send_batch(topic text, payloads jsonb[],
							  keys text[] DEFAULT NULL,
							  tags text[] DEFAULT NULL,
							  headers jsonb DEFAULT NULL,
							  delay interval DEFAULT NULL)
	RETURNS SETOF bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
	AS 'MODULE_PATHNAME', 'tx_send_batch';
COMMENT ON FUNCTION tx_send_batch(text, jsonb[], text[], text[], jsonb, interval)
	IS 'send several messages in the current transaction; returns their ids in payload order';

CREATE FUNCTION tx_send_half(topic text, payload jsonb,
							 key text DEFAULT NULL,
							 tags text[] DEFAULT NULL,
							 headers jsonb DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_send_half';
COMMENT ON FUNCTION tx_send_half(text, jsonb, text, text[], jsonb)
	IS 'store a half message: invisible to consumers until tx_commit_half or a check-back commits it';

CREATE FUNCTION tx_commit_half(msg_id bigint)
	RETURNS boolean
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_commit_half';
COMMENT ON FUNCTION tx_commit_half(bigint)
	IS 'make a half message deliverable with the current transaction; false if it already was';

CREATE FUNCTION tx_rollback_half(msg_id bigint)
	RETURNS boolean
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_rollback_half';
COMMENT ON FUNCTION tx_rollback_half(bigint)
	IS 'discard a half message with the current transaction; false if it already was';

------------------------------------------------------------------------------
-- The background worker
------------------------------------------------------------------------------

-- The check functions and handlers it calls run as their owners with the
-- settings a fresh session of theirs would have, whatever this one's.
CREATE FUNCTION tx_run_maintenance()
	RETURNS jsonb
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_run_maintenance';
COMMENT ON FUNCTION tx_run_maintenance()
	IS 'run one worker cycle in this session: tick, release delayed messages, check-backs, handlers; says what it did';
-- It runs other roles' check functions and handlers: an administrator's tool.
REVOKE ALL ON FUNCTION tx_run_maintenance() FROM PUBLIC;

CREATE FUNCTION tx_worker_status(OUT pid integer, OUT database name,
								 OUT started_at timestamptz, OUT last_cycle_at timestamptz,
								 OUT delivered bigint, OUT checks bigint,
								 OUT dead_lettered bigint, OUT errors bigint,
								 OUT handled bigint, OUT stale_prepared integer,
								 OUT executor_pids integer[], OUT restore_state text)
	RETURNS SETOF record
	LANGUAGE C VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_worker_status';
COMMENT ON FUNCTION tx_worker_status()
	IS 'one row per database worker of the cluster, with its counters';
REVOKE ALL ON FUNCTION tx_worker_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tx_worker_status() TO pg_monitor;

------------------------------------------------------------------------------
-- Consumers
------------------------------------------------------------------------------

CREATE FUNCTION tx_subscribe(topic text, consumer_group text,
							 tags text[] DEFAULT NULL,
							 handler regprocedure DEFAULT NULL,
							 max_retries integer DEFAULT 16,
							 backoff interval[] DEFAULT '{10 s,30 s,1 min,2 min,3 min,4 min,5 min,6 min,7 min,8 min,9 min,10 min,20 min,30 min,1 h,2 h}',
							 lease interval DEFAULT '30 s',
							 ordered boolean DEFAULT false,
							 start_from text DEFAULT 'now')
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_subscribe';
COMMENT ON FUNCTION tx_subscribe(text, text, text[], regprocedure, integer, interval[], interval, boolean, text)
	IS 'subscribe a consumer group to a topic, or change its options';

CREATE FUNCTION tx_unsubscribe(topic text, consumer_group text)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_unsubscribe';
COMMENT ON FUNCTION tx_unsubscribe(text, text)
	IS 'drop a subscription with its progress and pending retries';

CREATE FUNCTION tx_receive(consumer_group text,
						   max_messages integer DEFAULT 100,
						   wait interval DEFAULT '0',
						   lease interval DEFAULT NULL)
	RETURNS TABLE (msg_id bigint, topic text, key text, tags text[], headers jsonb,
				   payload jsonb, attempt integer, sent_at timestamptz, lease_until timestamptz)
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
	AS 'MODULE_PATHNAME', 'tx_receive';
COMMENT ON FUNCTION tx_receive(text, integer, interval, interval)
	IS 'lease up to max_messages messages of a consumer group, in commit order, waiting up to wait';

CREATE FUNCTION tx_ack(consumer_group text, msg_ids bigint[])
	RETURNS integer
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_ack';
COMMENT ON FUNCTION tx_ack(text, bigint[])
	IS 'finish messages; returns how many this call finished';

CREATE FUNCTION tx_ack(consumer_group text, msg_id bigint)
	RETURNS boolean
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_ack_one';
COMMENT ON FUNCTION tx_ack(text, bigint)
	IS 'finish a message; false if the caller did not hold it';

CREATE FUNCTION tx_nack(consumer_group text, msg_id bigint,
						error text DEFAULT NULL, retry_in interval DEFAULT NULL)
	RETURNS text
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_nack';
COMMENT ON FUNCTION tx_nack(text, bigint, text, interval)
	IS 'a delivery failed: retry later (''retry'') or give up (''dead_letter''); NULL if not held';

CREATE FUNCTION tx_extend_lease(consumer_group text, msg_ids bigint[], lease interval)
	RETURNS integer
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_extend_lease';
COMMENT ON FUNCTION tx_extend_lease(text, bigint[], interval)
	IS 'keep held messages for another lease interval from now';

CREATE FUNCTION tx_redrive(consumer_group text, msg_ids bigint[] DEFAULT NULL)
	RETURNS integer
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_redrive';
COMMENT ON FUNCTION tx_redrive(text, bigint[])
	IS 'give dead letters of a consumer group (all, or those of msg_ids) a fresh round of attempts';

CREATE FUNCTION tx_purge_dead_letters(consumer_group text,
									  older_than interval DEFAULT '0',
									  msg_ids bigint[] DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_purge_dead_letters';
COMMENT ON FUNCTION tx_purge_dead_letters(text, interval, bigint[])
	IS 'delete dead letters of a consumer group that died at least older_than ago (all, or those of msg_ids)';

CREATE FUNCTION tx_redrive_half(msg_ids bigint[] DEFAULT NULL)
	RETURNS integer
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_redrive_half';
COMMENT ON FUNCTION tx_redrive_half(bigint[])
	IS 'put dead letters of exhausted check-backs back to the half state with a fresh check count';

CREATE FUNCTION tx_purge_half_dead_letters(older_than interval DEFAULT '0',
										   msg_ids bigint[] DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_purge_half_dead_letters';
COMMENT ON FUNCTION tx_purge_half_dead_letters(interval, bigint[])
	IS 'delete dead letters of exhausted check-backs that died at least older_than ago (all, or those of msg_ids)';
