/* tx_message--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tx_message UPDATE TO '1.1'" to load this file. \quit

/*
 * The update changes most tables.  It takes them all at once, first, in
 * the order the library's busiest paths take theirs (a tick: ticks, then
 * the log; a receive or an ack: leases and sub_state, then slices, then the
 * log; a send, or the release of a delayed message: instance, then the
 * log), so that it seldom holds some of them while it waits for a session
 * that holds others and waits for it.  Such a deadlock is still possible
 * with rarer paths; PostgreSQL's deadlock detector then ends one side.
 */
LOCK TABLE tx_message.ticks, tx_message.topics, tx_message.subscriptions,
	tx_message.consumer_groups, tx_message.leases, tx_message.sub_state,
	tx_message.retries_data, tx_message.delayed, tx_message.half_messages,
	tx_message.instance, tx_message.slices, tx_message.log_slots,
	tx_message.log_0, tx_message.log_1, tx_message.log_2,
	tx_message.dead_letters_data, tx_message.lineage, tx_message.topic_grants
	IN ACCESS EXCLUSIVE MODE;

/*
 * The message log in a new column order: the fixed-width columns first, so
 * that nothing before the payload is padded for alignment, then payload,
 * then the columns that are usually NULL.  The library writes a row
 * without its trailing NULL columns (a heap tuple may have fewer attributes
 * than its table, as after ADD COLUMN; they read as NULL); with all nine
 * and a NULL among them, the null bitmap would move the row's data from
 * offset 24 to 32.  Each table is made again and its rows copied over (they
 * keep their nine columns).  The view that reads the log is then defined
 * again, as 1.0 defined it, so that it reads the new tables.  The library
 * works with either order (src/base/catalog.c), so a database still at 1.0
 * keeps the old one.
 */
ALTER TABLE tx_message.log_0 RENAME TO _old_log_0;
ALTER TABLE tx_message.log_1 RENAME TO _old_log_1;
ALTER TABLE tx_message.log_2 RENAME TO _old_log_2;
ALTER INDEX tx_message.log_0_pos RENAME TO _old_log_0_pos;
ALTER INDEX tx_message.log_1_pos RENAME TO _old_log_1_pos;
ALTER INDEX tx_message.log_2_pos RENAME TO _old_log_2_pos;
CREATE TABLE tx_message.log_0 (
	pos bigint NOT NULL,
	sent_at timestamptz NOT NULL,
	topic_id integer NOT NULL,
	payload jsonb NOT NULL,
	key text,
	tags text[],
	headers jsonb,
	msg_id bigint,
	deliver_at timestamptz
) USING heap WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE tx_message.log_1 (LIKE tx_message.log_0) USING heap
	WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE tx_message.log_2 (LIKE tx_message.log_0) USING heap
	WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false);
INSERT INTO tx_message.log_0 (pos, sent_at, topic_id, payload, key, tags, headers, msg_id, deliver_at)
	SELECT pos, sent_at, topic_id, payload, key, tags, headers, msg_id, deliver_at FROM tx_message._old_log_0;
INSERT INTO tx_message.log_1 (pos, sent_at, topic_id, payload, key, tags, headers, msg_id, deliver_at)
	SELECT pos, sent_at, topic_id, payload, key, tags, headers, msg_id, deliver_at FROM tx_message._old_log_1;
INSERT INTO tx_message.log_2 (pos, sent_at, topic_id, payload, key, tags, headers, msg_id, deliver_at)
	SELECT pos, sent_at, topic_id, payload, key, tags, headers, msg_id, deliver_at FROM tx_message._old_log_2;
CREATE INDEX log_0_pos ON tx_message.log_0 (pos);
CREATE INDEX log_1_pos ON tx_message.log_1 (pos);
CREATE INDEX log_2_pos ON tx_message.log_2 (pos);
REVOKE ALL ON tx_message.log_0, tx_message.log_1, tx_message.log_2 FROM PUBLIC;
UPDATE tx_message.log_slots SET log_table = ('tx_message.log_' || slot)::regclass;

CREATE OR REPLACE VIEW tx_message.messages WITH (security_barrier) AS
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

-- leaving the extension first takes them out of its list of dumped tables
ALTER EXTENSION tx_message DROP TABLE tx_message._old_log_0;
ALTER EXTENSION tx_message DROP TABLE tx_message._old_log_1;
ALTER EXTENSION tx_message DROP TABLE tx_message._old_log_2;
DROP TABLE tx_message._old_log_0, tx_message._old_log_1, tx_message._old_log_2;
SELECT pg_catalog.pg_extension_config_dump('tx_message.log_0', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.log_1', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.log_2', '');

/*
 * When the ticker made each slice: what tx_seek by time looks up.  Slices
 * made before the update take the send time of their first message.
 */
ALTER TABLE tx_message.slices ADD COLUMN created_at timestamptz;
UPDATE tx_message.slices s
   SET created_at = coalesce(
		(SELECT t.created_at FROM tx_message.ticks t WHERE t.tick_id = s.tick_id),
		(SELECT max(l.sent_at) FROM (
			SELECT sent_at FROM tx_message.log_0 WHERE pos = s.positions[1]
			UNION ALL SELECT sent_at FROM tx_message.log_1 WHERE pos = s.positions[1]
			UNION ALL SELECT sent_at FROM tx_message.log_2 WHERE pos = s.positions[1]) l),
		now());
ALTER TABLE tx_message.slices
	ALTER COLUMN created_at SET DEFAULT clock_timestamp(),
	ALTER COLUMN created_at SET NOT NULL;
-- tx_seek by time bisects a topic's slices by it (it grows with first_seq): no index

/*
 * The positions of a slice made from now on are packed (src/base/packed.c:
 * about a byte a message instead of eight, and no array header); those of
 * slices made before, or restored from a dump taken at 1.0, stay in
 * positions.  SQL reads either through _slice_positions.
 */
ALTER TABLE tx_message.slices
	ALTER COLUMN positions DROP NOT NULL,
	ADD COLUMN packed bytea,
	ADD CONSTRAINT slices_positions_or_packed
		CHECK ((positions IS NULL) OPERATOR(pg_catalog.<>) (packed IS NULL));
-- inline, as positions is; unlike PLAIN, a short value gets a 1-byte header
-- (only a slice of very scattered transactions reaches the 2 kB at which
-- PostgreSQL would compress it in place)
ALTER TABLE tx_message.slices ALTER COLUMN packed SET STORAGE MAIN;
CREATE FUNCTION tx_message._slice_positions(positions bigint[], packed bytea) RETURNS bigint[]
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'tx_message_slice_positions';
COMMENT ON FUNCTION tx_message._slice_positions(bigint[], bytea)
	IS 'the log positions of a slice, from whichever column holds them';

/*
 * Maintenance without the background worker (the library not in
 * shared_preload_libraries): pg_cron schedules at most once a minute on
 * Debian 12, so one call runs cycles for about a minute, one per
 * tx_message.naptime, each committed on its own.
 *
 * A procedure that commits cannot have a SET clause, so this one resolves
 * no name through search_path: every function, operator and type is
 * schema-qualified.
 */
CREATE PROCEDURE tx_maintenance_loop(duration interval DEFAULT '55 s')
	LANGUAGE plpgsql
	AS $$
DECLARE
	t_end pg_catalog.timestamptz;
	pause pg_catalog.float8;
BEGIN
	IF duration IS NULL THEN
		RAISE EXCEPTION 'duration must not be null' USING ERRCODE = '22004';
	END IF;
	IF duration OPERATOR(pg_catalog.<) '0'::pg_catalog.interval
	   OR duration OPERATOR(pg_catalog.>) '1 day'::pg_catalog.interval THEN
		RAISE EXCEPTION 'duration must be between 0 and 1 day'
			USING ERRCODE = '22023', DETAIL = pg_catalog.format('It is %s.', duration);
	END IF;
	t_end := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) duration;
	LOOP
		PERFORM @extschema@.tx_run_maintenance();
		COMMIT;
		-- in milliseconds; the library is loaded by now
		SELECT s.setting::pg_catalog.float8 OPERATOR(pg_catalog./) 1000 INTO pause
		  FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'tx_message.naptime';
		pause := COALESCE(pause, 1);
		EXIT WHEN pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)
				  pg_catalog.make_interval(secs => pause) OPERATOR(pg_catalog.>) t_end;
		PERFORM pg_catalog.pg_sleep(pause);
	END LOOP;
END $$;
COMMENT ON PROCEDURE tx_maintenance_loop(interval)
	IS 'maintenance cycles for about duration, each committed, one per tx_message.naptime: for pg_cron without the background worker';
REVOKE ALL ON PROCEDURE tx_maintenance_loop(interval) FROM PUBLIC;

/*
 * Totals of tx_message.stats, per subscription (sub_id 0: the topic's own
 * check-backs).  Transactions count in shared memory as they commit; the
 * worker adds the sums here every cycle, in one statement.
 */
CREATE TABLE tx_message.totals (
	topic_id integer NOT NULL,
	sub_id integer NOT NULL,
	delivered bigint NOT NULL DEFAULT 0,
	acked bigint NOT NULL DEFAULT 0,
	nacked bigint NOT NULL DEFAULT 0,
	checks bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (topic_id, sub_id)
) USING heap;
REVOKE ALL ON tx_message.totals FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('tx_message.totals', '');

/*
 * How far behind each consumer group is, and what each topic holds: one row
 * per subscription, and one per topic with consumer_group NULL.  Rows of
 * topics the current user may not monitor are not shown.  Index look-ups
 * only, per subscription: the stream's head (the last slice), the group's
 * watermark, its lease rows above the watermark, its retries and dead
 * letters, and the message at the watermark for its age.
 */
CREATE VIEW tx_message.stats WITH (security_barrier) AS
	SELECT x.* FROM (
	SELECT t.topic, s.consumer_group,
		   greatest(h.head OPERATOR(pg_catalog.-) coalesce(st.done_seq, h.head)
					OPERATOR(pg_catalog.-) coalesce(l.done_above, 0), 0)
			 OPERATOR(pg_catalog.+) coalesce(r.waiting, 0) OPERATOR(pg_catalog.+) coalesce(r.leased, 0) AS backlog,
		   coalesce(l.leased, 0) OPERATOR(pg_catalog.+) coalesce(r.leased, 0) AS in_flight,
		   coalesce(r.waiting, 0) AS retrying,
		   (SELECT count(*) FROM tx_message.dead_letters_data d
			 WHERE d.consumer_group OPERATOR(pg_catalog.=) s.consumer_group
			   AND d.topic_id OPERATOR(pg_catalog.=) t.topic_id) AS dead_letters,
		   now() OPERATOR(pg_catalog.-) least(w.sent_at, r.oldest) AS oldest_unfinished_age,
		   coalesce(tot.delivered, 0) AS delivered_total,
		   coalesce(tot.acked, 0) AS acked_total,
		   coalesce(tot.nacked, 0) AS nacked_total,
		   NULL::bigint AS sent_total, NULL::bigint AS half_pending,
		   NULL::interval AS oldest_half_age, NULL::bigint AS checks_total,
		   NULL::bigint AS delayed_pending
	  FROM tx_message.subscriptions s
	  JOIN tx_message.topics t ON t.topic OPERATOR(pg_catalog.=) s.topic
	  LEFT JOIN tx_message.sub_state st ON st.sub_id OPERATOR(pg_catalog.=) s.sub_id
	  CROSS JOIN LATERAL (
		SELECT greatest((SELECT sl.first_seq OPERATOR(pg_catalog.+) pg_catalog.cardinality(tx_message._slice_positions(sl.positions, sl.packed))
						   FROM tx_message.slices sl WHERE sl.topic_id OPERATOR(pg_catalog.=) t.topic_id
						  ORDER BY sl.first_seq DESC LIMIT 1), t.retired_seq) AS head) h
	  LEFT JOIN LATERAL (
		SELECT sum(pg_catalog.bit_count(pg_catalog.substring(le.done,
				   greatest(st.done_seq OPERATOR(pg_catalog.-) le.block OPERATOR(pg_catalog.*) 256
							OPERATOR(pg_catalog.-) le.first_off, 0)::integer OPERATOR(pg_catalog.+) 1)))::bigint AS done_above,
			   (sum(pg_catalog.bit_count(le.covered OPERATOR(pg_catalog.&) OPERATOR(pg_catalog.~) le.done))
				 FILTER (WHERE le.lease_until OPERATOR(pg_catalog.>) now()))::bigint AS leased
		  FROM tx_message.leases le WHERE le.sub_id OPERATOR(pg_catalog.=) s.sub_id) l ON true
	  LEFT JOIN LATERAL (
		SELECT count(*) FILTER (WHERE rd.state OPERATOR(pg_catalog.=) 'waiting') AS waiting,
			   count(*) FILTER (WHERE rd.state OPERATOR(pg_catalog.=) 'leased') AS leased,
			   min(rd.sent_at) AS oldest
		  FROM tx_message.retries_data rd WHERE rd.sub_id OPERATOR(pg_catalog.=) s.sub_id) r ON true
	  LEFT JOIN LATERAL (
		SELECT (SELECT lg.sent_at FROM (
					SELECT sent_at FROM tx_message.log_0 WHERE pos OPERATOR(pg_catalog.=) p.pos
					UNION ALL SELECT sent_at FROM tx_message.log_1 WHERE pos OPERATOR(pg_catalog.=) p.pos
					UNION ALL SELECT sent_at FROM tx_message.log_2 WHERE pos OPERATOR(pg_catalog.=) p.pos) lg
				 LIMIT 1) AS sent_at
		  FROM (SELECT (tx_message._slice_positions(sl.positions, sl.packed))[st.done_seq OPERATOR(pg_catalog.-) sl.first_seq OPERATOR(pg_catalog.+) 1] AS pos
				  FROM tx_message.slices sl
				 WHERE sl.topic_id OPERATOR(pg_catalog.=) t.topic_id
				   AND sl.first_seq OPERATOR(pg_catalog.<=) st.done_seq
				 ORDER BY sl.first_seq DESC LIMIT 1) p
		 WHERE st.done_seq OPERATOR(pg_catalog.<) h.head) w ON true
	  LEFT JOIN tx_message.totals tot
		ON tot.topic_id OPERATOR(pg_catalog.=) t.topic_id AND tot.sub_id OPERATOR(pg_catalog.=) s.sub_id
	UNION ALL
	SELECT t.topic, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		   greatest((SELECT sl.first_seq OPERATOR(pg_catalog.+) pg_catalog.cardinality(tx_message._slice_positions(sl.positions, sl.packed))
					   FROM tx_message.slices sl WHERE sl.topic_id OPERATOR(pg_catalog.=) t.topic_id
					  ORDER BY sl.first_seq DESC LIMIT 1), t.retired_seq),
		   hm.pending,
		   now() OPERATOR(pg_catalog.-) hm.oldest,
		   coalesce(tot.checks, 0),
		   (SELECT count(*) FROM tx_message.delayed dl WHERE dl.topic_id OPERATOR(pg_catalog.=) t.topic_id)
	  FROM tx_message.topics t
	  CROSS JOIN LATERAL (
		SELECT count(*) AS pending, min(hh.sent_at) AS oldest FROM tx_message.half_messages hh
		 WHERE hh.topic_id OPERATOR(pg_catalog.=) t.topic_id AND hh.state OPERATOR(pg_catalog.=) 'half') hm
	  LEFT JOIN tx_message.totals tot
		ON tot.topic_id OPERATOR(pg_catalog.=) t.topic_id AND tot.sub_id OPERATOR(pg_catalog.=) 0) x
	 WHERE tx_message._may(x.topic, 'monitor');
COMMENT ON VIEW tx_message.stats IS 'backlog, in-flight, retrying and dead letters per consumer group and topic, and what each topic holds, for the topics the current user may monitor';
GRANT SELECT ON tx_message.stats TO PUBLIC;

CREATE FUNCTION tx_stats()
	RETURNS TABLE (topic text, consumer_group text, backlog bigint, in_flight bigint,
				   retrying bigint, dead_letters bigint, oldest_unfinished_age interval,
				   delivered_total bigint, acked_total bigint, nacked_total bigint,
				   sent_total bigint, half_pending bigint, oldest_half_age interval,
				   checks_total bigint, delayed_pending bigint)
	LANGUAGE sql STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'SELECT * FROM tx_message.stats ORDER BY topic, consumer_group NULLS FIRST';
COMMENT ON FUNCTION tx_stats() IS 'the rows of tx_message.stats';

/*
 * Where is my message: the stored messages of a topic with a key, newest
 * first.  Keys are not indexed (an index would cost every send of every
 * topic): it scans what retention keeps of the topic since `since`.
 */
CREATE FUNCTION tx_find(topic text, key text,
						since timestamptz DEFAULT now() - '1 day'::interval,
						max integer DEFAULT 100)
	RETURNS SETOF tx_message.messages
	LANGUAGE C STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_find';
COMMENT ON FUNCTION tx_find(text, text, timestamptz, integer)
	IS 'the stored messages of a topic with a key, sent since a time, newest first (needs receive)';

/*
 * The latest messages of a topic, newest first in the order consumers get
 * them, paged with skip: from the stream's last slices, whatever the
 * backlog (a sort of tx_message.messages would read all of it).
 */
CREATE FUNCTION tx_recent(topic text, max integer DEFAULT 20, skip bigint DEFAULT 0)
	RETURNS SETOF tx_message.messages
	LANGUAGE C STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_recent';
COMMENT ON FUNCTION tx_recent(text, integer, bigint)
	IS 'the latest committed messages of a topic, newest first, after skipping the skip newest (needs receive)';

/*
 * Message trace (tx_trace).  half_checks: every check-back of a half message
 * and its answer (half_messages.checks counts only the unknown ones).
 * moved: where in the log a message that was a half or delayed message went
 * (its id is not its position there).  A message's position is found
 * from the tick that first saw its transaction, by bisection over its
 * topic's slices (tick ids grow with first_seq).  None of them is written on the success path of a send or a
 * receive; rows of messages the log no longer holds are removed once a
 * minute.
 */
CREATE TABLE tx_message.half_checks (
	msg_id bigint NOT NULL,
	checked_at timestamptz NOT NULL,
	answer text NOT NULL,
	detail text,
	CHECK (answer IN ('commit', 'rollback', 'unknown'))
) USING heap;
CREATE INDEX half_checks_msg ON tx_message.half_checks (msg_id, checked_at);
CREATE TABLE tx_message.moved (
	msg_id bigint PRIMARY KEY,
	pos bigint NOT NULL
) USING heap;
REVOKE ALL ON tx_message.half_checks, tx_message.moved FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('tx_message.half_checks', '');
SELECT pg_catalog.pg_extension_config_dump('tx_message.moved', '');

-- the check-backs of the half messages of the topics the current user may receive from
CREATE VIEW tx_message.half_check_history WITH (security_barrier) AS
	SELECT c.msg_id, t.topic, c.checked_at, c.answer, c.detail
	  FROM tx_message.half_checks c
	  JOIN tx_message.half_messages h USING (msg_id)
	  JOIN tx_message.topics t ON t.topic_id OPERATOR(pg_catalog.=) h.topic_id
	 WHERE tx_message._may(h.topic_id, 'receive');
COMMENT ON VIEW tx_message.half_check_history IS 'every check-back of the half messages of the topics the current user may receive from, and its answer';
GRANT SELECT ON tx_message.half_check_history TO PUBLIC;

CREATE FUNCTION tx_trace(msg_id bigint)
	RETURNS TABLE (consumer_group text, state text, attempts integer, lease_pid integer,
				   lease_until timestamptz, last_error text, sent_at timestamptz,
				   deliverable_at timestamptz, first_delivered_at timestamptz,
				   finished_at timestamptz)
	LANGUAGE C STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_trace';
COMMENT ON FUNCTION tx_trace(bigint)
	IS 'where a message is: one row per subscribed consumer group, and one for its half-message life (needs receive)';

/*
 * Dead-letter topics, header filters, replay by time, idempotent sends and
 * per-message check delays (docs/design.md, "Beyond RocketMQ").
 *
 * dead_letter_topic: every message a subscription (or, on topics, a
 * check-back) dead-letters is also sent to this topic, with the privileges
 * of dead_letter_owner, the role that named it.  notify_channel: check-backs
 * without a check function NOTIFY it as well as tx_message_check.
 */
ALTER TABLE tx_message.topics
	ADD COLUMN dead_letter_topic text COLLATE "C",
	ADD COLUMN dead_letter_owner regrole,
	ADD COLUMN notify_channel text,
	ADD CONSTRAINT topics_notify_channel_check
		CHECK (octet_length(notify_channel) BETWEEN 1 AND 63);
ALTER TABLE tx_message.subscriptions
	ADD COLUMN dead_letter_topic text COLLATE "C",
	ADD COLUMN dead_letter_owner regrole,
	ADD COLUMN filter jsonpath,			-- on the headers, with $key and $tags
	-- how many executors may run the handler's batches at once
	ADD COLUMN handler_executors integer NOT NULL DEFAULT 1,
	ADD CONSTRAINT subscriptions_handler_executors_check CHECK (handler_executors BETWEEN 1 AND 8),
	DROP CONSTRAINT subscriptions_start_from_check,
	ADD CONSTRAINT subscriptions_start_from_check
		CHECK (start_from IN ('now', 'earliest') OR start_from ~ '^[0-9]{4}-');
-- NULL: the topic's check_after
ALTER TABLE tx_message.half_messages ADD COLUMN check_after interval;

/*
 * A receive takes the first due retries of each subscription in (due_at,
 * msg_id) order: with msg_id in the index they come in that order, where
 * retries that fell due at the same moment (a batch whose lease expired,
 * a failure of many at once) had to be sorted first, all of them.
 */
DROP INDEX tx_message.retries_due;
CREATE INDEX retries_due ON tx_message.retries_data (sub_id, due_at, msg_id);

/*
 * An ordered subscription holds back a message whose key waits in its
 * retries: a claim looks up the keys of the messages it considers, where
 * it read every key of the subscription's retries on each call.
 */
CREATE INDEX retries_keys ON tx_message.retries_data (sub_id, key) WHERE key IS NOT NULL;

/*
 * Idempotent sends: the first message sent to a topic with a dedup key.
 * The primary key makes a second sender wait for the first, as a unique
 * index does; a row goes once its message is no longer stored.
 */
CREATE TABLE tx_message.dedup (
	topic_id integer NOT NULL,
	dedup_key text COLLATE "C" NOT NULL,
	msg_id bigint NOT NULL,
	sent_at timestamptz NOT NULL,
	PRIMARY KEY (topic_id, dedup_key)
) USING heap;
-- the housekeeping looks only at rows older than the shortest retention
CREATE INDEX dedup_sent_at ON tx_message.dedup (sent_at);
REVOKE ALL ON tx_message.dedup FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('tx_message.dedup', '');

/*
 * Functions that gained arguments are made again.  Their privileges (GRANT
 * EXECUTE or REVOKE made on the old ones) are carried over.  Grants made in
 * an extension script count as the extension's own (pg_init_privs), which
 * pg_dump leaves out: the carried ones are the database's, so the initial
 * privileges are set back to those of a fresh install, and pg_dump dumps
 * the difference as it did before the update.
 */
CREATE FUNCTION tx_message._carry_privileges(old_acl aclitem[], fn regprocedure)
	RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a record;
	fresh aclitem[];
BEGIN
	IF old_acl IS NULL THEN
		RETURN;					-- the default: PUBLIC may execute
	END IF;
	SELECT proacl INTO fresh FROM pg_proc WHERE oid = fn;
	EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
	FOR a IN SELECT * FROM aclexplode(old_acl) LOOP
		CONTINUE WHEN a.grantee = (SELECT proowner FROM pg_proc WHERE oid = fn);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', fn,
					   CASE WHEN a.grantee = 0 THEN 'PUBLIC'
							ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
					   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
	IF fresh IS NULL THEN
		DELETE FROM pg_init_privs
		 WHERE classoid = 'pg_proc'::regclass AND objoid = fn AND objsubid = 0;
	ELSE
		UPDATE pg_init_privs SET initprivs = fresh
		 WHERE classoid = 'pg_proc'::regclass AND objoid = fn AND objsubid = 0;
	END IF;
END $$;
ALTER FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean)
	RENAME TO _old_tx_create_topic;
ALTER FUNCTION tx_alter_topic(text, interval, regprocedure, interval, interval, integer)
	RENAME TO _old_tx_alter_topic;
ALTER FUNCTION tx_send(text, jsonb, text, text[], jsonb, interval) RENAME TO _old_tx_send;
ALTER FUNCTION tx_send_batch(text, jsonb[], text[], text[], jsonb, interval)
	RENAME TO _old_tx_send_batch;
ALTER FUNCTION tx_send_half(text, jsonb, text, text[], jsonb) RENAME TO _old_tx_send_half;
ALTER FUNCTION tx_subscribe(text, text, text[], regprocedure, integer, interval[], interval, boolean, text)
	RENAME TO _old_tx_subscribe;

CREATE FUNCTION tx_create_topic(topic text,
								retention interval DEFAULT '3 days',
								check_function regprocedure DEFAULT NULL,
								check_after interval DEFAULT '6 s',
								check_interval interval DEFAULT '30 s',
								check_max integer DEFAULT 15,
								if_not_exists boolean DEFAULT false,
								dead_letter_topic text DEFAULT NULL,
								notify_channel text DEFAULT NULL)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_create_topic';
COMMENT ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text)
	IS 'create a topic; the check-back options apply to its half messages';
-- Who may create topics is decided with GRANT EXECUTE on this function.
REVOKE ALL ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text) FROM PUBLIC;

CREATE FUNCTION tx_alter_topic(topic text,
							   retention interval DEFAULT NULL,
							   check_function regprocedure DEFAULT NULL,
							   check_after interval DEFAULT NULL,
							   check_interval interval DEFAULT NULL,
							   check_max integer DEFAULT NULL,
							   dead_letter_topic text DEFAULT NULL,
							   notify_channel text DEFAULT NULL)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_alter_topic';
COMMENT ON FUNCTION tx_alter_topic(text, interval, regprocedure, interval, interval, integer, text, text)
	IS 'change options of a topic; NULL leaves an option unchanged, '''' removes a dead-letter topic or channel';

CREATE FUNCTION tx_send(topic text, payload jsonb,
						key text DEFAULT NULL,
						tags text[] DEFAULT NULL,
						headers jsonb DEFAULT NULL,
						delay interval DEFAULT NULL,
						dedup_key text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_send';
COMMENT ON FUNCTION tx_send(text, jsonb, text, text[], jsonb, interval, text)
	IS 'send a message in the current transaction; returns its id (that of the retained message with the same dedup_key, if any)';

CREATE FUNCTION tx_send_batch(topic text, payloads jsonb[],
							  keys text[] DEFAULT NULL,
							  tags text[] DEFAULT NULL,
							  headers jsonb DEFAULT NULL,
							  delay interval DEFAULT NULL,
							  dedup_keys text[] DEFAULT NULL)
	RETURNS SETOF bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100
	AS 'MODULE_PATHNAME', 'tx_send_batch';
COMMENT ON FUNCTION tx_send_batch(text, jsonb[], text[], text[], jsonb, interval, text[])
	IS 'send several messages in the current transaction; returns their ids in payload order';

CREATE FUNCTION tx_send_half(topic text, payload jsonb,
							 key text DEFAULT NULL,
							 tags text[] DEFAULT NULL,
							 headers jsonb DEFAULT NULL,
							 dedup_key text DEFAULT NULL,
							 check_after interval DEFAULT NULL)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_send_half';
COMMENT ON FUNCTION tx_send_half(text, jsonb, text, text[], jsonb, text, interval)
	IS 'store a half message: invisible to consumers until tx_commit_half or a check-back commits it';

CREATE FUNCTION tx_subscribe(topic text, consumer_group text,
							 tags text[] DEFAULT NULL,
							 handler regprocedure DEFAULT NULL,
							 max_retries integer DEFAULT 16,
							 backoff interval[] DEFAULT '{10 s,30 s,1 min,2 min,3 min,4 min,5 min,6 min,7 min,8 min,9 min,10 min,20 min,30 min,1 h,2 h}',
							 lease interval DEFAULT '30 s',
							 ordered boolean DEFAULT false,
							 start_from text DEFAULT NULL,
							 dead_letter_topic text DEFAULT NULL,
							 filter jsonpath DEFAULT NULL,
							 handler_executors integer DEFAULT 1)
	RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_subscribe';
COMMENT ON FUNCTION tx_subscribe(text, text, text[], regprocedure, integer, interval[], interval, boolean, text, text, jsonpath, integer)
	IS 'subscribe a consumer group to a topic, or change its options';

/*
 * Acknowledge what this transaction received from a group, without sending
 * the ids back: the exactly-once loop's ack.  A hot path like the other
 * tx_ack: no SET clause, and it resolves no name through search_path.  It
 * may be executed by whoever may execute tx_ack(text, bigint[]).
 */
CREATE FUNCTION tx_ack(consumer_group text)
	RETURNS integer
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'tx_ack_received';
COMMENT ON FUNCTION tx_ack(text)
	IS 'finish every message this transaction received from the group and still holds; returns how many this call finished';
SELECT tx_message._carry_privileges(o.proacl, '@extschema@.tx_ack(text)'::regprocedure)
  FROM pg_catalog.pg_proc o WHERE o.oid = '@extschema@.tx_ack(text, bigint[])'::regprocedure;

SELECT tx_message._carry_privileges(o.proacl, p.oid::regprocedure)
  FROM pg_catalog.pg_proc o JOIN pg_catalog.pg_proc p ON o.proname = '_old_' || p.proname
 WHERE o.pronamespace = '@extschema@'::regnamespace
   AND p.pronamespace = '@extschema@'::regnamespace;
DROP FUNCTION _old_tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean);
DROP FUNCTION _old_tx_alter_topic(text, interval, regprocedure, interval, interval, integer);
DROP FUNCTION _old_tx_send(text, jsonb, text, text[], jsonb, interval);
DROP FUNCTION _old_tx_send_batch(text, jsonb[], text[], text[], jsonb, interval);
DROP FUNCTION _old_tx_send_half(text, jsonb, text, text[], jsonb);
DROP FUNCTION _old_tx_subscribe(text, text, text[], regprocedure, integer, interval[], interval, boolean, text);
DROP FUNCTION tx_message._carry_privileges(aclitem[], regprocedure);

/*
 * Replay: move a consumer group's position on a topic to a point in time,
 * or to the oldest retained ('earliest') or the next ('latest') message.
 */
CREATE FUNCTION tx_seek(consumer_group text, topic text, target timestamptz)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_seek';
COMMENT ON FUNCTION tx_seek(text, text, timestamptz)
	IS 'move a consumer group''s position on a topic to the first message committed at or after target; returns how many messages are ahead of it';
CREATE FUNCTION tx_seek(consumer_group text, topic text, target text)
	RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_seek_text';
COMMENT ON FUNCTION tx_seek(text, text, text)
	IS 'move a consumer group''s position on a topic to ''earliest'', ''latest'' or a time; returns how many messages are ahead of it';

/*
 * Change data capture (docs/cdc.md): with it on, every message that enters
 * the log is also a transactional logical decoding message with the prefix
 * 'tx_message'.  A setting of this database, like the rest of instance: not
 * dumped.
 */
ALTER TABLE tx_message.instance ADD COLUMN cdc boolean NOT NULL DEFAULT false;
CREATE FUNCTION tx_cdc_enable() RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_cdc_enable';
COMMENT ON FUNCTION tx_cdc_enable()
	IS 'from now on, write every message that enters the log as a logical decoding message too (needs wal_level = logical)';
REVOKE ALL ON FUNCTION tx_cdc_enable() FROM PUBLIC;
CREATE FUNCTION tx_cdc_disable() RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'tx_cdc_disable';
COMMENT ON FUNCTION tx_cdc_disable()
	IS 'stop writing messages as logical decoding messages';
REVOKE ALL ON FUNCTION tx_cdc_disable() FROM PUBLIC;

-- backends that cached the 1.0 catalog look again (a change of pg_namespace)
GRANT USAGE ON SCHEMA tx_message TO PUBLIC;
