-- Bad input: every function of the API refuses bad arguments with a specific
-- SQLSTATE (never XX000) and writes nothing.
--
-- bi_try(call) runs "SELECT (call)::text" in its own subtransaction and
-- returns the SQLSTATE it failed with, or 'ok: result' when it was accepted
-- (a successful call is not undone, so an accepted bad input that writes
-- shows in the row counts compared at the end).  Each call has one bad
-- argument, so its outcome does not depend on the order of the checks.
-- (quietly: the extension exists already when earlier tests created it)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS tx_message;
RESET client_min_messages;
\set VERBOSITY terse

CREATE TEMP TABLE bi_outcomes (n serial, call text, outcome text, message text);
CREATE FUNCTION bi_try(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text;
	outcome text;
	message text;
BEGIN
	BEGIN
		EXECUTE 'SELECT (' || call || ')::text' INTO result;
		outcome := CASE WHEN result IS NULL THEN 'ok: null'
						WHEN result = '' THEN 'ok'
						ELSE 'ok: ' || left(result, 20) END;
	EXCEPTION WHEN OTHERS THEN
		outcome := SQLSTATE;
		message := SQLERRM;
	END;
	INSERT INTO bi_outcomes (call, outcome, message) VALUES (call, outcome, message);
	RETURN outcome;
END $$;

-- check functions and handlers of the wrong kind
CREATE FUNCTION bi_check(m tx_message.message) RETURNS text
	LANGUAGE sql AS $$ SELECT 'unknown' $$;
-- the worker runs check functions and handlers from another session
CREATE FUNCTION pg_temp.bi_temp_check(m tx_message.message) RETURNS text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION bi_returns_int(m tx_message.message) RETURNS integer
	LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION bi_two_args(m tx_message.message, x integer) RETURNS text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION bi_set(m tx_message.message) RETURNS SETOF text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION bi_no_args() RETURNS text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION bi_text_arg(m text) RETURNS text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE PROCEDURE bi_proc(m tx_message.message)
	LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION bi_agg_step(s text, m tx_message.message) RETURNS text
	LANGUAGE sql AS $$ SELECT s $$;
CREATE AGGREGATE bi_agg(tx_message.message) (sfunc = bi_agg_step, stype = text);

-- one topic and one subscription that the calls below name
SELECT tx_create_topic('bi.topic');
SELECT tx_subscribe('bi.topic', 'bi.group');

-- the rows of tx_message before the catalogue: configuration in full,
-- messages of this file's topics (other tests' leftovers belong to the worker)
-- (serial: tx_message.messages in a parallel worker is checked on its own below)
CREATE FUNCTION bi_counts() RETURNS TABLE (tbl text, n bigint) LANGUAGE sql
	SET max_parallel_workers_per_gather = 0 AS $$
	SELECT 'topics', count(*) FROM tx_message.topics
	UNION ALL SELECT 'subscriptions', count(*) FROM tx_message.subscriptions
	UNION ALL SELECT 'consumer_groups', count(*) FROM tx_message.consumer_groups
	UNION ALL SELECT 'topic_grants', count(*) FROM tx_message.topic_grants
	UNION ALL SELECT 'sub_state', count(*) FROM tx_message.sub_state
	UNION ALL SELECT 'leases', count(*) FROM tx_message.leases l
		JOIN tx_message.subscriptions s USING (sub_id) WHERE s.topic LIKE 'bi.%'
	UNION ALL SELECT 'messages (log, delayed, half)', count(*) FROM tx_message.messages
		WHERE topic LIKE 'bi.%'
	UNION ALL SELECT 'log_0..2', count(*) FROM (
		SELECT topic_id FROM tx_message.log_0 UNION ALL
		SELECT topic_id FROM tx_message.log_1 UNION ALL
		SELECT topic_id FROM tx_message.log_2) l
		JOIN tx_message.topics t USING (topic_id) WHERE t.topic LIKE 'bi.%'
	UNION ALL SELECT 'half_messages', count(*) FROM tx_message.half_messages h
		JOIN tx_message.topics t USING (topic_id) WHERE t.topic LIKE 'bi.%'
	UNION ALL SELECT 'delayed', count(*) FROM tx_message.delayed d
		JOIN tx_message.topics t USING (topic_id) WHERE t.topic LIKE 'bi.%'
	UNION ALL SELECT 'retries_data', count(*) FROM tx_message.retries_data r
		JOIN tx_message.topics t USING (topic_id) WHERE t.topic LIKE 'bi.%'
	UNION ALL SELECT 'dead_letters_data', count(*) FROM tx_message.dead_letters_data
		WHERE topic LIKE 'bi.%' OR consumer_group LIKE 'bi.%'
	UNION ALL SELECT 'dedup', count(*) FROM tx_message.dedup
$$;
CREATE TEMP TABLE bi_before AS SELECT * FROM bi_counts();

-- payloads over tx_message.max_payload_size (1MB by default), whose bad values
-- are refused; a superuser may set it in a session
SELECT name, setting, unit, context FROM pg_settings WHERE name = 'tx_message.max_payload_size';
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_send('bi.topic', to_jsonb(repeat('x', 1100000)))$$),
	($$set_config('tx_message.max_payload_size', '-1', false)$$),
	($$set_config('tx_message.max_payload_size', '2GB', false)$$),
	($$set_config('tx_message.max_payload_size', 'big', false)$$)
) AS c(call);
SET tx_message.max_payload_size = '1kB';
SHOW tx_message.max_payload_size;

-- tx_create_topic(topic, retention, check_function, check_after,
--                 check_interval, check_max, if_not_exists)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_create_topic(NULL)$$),
	($$tx_create_topic('bi.new', retention => NULL)$$),
	($$tx_create_topic('bi.new', check_after => NULL)$$),
	($$tx_create_topic('bi.new', check_interval => NULL)$$),
	($$tx_create_topic('bi.new', check_max => NULL)$$),
	($$tx_create_topic('bi.new', if_not_exists => NULL)$$),
	($$tx_create_topic('')$$),
	($$tx_create_topic(repeat('x', 128))$$),
	($$tx_create_topic(repeat('x', 200))$$),
	($$tx_create_topic(repeat('é', 64))$$),
	($$tx_create_topic('x''; DROP TABLE x; --')$$),
	($$tx_create_topic('bi"quoted"')$$),
	($$tx_create_topic(E'bi.new\n')$$),
	($$tx_create_topic('bi.topic')$$),
	($$tx_create_topic('bi.topic', retention => '0', if_not_exists => true)$$),
	($$tx_create_topic('bi.new', retention => '0')$$),
	($$tx_create_topic('bi.new', retention => '-1 s')$$),
	($$tx_create_topic('bi.new', retention => '1 month -40 days')$$),
	($$tx_create_topic('bi.new', retention => '100 years 1 s')$$),
	($$tx_create_topic('bi.new', retention => '101 years')$$),
	($$tx_create_topic('bi.new', retention => '1000 years')$$),
	($$tx_create_topic('bi.new', retention => '178000000 years')$$),
	($$tx_create_topic('bi.new', retention => '-178000000 years')$$),
	($$tx_create_topic('bi.new', retention => '2147483647 days')$$),
	($$tx_create_topic('bi.new', retention => '2562047788 hours')$$),
	($$tx_create_topic('bi.new', retention => '101 years -40000 days')$$),
	($$tx_create_topic('bi.new', check_after => '0')$$),
	($$tx_create_topic('bi.new', check_after => '-1 s')$$),
	($$tx_create_topic('bi.new', check_after => '101 years')$$),
	($$tx_create_topic('bi.new', check_after => '1000 years')$$),
	($$tx_create_topic('bi.new', check_after => '178000000 years')$$),
	($$tx_create_topic('bi.new', check_interval => '0')$$),
	($$tx_create_topic('bi.new', check_interval => '-1 s')$$),
	($$tx_create_topic('bi.new', check_interval => '101 years')$$),
	($$tx_create_topic('bi.new', check_interval => '1000 years')$$),
	($$tx_create_topic('bi.new', check_interval => '178000000 years')$$),
	($$tx_create_topic('bi.new', check_max => 0)$$),
	($$tx_create_topic('bi.new', check_max => -1)$$),
	($$tx_create_topic('bi.new', check_max => -2147483648)$$),
	($$tx_create_topic('bi.new', check_max => 10001)$$),
	($$tx_create_topic('bi.new', check_max => 2147483647)$$),
	($$tx_create_topic('bi.new', check_function => 0::regprocedure)$$),
	($$tx_create_topic('bi.new', check_function => '-')$$),
	($$tx_create_topic('bi.new', check_function => 4000000000::oid::regprocedure)$$),
	($$tx_create_topic('bi.new', check_function => 'bi_returns_int(tx_message.message)')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_two_args(tx_message.message,integer)')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_set(tx_message.message)')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_no_args()')$$),
	($$tx_create_topic('bi.new', check_function => 'pg_temp.bi_temp_check(tx_message.message)')$$),
	($$tx_subscribe('bi.topic', 'bi.g3', handler => 'pg_temp.bi_temp_check(tx_message.message)')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_text_arg(text)')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_proc(tx_message.message)')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_agg(tx_message.message)')$$),
	($$tx_create_topic('bi.new', check_function => 'now()')$$),
	($$tx_create_topic('bi.new', check_function => 'bi_missing(tx_message.message)')$$)
) AS c(call);

-- tx_alter_topic(topic, retention, check_function, check_after,
--                check_interval, check_max): NULL leaves an option unchanged
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_alter_topic(NULL)$$),
	($$tx_alter_topic(NULL, check_max => 2)$$),
	($$tx_alter_topic('', check_max => 2)$$),
	($$tx_alter_topic(repeat('x', 200), check_max => 2)$$),
	($$tx_alter_topic('x''; DROP TABLE x; --', check_max => 2)$$),
	($$tx_alter_topic('bi.nosuch', check_max => 2)$$),
	($$tx_alter_topic('bi.nosuch', check_function => '-')$$),
	($$tx_alter_topic('bi.topic', retention => '0')$$),
	($$tx_alter_topic('bi.topic', retention => '-1 s')$$),
	($$tx_alter_topic('bi.topic', retention => '101 years')$$),
	($$tx_alter_topic('bi.topic', retention => '1000 years')$$),
	($$tx_alter_topic('bi.topic', retention => '178000000 years')$$),
	($$tx_alter_topic('bi.topic', check_after => '0')$$),
	($$tx_alter_topic('bi.topic', check_after => '-1 s')$$),
	($$tx_alter_topic('bi.topic', check_after => '101 years')$$),
	($$tx_alter_topic('bi.topic', check_after => '1000 years')$$),
	($$tx_alter_topic('bi.topic', check_after => '178000000 years')$$),
	($$tx_alter_topic('bi.topic', check_interval => '0')$$),
	($$tx_alter_topic('bi.topic', check_interval => '-1 s')$$),
	($$tx_alter_topic('bi.topic', check_interval => '101 years')$$),
	($$tx_alter_topic('bi.topic', check_interval => '1000 years')$$),
	($$tx_alter_topic('bi.topic', check_interval => '178000000 years')$$),
	($$tx_alter_topic('bi.topic', check_max => 0)$$),
	($$tx_alter_topic('bi.topic', check_max => -1)$$),
	($$tx_alter_topic('bi.topic', check_max => 10001)$$),
	($$tx_alter_topic('bi.topic', check_max => 2147483647)$$),
	($$tx_alter_topic('bi.topic', check_function => 4000000000::oid::regprocedure)$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_returns_int(tx_message.message)')$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_two_args(tx_message.message,integer)')$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_set(tx_message.message)')$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_no_args()')$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_text_arg(text)')$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_proc(tx_message.message)')$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_agg(tx_message.message)')$$)
) AS c(call);

-- tx_drop_topic(topic, cascade)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_drop_topic(NULL)$$),
	($$tx_drop_topic('bi.topic', NULL)$$),
	($$tx_drop_topic('')$$),
	($$tx_drop_topic(repeat('x', 200))$$),
	($$tx_drop_topic('x''; DROP TABLE x; --')$$),
	($$tx_drop_topic('bi.nosuch')$$),
	($$tx_drop_topic('bi.topic')$$)
) AS c(call);

-- tx_grant(topic, role, privilege) and tx_revoke(topic, role, privilege)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_grant(NULL, 'public', 'send')$$),
	($$tx_grant('bi.topic', NULL, 'send')$$),
	($$tx_grant('bi.topic', 'public', NULL)$$),
	($$tx_grant('', 'public', 'send')$$),
	($$tx_grant(repeat('x', 200), 'public', 'send')$$),
	($$tx_grant('x''; DROP TABLE x; --', 'public', 'send')$$),
	($$tx_grant('bi.nosuch', 'public', 'send')$$),
	($$tx_grant('bi.topic', 'bi_no_such_role', 'send')$$),
	($$tx_grant('bi.topic', '', 'send')$$),
	($$tx_grant('bi.topic', 'PUBLIC', 'send')$$),
	($$tx_grant('bi.topic', repeat('r', 200), 'send')$$),
	($$tx_grant('bi.topic', 'x"; DROP ROLE x; --', 'send')$$),
	($$tx_grant('bi.topic', 'public', '')$$),
	($$tx_grant('bi.topic', 'public', 'SEND')$$),
	($$tx_grant('bi.topic', 'public', 'send ')$$),
	($$tx_grant('bi.topic', 'public', 'send,receive')$$),
	($$tx_grant('bi.topic', 'public', 'usage')$$),
	($$tx_grant('bi.topic', 'public', 'select')$$),
	($$tx_grant('bi.topic', 'public', repeat('x', 200))$$),
	($$tx_grant('bi.topic', 'public', 'all''; DROP TABLE x; --')$$),
	($$tx_revoke(NULL, 'public', 'send')$$),
	($$tx_revoke('bi.topic', NULL, 'send')$$),
	($$tx_revoke('bi.topic', 'public', NULL)$$),
	($$tx_revoke('', 'public', 'send')$$),
	($$tx_revoke(repeat('x', 200), 'public', 'send')$$),
	($$tx_revoke('x''; DROP TABLE x; --', 'public', 'send')$$),
	($$tx_revoke('bi.nosuch', 'public', 'send')$$),
	($$tx_revoke('bi.topic', 'bi_no_such_role', 'send')$$),
	($$tx_revoke('bi.topic', repeat('r', 200), 'send')$$),
	($$tx_revoke('bi.topic', 'public', '')$$),
	($$tx_revoke('bi.topic', 'public', 'ALL')$$),
	($$tx_revoke('bi.topic', 'public', 'usage')$$),
	($$tx_revoke('bi.topic', 'public', repeat('x', 200))$$)
) AS c(call);

-- tx_send(topic, payload, key, tags, headers, delay)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_send(NULL, '{}')$$),
	($$tx_send('bi.topic', NULL)$$),
	($$tx_send('', '{}')$$),
	($$tx_send(repeat('x', 128), '{}')$$),
	($$tx_send(repeat('x', 200), '{}')$$),
	($$tx_send('x''; DROP TABLE x; --', '{}')$$),
	($$tx_send('bi.nosuch', '{}')$$),
	($$tx_send('bi.topic', to_jsonb(repeat('x', 2000)))$$),
	($$tx_send('bi.topic', jsonb_build_object('k', repeat('x', 2000)))$$),
	($$tx_send('bi.topic', '{}', key => repeat('k', 2000))$$),
	($$tx_send('bi.topic', '{}', tags => array_fill('tag'::text, ARRAY[500]))$$),
	($$tx_send('bi.topic', '{}', headers => jsonb_build_object('h', repeat('x', 2000)))$$),
	($$tx_send_batch('bi.topic', '{"{}"}', keys => ARRAY[repeat('k', 2000)])$$),
	($$tx_send_half('bi.topic', '{}', key => repeat('k', 2000))$$),
	($$tx_send('bi.topic', '{}', tags => '{a,NULL}')$$),
	($$tx_send('bi.topic', '{}', tags => '{NULL}')$$),
	($$tx_send('bi.topic', '{}', tags => '{{a,b},{c,d}}')$$),
	($$tx_send('bi.topic', '{}', headers => '[]')$$),
	($$tx_send('bi.topic', '{}', headers => '[{"a": 1}]')$$),
	($$tx_send('bi.topic', '{}', headers => '"text"')$$),
	($$tx_send('bi.topic', '{}', headers => '1')$$),
	($$tx_send('bi.topic', '{}', headers => 'true')$$),
	($$tx_send('bi.topic', '{}', headers => 'null')$$),
	($$tx_send('bi.topic', '{}', delay => '-1 s')$$),
	($$tx_send('bi.topic', '{}', delay => '1 month -40 days')$$),
	($$tx_send('bi.topic', '{}', delay => '101 years')$$),
	($$tx_send('bi.topic', '{}', delay => '1000 years')$$),
	($$tx_send('bi.topic', '{}', delay => '178000000 years')$$),
	($$tx_send('bi.topic', '{}', delay => '-178000000 years')$$)
) AS c(call);

-- tx_send_batch(topic, payloads, keys, tags, headers, delay)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_send_batch(NULL, '{"{}"}')$$),
	($$tx_send_batch('bi.topic', NULL)$$),
	($$tx_send_batch('', '{"{}"}')$$),
	($$tx_send_batch(repeat('x', 200), '{"{}"}')$$),
	($$tx_send_batch('x''; DROP TABLE x; --', '{"{}"}')$$),
	($$tx_send_batch('bi.nosuch', '{"{}"}')$$),
	($$(SELECT count(*) FROM tx_send_batch('bi.topic', '{}'))$$),
	($$tx_send_batch('bi.topic', '{NULL}')$$),
	($$tx_send_batch('bi.topic', ARRAY['{}'::jsonb, NULL])$$),
	($$tx_send_batch('bi.topic', '{{1,2},{3,4}}')$$),
	($$tx_send_batch('bi.topic', ARRAY['{}'::jsonb, to_jsonb(repeat('x', 2000))])$$),
	($$tx_send_batch('bi.topic', '{1,2}', keys => '{}')$$),
	($$tx_send_batch('bi.topic', '{1,2}', keys => '{a}')$$),
	($$tx_send_batch('bi.topic', '{1,2}', keys => '{a,b,c}')$$),
	($$tx_send_batch('bi.topic', '{1,2}', keys => '{{a},{b}}')$$),
	($$tx_send_batch('bi.topic', '{1}', tags => '{a,NULL}')$$),
	($$tx_send_batch('bi.topic', '{1}', tags => '{{a},{b}}')$$),
	($$tx_send_batch('bi.topic', '{1}', headers => '[]')$$),
	($$tx_send_batch('bi.topic', '{1}', headers => '"text"')$$),
	($$tx_send_batch('bi.topic', '{1}', headers => '0')$$),
	($$tx_send_batch('bi.topic', '{1}', delay => '-1 s')$$),
	($$tx_send_batch('bi.topic', '{1}', delay => '101 years')$$),
	($$tx_send_batch('bi.topic', '{1}', delay => '1000 years')$$),
	($$tx_send_batch('bi.topic', '{1}', delay => '178000000 years')$$)
) AS c(call);

-- tx_send_half(topic, payload, key, tags, headers)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_send_half(NULL, '{}')$$),
	($$tx_send_half('bi.topic', NULL)$$),
	($$tx_send_half('', '{}')$$),
	($$tx_send_half(repeat('x', 200), '{}')$$),
	($$tx_send_half('x''; DROP TABLE x; --', '{}')$$),
	($$tx_send_half('bi.nosuch', '{}')$$),
	($$tx_send_half('bi.topic', to_jsonb(repeat('x', 2000)))$$),
	($$tx_send_half('bi.topic', '{}', tags => '{a,NULL}')$$),
	($$tx_send_half('bi.topic', '{}', tags => '{{a},{b}}')$$),
	($$tx_send_half('bi.topic', '{}', headers => '[]')$$),
	($$tx_send_half('bi.topic', '{}', headers => '"text"')$$),
	($$tx_send_half('bi.topic', '{}', headers => 'null')$$)
) AS c(call);

-- tx_commit_half(msg_id) and tx_rollback_half(msg_id)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_commit_half(NULL)$$),
	($$tx_commit_half(0)$$),
	($$tx_commit_half(-1)$$),
	($$tx_commit_half(9223372036854775807)$$),
	($$tx_commit_half(-9223372036854775808)$$),
	($$tx_rollback_half(NULL)$$),
	($$tx_rollback_half(0)$$),
	($$tx_rollback_half(-1)$$),
	($$tx_rollback_half(9223372036854775807)$$),
	($$tx_rollback_half(-9223372036854775808)$$)
) AS c(call);

-- tx_subscribe(topic, consumer_group, tags, handler, max_retries, backoff,
--              lease, ordered, start_from, dead_letter_topic, filter,
--              handler_executors)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_subscribe(NULL, 'bi.g2')$$),
	($$tx_subscribe('bi.topic', NULL)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', max_retries => NULL)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => NULL)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', lease => NULL)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', ordered => NULL)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => 'epoch')$$),
	($$tx_subscribe('', 'bi.g2')$$),
	($$tx_subscribe(repeat('x', 200), 'bi.g2')$$),
	($$tx_subscribe('x''; DROP TABLE x; --', 'bi.g2')$$),
	($$tx_subscribe('bi.nosuch', 'bi.g2')$$),
	($$tx_subscribe('bi.topic', '')$$),
	($$tx_subscribe('bi.topic', repeat('g', 128))$$),
	($$tx_subscribe('bi.topic', repeat('g', 200))$$),
	($$tx_subscribe('bi.topic', 'x''; DROP TABLE x; --')$$),
	($$tx_subscribe('bi.topic', 'bi group')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', tags => '{}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', tags => '{a,NULL}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', tags => '{{a},{b}}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 0::regprocedure)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => '-')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 4000000000::oid::regprocedure)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_two_args(tx_message.message,integer)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_set(tx_message.message)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_no_args()')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_text_arg(text)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_proc(tx_message.message)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_agg(tx_message.message)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler => 'bi_missing(tx_message.message)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', max_retries => -1)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', max_retries => -2147483648)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', max_retries => 10001)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', max_retries => 2147483647)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{NULL}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{1 s,NULL}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{{1 s},{2 s}}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{-1 s}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{1 s,-1 s}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{101 years}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{1000 years}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => '{178000000 years}')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => array_fill('1 s'::interval, '{101}'))$$),
	($$tx_subscribe('bi.topic', 'bi.g2', backoff => array_fill('1 s'::interval, '{100000}'))$$),
	($$tx_subscribe('bi.topic', 'bi.g2', lease => '0')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', lease => '-1 s')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', lease => '101 years')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', lease => '1000 years')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', lease => '178000000 years')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => '')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => 'NOW')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => 'oldest')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => 'now''; DROP TABLE x; --')$$),
	($$tx_subscribe('bi.topic', 'bi.group', max_retries => -1)$$),
	($$tx_subscribe('bi.topic', 'bi.group', lease => '101 years')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler_executors => NULL)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler_executors => 0)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler_executors => -1)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler_executors => 9)$$),
	($$tx_subscribe('bi.topic', 'bi.g2', handler_executors => 2147483647)$$),
	($$tx_subscribe('bi.topic', 'bi.group', handler_executors => 9)$$)
) AS c(call);

-- tx_unsubscribe(topic, consumer_group)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_unsubscribe(NULL, 'bi.group')$$),
	($$tx_unsubscribe('bi.topic', NULL)$$),
	($$tx_unsubscribe('', 'bi.group')$$),
	($$tx_unsubscribe('bi.topic', '')$$),
	($$tx_unsubscribe(repeat('x', 200), 'bi.group')$$),
	($$tx_unsubscribe('bi.topic', repeat('g', 200))$$),
	($$tx_unsubscribe('x''; DROP TABLE x; --', 'bi.group')$$),
	($$tx_unsubscribe('bi.topic', 'x''; DROP TABLE x; --')$$),
	($$tx_unsubscribe('bi.nosuch', 'bi.group')$$),
	($$tx_unsubscribe('bi.topic', 'bi.nosuch')$$)
) AS c(call);

-- tx_receive(consumer_group, max_messages, wait, lease)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_receive(NULL)$$),
	($$tx_receive('')$$),
	($$tx_receive(repeat('g', 200))$$),
	($$tx_receive('x''; DROP TABLE x; --')$$),
	($$tx_receive('bi.nosuch')$$),
	($$tx_receive('bi.group', NULL)$$),
	($$tx_receive('bi.group', 0)$$),
	($$tx_receive('bi.group', -1)$$),
	($$tx_receive('bi.group', 100001)$$),
	($$tx_receive('bi.group', 2147483647)$$),
	($$tx_receive('bi.group', -2147483648)$$),
	($$tx_receive('bi.group', wait => NULL)$$),
	($$tx_receive('bi.group', wait => '-1 s')$$),
	($$tx_receive('bi.group', wait => '101 years')$$),
	($$tx_receive('bi.group', wait => '1000 years')$$),
	($$tx_receive('bi.group', wait => '178000000 years')$$),
	($$tx_receive('bi.group', wait => '-178000000 years')$$),
	($$tx_receive('bi.group', lease => '0')$$),
	($$tx_receive('bi.group', lease => '-1 s')$$),
	($$tx_receive('bi.group', lease => '101 years')$$),
	($$tx_receive('bi.group', lease => '1000 years')$$),
	($$tx_receive('bi.group', lease => '178000000 years')$$),
	($$(SELECT count(*) FROM tx_receive('bi.group', 100000, '0', '100 years'))$$)
) AS c(call);

-- tx_ack(consumer_group, msg_ids bigint[]), tx_ack(consumer_group, msg_id bigint)
-- and tx_ack(consumer_group)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_ack(NULL, '{1}'::bigint[])$$),
	($$tx_ack('bi.group', NULL::bigint[])$$),
	($$tx_ack('', '{1}'::bigint[])$$),
	($$tx_ack(repeat('g', 200), '{1}'::bigint[])$$),
	($$tx_ack('x''; DROP TABLE x; --', '{1}'::bigint[])$$),
	($$tx_ack('bi.nosuch', '{1}'::bigint[])$$),
	($$tx_ack('bi.group', '{1,NULL}'::bigint[])$$),
	($$tx_ack('bi.group', '{{1,2},{3,4}}'::bigint[])$$),
	($$tx_ack('bi.group', '{}'::bigint[])$$),
	($$tx_ack('bi.group', '{0,-1,9223372036854775807,-9223372036854775808}'::bigint[])$$),
	($$tx_ack('bi.group', NULL)$$),
	($$tx_ack(NULL, 1::bigint)$$),
	($$tx_ack('bi.group', NULL::bigint)$$),
	($$tx_ack('', 1::bigint)$$),
	($$tx_ack(repeat('g', 200), 1::bigint)$$),
	($$tx_ack('bi.nosuch', 1::bigint)$$),
	($$tx_ack('bi.group', -1::bigint)$$),
	($$tx_ack(NULL::text)$$),
	($$tx_ack('')$$),
	($$tx_ack(repeat('g', 200))$$),
	($$tx_ack('x''; DROP TABLE x; --')$$),
	($$tx_ack('bi.nosuch')$$),
	($$tx_ack('bi.group')$$)
) AS c(call);

-- tx_nack(consumer_group, msg_id, error, retry_in)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_nack(NULL, 1)$$),
	($$tx_nack('bi.group', NULL)$$),
	($$tx_nack('', 1)$$),
	($$tx_nack(repeat('g', 200), 1)$$),
	($$tx_nack('x''; DROP TABLE x; --', 1)$$),
	($$tx_nack('bi.nosuch', 1)$$),
	($$tx_nack('bi.group', 1, retry_in => '-1 s')$$),
	($$tx_nack('bi.group', 1, retry_in => '101 years')$$),
	($$tx_nack('bi.group', 1, retry_in => '1000 years')$$),
	($$tx_nack('bi.group', 1, retry_in => '178000000 years')$$),
	($$tx_nack('bi.group', -1)$$),
	($$tx_nack('bi.group', 9223372036854775807, 'x''; DROP TABLE x; --', '0')$$)
) AS c(call);

-- tx_extend_lease(consumer_group, msg_ids, lease)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_extend_lease(NULL, '{1}', '1 min')$$),
	($$tx_extend_lease('bi.group', NULL, '1 min')$$),
	($$tx_extend_lease('bi.group', '{1}', NULL)$$),
	($$tx_extend_lease('', '{1}', '1 min')$$),
	($$tx_extend_lease(repeat('g', 200), '{1}', '1 min')$$),
	($$tx_extend_lease('x''; DROP TABLE x; --', '{1}', '1 min')$$),
	($$tx_extend_lease('bi.nosuch', '{1}', '1 min')$$),
	($$tx_extend_lease('bi.group', '{1,NULL}', '1 min')$$),
	($$tx_extend_lease('bi.group', '{{1},{2}}', '1 min')$$),
	($$tx_extend_lease('bi.group', '{1}', '0')$$),
	($$tx_extend_lease('bi.group', '{1}', '-1 s')$$),
	($$tx_extend_lease('bi.group', '{1}', '101 years')$$),
	($$tx_extend_lease('bi.group', '{1}', '1000 years')$$),
	($$tx_extend_lease('bi.group', '{1}', '178000000 years')$$),
	($$tx_extend_lease('bi.group', '{}', '1 min')$$),
	($$tx_extend_lease('bi.group', '{-1}', '1 min')$$)
) AS c(call);

-- tx_redrive(consumer_group, msg_ids)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_redrive(NULL)$$),
	($$tx_redrive(NULL, '{1}')$$),
	($$tx_redrive('')$$),
	($$tx_redrive(repeat('g', 200))$$),
	($$tx_redrive('x''; DROP TABLE x; --')$$),
	($$tx_redrive('bi.nosuch')$$),
	($$tx_redrive('bi.nosuch', '{1}')$$),
	($$tx_redrive('bi.group', '{1,NULL}')$$),
	($$tx_redrive('bi.group', '{{1},{2}}')$$),
	($$tx_redrive('bi.group')$$),
	($$tx_redrive('bi.group', '{}')$$),
	($$tx_redrive('bi.group', '{-1}')$$)
) AS c(call);

-- tx_purge_dead_letters(consumer_group, older_than, msg_ids)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_purge_dead_letters(NULL)$$),
	($$tx_purge_dead_letters(NULL, '0', '{1}')$$),
	($$tx_purge_dead_letters('bi.group', NULL)$$),
	($$tx_purge_dead_letters('')$$),
	($$tx_purge_dead_letters(repeat('g', 200))$$),
	($$tx_purge_dead_letters('x''; DROP TABLE x; --')$$),
	($$tx_purge_dead_letters('bi.nosuch')$$),
	($$tx_purge_dead_letters('bi.group', '-1 s')$$),
	($$tx_purge_dead_letters('bi.group', '101 years')$$),
	($$tx_purge_dead_letters('bi.group', '1000 years')$$),
	($$tx_purge_dead_letters('bi.group', '178000000 years')$$),
	($$tx_purge_dead_letters('bi.group', '0', '{1,NULL}')$$),
	($$tx_purge_dead_letters('bi.group', '0', '{{1},{2}}')$$),
	($$tx_purge_dead_letters('bi.group')$$),
	($$tx_purge_dead_letters('bi.group', '0', '{}')$$),
	($$tx_purge_dead_letters('bi.group', '100 years', '{-1}')$$)
) AS c(call);

-- tx_redrive_half(msg_ids) and tx_purge_half_dead_letters(older_than, msg_ids)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_redrive_half('{1,NULL}')$$),
	($$tx_redrive_half('{NULL}')$$),
	($$tx_redrive_half('{{1},{2}}')$$),
	($$tx_redrive_half('{}')$$),
	($$tx_redrive_half('{0,-1,9223372036854775807}')$$),
	($$tx_purge_half_dead_letters(NULL)$$),
	($$tx_purge_half_dead_letters('-1 s')$$),
	($$tx_purge_half_dead_letters('101 years')$$),
	($$tx_purge_half_dead_letters('1000 years')$$),
	($$tx_purge_half_dead_letters('178000000 years')$$),
	($$tx_purge_half_dead_letters('0', '{1,NULL}')$$),
	($$tx_purge_half_dead_letters('0', '{{1},{2}}')$$),
	($$tx_purge_half_dead_letters('100 years', '{}')$$)
) AS c(call);

-- the options of 1.1: dead-letter topics, notify channels, filters, start
-- times, dedup keys, per-message check delays, and tx_seek(consumer_group,
-- topic, target) (STRICT)
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_create_topic('bi.t2', dead_letter_topic => 'bi.t2')$$),
	($$tx_create_topic('bi.t2', dead_letter_topic => 'bi.nosuch')$$),
	($$tx_create_topic('bi.t2', dead_letter_topic => '')$$),
	($$tx_create_topic('bi.t2', dead_letter_topic => repeat('x', 200))$$),
	($$tx_create_topic('bi.t2', dead_letter_topic => 'x''; DROP TABLE x; --')$$),
	($$tx_create_topic('bi.t2', notify_channel => '')$$),
	($$tx_create_topic('bi.t2', notify_channel => repeat('c', 64))$$),
	($$tx_alter_topic('bi.topic', dead_letter_topic => 'bi.topic')$$),
	($$tx_alter_topic('bi.topic', dead_letter_topic => 'bi.nosuch')$$),
	($$tx_alter_topic('bi.topic', notify_channel => repeat('c', 64))$$),
	($$tx_subscribe('bi.topic', 'bi.g2', dead_letter_topic => 'bi.topic')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', dead_letter_topic => 'bi.nosuch')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', dead_letter_topic => '')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', filter => '$')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', filter => '$.region')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', filter => '$ ? (@.a > 1)')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', filter => '$.a == 1 && $.b == $nope')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', filter => 'exists($[$n])')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => '2026-13-45')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => 'infinity')$$),
	($$tx_subscribe('bi.topic', 'bi.g2', start_from => '20261127 next tuesday')$$),
	($$tx_send('bi.topic', '{}', dedup_key => '')$$),
	($$tx_send('bi.topic', '{}', dedup_key => repeat('k', 1025))$$),
	($$tx_send_batch('bi.topic', '{1,2}', dedup_keys => '{a}')$$),
	($$tx_send_batch('bi.topic', '{1}', dedup_keys => '{{a}}')$$),
	($$tx_send_batch('bi.topic', '{1}', dedup_keys => '{""}')$$),
	($$tx_send_half('bi.topic', '{}', dedup_key => '')$$),
	($$tx_send_half('bi.topic', '{}', check_after => '0')$$),
	($$tx_send_half('bi.topic', '{}', check_after => '-1 s')$$),
	($$tx_send_half('bi.topic', '{}', check_after => '101 years')$$),
	($$tx_seek(NULL, 'bi.topic', 'earliest')$$),
	($$tx_seek('bi.group', NULL, 'earliest')$$),
	($$tx_seek('bi.group', 'bi.topic', NULL::text)$$),
	($$tx_seek('', 'bi.topic', 'latest')$$),
	($$tx_seek('bi.group', '', 'latest')$$),
	($$tx_seek('bi.group', repeat('x', 200), 'latest')$$),
	($$tx_seek('x''; DROP TABLE x; --', 'bi.topic', 'latest')$$),
	($$tx_seek('bi.group', 'bi.nosuch', 'latest')$$),
	($$tx_seek('bi.nosuch', 'bi.topic', 'latest')$$),
	($$tx_seek('bi.group', 'bi.topic', 'oldest')$$),
	($$tx_seek('bi.group', 'bi.topic', '')$$),
	($$tx_seek('bi.group', 'bi.topic', '2026-13-45')$$),
	($$tx_recent(NULL)$$),
	($$tx_recent('bi.topic', NULL)$$),
	($$tx_recent('bi.topic', 20, NULL)$$),
	($$tx_recent('')$$),
	($$tx_recent('bi.nosuch')$$),
	($$tx_recent('bi.topic', 0)$$),
	($$tx_recent('bi.topic', 1001)$$),
	($$tx_recent('bi.topic', 20, -1)$$)
) AS c(call);

-- the internal functions: tx_message._may (STRICT) and the trigger function
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_message._may('bi.topic', NULL)$$),
	($$tx_message._may(NULL::text, 'send')$$),
	($$tx_message._may('bi.topic', '')$$),
	($$tx_message._may('bi.topic', 'usage')$$),
	($$tx_message._may('bi.topic', repeat('x', 200))$$),
	($$tx_message._may('bi.nosuch', 'send')$$),
	($$tx_message._may('', 'send')$$),
	($$tx_message._may(repeat('x', 200), 'send')$$),
	($$tx_message._may('x''; DROP TABLE x; --', 'send')$$),
	($$tx_message._may(-1, 'send')$$),
	($$tx_message._may(0, 'bogus')$$),
	($$tx_message._retries_written()$$)
) AS c(call);

-- sending, consuming and configuring are refused in a read-only transaction
BEGIN TRANSACTION READ ONLY;
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_send('bi.topic', '{}')$$),
	($$tx_send_batch('bi.topic', '{1}')$$),
	($$tx_send_half('bi.topic', '{}')$$),
	($$tx_commit_half(1)$$),
	($$tx_create_topic('bi.new')$$),
	($$tx_alter_topic('bi.topic', check_max => 2)$$),
	($$tx_grant('bi.topic', 'public', 'send')$$),
	($$tx_subscribe('bi.topic', 'bi.g2')$$),
	($$tx_receive('bi.group')$$),
	($$tx_ack('bi.group', '{1}'::bigint[])$$),
	($$tx_nack('bi.group', 1)$$),
	($$tx_extend_lease('bi.group', '{1}', '1 min')$$),
	($$tx_seek('bi.group', 'bi.topic', 'earliest')$$)
) AS c(call);
COMMIT;

-- nothing was written
SELECT count(*) AS tables_compared FROM bi_before;
SELECT b.tbl, b.n AS before, a.n AS after
  FROM bi_before b FULL JOIN bi_counts() a USING (tbl)
 WHERE b.n IS DISTINCT FROM a.n;

-- the catalogue in numbers; XX000 would be a bug
SELECT outcome, count(*) AS calls FROM bi_outcomes GROUP BY outcome ORDER BY outcome;
SELECT substring(call from '(tx_[a-z_]+|_[a-z_]+)\(') AS function, count(*) AS calls,
       string_agg(DISTINCT CASE WHEN outcome LIKE 'ok%' THEN 'ok' ELSE outcome END, ' ') AS outcomes
  FROM bi_outcomes WHERE call NOT LIKE 'set_config%' GROUP BY 1 ORDER BY 1;
SELECT call, message FROM bi_outcomes WHERE outcome IN ('XX000', 'XX001', 'XX002') ORDER BY n;

-- tx_message._may, the row filter of the views, is declared PARALLEL SAFE:
-- it must answer in a parallel query too, where a large log table puts it
-- (the message is sent in the transaction and rolled back)
BEGIN;
SELECT tx_send('bi.topic', '{}') > 0 AS sent;
SET LOCAL force_parallel_mode = on;
SELECT count(*) AS receivable FROM tx_message.messages WHERE topic = 'bi.topic';
ROLLBACK;
SET force_parallel_mode = on;
SELECT tx_message._may('bi.topic', 'receive') AS may_receive;
SELECT tx_message._may(topic_id, 'receive') AS may_receive_by_id
  FROM tx_message.topics WHERE topic = 'bi.topic';
RESET force_parallel_mode;

-- what is accepted: any JSON payload, empty tags and headers, zero delays,
-- the bounds themselves, and check_function => '-' on tx_alter_topic
BEGIN;
SELECT call, bi_try(call) AS outcome FROM (VALUES
	($$tx_send('bi.topic', '"text"') > 0$$),
	($$tx_send('bi.topic', '1') > 0$$),
	($$tx_send('bi.topic', 'true') > 0$$),
	($$tx_send('bi.topic', 'null') > 0$$),
	($$tx_send('bi.topic', '[]') > 0$$),
	($$tx_send('bi.topic', to_jsonb(repeat('x', 1000))) > 0$$),
	($$tx_send('bi.topic', '{}', key => '', tags => '{}', headers => '{}', delay => '0') > 0$$),
	($$tx_send('bi.topic', '{}', key => 'x''; DROP TABLE x; --', tags => ARRAY[repeat('t', 200)]) > 0$$),
	($$tx_send('bi.topic', '{}', delay => '100 years') > 0$$),
	($$tx_send_half('bi.topic', 'null') > 0$$),
	($$(SELECT count(*) FROM tx_send_batch('bi.topic', ARRAY['1', '"a"', 'null']::jsonb[], keys => '{a,NULL,""}'))$$),
	($$tx_create_topic('bi.edge', '100 years', NULL, '100 years', '100 years', 10000)$$),
	($$tx_create_topic('bi.edge2', '1 microsecond', NULL, '1 microsecond', '1 microsecond', 1)$$),
	($$tx_alter_topic('bi.topic', check_function => 'bi_check(tx_message.message)')$$),
	($$tx_alter_topic('bi.topic', check_function => '-')$$),
	($$tx_alter_topic('bi.topic')$$),
	($$tx_subscribe('bi.edge', 'bi.edge', max_retries => 10000, backoff => array_fill('100 years'::interval, '{100}'), lease => '100 years')$$),
	($$tx_subscribe('bi.edge', 'bi.edge', max_retries => 0, backoff => '{0}', lease => '1 microsecond')$$),
	($$tx_subscribe('bi.edge', 'bi.edge', handler => 'bi_returns_int(tx_message.message)')$$),
	($$tx_grant('bi.topic', 'public', 'all')$$),
	($$tx_revoke('bi.topic', 'public', 'all')$$),
	($$tx_revoke('bi.topic', 'public', 'monitor')$$)
) AS c(call);
ROLLBACK;

-- clean up
RESET tx_message.max_payload_size;
SELECT b.tbl, b.n AS before, a.n AS after
  FROM bi_before b FULL JOIN bi_counts() a USING (tbl)
 WHERE b.n IS DISTINCT FROM a.n;
SELECT tx_drop_topic('bi.topic', cascade => true);
DROP FUNCTION bi_counts(), bi_try(text), bi_check(tx_message.message),
	bi_returns_int(tx_message.message), bi_two_args(tx_message.message, integer),
	bi_set(tx_message.message), bi_no_args(), bi_text_arg(text);
DROP AGGREGATE bi_agg(tx_message.message);
DROP FUNCTION bi_agg_step(text, tx_message.message);
DROP PROCEDURE bi_proc(tx_message.message);
DROP TABLE bi_outcomes, bi_before;
