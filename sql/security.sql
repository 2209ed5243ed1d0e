-- Security: attacks by roles that hold only what PostgreSQL gives them (and,
-- where an attack needs it, one thing more, said at each attack).  Each
-- attack must fail with the right SQLSTATE and write nothing; afterwards a
-- superuser checks that nothing changed.  The background worker runs cycles
-- at any time too, so the tests assert outcomes, never who produced them;
-- where an attack needs user code to run in a given session, the code
-- refuses to run anywhere else (and is retried).  This test has a database
-- of its own.
\set VERBOSITY terse
SELECT current_user AS superuser \gset
CREATE DATABASE tx_message_security;
\c tx_message_security
SET client_min_messages = warning;
CREATE EXTENSION tx_message;
RESET client_min_messages;

-- Run worker cycles in this session until a condition holds (10 s at most).
CREATE PROCEDURE maintain_until(condition text, timeout interval DEFAULT '10 s')
LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
	done boolean;
BEGIN
	LOOP
		PERFORM tx_run_maintenance();
		COMMIT;
		EXECUTE 'SELECT ' || condition INTO done;
		EXIT WHEN done;
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'timed out waiting for %', condition;
		END IF;
		PERFORM pg_sleep(0.02);
	END LOOP;
END $$;

-- What a superuser sees of the extension's state (ticks, positions and
-- timestamps change with every worker cycle and are left out).
CREATE VIEW sec_state AS
SELECT (SELECT count(*) FROM tx_message.topics) AS topics,
       (SELECT count(*) FROM tx_message.topic_grants) AS grants,
       (SELECT count(*) FROM tx_message.subscriptions) AS subscriptions,
       (SELECT string_agg(consumer_group || ':' || owner::text, ',' ORDER BY consumer_group)
          FROM tx_message.consumer_groups) AS group_owners,
       (SELECT string_agg(topic || ':' || replace(owner::text, current_user, 'superuser') || ':'
                          || coalesce(check_owner::text, '-'), ',' ORDER BY topic)
          FROM tx_message.topics) AS topic_owners,
       (SELECT count(*) FROM tx_message.log_0) + (SELECT count(*) FROM tx_message.log_1)
         + (SELECT count(*) FROM tx_message.log_2) AS log_rows,
       (SELECT string_agg(state, ',' ORDER BY msg_id) FROM tx_message.half_messages) AS half_states,
       (SELECT count(*) FROM tx_message.delayed) AS delayed,
       (SELECT count(*) FROM tx_message.retries_data) AS retries,
       (SELECT count(*) FROM tx_message.dead_letters_data) AS dead_letters;

--------------------------------------------------------------------------
-- The victims: a topic of the superuser, a team that owns a consumer group
-- on it (with a member), a check-back dead letter, a group dead letter.
--------------------------------------------------------------------------
CREATE ROLE sec_nobody;                       -- given nothing at all
CREATE ROLE sec_team NOLOGIN;                 -- owns the group sec.billing
CREATE ROLE sec_member IN ROLE sec_team;      -- one of its services
CREATE ROLE sec_outsider;                     -- may receive from the topic, not in the team
SELECT tx_create_topic('sec.orders');
SELECT tx_grant('sec.orders', 'sec_team', 'receive');
SELECT tx_grant('sec.orders', 'sec_outsider', 'receive');
SET ROLE sec_team;
SELECT tx_subscribe('sec.orders', 'sec.billing');
SELECT tx_subscribe('sec.orders', 'sec.dlq', max_retries => 0);
RESET ROLE;
SELECT tx_send('sec.orders', '{"card": "4111-victim"}', key => 'victim-key') AS m1 \gset
SELECT tx_send('sec.orders', '{"card": "dead"}') AS dead1 \gset
SELECT tx_send_half('sec.orders', '{"half": "victim"}') AS h1 \gset
-- a dead letter of the group sec.dlq
SET ROLE sec_member;
SELECT count(*) AS received FROM tx_receive('sec.dlq', 10, wait => '5 s');
SELECT tx_nack('sec.dlq', :dead1, 'failed on purpose');
SELECT tx_ack('sec.dlq', :m1);
RESET ROLE;
-- a check-back dead letter: a topic without check function, checked once
SELECT tx_create_topic('sec.ext', check_after => '10 ms', check_interval => '10 ms', check_max => 1);
SELECT tx_send_half('sec.ext', '{"half": "abandoned"}', key => 'half-key') AS hdead \gset
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :hdead));

-- a function an attacker would love the planner to call on every row
CREATE FUNCTION sec_leak(anyelement) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	RAISE NOTICE 'leaked: %', $1;
	RETURN true;
END $$;

CREATE TABLE sec_baseline AS SELECT * FROM sec_state;
SELECT topics, grants, subscriptions, group_owners, topic_owners, log_rows, half_states, dead_letters
  FROM sec_baseline;

--------------------------------------------------------------------------
-- A role with nothing
--------------------------------------------------------------------------
SET ROLE sec_nobody;
-- sending: to any topic, in any way
SELECT tx_send('sec.orders', '{"forged": true}');
\echo :SQLSTATE
SELECT tx_send('sec.orders', '{"forged": true}', delay => '1 s');
\echo :SQLSTATE
SELECT tx_send_batch('sec.orders', ARRAY['{"forged": 1}', '{"forged": 2}']::jsonb[]);
\echo :SQLSTATE
SELECT tx_send_half('sec.orders', '{"forged": true}');
\echo :SQLSTATE
-- deciding another role's half message
SELECT tx_commit_half(:h1);
\echo :SQLSTATE
SELECT tx_rollback_half(:h1);
\echo :SQLSTATE
-- reading: the views show nothing, even to a function the planner would
-- like to run first; the tables are closed
SELECT count(*) AS messages FROM tx_message.messages;
SELECT payload FROM tx_message.messages WHERE sec_leak(payload);
SELECT key FROM tx_message.messages WHERE sec_leak(key);
SELECT payload FROM tx_message.dead_letters WHERE sec_leak(payload);
SELECT payload FROM tx_message.retries WHERE sec_leak(payload);
SELECT count(*) AS topics FROM tx_message.topics WHERE sec_leak(topic);
SELECT count(*) AS subscriptions FROM tx_message.subscriptions WHERE sec_leak(consumer_group);
SELECT count(*) AS groups FROM tx_message.consumer_groups WHERE sec_leak(consumer_group);
SELECT count(*) AS grants FROM tx_message.grants WHERE sec_leak(topic);
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['log_0', 'log_1', 'log_2', 'log_slots', 'half_messages', 'delayed',
	                         'ticks', 'slices', 'sub_state', 'leases', 'retries_data',
	                         'dead_letters_data', 'topic_grants']
	LOOP
		BEGIN
			EXECUTE format('SELECT count(*) FROM tx_message.%I', t);
			RAISE NOTICE 'tx_message.% is readable', t;
		EXCEPTION WHEN OTHERS THEN
			RAISE NOTICE 'tx_message.%: %', t, SQLSTATE;
		END;
	END LOOP;
END $$;
-- writing the tables directly
INSERT INTO tx_message.topic_grants (topic, grantee, privilege, granted_by)
VALUES ('sec.orders', 'sec_nobody', 'send', 'sec_nobody');
\echo :SQLSTATE
UPDATE tx_message.consumer_groups SET owner = 'sec_nobody';
\echo :SQLSTATE
UPDATE tx_message.topics SET owner = 'sec_nobody';
\echo :SQLSTATE
DELETE FROM tx_message.subscriptions;
\echo :SQLSTATE
-- consuming in another role's group
SELECT * FROM tx_receive('sec.billing');
\echo :SQLSTATE
SELECT tx_ack('sec.billing', ARRAY[:m1]::bigint[]);
\echo :SQLSTATE
SELECT tx_ack('sec.billing', :m1);
\echo :SQLSTATE
SELECT tx_nack('sec.billing', :m1);
\echo :SQLSTATE
SELECT tx_extend_lease('sec.billing', ARRAY[:m1]::bigint[], '1 h');
\echo :SQLSTATE
SELECT tx_unsubscribe('sec.orders', 'sec.billing');
\echo :SQLSTATE
SELECT tx_redrive('sec.dlq');
\echo :SQLSTATE
SELECT tx_purge_dead_letters('sec.dlq');
\echo :SQLSTATE
SELECT tx_purge_dead_letters('sec.dlq', msg_ids => ARRAY[:dead1]::bigint[]);
\echo :SQLSTATE
SELECT tx_redrive_half();
\echo :SQLSTATE
SELECT tx_redrive_half(ARRAY[:hdead]::bigint[]);
\echo :SQLSTATE
SELECT tx_purge_half_dead_letters();
\echo :SQLSTATE
-- subscribing its own group to a topic it may not receive from
SELECT tx_subscribe('sec.orders', 'sec.nobody', start_from => 'earliest');
\echo :SQLSTATE
SELECT tx_subscribe('sec.orders', 'sec.nobody', handler => 'sec_leak(anyelement)');
\echo :SQLSTATE
-- administration
SELECT tx_create_topic('sec.mine');
\echo :SQLSTATE
SELECT tx_alter_topic('sec.orders', retention => '1 s');
\echo :SQLSTATE
SELECT tx_drop_topic('sec.orders', "cascade" => true);
\echo :SQLSTATE
SELECT tx_grant('sec.orders', 'sec_nobody', 'all');
\echo :SQLSTATE
SELECT tx_revoke('sec.orders', 'sec_team', 'receive');
\echo :SQLSTATE
SELECT tx_run_maintenance();
\echo :SQLSTATE
SELECT count(*) FROM tx_worker_status();
\echo :SQLSTATE
SELECT tx_message._installed();
\echo :SQLSTATE
RESET ROLE;
-- nothing was written, nothing was decided
SELECT * FROM sec_state EXCEPT SELECT * FROM sec_baseline;
SELECT state FROM tx_message.messages WHERE msg_id = :h1;

--------------------------------------------------------------------------
-- Injection into another role's consumer group, and group name reuse
--------------------------------------------------------------------------
CREATE ROLE sec_attacker;
CREATE SCHEMA sec_attacker AUTHORIZATION sec_attacker;
GRANT EXECUTE ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text)
	TO sec_attacker;
SET ROLE sec_attacker;
SELECT tx_create_topic('sec.evil', check_after => '1 h', check_interval => '1 h');
SELECT tx_send('sec.evil', '{"pay": "attacker"}') > 0 AS sent;
-- its own topic into the team's group: the group is not the attacker's
SELECT tx_subscribe('sec.evil', 'sec.billing', start_from => 'earliest');
\echo :SQLSTATE
SELECT tx_subscribe('sec.evil', 'sec.dlq', start_from => 'earliest');
\echo :SQLSTATE
RESET ROLE;
SELECT topic, consumer_group, owner::text FROM tx_message.subscriptions
 WHERE consumer_group IN ('sec.billing', 'sec.dlq') ORDER BY 1, 2;
SELECT consumer_group, owner::text FROM tx_message.consumer_groups ORDER BY 1;
-- the team's service receives its message as a first delivery, untouched
SET ROLE sec_member;
SELECT msg_id = :m1 AS victim_message, payload, attempt FROM tx_receive('sec.billing', 10, wait => '5 s');
SELECT tx_ack('sec.billing', ARRAY[:m1, :dead1]::bigint[]) AS acked;
RESET ROLE;
-- a group that no longer exists keeps its dead letters; whoever takes its
-- name next does not get them
SET ROLE sec_team;
SELECT tx_unsubscribe('sec.orders', 'sec.dlq');
RESET ROLE;
SET ROLE sec_attacker;
SELECT tx_subscribe('sec.evil', 'sec.dlq');
SELECT consumer_group, owner::text FROM tx_message.consumer_groups WHERE consumer_group = 'sec.dlq';
SELECT count(*) AS visible_dead_letters FROM tx_message.dead_letters WHERE consumer_group = 'sec.dlq';
SELECT tx_redrive('sec.dlq');
\echo :SQLSTATE
SELECT tx_purge_dead_letters('sec.dlq');
\echo :SQLSTATE
SELECT tx_purge_dead_letters('sec.dlq', msg_ids => ARRAY[:dead1]::bigint[]);
\echo :SQLSTATE
SELECT tx_unsubscribe('sec.evil', 'sec.dlq');
RESET ROLE;
SELECT msg_id = :dead1 AS victim_dead_letter, consumer_group, last_error
  FROM tx_message.dead_letters WHERE consumer_group = 'sec.dlq';

--------------------------------------------------------------------------
-- Becoming superuser through a check function: the attacker's check
-- function tries SET ROLE to the session's (superuser) role and ALTER ROLE
-- ... SUPERUSER; a superuser then alters the topic (not its check
-- function) and runs the cycles.
--------------------------------------------------------------------------
CREATE TABLE sec_check_runs (who name, super boolean, set_role text, alter_role text);
GRANT INSERT ON sec_check_runs TO PUBLIC;
SET ROLE sec_attacker;
CREATE FUNCTION sec_attacker.evil_check(m tx_message.message) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	set_role text := 'succeeded';
	alter_role text := 'succeeded';
BEGIN
	BEGIN
		EXECUTE format('SET ROLE %I', session_user);
	EXCEPTION WHEN OTHERS THEN
		set_role := SQLSTATE;
	END;
	BEGIN
		EXECUTE 'ALTER ROLE sec_attacker SUPERUSER';
	EXCEPTION WHEN OTHERS THEN
		alter_role := SQLSTATE;
	END;
	INSERT INTO public.sec_check_runs
	SELECT current_user, rolsuper, set_role, alter_role FROM pg_catalog.pg_roles WHERE rolname = current_user;
	RETURN 'unknown';
END $$;
SELECT tx_alter_topic('sec.evil', check_function => 'sec_attacker.evil_check(tx_message.message)');
SELECT tx_send_half('sec.evil', '{"half": "bait"}') AS evil_half \gset
RESET ROLE;
SELECT tx_alter_topic('sec.evil', check_after => '10 ms', check_interval => '10 ms', check_max => 1000);
SELECT owner::text, check_function, check_owner::text, altered_at IS NOT NULL AS altered
  FROM tx_message.topics WHERE topic = 'sec.evil';
CALL maintain_until('(SELECT count(*) > 0 FROM sec_check_runs)');
-- it ran as the attacker, who stayed what it was
SELECT DISTINCT who, super, set_role, alter_role FROM sec_check_runs;
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_attacker';
SELECT state FROM tx_message.messages WHERE msg_id = :evil_half;
SELECT tx_rollback_half(:evil_half);
SELECT tx_alter_topic('sec.evil', check_function => '-');

-- a check function whose role lost 'send' is not run
CREATE ROLE sec_checker;
CREATE TABLE sec_checker_runs (who name);
GRANT INSERT ON sec_checker_runs TO sec_checker;
CREATE FUNCTION sec_checker_check(m tx_message.message) RETURNS text LANGUAGE sql AS $$
	INSERT INTO public.sec_checker_runs VALUES (current_user) RETURNING 'commit' $$;
SELECT tx_create_topic('sec.checked');
SELECT tx_grant('sec.checked', 'sec_checker', 'admin');
SELECT tx_grant('sec.checked', 'sec_checker', 'send');
SET ROLE sec_checker;
SELECT tx_alter_topic('sec.checked', check_function => 'sec_checker_check(tx_message.message)',
                      check_after => '10 ms', check_interval => '10 ms', check_max => 2);
RESET ROLE;
SELECT owner::text = :'superuser' AS superuser_owns, check_owner::text FROM tx_message.topics WHERE topic = 'sec.checked';
SELECT tx_revoke('sec.checked', 'sec_checker', 'send');
SELECT tx_send_half('sec.checked', '{}') AS unchecked \gset
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :unchecked));
SELECT count(*) AS check_runs FROM sec_checker_runs;
SELECT reason, last_error FROM tx_message.dead_letters WHERE msg_id = :unchecked;

--------------------------------------------------------------------------
-- User code cannot reach the user code that runs after it.  The attacker's
-- handler A changes search_path (to its schema, which has a lower(text)),
-- work_mem and statement_timeout with set_config(..., false), and tries to
-- create a temporary table (which would come first in B's path); a
-- superuser's handler B calls lower() unqualified.  Both run only in this
-- session (sec_driver), so that A runs before B in one tx_run_maintenance
-- call (handlers run in subscription order), and then across calls.
--------------------------------------------------------------------------
CREATE TABLE sec_canary (who name, super boolean, what text);
GRANT INSERT ON sec_canary TO PUBLIC;
CREATE FUNCTION sec_attacker.lower(text) RETURNS text LANGUAGE sql AS $$
	INSERT INTO public.sec_canary
	SELECT current_user, rolsuper, 'sec_attacker.lower' FROM pg_catalog.pg_roles WHERE rolname = current_user
	RETURNING 'captured' $$;
ALTER FUNCTION sec_attacker.lower(text) OWNER TO sec_attacker;
GRANT USAGE ON SCHEMA sec_attacker TO PUBLIC;
CREATE TABLE sec_driver (pid integer);
INSERT INTO sec_driver VALUES (pg_backend_pid());
CREATE TABLE sec_runs (handler text, topic text, who name, pid integer, xact xid8,
                       search_path text, work_mem text, statement_timeout text, lowered text,
                       temp_table text);
GRANT SELECT ON sec_driver TO PUBLIC;
GRANT SELECT, INSERT ON sec_runs TO PUBLIC;
SELECT tx_create_topic('sec.shared');
SELECT tx_create_topic('sec.later');
SELECT tx_grant('sec.shared', 'sec_attacker', 'receive');
SET ROLE sec_attacker;
CREATE FUNCTION sec_attacker.a_handler(m tx_message.message) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	temp_table text := 'created';
BEGIN
	IF pg_backend_pid() <> ALL (SELECT pid FROM public.sec_driver) THEN
		RAISE EXCEPTION 'not the driving session';
	END IF;
	BEGIN
		CREATE TEMPORARY TABLE sec_b_input (k text);
	EXCEPTION WHEN OTHERS THEN
		temp_table := SQLSTATE;
	END;
	INSERT INTO public.sec_runs VALUES ('a', m.topic, current_user, pg_backend_pid(), pg_current_xact_id(),
		current_setting('search_path'), current_setting('work_mem'), current_setting('statement_timeout'),
		NULL, temp_table);
	PERFORM set_config('search_path', 'sec_attacker, pg_catalog', false);
	PERFORM set_config('work_mem', '42MB', false);
	PERFORM set_config('statement_timeout', '42s', false);
END $$;
SELECT tx_subscribe('sec.shared', 'sec.a', handler => 'sec_attacker.a_handler(tx_message.message)',
                    max_retries => 10000, backoff => '{20 ms}');
RESET ROLE;
CREATE FUNCTION sec_b_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF pg_backend_pid() <> ALL (SELECT pid FROM public.sec_driver) THEN
		RAISE EXCEPTION 'not the driving session';
	END IF;
	IF m.topic = 'sec.shared' AND NOT EXISTS (SELECT FROM public.sec_runs r
	                                           WHERE r.handler = 'a' AND r.xact = pg_current_xact_id()) THEN
		RAISE EXCEPTION 'A has not run in this call';
	END IF;
	INSERT INTO public.sec_runs VALUES ('b', m.topic, current_user, pg_backend_pid(), pg_current_xact_id(),
		current_setting('search_path'), current_setting('work_mem'), current_setting('statement_timeout'),
		lower('ABC'));
END $$;
SELECT tx_subscribe('sec.shared', 'sec.b', handler => 'sec_b_handler(tx_message.message)',
                    max_retries => 10000, backoff => '{20 ms}');
SELECT tx_subscribe('sec.later', 'sec.b', handler => 'sec_b_handler(tx_message.message)',
                    max_retries => 10000, backoff => '{20 ms}');
-- the session's own settings, which user code must not see either
SET work_mem = '5MB';
CREATE PROCEDURE sec_drive_shared() LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '10 s';
BEGIN
	LOOP
		PERFORM tx_send('sec.shared', '{"n": 1}');
		COMMIT;
		PERFORM tx_run_maintenance();
		COMMIT;
		EXIT WHEN EXISTS (SELECT FROM sec_runs WHERE handler = 'b' AND topic = 'sec.shared');
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'timed out waiting for A and B in one call';
		END IF;
	END LOOP;
END $$;
CALL sec_drive_shared();
-- one call: A ran, then B, in the same transaction of this session
SELECT DISTINCT a.who AS a_who, replace(b.who, :'superuser', 'superuser') AS b_who, b.search_path, b.work_mem, b.statement_timeout, b.lowered
  FROM sec_runs a JOIN sec_runs b ON a.xact = b.xact AND a.pid = b.pid
 WHERE a.handler = 'a' AND b.handler = 'b';
-- across calls: A alone on sec.shared, then B alone on sec.later
SELECT tx_unsubscribe('sec.shared', 'sec.b');
SELECT count(*) AS a_runs FROM sec_runs WHERE handler = 'a' \gset
SELECT tx_send('sec.shared', '{"n": 2}') > 0 AS sent;
CALL maintain_until(format($$(SELECT count(*) > %s FROM sec_runs WHERE handler = 'a')$$, :a_runs));
SELECT tx_send('sec.later', '{"n": 3}') > 0 AS sent;
CALL maintain_until($$(SELECT count(*) > 0 FROM sec_runs WHERE handler = 'b' AND topic = 'sec.later')$$);
SELECT DISTINCT replace(who, :'superuser', 'superuser') AS who, search_path, work_mem, statement_timeout, lowered
  FROM sec_runs WHERE handler = 'b' AND topic = 'sec.later';
-- what A saw itself: fresh settings too, not this session's work_mem
SELECT DISTINCT who, search_path, work_mem, statement_timeout, temp_table FROM sec_runs WHERE handler = 'a';
-- nor did anything reach this session
SHOW search_path;
SHOW work_mem;
SHOW statement_timeout;
RESET work_mem;
SELECT replace(who, :'superuser', 'superuser') AS who, super, what FROM sec_canary;
SELECT tx_unsubscribe('sec.shared', 'sec.a');
SELECT tx_unsubscribe('sec.later', 'sec.b');

-- a handler gets its own role's defaults: an unqualified table of its schema
CREATE ROLE sec_r;
CREATE SCHEMA sec_r_schema AUTHORIZATION sec_r;
CREATE TABLE sec_r_schema.r_hits (search_path text, work_mem text);
ALTER TABLE sec_r_schema.r_hits OWNER TO sec_r;
ALTER ROLE sec_r SET search_path = sec_r_schema, public;
ALTER ROLE sec_r IN DATABASE tx_message_security SET work_mem = '3MB';
CREATE FUNCTION sec_r_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO r_hits VALUES (current_setting('search_path'), current_setting('work_mem'));
END $$;
SELECT tx_create_topic('sec.r');
SELECT tx_grant('sec.r', 'sec_r', 'receive');
SET ROLE sec_r;
SELECT tx_subscribe('sec.r', 'sec.r', handler => 'sec_r_handler(tx_message.message)', backoff => '{10 ms}');
RESET ROLE;
SELECT tx_send('sec.r', '{}') > 0 AS sent;
CALL maintain_until('(SELECT count(*) = 1 FROM sec_r_schema.r_hits)');
SELECT * FROM sec_r_schema.r_hits;
SELECT tx_drop_topic('sec.r', "cascade" => true);

--------------------------------------------------------------------------
-- A role that was granted EXECUTE on tx_run_maintenance() (as for pg_cron)
-- must not reach a superuser's handler through its session: not through its
-- role's default search_path (which it may set itself), nor through
-- temporary objects it created.  tx_run_maintenance() runs only the code of
-- roles the caller has the privileges of, and leaves the rest to the worker:
-- the handler never runs in a session of sec_ops (it records every run it
-- makes there, and fails anywhere else).
--------------------------------------------------------------------------
CREATE ROLE sec_ops LOGIN;
CREATE SCHEMA sec_ops AUTHORIZATION sec_ops;
GRANT EXECUTE ON FUNCTION tx_run_maintenance() TO sec_ops;
CREATE TABLE sec_cfg (k text);
INSERT INTO sec_cfg VALUES ('real');
CREATE TABLE sec_ops_log (payload jsonb);
CREATE TABLE sec_ops_seen (n int, who name, search_path text, work_mem text, cfg text, lowered text);
GRANT SELECT ON sec_ops_seen TO sec_ops;
-- the handler reads a table and writes one, unqualified (a separate statement
-- for each, planned when it runs), and calls lower() unqualified
CREATE FUNCTION sec_su_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	cfg text;
BEGIN
	IF session_user <> 'sec_ops' THEN
		RAISE EXCEPTION 'not a session of sec_ops';
	END IF;
	IF m.payload->>'n' = '2' THEN
		cfg := (SELECT k FROM sec_cfg);
		INSERT INTO sec_ops_log VALUES (m.payload);
	END IF;
	INSERT INTO public.sec_ops_seen
	VALUES ((m.payload->>'n')::int, current_user, current_setting('search_path'),
	        current_setting('work_mem'), cfg, lower('ABC'));
END $$;
SELECT tx_create_topic('sec.ops');
SELECT tx_subscribe('sec.ops', 'sec.su', handler => 'sec_su_handler(tx_message.message)',
                    max_retries => 10000, backoff => '{20 ms}');
CREATE PROCEDURE sec_ops_drive() LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..10 LOOP
		PERFORM public.tx_run_maintenance();
		COMMIT;
		PERFORM pg_catalog.pg_sleep(0.05);
	END LOOP;
END $$;
-- 1. the caller's role default search_path
SELECT tx_send('sec.ops', '{"n": 1}') > 0 AS sent;
\c - sec_ops
CREATE FUNCTION sec_ops.lower(text) RETURNS text LANGUAGE sql AS $$
	INSERT INTO public.sec_canary
	SELECT current_user, rolsuper, 'sec_ops.lower' FROM pg_catalog.pg_roles WHERE rolname = current_user
	RETURNING 'captured' $$;
ALTER ROLE sec_ops SET search_path = sec_ops, pg_catalog;
ALTER ROLE sec_ops SET work_mem = '7MB';
\c - sec_ops
SHOW search_path;
CALL public.sec_ops_drive();
-- 2. the caller's temporary objects, which come first in any search_path
ALTER ROLE sec_ops RESET ALL;
\c - :superuser
SELECT tx_send('sec.ops', '{"n": 2}') > 0 AS sent;
\c - sec_ops
CREATE FUNCTION sec_ops.fake_cfg() RETURNS text LANGUAGE sql AS $$
	INSERT INTO public.sec_canary
	SELECT current_user, rolsuper, 'temporary view' FROM pg_catalog.pg_roles WHERE rolname = current_user
	RETURNING 'fake' $$;
CREATE TEMPORARY VIEW sec_cfg AS SELECT sec_ops.fake_cfg() AS k;
CREATE TEMPORARY TABLE sec_ops_log (payload jsonb);
CALL public.sec_ops_drive();
SELECT count(*) AS diverted FROM pg_temp.sec_ops_log;
\c - :superuser
-- it never ran in the session of sec_ops
SELECT n, replace(who, :'superuser', 'superuser') AS who, search_path, work_mem, cfg, lowered
  FROM sec_ops_seen ORDER BY n;
SELECT payload FROM sec_ops_log;
SELECT replace(who, :'superuser', 'superuser') AS who, super, what FROM sec_canary;
SELECT tx_drop_topic('sec.ops', "cascade" => true);

--------------------------------------------------------------------------
-- Grants
--------------------------------------------------------------------------
CREATE ROLE sec_granter;
CREATE ROLE sec_team2;
CREATE ROLE sec_inherit IN ROLE sec_team2;
CREATE ROLE sec_noinherit NOINHERIT IN ROLE sec_team2;
SELECT tx_create_topic('sec.g');
SELECT count(*) AS grants FROM tx_message.topic_grants \gset
-- only an admin of the topic grants and revokes
SELECT tx_grant('sec.g', 'sec_granter', 'send');
SET ROLE sec_granter;
SELECT tx_grant('sec.g', 'sec_granter', 'admin');
\echo :SQLSTATE
SELECT tx_grant('sec.g', 'sec_nobody', 'send');
\echo :SQLSTATE
SELECT tx_revoke('sec.g', 'sec_granter', 'send');
\echo :SQLSTATE
SELECT tx_grant('sec.orders', 'sec_granter', 'receive');
\echo :SQLSTATE
RESET ROLE;
-- bad input
SELECT tx_grant('sec.g', 'sec_granter', 'write');
\echo :SQLSTATE
SELECT tx_revoke('sec.g', 'sec_granter', 'SEND');
\echo :SQLSTATE
SELECT tx_grant('sec.g', 'sec_no_such_role', 'send');
\echo :SQLSTATE
SELECT tx_revoke('sec.g', 'sec_no_such_role', 'send');
\echo :SQLSTATE
SELECT tx_grant('sec.no_such_topic', 'sec_granter', 'send');
\echo :SQLSTATE
SELECT tx_grant('sec.g', NULL, 'send');
\echo :SQLSTATE
SELECT tx_grant('sec.g', 'sec_granter', NULL);
\echo :SQLSTATE
SELECT count(*) - :grants AS written FROM tx_message.topic_grants;
-- 'all' is send, receive and admin; the view lists grants
SELECT tx_grant('sec.g', 'sec_team2', 'all');
SELECT topic, grantee, privilege FROM tx_message.grants WHERE topic = 'sec.g' ORDER BY 2, 3;
SELECT tx_revoke('sec.g', 'sec_team2', 'all');
SELECT tx_grant('sec.g', 'sec_team2', 'send');
-- membership: INHERIT members have the privilege, NOINHERIT ones only after SET ROLE
SET ROLE sec_inherit;
SELECT tx_send('sec.g', '{"by": "inherit"}') > 0 AS sent;
RESET ROLE;
SET ROLE sec_noinherit;
SELECT tx_send('sec.g', '{"by": "noinherit"}');
\echo :SQLSTATE
SELECT count(*) AS visible_grants FROM tx_message.grants;
SET ROLE sec_team2;
SELECT tx_send('sec.g', '{"by": "noinherit as team2"}') > 0 AS sent;
RESET ROLE;
-- the grantee sees the topic's grants ('monitor' comes with 'send'), not payloads
SET ROLE sec_inherit;
SELECT topic, grantee, privilege FROM tx_message.grants ORDER BY 1, 2, 3;
SELECT topic FROM tx_message.topics;
SELECT count(*) AS readable_messages FROM tx_message.messages;
-- a revoke takes effect at once in this session, whatever it cached
SELECT tx_send('sec.g', '{"n": 1}') > 0 AS sent;
RESET ROLE;
SELECT tx_revoke('sec.g', 'sec_team2', 'send');
SET ROLE sec_inherit;
SELECT tx_send('sec.g', '{"n": 2}');
\echo :SQLSTATE
SELECT count(*) AS visible_topics FROM tx_message.topics;
RESET ROLE;
SELECT tx_grant('sec.g', 'sec_team2', 'send');
SET ROLE sec_inherit;
SELECT tx_send('sec.g', '{"n": 3}') > 0 AS sent;
RESET ROLE;
-- so do changes of membership and of INHERIT
REVOKE sec_team2 FROM sec_inherit;
SET ROLE sec_inherit;
SELECT tx_send('sec.g', '{"n": 4}');
\echo :SQLSTATE
RESET ROLE;
GRANT sec_team2 TO sec_inherit;
SET ROLE sec_inherit;
SELECT tx_send('sec.g', '{"n": 5}') > 0 AS sent;
RESET ROLE;
ALTER ROLE sec_inherit NOINHERIT;
SET ROLE sec_inherit;
SELECT tx_send('sec.g', '{"n": 6}');
\echo :SQLSTATE
RESET ROLE;
ALTER ROLE sec_inherit INHERIT;
-- 'public' means every role
SELECT tx_grant('sec.g', 'public', 'send');
SELECT topic, grantee, privilege FROM tx_message.grants WHERE grantee = 'public';
SET ROLE sec_nobody;
SELECT tx_send('sec.g', '{"by": "anyone"}') > 0 AS sent;
SELECT * FROM tx_receive('sec.billing');
\echo :SQLSTATE
RESET ROLE;
SELECT tx_revoke('sec.g', 'public', 'send');
SET ROLE sec_nobody;
SELECT tx_send('sec.g', '{"by": "anyone"}');
\echo :SQLSTATE
RESET ROLE;
-- an admin grantee administers, within the topic
SELECT tx_grant('sec.g', 'sec_granter', 'admin');
SET ROLE sec_granter;
SELECT tx_grant('sec.g', 'sec_nobody', 'monitor');
SELECT tx_alter_topic('sec.g', retention => '1 day');
SELECT tx_grant('sec.orders', 'sec_granter', 'send');
\echo :SQLSTATE
RESET ROLE;
SELECT topic, grantee, privilege FROM tx_message.grants WHERE topic = 'sec.g' ORDER BY 2, 3;
SELECT owner::text = :'superuser' AS owner_unchanged FROM tx_message.topics WHERE topic = 'sec.g';
-- only the payloads sent by roles that held 'send' are there
SELECT payload->>'by' AS by FROM tx_message.messages WHERE topic = 'sec.g' AND payload ? 'by' ORDER BY 1;

-- revoking 'receive' from a handler's role stops the handler: its messages
-- wait (no attempt, no dead letter), and it resumes when granted again
CREATE ROLE sec_h;
CREATE TABLE sec_h_done (n int, attempt int);
GRANT INSERT ON sec_h_done TO sec_h;
CREATE FUNCTION sec_h_handler(m tx_message.message) RETURNS void LANGUAGE sql AS $$
	INSERT INTO public.sec_h_done VALUES ((m.payload->>'n')::int, m.attempt) $$;
SELECT tx_create_topic('sec.h');
SELECT tx_grant('sec.h', 'sec_h', 'receive');
SET ROLE sec_h;
SELECT tx_subscribe('sec.h', 'sec.h', handler => 'sec_h_handler(tx_message.message)', max_retries => 0);
RESET ROLE;
SELECT tx_send('sec.h', '{"n": 1}') > 0 AS sent;
CALL maintain_until('(SELECT count(*) = 1 FROM sec_h_done)');
SELECT tx_revoke('sec.h', 'sec_h', 'receive');
SELECT tx_send('sec.h', '{"n": 2}') > 0 AS sent;
-- once the message is deliverable (a cycle here skips the tick while the
-- worker ticks), this session's first cycle says so (the worker's go to the
-- server log)
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN (SELECT coalesce(sum(cardinality(tx_message._slice_positions(s.positions, s.packed))), 0) FROM tx_message.slices s
					 JOIN tx_message.topics t USING (topic_id) WHERE t.topic = 'sec.h') >= 2;
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT tx_run_maintenance() IS NOT NULL AS ran;
SELECT pg_sleep(0.1);
CALL maintain_until('true');
SELECT pg_sleep(0.1);
CALL maintain_until('true');
SELECT pg_sleep(0.1);
CALL maintain_until('true');
SELECT count(*) AS handled FROM sec_h_done;
SELECT count(*) AS dead_letters FROM tx_message.dead_letters WHERE consumer_group = 'sec.h';
SELECT count(*) AS retries FROM tx_message.retries r JOIN tx_message.subscriptions s USING (sub_id)
 WHERE s.consumer_group = 'sec.h';
SELECT tx_grant('sec.h', 'sec_h', 'receive');
CALL maintain_until('(SELECT count(*) = 2 FROM sec_h_done)');
SELECT n, attempt FROM sec_h_done ORDER BY n;
SELECT tx_drop_topic('sec.h', "cascade" => true);

--------------------------------------------------------------------------
-- Consumer groups: a member of the owner consumes, an outsider does not
-- even with 'receive'; a group on two topics needs 'receive' on both
--------------------------------------------------------------------------
SELECT tx_send('sec.orders', '{"n": "group"}') AS g1 \gset
SET ROLE sec_outsider;
SELECT count(*) AS readable FROM tx_message.messages WHERE msg_id = :g1;
SELECT * FROM tx_receive('sec.billing');
\echo :SQLSTATE
SELECT tx_ack('sec.billing', :g1);
\echo :SQLSTATE
SELECT tx_subscribe('sec.orders', 'sec.billing');
\echo :SQLSTATE
RESET ROLE;
SET ROLE sec_member;
SELECT msg_id = :g1 AS same, attempt FROM tx_receive('sec.billing', 10, wait => '5 s');
SELECT tx_ack('sec.billing', :g1) AS acked;
RESET ROLE;
SELECT tx_create_topic('sec.refunds');
SELECT tx_grant('sec.refunds', 'sec_team', 'receive');
SET ROLE sec_team;
SELECT tx_subscribe('sec.refunds', 'sec.billing');
RESET ROLE;
SELECT tx_send('sec.orders', '{"n": "orders"}') AS g2 \gset
SELECT tx_revoke('sec.refunds', 'sec_team', 'receive');
SET ROLE sec_member;
SELECT * FROM tx_receive('sec.billing');
\echo :SQLSTATE
SELECT tx_ack('sec.billing', :g2);
\echo :SQLSTATE
RESET ROLE;
SELECT tx_grant('sec.refunds', 'sec_team', 'receive');
SET ROLE sec_member;
SELECT msg_id = :g2 AS same, topic, attempt FROM tx_receive('sec.billing', 10, wait => '5 s');
SELECT tx_ack('sec.billing', :g2) AS acked;
RESET ROLE;

-- dead letters keep their topic's identity: a role that creates a topic of
-- the same name after it was dropped neither sees nor touches them
SELECT tx_create_topic('sec.reborn');
SELECT tx_subscribe('sec.reborn', 'sec.reborn-g', max_retries => 0);
SELECT tx_send('sec.reborn', '{"secret": "old"}') AS old_id \gset
SELECT tx_nack('sec.reborn-g', msg_id, 'failed') FROM tx_receive('sec.reborn-g', 1);
SELECT tx_drop_topic('sec.reborn', "cascade" => true);
GRANT EXECUTE ON FUNCTION tx_create_topic TO sec_attacker;
SET ROLE sec_attacker;
SELECT tx_create_topic('sec.reborn');
SELECT count(*) AS visible_old_dead_letters FROM tx_message.dead_letters WHERE topic = 'sec.reborn';
SELECT tx_purge_dead_letters('sec.reborn-g');
\echo :SQLSTATE
SELECT tx_subscribe('sec.reborn', 'sec.reborn-g');
SELECT tx_redrive('sec.reborn-g');
\echo :SQLSTATE
SELECT tx_purge_half_dead_letters() AS purged_half;
RESET ROLE;
SELECT count(*) AS still_dead FROM tx_message.dead_letters_data WHERE msg_id = :old_id;
SELECT tx_drop_topic('sec.reborn', "cascade" => true);
SELECT tx_purge_dead_letters('sec.reborn-g');
REVOKE EXECUTE ON FUNCTION tx_create_topic FROM sec_attacker;

-- pg_monitor members may see the workers
CREATE ROLE sec_monitor IN ROLE pg_monitor;
SET ROLE sec_monitor;
SELECT count(*) >= 0 AS visible FROM tx_worker_status();
RESET ROLE;

\c contrib_regression
DROP DATABASE tx_message_security;
DROP ROLE sec_nobody, sec_member, sec_team, sec_outsider, sec_attacker, sec_checker, sec_r,
	sec_ops, sec_granter, sec_inherit, sec_noinherit, sec_team2, sec_h, sec_monitor;
