-- search_path (the CVE-2018-1058 class): a role with CREATE on public plants
-- look-alikes there (functions, operators, aggregates, tables named like
-- those the extension uses), each of which records in a canary table that it
-- ran.  A superuser whose search_path puts public before pg_catalog then
-- drives every API function and the worker's cycles with a check function
-- and a handler: the extension must never call a look-alike.  Then: which
-- set-ups let a better-matching overload catch calls of the API itself
-- (documented as unsafe), and look-alikes planted before CREATE EXTENSION.
-- This test has databases of its own.
\set VERBOSITY terse
SELECT current_user AS superuser \gset
CREATE DATABASE tx_message_search_path;
\c tx_message_search_path
SET client_min_messages = warning;
CREATE EXTENSION tx_message;
RESET client_min_messages;

CREATE ROLE sp_attacker;
GRANT CREATE ON SCHEMA public TO sp_attacker;
CREATE TABLE sp_canary (who name, super boolean, what text);
GRANT INSERT ON sp_canary TO PUBLIC;

-- The test's own helpers resolve nothing through the hostile search_path:
-- they live in a schema of their own and qualify what they call.
CREATE SCHEMA sp_admin;
CREATE FUNCTION sp_admin.done(condition text, i integer) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	done boolean;
BEGIN
	EXECUTE 'SELECT ' || condition INTO done;
	IF done THEN
		RETURN true;
	END IF;
	IF i > 500 THEN
		RAISE EXCEPTION 'timed out waiting for %', condition;
	END IF;
	PERFORM pg_sleep(0.02);
	RETURN false;
END $$;
CREATE PROCEDURE sp_admin.maintain_until(condition text) LANGUAGE plpgsql AS $$
DECLARE
	i integer := 0;
BEGIN
	LOOP
		PERFORM public.tx_run_maintenance();
		COMMIT;
		EXIT WHEN sp_admin.done(condition, i);
		i := i + 1;
	END LOOP;
END $$;

-- The superuser's check function and handler, with unqualified names: they
-- run with the settings of a fresh session of their role, not the caller's.
CREATE TABLE sp_handled (name text, lowered text, attempt integer);
CREATE FUNCTION sp_check(m tx_message.message) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN CASE WHEN m.key = 'commit-me' AND now() > m.sent_at THEN 'commit' ELSE 'unknown' END;
END $$;
CREATE FUNCTION sp_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sp_handled VALUES (m.payload->>'name', lower(m.payload->>'name'), m.attempt);
END $$;

--------------------------------------------------------------------------
-- The look-alikes
--------------------------------------------------------------------------
SET ROLE sp_attacker;
CREATE FUNCTION public.sp_hit(what text) RETURNS boolean LANGUAGE sql AS $$
	INSERT INTO public.sp_canary
	SELECT current_user, r.rolsuper, what FROM pg_catalog.pg_roles r
	 WHERE r.rolname OPERATOR(pg_catalog.=) current_user
	RETURNING true $$;
-- functions the extension's statements call, same signature or better match
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('now()') THEN pg_catalog.now() END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('clock_timestamp()') THEN pg_catalog.clock_timestamp() END $$;
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('lower(text)') THEN pg_catalog.lower($1) END $$;
CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('upper(text)') THEN pg_catalog.upper($1) END $$;
CREATE FUNCTION public.cardinality(bigint[]) RETURNS integer LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('cardinality(bigint[])') THEN pg_catalog.cardinality($1) END $$;
CREATE FUNCTION public.quote_literal(text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('quote_literal(text)') THEN pg_catalog.quote_literal($1) END $$;
CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('pg_notify(text,text)') THEN pg_catalog.pg_notify($1, $2) END $$;
CREATE FUNCTION public.pg_has_role(regrole, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('pg_has_role(regrole,text)') $$;
CREATE FUNCTION public.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('jsonb_build_object(text,text)') THEN pg_catalog.jsonb_build_object($1, $2) END $$;
CREATE FUNCTION public.jsonb_build_object(text, bigint) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('jsonb_build_object(text,bigint)') THEN pg_catalog.jsonb_build_object($1, $2) END $$;
CREATE FUNCTION public.jsonb_build_object(text, integer) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('jsonb_build_object(text,integer)') THEN pg_catalog.jsonb_build_object($1, $2) END $$;
CREATE FUNCTION public.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('jsonb_build_object(text,jsonb)') THEN pg_catalog.jsonb_build_object($1, $2) END $$;
CREATE FUNCTION public.jsonb_build_object(text, text, text, bigint) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('jsonb_build_object(text,text,text,bigint)')
	            THEN pg_catalog.jsonb_build_object($1, $2, $3, $4) END $$;
-- aggregates
CREATE FUNCTION public.sp_agg_text(text, text, text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('string_agg(text,text)') THEN $2 END $$;
CREATE AGGREGATE public.string_agg(text, text) (SFUNC = public.sp_agg_text, STYPE = text);
CREATE FUNCTION public.sp_agg_obj(jsonb, integer, bigint) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('jsonb_object_agg(integer,bigint)') THEN '{}'::jsonb END $$;
CREATE AGGREGATE public.jsonb_object_agg(integer, bigint) (SFUNC = public.sp_agg_obj, STYPE = jsonb);
CREATE FUNCTION public.sp_agg_ts(timestamptz, timestamptz) RETURNS timestamptz LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('min(timestamptz)') THEN $2 END $$;
CREATE AGGREGATE public.min(timestamptz) (SFUNC = public.sp_agg_ts, STYPE = timestamptz);
CREATE FUNCTION public.sp_agg_count(bigint) RETURNS bigint LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('count(*)') THEN $1 OPERATOR(pg_catalog.+) 1 END $$;
CREATE AGGREGATE public.count(*) (SFUNC = public.sp_agg_count, STYPE = bigint, INITCOND = '0');
-- operators: same signature as pg_catalog's, and better matches
CREATE FUNCTION public.sp_eq_int8(bigint, bigint) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(bigint,bigint)') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.sp_eq_int8);
CREATE FUNCTION public.sp_eq_int4(integer, integer) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(integer,integer)') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.sp_eq_int4);
CREATE FUNCTION public.sp_eq_text(text, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(text,text)') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.sp_eq_text);
CREATE FUNCTION public.sp_ne_varbit(bit varying, bit varying) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('<>(varbit,varbit)') AND $1 OPERATOR(pg_catalog.<>) $2 $$;
CREATE OPERATOR public.<> (LEFTARG = bit varying, RIGHTARG = bit varying, FUNCTION = public.sp_ne_varbit);
CREATE FUNCTION public.sp_le_ts(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('<=(timestamptz,timestamptz)') AND $1 OPERATOR(pg_catalog.<=) $2 $$;
CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.sp_le_ts);
CREATE FUNCTION public.sp_plus_ts(timestamptz, interval) RETURNS timestamptz LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('+(timestamptz,interval)') THEN $1 OPERATOR(pg_catalog.+) $2 END $$;
CREATE OPERATOR public.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.sp_plus_ts);
CREATE FUNCTION public.sp_minus_ts(timestamptz, interval) RETURNS timestamptz LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('-(timestamptz,interval)') THEN $1 OPERATOR(pg_catalog.-) $2 END $$;
CREATE OPERATOR public.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.sp_minus_ts);
CREATE FUNCTION public.sp_arrow(jsonb, text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('->>(jsonb,text)') THEN $1 OPERATOR(pg_catalog.->>) $2 END $$;
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.sp_arrow);
CREATE FUNCTION public.sp_eq_regrole_int(regrole, integer) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(regrole,integer)') AND $1::oid OPERATOR(pg_catalog.=) $2::oid $$;
CREATE OPERATOR public.= (LEFTARG = regrole, RIGHTARG = integer, FUNCTION = public.sp_eq_regrole_int);
CREATE FUNCTION public.sp_eq_oid_regrole(oid, regrole) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(oid,regrole)') AND $1 OPERATOR(pg_catalog.=) $2::oid $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regrole, FUNCTION = public.sp_eq_oid_regrole);
-- functions named like the extension's internal ones
CREATE FUNCTION public._may(text, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('_may(text,text)') $$;
CREATE FUNCTION public._may(integer, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('_may(integer,text)') $$;
CREATE FUNCTION public._installed() RETURNS void LANGUAGE sql AS $$
	SELECT public.sp_hit('_installed()'); SELECT $$;
CREATE FUNCTION public.tx_message_may(text, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('tx_message_may(text,text)') $$;
CREATE FUNCTION public.tx_message_installed() RETURNS void LANGUAGE sql AS $$
	SELECT public.sp_hit('tx_message_installed()'); SELECT $$;
CREATE FUNCTION public._retries_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM public.sp_hit('_retries_written()');
	RETURN NULL;
END $$;
-- tables named like the extension's
CREATE VIEW public.topics AS
	SELECT t AS topic FROM (VALUES ('x')) v(t) WHERE public.sp_hit('table topics');
CREATE VIEW public.subscriptions AS
	SELECT t AS consumer_group FROM (VALUES ('x')) v(t) WHERE public.sp_hit('table subscriptions');
CREATE VIEW public.consumer_groups AS
	SELECT t AS consumer_group FROM (VALUES ('x')) v(t) WHERE public.sp_hit('table consumer_groups');
CREATE VIEW public.half_messages AS
	SELECT t AS state FROM (VALUES ('x')) v(t) WHERE public.sp_hit('table half_messages');
CREATE VIEW public.log_0 AS
	SELECT t AS payload FROM (VALUES ('x')) v(t) WHERE public.sp_hit('table log_0');
CREATE VIEW public.messages AS
	SELECT t AS payload FROM (VALUES ('x')) v(t) WHERE public.sp_hit('table messages');
-- what COMMIT PREPARED looks its transaction up in
CREATE VIEW public.pg_prepared_xacts AS
	SELECT p.transaction, p.gid, p.database FROM pg_catalog.pg_prepared_xacts p
	 WHERE public.sp_hit('view pg_prepared_xacts');
CREATE FUNCTION public.current_database() RETURNS name LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('current_database()') THEN pg_catalog.current_database() END $$;
RESET ROLE;
SELECT count(*) AS planted FROM pg_proc WHERE pronamespace = 'public'::regnamespace::oid
   AND proowner = 'sp_attacker'::regrole::oid;

--------------------------------------------------------------------------
-- A superuser with public first drives the whole API and the cycles
--------------------------------------------------------------------------
SET search_path = public, pg_catalog;
SHOW search_path;
SELECT tx_create_topic('sp.t', check_function => 'sp_check(tx_message.message)',
                       check_after => '10 ms', check_interval => '10 ms', check_max => 1000);
SELECT tx_create_topic('sp.ext', check_after => '10 ms', check_interval => '10 ms', check_max => 1);
SELECT tx_create_topic('sp.gone');
SELECT tx_alter_topic('sp.t', retention => '2 days');
SELECT tx_drop_topic('sp.gone');
SELECT tx_grant('sp.t', 'sp_attacker', 'all');
SELECT tx_grant('sp.t', 'public', 'monitor');
SELECT tx_revoke('sp.t', 'sp_attacker', 'all');
SELECT tx_revoke('sp.t', 'public', 'monitor');
SELECT tx_subscribe('sp.t', 'sp.pull', max_retries => 0, tags => '{a,b}');
SELECT tx_subscribe('sp.t', 'sp.pull', max_retries => 0);
SELECT tx_subscribe('sp.t', 'sp.handler', handler => 'sp_handler(tx_message.message)');
SELECT tx_send('sp.t', '{"name": "Send"}', key => 'k1', tags => '{a}', headers => '{"h": 1}') > 0 AS sent;
SELECT tx_send('sp.t', '{"name": "Delayed"}', delay => '10 ms') > 0 AS sent;
SELECT tx_send_batch('sp.t', ARRAY['{"name": "Batch1"}', '{"name": "Batch2"}']::jsonb[],
                     keys => ARRAY['k2', 'k3'], tags => '{b}', headers => '{"h": 2}') > 0 AS sent;
SELECT tx_send_half('sp.t', '{"name": "Checked"}', key => 'commit-me') > 0 AS sent;
SELECT tx_send_half('sp.t', '{"name": "Committed"}') AS h2 \gset
SELECT tx_send_half('sp.t', '{"name": "RolledBack"}') AS h3 \gset
SELECT tx_commit_half(:h2);
SELECT tx_rollback_half(:h3);
SELECT tx_send_half('sp.ext', '{"name": "Abandoned"}') AS hx \gset
-- cycles: the check function commits one half message, the handler takes all
CALL sp_admin.maintain_until('(SELECT count(*) = 6 FROM public.sp_handled)');
CALL sp_admin.maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :hx));
-- a pull consumer: receive, extend, ack (all three forms), nack, redrive, purge
SELECT msg_id AS r1 FROM tx_receive('sp.pull', 1, wait => '5 s') \gset
SELECT tx_extend_lease('sp.pull', ARRAY[:r1]::bigint[], '1 min');
SELECT tx_ack('sp.pull', ARRAY[:r1]::bigint[]);
SELECT msg_id AS r2 FROM tx_receive('sp.pull', 1, wait => '5 s') \gset
SELECT tx_ack('sp.pull', :r2);
-- tx_ack(group), from the session's memory and (after the rolled-back ack) from the tables
BEGIN;
SELECT msg_id AS r4 FROM tx_receive('sp.pull', 1, wait => '5 s') \gset
SAVEPOINT s;
SELECT tx_ack('sp.pull') AS acked;
ROLLBACK TO SAVEPOINT s;
SELECT tx_ack('sp.pull') AS acked_from_the_tables;
COMMIT;
SELECT msg_id AS r3 FROM tx_receive('sp.pull', 1, lease => '1 min') \gset
SELECT tx_nack('sp.pull', :r3, 'boom');
SELECT tx_redrive('sp.pull', ARRAY[:r3]::bigint[]);
SELECT msg_id = :r3 AS redriven, attempt FROM tx_receive('sp.pull', 1, wait => '5 s');
SELECT tx_nack('sp.pull', :r3, 'boom again', retry_in => '0 s');
SELECT tx_purge_dead_letters('sp.pull', msg_ids => ARRAY[:r3]::bigint[]);
SELECT tx_redrive('sp.pull');
SELECT tx_purge_dead_letters('sp.pull', older_than => '1 h');
-- check-back dead letters: back to half, dead again, purged
SELECT tx_redrive_half(ARRAY[:hx]::bigint[]);
CALL sp_admin.maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :hx));
SELECT tx_purge_half_dead_letters(msg_ids => ARRAY[:hx]::bigint[]);
SELECT tx_redrive_half();
SELECT tx_purge_half_dead_letters(older_than => '1 h');
SELECT database FROM tx_worker_status() WHERE database OPERATOR(pg_catalog.=) pg_catalog.current_database();
-- a prepared transaction's commit, which the extension orders like a commit
BEGIN;
SELECT tx_send('sp.ext', '{"name": "Prepared"}') > 0 AS sent;
PREPARE TRANSACTION 'sp_prepared';
COMMIT PREPARED 'sp_prepared';
SELECT tx_run_maintenance() IS NOT NULL AS ran;
SELECT tx_unsubscribe('sp.t', 'sp.handler');
SELECT tx_unsubscribe('sp.t', 'sp.pull');
SELECT tx_drop_topic('sp.t');
SELECT tx_drop_topic('sp.ext');
RESET search_path;
-- what the user code did, and that no look-alike ever ran
SELECT name, lowered, attempt FROM sp_handled ORDER BY name;
SELECT replace(who, :'superuser', 'superuser') AS who, super, what FROM sp_canary;

--------------------------------------------------------------------------
-- Calls of the API itself resolve through the caller's search_path.  With
-- the extension in public and a role with CREATE on public, a
-- better-matching overload catches an untyped call (the documented unsafe
-- set-up); a typed call still reaches the extension.
--------------------------------------------------------------------------
SELECT tx_create_topic('sp.api');
SET ROLE sp_attacker;
CREATE FUNCTION public.tx_send(topic text, payload text) RETURNS bigint LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('tx_send(text,text)') THEN 0::bigint END $$;
RESET ROLE;
SELECT tx_send('sp.api', '{}') AS untyped;
SELECT public.tx_send('sp.api', '{}') AS qualified_in_public;
SELECT tx_send('sp.api', '{}'::jsonb) > 0 AS typed;
SELECT what, count(*) AS calls FROM sp_canary GROUP BY what;
SELECT tx_drop_topic('sp.api');
DROP FUNCTION public.tx_send(text, text);
DELETE FROM sp_canary;

\c contrib_regression
DROP DATABASE tx_message_search_path;

--------------------------------------------------------------------------
-- The extension in a schema only its owner may create in: a qualified
-- call, or a search_path without the attacker's schema, is safe; the
-- attacker's schema anywhere on the path is not.
--------------------------------------------------------------------------
CREATE DATABASE tx_message_search_path_schema;
\c tx_message_search_path_schema
CREATE SCHEMA txm;
SET client_min_messages = warning;
CREATE EXTENSION tx_message SCHEMA txm;
RESET client_min_messages;
GRANT CREATE ON SCHEMA public TO sp_attacker;
CREATE TABLE sp_canary (what text);
GRANT INSERT ON sp_canary TO PUBLIC;
SET ROLE sp_attacker;
CREATE FUNCTION public.tx_send(topic text, payload text) RETURNS bigint LANGUAGE sql AS $$
	INSERT INTO public.sp_canary VALUES ('tx_send(text,text) with ' || pg_catalog.current_setting('search_path'))
	RETURNING 0::bigint $$;
RESET ROLE;
SELECT txm.tx_create_topic('sp.q');
SET search_path = txm;
SELECT tx_send('sp.q', '{}') > 0 AS sent;
SET search_path = public, txm;
SELECT txm.tx_send('sp.q', '{}') > 0 AS sent;
SELECT tx_send('sp.q', '{}') AS captured;
SET search_path = txm, public;
SELECT tx_send('sp.q', '{}') AS captured;
RESET search_path;
SELECT what FROM sp_canary;
SELECT txm.tx_drop_topic('sp.q');
\c contrib_regression
DROP DATABASE tx_message_search_path_schema;

--------------------------------------------------------------------------
-- Look-alikes planted before CREATE EXTENSION, in the schema it is
-- installed into: the extension's views and policies are bound when it is
-- created, and must bind to nothing of the attacker's.  A superuser then
-- reads every view.
--------------------------------------------------------------------------
CREATE DATABASE tx_message_search_path_early;
\c tx_message_search_path_early
GRANT CREATE ON SCHEMA public TO sp_attacker;
CREATE TABLE sp_canary (who name, super boolean, what text);
GRANT INSERT ON sp_canary TO PUBLIC;
SET ROLE sp_attacker;
CREATE FUNCTION public.sp_hit(what text) RETURNS boolean LANGUAGE sql AS $$
	INSERT INTO public.sp_canary
	SELECT current_user, r.rolsuper, what FROM pg_catalog.pg_roles r
	 WHERE r.rolname OPERATOR(pg_catalog.=) current_user
	RETURNING true $$;
CREATE FUNCTION public.sp_eq_regrole_int(regrole, integer) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(regrole,integer)') AND $1::oid OPERATOR(pg_catalog.=) $2::oid $$;
CREATE OPERATOR public.= (LEFTARG = regrole, RIGHTARG = integer, FUNCTION = public.sp_eq_regrole_int);
CREATE FUNCTION public.sp_eq_oid_regrole(oid, regrole) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(oid,regrole)') AND $1 OPERATOR(pg_catalog.=) $2::oid $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regrole, FUNCTION = public.sp_eq_oid_regrole);
CREATE FUNCTION public.sp_eq_regrole(regrole, regrole) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(regrole,regrole)') AND $1::oid OPERATOR(pg_catalog.=) $2::oid $$;
CREATE OPERATOR public.= (LEFTARG = regrole, RIGHTARG = regrole, FUNCTION = public.sp_eq_regrole);
CREATE FUNCTION public.sp_ne_text(text, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('<>(text,text)') AND $1 OPERATOR(pg_catalog.<>) $2 $$;
CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.sp_ne_text);
CREATE FUNCTION public.sp_eq_int2_int4(smallint, integer) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('=(smallint,integer)') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = smallint, RIGHTARG = integer, FUNCTION = public.sp_eq_int2_int4);
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$
	SELECT CASE WHEN public.sp_hit('now()') THEN pg_catalog.now() END $$;
CREATE FUNCTION public.pg_has_role(regrole, text) RETURNS boolean LANGUAGE sql AS $$
	SELECT public.sp_hit('pg_has_role(regrole,text)') $$;
RESET ROLE;
SET client_min_messages = warning;
CREATE EXTENSION tx_message;
RESET client_min_messages;
SELECT tx_create_topic('sp.early');
SELECT tx_grant('sp.early', 'sp_attacker', 'send');
SELECT tx_grant('sp.early', 'public', 'monitor');
SELECT tx_subscribe('sp.early', 'sp.early');
SELECT tx_send('sp.early', '{}') > 0 AS sent;
SELECT topic, grantee, privilege FROM tx_message.grants ORDER BY 2;
SELECT count(*) AS topics FROM tx_message.topics;
SELECT count(*) AS subscriptions FROM tx_message.subscriptions;
SELECT count(*) AS groups FROM tx_message.consumer_groups;
SELECT count(*) AS messages FROM tx_message.messages;
SELECT count(*) AS retries FROM tx_message.retries;
SELECT count(*) AS dead_letters FROM tx_message.dead_letters;
SET ROLE sp_attacker;
SELECT topic, grantee, privilege FROM tx_message.grants ORDER BY 2;
SELECT count(*) AS groups FROM tx_message.consumer_groups;
RESET ROLE;
SELECT replace(who, :'superuser', 'superuser') AS who, super, what, count(*) AS calls
  FROM sp_canary GROUP BY 1, 2, 3 ORDER BY 3, 1;
\c contrib_regression
DROP DATABASE tx_message_search_path_early;
DROP ROLE sp_attacker;
