-- tx_message.stats and tx_stats(): backlog, in flight, retrying, dead
-- letters and totals per consumer group; what each topic holds; only the
-- topics the caller may monitor.
\set VERBOSITY terse
SELECT tx_create_topic('st.orders');
SELECT tx_subscribe('st.orders', 'st.billing');
SELECT tx_subscribe('st.orders', 'st.audit', max_retries => 0);
SELECT tx_subscribe('st.orders', 'st.retry');
SELECT count(tx_send('st.orders', jsonb_build_object('n', i))) FROM generate_series(1, 10) i;
SELECT tx_send_half('st.orders', '{"half": true}') IS NOT NULL AS half_sent;
SELECT tx_send('st.orders', '{"later": true}', delay => '1 hour') IS NOT NULL AS delayed_sent;

-- billing: 3 acked in the receiving transaction, 2 leased by a transaction that ended
BEGIN;
SELECT count(tx_ack('st.billing', msg_id)) AS acked FROM tx_receive('st.billing', 3, wait => '5 s');
COMMIT;
SELECT count(*) AS leased FROM tx_receive('st.billing', 2);
-- audit: two nacks, each a dead letter (max_retries 0); retry: a nack retried in an hour
SELECT tx_nack('st.audit', msg_id, 'bad') FROM tx_receive('st.audit', 2);
SELECT tx_nack('st.retry', msg_id, 'later', retry_in => '1 hour') FROM tx_receive('st.retry', 1);

-- a cycle that rolls back stores no totals, and loses none: the next stores them
BEGIN;
SELECT tx_run_maintenance() IS NOT NULL AS maintained;
ROLLBACK;
-- the totals reach the catalog at the next maintenance cycle (the worker's or this one)
SELECT tx_run_maintenance() IS NOT NULL AS maintained;
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		EXIT WHEN (SELECT acked_total FROM tx_message.stats WHERE consumer_group = 'st.billing') = 3
			  AND (SELECT nacked_total FROM tx_message.stats WHERE consumer_group = 'st.audit') = 2
			  AND (SELECT nacked_total FROM tx_message.stats WHERE consumer_group = 'st.retry') = 1;
		PERFORM pg_sleep(0.1);
		PERFORM tx_run_maintenance();
	END LOOP;
END $$;

SELECT topic, consumer_group, backlog, in_flight, retrying, dead_letters,
       oldest_unfinished_age > '0' AS has_age, delivered_total, acked_total, nacked_total,
       sent_total, half_pending, oldest_half_age > '0' AS has_half_age, checks_total, delayed_pending
  FROM tx_stats() WHERE topic = 'st.orders';

-- a role without any privilege on the topic sees none of its rows
CREATE ROLE st_stranger;
SET ROLE st_stranger;
SELECT count(*) AS visible FROM tx_message.stats WHERE topic = 'st.orders';
SELECT count(*) AS visible FROM tx_stats() WHERE topic = 'st.orders';
RESET ROLE;
-- 'monitor' is enough to see them
SELECT tx_grant('st.orders', 'st_stranger', 'monitor');
SET ROLE st_stranger;
SELECT count(*) AS visible FROM tx_message.stats WHERE topic = 'st.orders';
SELECT count(*) AS denied FROM tx_message.totals;
RESET ROLE;

SELECT tx_drop_topic('st.orders', cascade => true);
DROP ROLE st_stranger;

-- tx_maintenance_loop: cycles for about duration, each committed
CALL tx_maintenance_loop('0 s');
CALL tx_maintenance_loop(NULL);
CALL tx_maintenance_loop('-1 s');
CALL tx_maintenance_loop('2 days');
BEGIN;
CALL tx_maintenance_loop('0 s');
ROLLBACK;
