-- Transactional send: a message commits or vanishes with its transaction.
\set VERBOSITY terse
SELECT tx_create_topic('orders', if_not_exists => true);
SELECT tx_create_topic('audit');

CREATE FUNCTION stored() RETURNS TABLE (topic text, payload jsonb, key text, tags text[], headers jsonb, state text)
	LANGUAGE sql AS $$
	SELECT topic, payload, key, tags, headers, state
	  FROM tx_message.messages ORDER BY msg_id $$;

-- autocommit
SELECT tx_send('orders', '{"n": 1}') > 0 AS sent;
SELECT tx_send('orders', '{"n": 2}', key => 'order-2', tags => '{created,eu}',
               headers => '{"trace": "abc"}') > 0 AS sent;
SELECT * FROM stored();

-- ROLLBACK, an error, and ROLLBACK TO a savepoint leave nothing
BEGIN;
SELECT tx_send('orders', '{"n": "rolled back"}') > 0 AS sent;
ROLLBACK;
BEGIN;
SELECT tx_send('orders', '{"n": "failed"}') > 0 AS sent;
SELECT 1 / 0;
COMMIT;
BEGIN;
SELECT tx_send('orders', '{"n": 3}') > 0 AS sent;
SAVEPOINT s1;
SELECT tx_send('orders', '{"n": "savepoint rolled back"}') > 0 AS sent;
ROLLBACK TO s1;
SAVEPOINT s2;
SELECT tx_send('orders', '{"n": 4}') > 0 AS sent;
RELEASE s2;
COMMIT;
SELECT payload FROM stored();

-- messages of one transaction keep their send order
BEGIN;
SELECT tx_send('audit', jsonb_build_object('i', i)) > 0 AS sent FROM generate_series(1, 5) i;
COMMIT;
SELECT array_agg(payload->>'i' ORDER BY msg_id) AS send_order
  FROM tx_message.messages WHERE topic = 'audit';
-- and ids of later transactions are larger
SELECT max(msg_id) AS before FROM tx_message.messages \gset
SELECT tx_send('audit', '{"later": true}') > :before AS increasing;

-- in PL/pgSQL
CREATE FUNCTION place_order(n int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	RETURN tx_send('orders', jsonb_build_object('n', n), key => 'order-' || n);
END $$;
SELECT place_order(5) > 0 AS sent;

-- the classic outbox: an AFTER INSERT trigger
CREATE TABLE shop_orders (id int PRIMARY KEY, amount numeric);
CREATE FUNCTION shop_orders_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM tx_send('orders', to_jsonb(NEW), key => NEW.id::text, tags => '{from-trigger}');
	RETURN NULL;
END $$;
CREATE TRIGGER outbox AFTER INSERT ON shop_orders
	FOR EACH ROW EXECUTE FUNCTION shop_orders_outbox();
INSERT INTO shop_orders VALUES (100, 9.5), (101, 20);
BEGIN;
INSERT INTO shop_orders VALUES (102, 1);
ROLLBACK;
INSERT INTO shop_orders VALUES (100, 0);	-- duplicate key: no message either
SELECT key, payload FROM tx_message.messages WHERE tags = '{from-trigger}' ORDER BY msg_id;

-- prepared transactions: invisible until COMMIT PREPARED, gone on ROLLBACK PREPARED
BEGIN;
SELECT tx_send('orders', '{"n": "prepared, committed"}') > 0 AS sent;
PREPARE TRANSACTION 'txm_p1';
BEGIN;
SELECT tx_send('orders', '{"n": "prepared, rolled back"}') > 0 AS sent;
PREPARE TRANSACTION 'txm_p2';
SELECT count(*) AS visible_while_prepared FROM tx_message.messages WHERE payload->>'n' LIKE 'prepared%';
COMMIT PREPARED 'txm_p1';
ROLLBACK PREPARED 'txm_p2';
SELECT payload FROM tx_message.messages WHERE payload->>'n' LIKE 'prepared%';

-- tx_send_batch: ids in payload order, keys per message
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids
  FROM tx_send_batch('audit', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[],
                     keys => '{k1,NULL,k3}', tags => '{batch}', headers => '{"src": "batch"}') id;
SELECT key, payload, tags, headers FROM tx_message.messages WHERE tags = '{batch}' ORDER BY msg_id;
CREATE TEMP TABLE batch_ids AS
	SELECT id, row_number() OVER () AS n
	  FROM tx_send_batch('audit', ARRAY['{"c": 1}', '{"c": 2}', '{"c": 3}']::jsonb[]) id;
SELECT count(*) AS found, bool_and(m.payload->>'c' = b.n::text) AS ids_in_payload_order
  FROM batch_ids b JOIN tx_message.messages m ON m.msg_id = b.id;
SELECT count(*) AS none FROM tx_send_batch('audit', '{}'::jsonb[]);
SELECT * FROM tx_send_batch('audit', ARRAY['{}', NULL]::jsonb[]);
SELECT * FROM tx_send_batch('audit', ARRAY['{}', '{}']::jsonb[], keys => '{only-one}');
SELECT * FROM tx_send_batch('audit', ARRAY[['{}'], ['{}']]::jsonb[]);
SELECT * FROM tx_send_batch('audit', NULL);
SELECT * FROM tx_send_batch('nope', ARRAY['{}']::jsonb[]);

-- delayed messages are stored committed, with a later deliver_at
SELECT tx_send('audit', '{"delayed": true}', delay => '1 hour') > 0 AS sent;
SELECT state, deliver_at - sent_at = '1 hour' AS one_hour_later
  FROM tx_message.messages WHERE payload = '{"delayed": true}';
SELECT tx_send('audit', '{"delay": 0}', delay => '0') > 0 AS sent;
SELECT deliver_at = sent_at AS immediate FROM tx_message.messages WHERE payload = '{"delay": 0}';
BEGIN;
SELECT tx_send('audit', '{"delayed": "rolled back"}', delay => '1 s') > 0 AS sent;
ROLLBACK;
SELECT count(*) FROM tx_message.messages WHERE payload = '{"delayed": "rolled back"}';

-- bad input: a clear error with a specific SQLSTATE, and nothing written
SELECT count(*) AS before FROM tx_message.messages \gset
SELECT tx_send(NULL, '{}');
\echo :SQLSTATE
SELECT tx_send('orders', NULL);
\echo :SQLSTATE
\set VERBOSITY default
SELECT tx_send('no_such_topic', '{}');
\echo :SQLSTATE
\set VERBOSITY terse
SELECT tx_send('bad topic', '{}');
\echo :SQLSTATE
SELECT tx_send(repeat('x', 200), '{}');
SELECT tx_send('orders', '{}', delay => '-1 s');
\echo :SQLSTATE
SELECT tx_send('orders', '{}', tags => '{a,NULL}');
\echo :SQLSTATE
SELECT tx_send('orders', '{}', tags => '{{a},{b}}');
SELECT tx_send('orders', '{}', headers => '[1, 2]');
\echo :SQLSTATE
SELECT tx_send('orders', '{}', headers => '"scalar"');
SET tx_message.max_payload_size = '1kB';
SELECT tx_send('orders', jsonb_build_object('big', repeat('x', 2000)));
\echo :SQLSTATE
SELECT * FROM tx_send_batch('orders', ARRAY['{}', jsonb_build_object('big', repeat('x', 2000))]);
RESET tx_message.max_payload_size;
SHOW tx_message.max_payload_size;
BEGIN READ ONLY;
SELECT tx_send('orders', '{}');
\echo :SQLSTATE
ROLLBACK;
SELECT count(*) - :before AS written FROM tx_message.messages;
SET tx_message.max_payload_size = '1kB';
SELECT tx_send('orders', jsonb_build_object('small', repeat('x', 100))) > 0 AS fits;
RESET tx_message.max_payload_size;

-- the composite type check functions and handlers receive
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'tx_message.message'::regclass AND attnum > 0
 ORDER BY attnum;

-- after a plain CREATE EXTENSION, a new session calls tx_* unqualified
\c
SHOW search_path;
SELECT tx_send('audit', '{"new session": true}') > 0 AS sent;
SELECT proname, pronamespace::regnamespace
  FROM pg_proc WHERE proname LIKE 'tx\_%' AND proname <> 'tx_message' ORDER BY 1;
-- every function of the extension runs with a fixed search_path, except the
-- hot paths, _slice_positions (it reads only its arguments, once per slice
-- row) and tx_maintenance_loop (a procedure that commits can have no SET
-- clause), which resolve nothing through it (see the install scripts)
SELECT p.oid::regprocedure AS without_search_path
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tx_message')
   AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false)
 ORDER BY 1;
SELECT nspname, relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE relname IN ('topics', 'messages', 'half_messages', 'dead_letters') ORDER BY relname;

DROP TABLE shop_orders;
DROP FUNCTION shop_orders_outbox, place_order, stored;
