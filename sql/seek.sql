-- Replay and reset by time: tx_seek(consumer_group, topic, target) and
-- tx_subscribe(..., start_from => a time).
\set VERBOSITY terse
SELECT tx_create_topic('sk.events');
SELECT tx_subscribe('sk.events', 'sk.g');
SELECT tx_subscribe('sk.events', 'sk.other');

-- three batches, committed at three times a little apart
SELECT tx_send('sk.events', '{"n": 1}') AS m1 \gset
SELECT tx_run_maintenance() IS NOT NULL AS ticked;
SELECT pg_sleep(0.3);
SELECT clock_timestamp() AS t2 \gset
SELECT tx_send('sk.events', '{"n": 2}') AS m2 \gset
SELECT tx_send('sk.events', '{"n": 3}') AS m3 \gset
SELECT tx_run_maintenance() IS NOT NULL AS ticked;
SELECT pg_sleep(0.3);
SELECT clock_timestamp() AS t4 \gset
SELECT tx_send('sk.events', '{"n": 4}') AS m4 \gset

-- consume everything: 1 and 2 acked, 3 leased, 4 nacked into a retry
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS got FROM tx_receive('sk.g', wait => '5 s');
SELECT tx_ack('sk.g', ARRAY[:m1, :m2]);
SELECT tx_nack('sk.g', :m4, 'later', retry_in => '1 h');
SELECT count(*) AS nothing_left FROM tx_receive('sk.g');

-- back to t2: 2 and 3 come again (2 was acked, 3 leased), and 4, whose retry is gone;
-- 1 stays finished.  The answer is how many positions are ahead.
SELECT tx_seek('sk.g', 'sk.events', :'t2'::timestamptz) AS ahead;
SELECT count(*) AS leases FROM tx_message.leases l JOIN tx_message.subscriptions s USING (sub_id)
 WHERE s.consumer_group = 'sk.g';
SELECT count(*) AS retries FROM tx_message.retries r JOIN tx_message.subscriptions s USING (sub_id)
 WHERE s.consumer_group = 'sk.g';
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS again, max(attempt) AS attempt
  FROM tx_receive('sk.g', wait => '5 s');
-- acked with the new leases
SELECT tx_ack('sk.g', ARRAY[:m2, :m3, :m4]) AS acked;

-- a text target: 'earliest', 'latest', or a time written as text
SELECT tx_seek('sk.g', 'sk.events', 'earliest') AS ahead_earliest;
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS all_again FROM tx_receive('sk.g', wait => '5 s');
SELECT tx_seek('sk.g', 'sk.events', 'latest') AS ahead_latest;
SELECT count(*) AS none_after_latest FROM tx_receive('sk.g');
SELECT tx_seek('sk.g', 'sk.events', :'t4') AS ahead_t4;
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS from_t4 FROM tx_receive('sk.g', wait => '5 s');
-- before everything retention keeps: the oldest; in the future: nothing ahead
SELECT tx_seek('sk.g', 'sk.events', '2000-01-01 00:00+00') AS ahead_2000;
SELECT tx_seek('sk.g', 'sk.events', now() + interval '1 day') AS ahead_tomorrow;
SELECT tx_seek('sk.g', 'sk.events', '-infinity'::timestamptz) AS ahead_minus_infinity;
SELECT tx_seek('sk.g', 'sk.events', 'infinity') AS ahead_infinity;

-- the other group was not moved
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS other FROM tx_receive('sk.other', wait => '5 s');

-- start_from at creation: a time, or 'earliest'
SELECT tx_subscribe('sk.events', 'sk.late', start_from => :'t4');
SELECT start_from ~ '^\d{4}-\d\d-\d\dT' AS stored_as_iso FROM tx_message.subscriptions
 WHERE consumer_group = 'sk.late';
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS late FROM tx_receive('sk.late', wait => '5 s');
SELECT tx_subscribe('sk.events', 'sk.all', start_from => 'earliest');
SELECT array_agg(payload->>'n' ORDER BY msg_id) AS all_of_it FROM tx_receive('sk.all', wait => '5 s');
-- subscribing again with another start_from keeps the position and says so
\set VERBOSITY default
SELECT tx_subscribe('sk.events', 'sk.all', start_from => 'now');
\set VERBOSITY terse
SELECT tx_subscribe('sk.events', 'sk.all', start_from => 'earliest');
SELECT tx_subscribe('sk.events', 'sk.all');
SELECT count(*) AS kept_position FROM tx_receive('sk.all');

-- who may seek: the group's team, or an admin of the topic
CREATE ROLE sk_stranger;
GRANT USAGE ON SCHEMA public TO sk_stranger;
SELECT tx_grant('sk.events', 'sk_stranger', 'receive');
SET ROLE sk_stranger;
SELECT tx_seek('sk.g', 'sk.events', 'earliest');
\echo :SQLSTATE
RESET ROLE;
SELECT tx_grant('sk.events', 'sk_stranger', 'admin');
SET ROLE sk_stranger;
SELECT tx_seek('sk.g', 'sk.events', 'latest') AS admin_may;
RESET ROLE;

-- errors
SELECT tx_seek('sk.g', 'sk.nosuch', 'latest');
\echo :SQLSTATE
SELECT tx_seek('sk.nobody', 'sk.events', 'latest');
\echo :SQLSTATE
SELECT tx_seek('sk.g', 'sk.events', 'yesterday-ish');
\echo :SQLSTATE

SELECT tx_drop_topic('sk.events', cascade => true);
DROP OWNED BY sk_stranger;
DROP ROLE sk_stranger;

-- a stream of many slices, one tick each: a seek to any slice's time, or
-- just before or after it, lands where a scan of the slices says (the
-- seek bisects the stream), and every message's trace finds its tick
SELECT tx_create_topic('sk.many');
SELECT tx_subscribe('sk.many', 'sk.m');
DO $$
BEGIN
	FOR i IN 1..60 LOOP
		PERFORM tx_send('sk.many', jsonb_build_object('i', i))
		   FROM generate_series(1, 1 + i % 3);
		COMMIT;
		PERFORM tx_run_maintenance();
		COMMIT;
	END LOOP;
END $$;
CREATE TEMP TABLE sk_slices AS
	SELECT s.first_seq, s.created_at FROM tx_message.slices s
	  JOIN tx_message.topics t USING (topic_id) WHERE t.topic = 'sk.many';
SELECT count(*) >= 20 AS many_slices, count(DISTINCT created_at) = count(*) AS distinct_times
  FROM sk_slices;
SELECT count(*) FILTER (WHERE tx_seek('sk.m', 'sk.many', t) =
						120 - coalesce((SELECT min(first_seq) FROM sk_slices WHERE created_at >= t), 120))
	   = count(*) AS all_agree
  FROM (SELECT created_at + d AS t
		  FROM sk_slices, unnest(ARRAY[interval '-1 microsecond', '0', '1 microsecond']) d) x;
SELECT count(*) AS messages, count(*) FILTER (WHERE tr.deliverable_at IS NOT NULL) AS traced_to_a_tick
  FROM tx_message.messages m, tx_trace(m.msg_id) tr
 WHERE m.topic = 'sk.many' AND tr.consumer_group = 'sk.m';
SELECT tx_drop_topic('sk.many', cascade => true);
