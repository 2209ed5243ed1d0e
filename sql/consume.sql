-- Pull consumers: receive and ack, commit order, fan-out, tag filters.
\set VERBOSITY terse
SELECT tx_create_topic('c.orders');
SELECT tx_create_topic('c.refunds');
SELECT tx_subscribe('c.orders', 'points');
SELECT tx_subscribe('c.orders', 'eu-only', tags => '{eu}');
SELECT tx_subscribe('c.orders', 'mail');
SELECT tx_subscribe('c.refunds', 'mail');

-- a subscription starting 'now' does not see older messages; 'earliest' does
SELECT tx_send('c.orders', '{"before": "subscribe"}') > 0 AS sent;
SELECT tx_subscribe('c.orders', 'late-now');
SELECT tx_subscribe('c.orders', 'late-earliest', start_from => 'earliest');
SELECT payload FROM tx_receive('late-now');
SELECT payload FROM tx_receive('late-earliest');

-- commit order across transactions, send order within one
BEGIN;
SELECT tx_send('c.orders', '{"n": 1}', tags => '{eu}') > 0 AS sent;
SELECT tx_send('c.orders', '{"n": 2}') > 0 AS sent;
COMMIT;
SELECT tx_send('c.orders', '{"n": 3}', key => 'k3', tags => '{eu,us}', headers => '{"h": 3}') > 0 AS sent;
SELECT tx_send('c.refunds', '{"refund": 1}') > 0 AS sent;

-- what a consumer gets
SELECT topic, key, tags, headers, payload, attempt,
       lease_until BETWEEN now() + '29 s' AND clock_timestamp() + '30 s' AS leased_30s
  FROM tx_receive('points');
-- fan-out: every group gets every message; tags filter; several topics
SELECT topic, payload FROM tx_receive('eu-only');
SELECT topic, payload FROM tx_receive('mail') ORDER BY topic, payload::text;

-- leased messages are not delivered again to the group
SELECT count(*) AS again FROM tx_receive('points');

-- ack: counts what it finished, never twice
SELECT array_agg(msg_id ORDER BY msg_id) AS ids FROM tx_message.messages
 WHERE topic = 'c.orders' AND payload ? 'n' \gset
SELECT tx_ack('points', :'ids'::bigint[]);
SELECT tx_ack('points', :'ids'::bigint[]);
SELECT tx_ack('points', '{}'::bigint[]);
-- another group's messages, unknown ids
SELECT tx_ack('eu-only', :'ids'::bigint[]);		-- eu-only holds 1 and 3 of them
SELECT tx_ack('late-earliest', :'ids'::bigint[]);
-- an untyped literal cannot choose between the two forms of tx_ack
SELECT tx_ack('points', '{1,2}');
SELECT tx_ack('points', ARRAY[-1, 42]);
SELECT tx_ack('points', -1::bigint);
SELECT tx_ack('points', NULL::bigint);
\echo :SQLSTATE
SELECT tx_ack('points', ARRAY[1, NULL]::bigint[]);
\echo :SQLSTATE
SELECT tx_ack('points', '{{1},{2}}'::bigint[]);
SELECT tx_ack(NULL, ARRAY[1]);

-- max_messages and batching
SELECT count(*) AS sent FROM tx_send_batch('c.orders',
	(SELECT array_agg(jsonb_build_object('batch', i) ORDER BY i) FROM generate_series(1, 10) i));
SELECT array_agg(payload->>'batch' ORDER BY msg_id) AS first_three FROM tx_receive('points', 3);
SELECT array_agg(payload->>'batch' ORDER BY msg_id) AS next_two FROM tx_receive('points', 2);
SELECT array_agg(payload->>'batch' ORDER BY msg_id) AS the_rest FROM tx_receive('points', 100);

-- bad input
SELECT * FROM tx_receive('points', 0);
\echo :SQLSTATE
SELECT * FROM tx_receive('points', -5);
SELECT * FROM tx_receive('points', NULL);
SELECT * FROM tx_receive('points', 1000000);
SELECT * FROM tx_receive('points', 10, wait => '-1 s');
SELECT * FROM tx_receive('points', 10, lease => '0 s');
SELECT * FROM tx_receive(NULL);
SELECT * FROM tx_receive('bad name!');
\echo :SQLSTATE
BEGIN READ ONLY;
SELECT * FROM tx_receive('points');
\echo :SQLSTATE
ROLLBACK;

-- wait: returns empty when nothing arrives in time, without busy looping
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS received FROM tx_receive('points', 10, wait => '300 ms');
SELECT clock_timestamp() - :'t0' >= '300 ms' AS waited;

-- a lease of the caller's choosing
SELECT tx_send('c.orders', '{"lease": "custom"}') > 0 AS sent;
SELECT lease_until - now() BETWEEN '2 min' AND '2 min 1 s' AS two_minutes
  FROM tx_receive('points', 1, lease => '2 min');

-- exactly once: receive, act and ack in one transaction
CREATE TABLE points_ledger (msg_id bigint PRIMARY KEY, points int);
SELECT tx_send('c.orders', '{"points": 10}') AS p10 \gset
BEGIN;
INSERT INTO points_ledger SELECT msg_id, (payload->>'points')::int FROM tx_receive('points', 1);
SELECT tx_ack('points', array_agg(msg_id)) FROM points_ledger;
ROLLBACK;
SELECT count(*) AS ledger_after_rollback FROM points_ledger;
-- the rolled-back receive left nothing behind: the message comes again, first attempt
BEGIN;
INSERT INTO points_ledger SELECT msg_id, (payload->>'points')::int FROM tx_receive('points', 1);
SELECT tx_ack('points', array_agg(msg_id)) FROM points_ledger;
COMMIT;
SELECT msg_id = :p10 AS same_message, points FROM points_ledger;
SELECT count(*) AS again FROM tx_receive('points', 10);

-- a receive cannot be prepared: its lease would outlive the session's view
BEGIN;
SELECT tx_send('c.orders', '{"prepare": true}') > 0 AS sent;
COMMIT;
BEGIN;
SELECT count(*) FROM tx_receive('points', 1);
PREPARE TRANSACTION 'txm_receive';
\echo :SQLSTATE
SELECT count(*) AS after_failed_prepare FROM tx_receive('points', 1);

-- internal SQL is immune to a hostile search_path: in a new session, the
-- statements behind tx_receive are prepared while the path below is set
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'epoch'::timestamptz $$;
SELECT tx_send('c.orders', '{"hostile": true}') > 0 AS sent;
\c
SET search_path = evil, pg_catalog, public;
SELECT payload FROM tx_receive('points', 1);
RESET search_path;
SELECT leased_at > '2000-01-01' AS real_clock FROM tx_message.leases
 WHERE leased_at = (SELECT max(leased_at) FROM tx_message.leases);
DROP SCHEMA evil CASCADE;

-- a tick made in a subtransaction that rolls back is forgotten with it
SELECT tx_send('c.orders', '{"tick": "rolled back"}') > 0 AS sent;
BEGIN;
SAVEPOINT s;
SELECT tx_run_maintenance()->'ticked' IS NOT NULL AS ticked;
ROLLBACK TO s;
COMMIT;
SELECT tx_send('c.orders', '{"tick": "after"}') > 0 AS sent;
SELECT payload FROM tx_receive('points', 10) ORDER BY msg_id;
SELECT count(*) AS again FROM tx_receive('points', 10);

DROP TABLE points_ledger;
SELECT tx_drop_topic('c.orders', "cascade" => true), tx_drop_topic('c.refunds', "cascade" => true);

-- one transaction receives and holds far more messages than the database's
-- claim registry has entries (two per connection: 120 000 messages are 469
-- blocks): a run of whole blocks takes a single entry
SHOW max_connections;
SELECT tx_create_topic('c.bulk');
SELECT tx_subscribe('c.bulk', 'bulk');
SELECT count(*) AS sent FROM generate_series(1, 120) g,
	LATERAL tx_send_batch('c.bulk', ARRAY(SELECT jsonb_build_object('g', g) FROM generate_series(1, 1000)));
BEGIN;
SELECT count(*) AS received FROM tx_receive('bulk', 30000);
SELECT count(*) AS received FROM tx_receive('bulk', 30000);
SELECT count(*) AS received FROM tx_receive('bulk', 30000);
SELECT count(*) AS received FROM tx_receive('bulk', 30000);
SELECT count(*) AS received FROM tx_receive('bulk', 30000);
COMMIT;
SELECT tx_drop_topic('c.bulk', "cascade" => true);

-- one tick sees more topics than the tick keeps slices rows of before
-- writing them (1 000): every topic's stream gets its one message, and
-- a group subscribed to all of them receives each once
SELECT count(tx_create_topic('c.many.' || i)) AS topics FROM generate_series(1, 1500) i;
SELECT count(tx_subscribe('c.many.' || i, 'many')) AS subscriptions FROM generate_series(1, 1500) i;
SELECT count(tx_send('c.many.' || i, jsonb_build_object('i', i))) AS sent FROM generate_series(1, 1500) i;
-- (a transaction claims from a few hundred topics at most: the claim
-- registry's entries; the leases keep what one round took from the next)
CREATE TEMP TABLE many_seen (payload jsonb);
DO $$
DECLARE
	got integer;
BEGIN
	FOR round IN 1..30 LOOP
		INSERT INTO many_seen SELECT payload FROM tx_receive('many', 2000, wait => '1 s');
		GET DIAGNOSTICS got = ROW_COUNT;
		COMMIT;
		EXIT WHEN got = 0;
	END LOOP;
END $$;
SELECT count(*) AS received, count(DISTINCT payload) AS distinct_payloads,
       min((payload->>'i')::int) AS first, max((payload->>'i')::int) AS last
  FROM many_seen;
SELECT count(*) AS slices, bool_and(s.first_seq = 0 AND cardinality(tx_message._slice_positions(s.positions, s.packed)) = 1) AS one_each
  FROM tx_message.slices s JOIN tx_message.topics t USING (topic_id) WHERE t.topic LIKE 'c.many.%';
SELECT count(tx_drop_topic('c.many.' || i, "cascade" => true)) AS dropped FROM generate_series(1, 1500) i;
