-- Ordered subscriptions: per key, commit order, at most one in flight.
\set VERBOSITY terse
SELECT tx_create_topic('o.accounts');
SELECT tx_subscribe('o.accounts', 'o.ledger', ordered => true, max_retries => 1, backoff => '{1 h}');
SELECT tx_subscribe('o.accounts', 'o.any');	-- the same messages, unordered

SELECT count(*) AS sent FROM tx_send_batch('o.accounts',
	ARRAY['{"a": 1}', '{"a": 2}', '{"b": 1}', '{"a": 3}', '{"c": 1}', '{"none": 1}', '{"b": 2}']::jsonb[],
	keys => ARRAY['a', 'a', 'b', 'a', 'c', NULL, 'b']);

-- one message per key at a time; messages without a key are not ordered
SELECT key, payload FROM tx_receive('o.ledger', 100) ORDER BY msg_id;
SELECT count(*) AS while_in_flight FROM tx_receive('o.ledger', 100);
-- the unordered group gets everything at once
SELECT count(*) AS unordered FROM tx_receive('o.any', 100);

-- acking a key's message releases the next one of that key
SELECT tx_ack('o.ledger', array_agg(msg_id)) FROM tx_message.messages
 WHERE topic = 'o.accounts' AND (payload = '{"a": 1}' OR payload = '{"c": 1}');
SELECT key, payload FROM tx_receive('o.ledger', 100) ORDER BY msg_id;

-- a failing message blocks only its own key until it succeeds or is dead-lettered
SELECT tx_nack('o.ledger', msg_id, 'a2 failed') FROM tx_message.messages WHERE topic = 'o.accounts' AND payload = '{"a": 2}';	-- retry in 1 h
SELECT tx_ack('o.ledger', msg_id) FROM tx_message.messages WHERE topic = 'o.accounts' AND payload = '{"b": 1}';
SELECT key, payload FROM tx_receive('o.ledger', 100) ORDER BY msg_id;	-- b2 flows, a3 waits behind a2
SELECT tx_ack('o.ledger', msg_id) FROM tx_message.messages WHERE topic = 'o.accounts' AND payload = '{"b": 2}';
SELECT count(*) AS a_still_waiting FROM tx_receive('o.ledger', 100);
-- an hour later (the test moves the retry forward), a2 comes again, still ahead of a3
UPDATE tx_message.retries SET due_at = now() WHERE msg_id = (SELECT msg_id FROM tx_message.messages WHERE topic = 'o.accounts' AND payload = '{"a": 2}');
SELECT key, payload, attempt FROM tx_receive('o.ledger', 100) ORDER BY msg_id;
-- its last attempt fails: dead-lettered, and the key flows again
SELECT tx_nack('o.ledger', msg_id, 'a2 failed again') FROM tx_message.messages WHERE topic = 'o.accounts' AND payload = '{"a": 2}';
SELECT key, payload, attempt FROM tx_receive('o.ledger', 100) ORDER BY msg_id;
SELECT payload, attempts, last_error FROM tx_message.dead_letters WHERE consumer_group = 'o.ledger';

SELECT tx_drop_topic('o.accounts', "cascade" => true);
SELECT tx_purge_dead_letters('o.ledger');

-- with 3 000 keys waiting in retries, a claim looks up only the keys of the
-- messages it considers: the keys that wait are held back, the others flow
SELECT tx_create_topic('o.many');
SELECT tx_subscribe('o.many', 'o.many', ordered => true);
SELECT count(*) AS sent FROM tx_send_batch('o.many', array_fill('{}'::jsonb, ARRAY[3000]),
	(SELECT array_agg('r' || i) FROM generate_series(1, 3000) i));
SELECT count(tx_nack('o.many', msg_id, 'failed', '1 hour')) AS retrying FROM tx_receive('o.many', 3000);
SELECT count(*) AS sent FROM tx_send_batch('o.many', array_fill('{}'::jsonb, ARRAY[6]),
	ARRAY['r1', 'f1', 'r2999', 'f2', 'f1', 'r3000']);
-- a new session: its table statistics count this transaction's reads only
\c
BEGIN;
SELECT key FROM tx_receive('o.many', 100) ORDER BY msg_id;
SELECT seq_tup_read + idx_tup_fetch < 300 AS read_few
  FROM pg_stat_xact_all_tables WHERE relid = 'tx_message.retries_data'::regclass;
COMMIT;
SELECT tx_drop_topic('o.many', "cascade" => true);
