-- Topics: create, alter, drop, validation.
CREATE EXTENSION tx_message;
\set VERBOSITY terse

SELECT tx_create_topic('orders');
SELECT topic, retention, check_function, check_after, check_interval, check_max,
       owner::text, altered_at IS NULL AS never_altered
  FROM tx_message.topics;

-- names: RocketMQ's rule, 1-127 of [A-Za-z0-9._-]
SELECT tx_create_topic('Order.Events_v2-eu');
SELECT tx_create_topic(repeat('x', 127));
SELECT tx_create_topic(repeat('x', 128));
\echo :SQLSTATE
SELECT tx_create_topic('');
SELECT tx_create_topic('has space');
SELECT tx_create_topic('semi;colon');
SELECT tx_create_topic('ümlaut');
SELECT tx_create_topic(NULL);
\echo :SQLSTATE
SELECT count(*) AS topics FROM tx_message.topics;

-- duplicates
SELECT tx_create_topic('orders');
\echo :SQLSTATE
SELECT tx_create_topic('orders', retention => '1 day', if_not_exists => true);
SELECT retention FROM tx_message.topics WHERE topic = 'orders';
SELECT tx_create_topic('orders', if_not_exists => NULL);

-- options are validated and nothing is written on error
SELECT tx_create_topic('t1', retention => '0');
\echo :SQLSTATE
SELECT tx_create_topic('t1', retention => '-1 hour');
SELECT tx_create_topic('t1', retention => NULL);
SELECT tx_create_topic('t1', check_after => '0 s');
SELECT tx_create_topic('t1', check_interval => '-30 s');
SELECT tx_create_topic('t1', check_max => 0);
SELECT tx_create_topic('t1', check_max => NULL);
SELECT count(*) AS t1_exists FROM tx_message.topics WHERE topic = 't1';

-- check functions: (tx_message.message) RETURNS text
CREATE FUNCTION check_ok(m tx_message.message) RETURNS text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION check_int(m tx_message.message) RETURNS integer
	LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION check_two(m tx_message.message, x int) RETURNS text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION check_set(m tx_message.message) RETURNS SETOF text
	LANGUAGE sql AS $$ SELECT 'commit' $$;
SELECT tx_create_topic('t1', check_function => 'check_int(tx_message.message)');
\echo :SQLSTATE
SELECT tx_create_topic('t1', check_function => 'check_two(tx_message.message,int)');
SELECT tx_create_topic('t1', check_function => 'check_set(tx_message.message)');
SELECT tx_create_topic('t1', check_function => 'now()');
SELECT tx_create_topic('t1', check_function => 'no_such_function(tx_message.message)');
SELECT tx_create_topic('t1', check_function => 'check_ok(tx_message.message)',
                       check_after => '10 s', check_interval => '1 min', check_max => 3);
SELECT topic, check_function, check_after, check_interval, check_max
  FROM tx_message.topics WHERE topic = 't1';

-- alter: NULL means unchanged
SELECT tx_alter_topic('t1', retention => '12 hours');
SELECT retention, check_function, check_after, check_interval, check_max,
       altered_at IS NOT NULL AS altered
  FROM tx_message.topics WHERE topic = 't1';
SELECT tx_alter_topic('t1', check_max => 7, check_interval => '5 s');
SELECT check_interval, check_max FROM tx_message.topics WHERE topic = 't1';
SELECT tx_alter_topic('t1', check_function => '-');	-- remove the check function
SELECT check_function FROM tx_message.topics WHERE topic = 't1';
SELECT tx_alter_topic('t1', check_function => 'check_int(tx_message.message)');
SELECT tx_alter_topic('t1', check_max => -1);
SELECT tx_alter_topic('t1', check_after => '-1 s');
SELECT tx_alter_topic('t1', retention => '0');
SELECT tx_alter_topic('no_such_topic', check_max => 2);
\echo :SQLSTATE
SELECT tx_alter_topic('bad name!', check_max => 2);
SELECT tx_alter_topic(NULL);
SELECT check_function, check_max FROM tx_message.topics WHERE topic = 't1';

-- creating topics takes EXECUTE on tx_create_topic, which PUBLIC lacks;
-- only the owner (or a member of its role, or a superuser), or a role with
-- 'admin' on it, changes a topic; the role that creates a topic owns it for
-- good, whoever alters it later
CREATE ROLE txm_alice;
CREATE ROLE txm_bob;
SET ROLE txm_alice;
SELECT tx_create_topic('alice.events');
\echo :SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION tx_create_topic TO txm_alice, txm_bob;
SET ROLE txm_alice;
SELECT tx_create_topic('alice.events');
SELECT owner::text FROM tx_message.topics WHERE topic = 'alice.events';
SELECT tx_create_topic('alice.checked', check_function => 'check_ok(tx_message.message)');
SET ROLE txm_bob;
SELECT tx_alter_topic('alice.events', retention => '1 day');
\echo :SQLSTATE
SELECT tx_drop_topic('alice.events');
RESET ROLE;
SELECT tx_alter_topic('alice.events', check_max => 2);
SELECT owner::text, check_max FROM tx_message.topics WHERE topic = 'alice.events';

-- a role may only name check functions it can execute
REVOKE EXECUTE ON FUNCTION check_ok(tx_message.message) FROM PUBLIC;
SET ROLE txm_bob;
SELECT tx_create_topic('bob.checked', check_function => 'check_ok(tx_message.message)');
\echo :SQLSTATE
RESET ROLE;

-- the internal tables are not writable by ordinary roles
SET ROLE txm_bob;
INSERT INTO tx_message.topics (topic, retention, check_after, check_interval, check_max, owner)
VALUES ('sneaky', '1 day', '1 s', '1 s', 1, 'postgres');
SELECT count(*) > 0 AS can_read_topics FROM tx_message.topics;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tx_create_topic FROM txm_alice, txm_bob;

-- drop
SELECT tx_drop_topic('t1');
SELECT tx_drop_topic('t1');
\echo :SQLSTATE
SELECT tx_drop_topic(NULL);
SELECT tx_drop_topic('orders', "cascade" => NULL);
SELECT tx_drop_topic('alice.events');
SELECT tx_drop_topic('alice.checked');
SELECT topic FROM tx_message.topics ORDER BY topic;

-- a dropped topic can be created again and gets a new identity
SELECT topic_id AS old_id FROM tx_message.topics WHERE topic = 'orders' \gset
SELECT tx_drop_topic('orders');
SELECT tx_create_topic('orders');
SELECT topic_id <> :old_id AS new_identity FROM tx_message.topics WHERE topic = 'orders';

-- created in a transaction that rolls back: gone, also from this backend's cache
BEGIN;
SELECT tx_create_topic('ephemeral');
SELECT tx_send('ephemeral', '{}') > 0 AS sent;
ROLLBACK;
SELECT tx_send('ephemeral', '{}');

DROP FUNCTION check_ok, check_int, check_two, check_set;
DROP ROLE txm_alice, txm_bob;
