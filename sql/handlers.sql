-- In-database handlers: consumed by the worker, effects and ack in one
-- transaction, errors retried then dead-lettered, run as the subscriber.
\set VERBOSITY terse
SELECT tx_create_topic('h.orders');
CREATE ROLE txm_points;
CREATE TABLE points (customer text, points int, added_by text, attempt int);
GRANT INSERT ON points TO txm_points;
CREATE FUNCTION add_points(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO points VALUES (m.payload->>'customer', (m.payload->>'amount')::int, current_user, m.attempt);
	IF m.payload ? 'fail' THEN
		RAISE EXCEPTION 'cannot add points for %', m.payload->>'customer';
	END IF;
	IF m.payload ? 'hang' THEN
		PERFORM pg_sleep(30);		-- beyond tx_message.handler_timeout (test.conf)
	END IF;
END $$;

SELECT tx_grant('h.orders', 'txm_points', 'receive');
SET ROLE txm_points;
SELECT tx_subscribe('h.orders', 'h.points', handler => 'add_points(tx_message.message)',
                    max_retries => 1, backoff => '{10 ms}');
RESET ROLE;
SELECT handler, owner::text FROM tx_message.subscriptions WHERE consumer_group = 'h.points';

-- a handler group is not read with tx_receive
SELECT * FROM tx_receive('h.points');
\echo :SQLSTATE

SELECT tx_send('h.orders', '{"customer": "alice", "amount": 30}') AS ok1,
       tx_send('h.orders', '{"customer": "bob", "amount": 5, "fail": true}') AS bad,
       tx_send('h.orders', '{"customer": "carol", "amount": 7, "hang": true}') AS hangs,
       tx_send('h.orders', '{"customer": "dave", "amount": 12}') AS ok2 \gset
CALL maintain_until($$(SELECT count(*) = 2 FROM tx_message.dead_letters WHERE consumer_group = 'h.points')$$, '60 s');

-- successes: their effects, once, as the subscriber; failures left nothing
SELECT customer, points, added_by, attempt FROM points ORDER BY customer;
SELECT payload->>'customer' AS customer, attempts, reason, last_error
  FROM tx_message.dead_letters WHERE consumer_group = 'h.points' ORDER BY 1;
-- nothing is pending for the group any more
CALL maintain_until($$(SELECT count(*) = 0 FROM tx_message.leases l
                        JOIN tx_message.subscriptions s USING (sub_id)
                       WHERE s.consumer_group = 'h.points' AND l.covered <> l.done)$$);
SELECT count(*) AS retries FROM tx_message.retries r JOIN tx_message.subscriptions s USING (sub_id)
 WHERE s.consumer_group = 'h.points';

-- redriving a dead letter to a fixed handler succeeds
CREATE OR REPLACE FUNCTION add_points(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO points VALUES (m.payload->>'customer', (m.payload->>'amount')::int, current_user, m.attempt);
END $$;
SELECT tx_redrive('h.points', ARRAY[:bad]);
CALL maintain_until($$(SELECT count(*) = 1 FROM points WHERE customer = 'bob')$$);
SELECT customer, points, attempt FROM points WHERE customer = 'bob';

-- a handler may return anything, NULL included: a void SQL function does
CREATE TABLE audit_log (payload jsonb);
CREATE FUNCTION audit(m tx_message.message) RETURNS void LANGUAGE sql AS $$
	INSERT INTO audit_log VALUES (m.payload) $$;
SELECT tx_subscribe('h.orders', 'h.audit', handler => 'audit(tx_message.message)');
SELECT tx_send('h.orders', '{"audited": true}') > 0 AS sent;
CALL maintain_until($$(SELECT count(*) = 1 FROM audit_log)$$);
SELECT payload FROM audit_log;
SELECT count(*) AS dead_letters FROM tx_message.dead_letters WHERE consumer_group = 'h.audit';

-- tx_run_maintenance() runs other roles' code: it is not for everyone
CREATE ROLE txm_nobody;
SET ROLE txm_nobody;
SELECT tx_run_maintenance();
\echo :SQLSTATE
RESET ROLE;
DROP ROLE txm_nobody;

SELECT tx_drop_topic('h.orders', "cascade" => true);
SELECT tx_purge_dead_letters('h.points');
DROP TABLE audit_log;
DROP FUNCTION audit(tx_message.message);
DROP TABLE points;
DROP FUNCTION add_points(tx_message.message);
DROP ROLE txm_points;
