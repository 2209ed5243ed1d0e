-- The source documents' scenario, inside one database: an orders service
-- publishes order-created in its transaction; a points service adds points.
--
--   1. success: the order and its event commit together; points are added;
--   2. produce error: the orders service dies between its local transaction
--      and committing the half message; a check-back asks the orders table
--      (RocketMQ's checkLocalTransaction) and resolves it;
--   3. consume error: the points service fails on a message; it is retried
--      with backoff, then dead-lettered; the dead letter goes to a
--      dead-letter topic, where an alerting subscription (a durable one,
--      with retries of its own) writes an alert; a LISTENing session is
--      woken as well.
--
-- Played by scripts/demo.sh (against a cluster whose worker serves this
-- database) and by the regression test sql/order_points.sql, which sets
-- :regress and leaves out what varies between runs.
\set VERBOSITY terse
\pset footer off
\if :{?regress}
\else
\set regress 0
\endif

CREATE EXTENSION IF NOT EXISTS tx_message;

-- Wait (at most 20 s) until a condition holds: the worker does the work.
CREATE FUNCTION demo_wait(condition text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	done boolean;
BEGIN
	FOR i IN 1..200 LOOP
		EXECUTE 'SELECT ' || condition INTO done;
		IF done THEN
			RETURN 'done';
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RAISE EXCEPTION 'gave up waiting for %', condition;
END $$;

\echo
\echo '== The orders service and the points service'
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
CREATE TABLE points (customer text PRIMARY KEY, points int NOT NULL);
CREATE TABLE credited_orders (order_id int PRIMARY KEY);
CREATE TABLE alerts (id serial PRIMARY KEY, consumer_group text, order_key text,
                     attempts int, reason text, last_error text);

-- The points service consumes order-created.  Like every consumer it is
-- idempotent: an order is credited once, however often it is delivered.
CREATE FUNCTION add_points(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF m.payload->>'customer' = 'mallory' THEN
		RAISE EXCEPTION 'points service cannot credit customer %', m.payload->>'customer';
	END IF;
	INSERT INTO credited_orders VALUES ((m.payload->>'order')::int) ON CONFLICT DO NOTHING;
	IF FOUND THEN
		INSERT INTO points VALUES (m.payload->>'customer', (m.payload->>'amount')::int)
		ON CONFLICT (customer) DO UPDATE SET points = points.points + excluded.points;
	END IF;
END $$;

-- The alerting service consumes the dead-letter topic: one alert per dead letter.
CREATE FUNCTION raise_alert(m tx_message.message) RETURNS void LANGUAGE sql AS $$
	INSERT INTO alerts (consumer_group, order_key, attempts, reason, last_error)
	VALUES (m.headers->'dead_letter'->>'consumer_group', m.key,
	        (m.headers->'dead_letter'->>'attempts')::int,
	        m.headers->'dead_letter'->>'reason', m.headers->'dead_letter'->>'last_error') $$;

-- The orders service answers check-backs from its own table.
CREATE FUNCTION order_committed(m tx_message.message) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN EXISTS (SELECT 1 FROM orders WHERE id = (m.payload->>'order')::int)
	            THEN 'commit' ELSE 'rollback' END $$;

SELECT tx_create_topic('order-created', check_function => 'order_committed(tx_message.message)',
                       check_after => '1 s', check_interval => '1 s', check_max => 5);
SELECT tx_create_topic('order-created-dlq');
SELECT tx_subscribe('order-created', 'points-service', handler => 'add_points(tx_message.message)',
                    max_retries => 2, backoff => '{1 s}', dead_letter_topic => 'order-created-dlq');
SELECT tx_subscribe('order-created-dlq', 'alerting', handler => 'raise_alert(tx_message.message)');
SELECT topic, consumer_group, handler, max_retries, dead_letter_topic
  FROM tx_message.subscriptions ORDER BY topic;

\echo
\echo '== Scenario 1: success.  Half message, local transaction, commit.'
SELECT tx_send_half('order-created', '{"order": 1, "customer": "alice", "amount": 30}', key => 'order-1') AS half1 \gset
BEGIN;
INSERT INTO orders VALUES (1, 'alice', 30);
SELECT tx_commit_half(:half1) AS committed;
COMMIT;
\echo '-- the points service credits alice'
SELECT demo_wait($$(SELECT count(*) = 1 FROM points WHERE customer = 'alice')$$) AS waited;
SELECT customer, points FROM points ORDER BY customer;

\echo
\echo '== Scenario 2: produce error.  The orders service dies before answering.'
\echo '-- order 2: the local transaction committed, then the service crashed'
SELECT tx_send_half('order-created', '{"order": 2, "customer": "bob", "amount": 50}', key => 'order-2') AS half2 \gset
INSERT INTO orders VALUES (2, 'bob', 50);
\echo '-- order 3: the local transaction failed, then the service crashed'
SELECT tx_send_half('order-created', '{"order": 3, "customer": "carol", "amount": 70}', key => 'order-3') AS half3 \gset
SELECT key, state FROM tx_message.messages
 WHERE topic = 'order-created' AND key IN ('order-2', 'order-3') ORDER BY key;
\echo '-- after check_after the worker calls order_committed() for each'
SELECT demo_wait(format($$(SELECT count(*) = 2 FROM tx_message.half_messages
                            WHERE msg_id IN (%s, %s) AND state <> 'half')$$, :half2, :half3)) AS waited;
SELECT key, state, resolved_by FROM tx_message.half_messages WHERE msg_id IN (:half2, :half3) ORDER BY key;
SELECT demo_wait($$(SELECT count(*) = 1 FROM points WHERE customer = 'bob')$$) AS waited;
SELECT customer, points FROM points ORDER BY customer;

\echo
\echo '== Scenario 3: consume error.  Retries, then a dead letter and an alert.'
\echo '-- (NOTIFY tx_message_dead_letter wakes a LISTENing session at once; the alert'
\echo '--  below comes through the dead-letter topic, so none is missed while nobody listens)'
\if :regress
\else
LISTEN tx_message_dead_letter;
\endif
\echo '-- an ordinary transactional send, outbox style'
BEGIN;
INSERT INTO orders VALUES (4, 'mallory', 99);
SELECT tx_send('order-created', '{"order": 4, "customer": "mallory", "amount": 99}', key => 'order-4') > 0 AS sent;
COMMIT;
\echo '-- the points service fails on it: attempt 1, then 2 retries one second apart'
SELECT demo_wait($$(SELECT count(*) = 1 FROM tx_message.dead_letters
                    WHERE consumer_group = 'points-service' AND key = 'order-4')$$) AS waited;
SELECT consumer_group, key, attempts, reason, last_error
  FROM tx_message.dead_letters WHERE consumer_group = 'points-service';
\echo '-- the alerting subscription on order-created-dlq writes the alert'
SELECT demo_wait($$(SELECT count(*) = 1 FROM alerts)$$) AS waited;
SELECT consumer_group, order_key, attempts, reason, last_error FROM alerts;
SELECT customer, points FROM points ORDER BY customer;

\echo
\echo '== The service is fixed: redrive the dead letter'
CREATE OR REPLACE FUNCTION add_points(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO credited_orders VALUES ((m.payload->>'order')::int) ON CONFLICT DO NOTHING;
	IF FOUND THEN
		INSERT INTO points VALUES (m.payload->>'customer', (m.payload->>'amount')::int)
		ON CONFLICT (customer) DO UPDATE SET points = points.points + excluded.points;
	END IF;
END $$;
SELECT tx_redrive('points-service') AS redriven;
SELECT demo_wait($$(SELECT count(*) = 1 FROM points WHERE customer = 'mallory')$$) AS waited;
SELECT customer, points FROM points ORDER BY customer;

\echo
\echo '== A pull consumer reads the same topic with its own group'
SELECT tx_subscribe('order-created', 'analytics', start_from => 'earliest');
SELECT key, payload->>'customer' AS customer, attempt FROM tx_receive('analytics', 10) ORDER BY key;
SELECT tx_ack('analytics', array_agg(msg_id)) AS acked FROM tx_message.messages WHERE topic = 'order-created';

\if :regress
\else
SELECT pid, database, delivered, checks, dead_lettered, handled FROM tx_worker_status();
\endif

DROP TABLE orders, points, credited_orders, alerts;
SELECT tx_purge_dead_letters('points-service') AS purged;
SELECT tx_drop_topic('order-created', "cascade" => true);
SELECT tx_drop_topic('order-created-dlq', "cascade" => true);
DROP FUNCTION add_points(tx_message.message), order_committed(tx_message.message),
	raise_alert(tx_message.message), demo_wait(text);
