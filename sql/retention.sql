-- Retention: once every subscribed group has finished with the messages of
-- a log table and the retention of its topics has passed, the whole table
-- is truncated; the storage returns to its baseline.  No row is deleted one
-- by one.  A group that has not finished holds the table back.
--
-- The three log tables rotate in turn, so earlier tests' messages would hold
-- the rotation back: this test has a database of its own.
\set VERBOSITY terse
CREATE DATABASE tx_message_retention;
\c tx_message_retention
SET client_min_messages = warning;
CREATE EXTENSION tx_message;
RESET client_min_messages;
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
SELECT tx_create_topic('ret.events', retention => '1 s');
SELECT tx_subscribe('ret.events', 'ret.readers');
-- the log rotates every half retention (at least 1 s) while the current
-- table holds rows: wait until the current table is an empty one, so that
-- ret.events has it to itself
CALL maintain_until('(SELECT pg_relation_size(log_table) = 0 FROM tx_message.log_slots WHERE is_current)');
SELECT slot AS ours, log_table AS our_table FROM tx_message.log_slots WHERE is_current \gset
SELECT pg_total_relation_size(:'our_table') AS baseline \gset
SELECT pg_relation_size(:'our_table') AS heap_bytes, pg_total_relation_size(:'our_table') > 0 AS has_index;

SELECT count(*) AS sent FROM tx_send_batch('ret.events',
	ARRAY(SELECT jsonb_build_object('n', i, 'pad', repeat('x', 200)) FROM generate_series(1, 2000) i));
SELECT tx_ack('ret.readers', array_agg(msg_id)) AS acked FROM tx_receive('ret.readers', 5000);
SELECT pg_total_relation_size(:'our_table') > :baseline AS grew;

-- after rotation, sealing and retention, the table is truncated
CALL maintain_until(format('(SELECT pg_total_relation_size(%L) = %s)', :'our_table', :baseline));
SELECT count(*) AS retained FROM tx_message.messages WHERE topic = 'ret.events';
SELECT opened_at IS NULL AND closed_at IS NULL AS empty_again FROM tx_message.log_slots WHERE slot = :ours;
SELECT count(*) AS slices_left FROM tx_message.slices s JOIN tx_message.topics t USING (topic_id)
 WHERE t.topic = 'ret.events';

-- the stream goes on where it stopped: a group subscribing from the earliest
-- retained message sees nothing of what was truncated
SELECT tx_subscribe('ret.events', 'ret.late', start_from => 'earliest');
SELECT count(*) AS late_got FROM tx_receive('ret.late', 5000);
SELECT tx_unsubscribe('ret.events', 'ret.late');

-- a group that has not finished holds its messages' table back
SELECT tx_subscribe('ret.events', 'ret.lagging');
CALL maintain_until('(SELECT pg_relation_size(log_table) = 0 FROM tx_message.log_slots WHERE is_current)');
SELECT slot AS ours, log_table AS our_table FROM tx_message.log_slots WHERE is_current \gset
SELECT pg_total_relation_size(:'our_table') AS baseline \gset
SELECT count(*) AS sent FROM tx_send_batch('ret.events',
	ARRAY(SELECT jsonb_build_object('n', i) FROM generate_series(1, 100) i));
SELECT tx_ack('ret.readers', array_agg(msg_id)) AS acked FROM tx_receive('ret.readers', 5000);
-- rotated and sealed, past retention, but not truncated
CALL maintain_until(format('(SELECT sealed_heads IS NOT NULL FROM tx_message.log_slots WHERE slot = %s)', :ours));
SELECT pg_sleep(1.5);
SELECT tx_run_maintenance()->'truncated' AS truncated;
SELECT count(*) AS retained FROM tx_message.messages WHERE topic = 'ret.events';
SELECT count(*) AS lagging_got FROM tx_receive('ret.lagging', 5000);
SELECT tx_ack('ret.lagging', array_agg(msg_id)) AS acked FROM tx_message.messages WHERE topic = 'ret.events';
CALL maintain_until(format('(SELECT pg_total_relation_size(%L) = %s)', :'our_table', :baseline));
SELECT count(*) AS retained FROM tx_message.messages WHERE topic = 'ret.events';

-- resolved half messages go after the retention too; pending ones stay
SELECT tx_send_half('ret.events', '{"half": "rolled back"}') AS rolled \gset
SELECT tx_send_half('ret.events', '{"half": "pending"}') AS pending \gset
SELECT tx_rollback_half(:rolled);
SELECT payload->>'half' AS half, state FROM tx_message.messages
 WHERE msg_id IN (:rolled, :pending) ORDER BY 1;
CALL maintain_until(format('(SELECT count(*) = 0 FROM tx_message.half_messages WHERE msg_id = %s)', :rolled));
SELECT payload->>'half' AS half, state FROM tx_message.messages
 WHERE msg_id IN (:rolled, :pending) ORDER BY 1;

SELECT tx_drop_topic('ret.events', "cascade" => true);
\c contrib_regression
DROP DATABASE tx_message_retention;
