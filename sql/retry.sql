-- Failures: nack and backoff, lease expiry, dead letters, redrive, purge.
\set VERBOSITY terse
SELECT tx_create_topic('r.jobs');
-- max_retries 2: attempts 1, 2 and 3; the third failure dead-letters
SELECT tx_subscribe('r.jobs', 'r.workers', max_retries => 2, backoff => '{1 s,1 s}');

SELECT tx_send('r.jobs', '{"job": 1}', key => 'job-1') AS j1 \gset
SELECT msg_id = :j1 AS j1, attempt FROM tx_receive('r.workers');
SELECT tx_nack('r.workers', :j1, 'boom 1');
-- not before its backoff step (1 s) ...
SELECT count(*) AS before_backoff FROM tx_receive('r.workers');
-- ... then again, with the next attempt number
SELECT msg_id = :j1 AS j1, attempt FROM tx_receive('r.workers', wait => '5 s');
SELECT tx_nack('r.workers', :j1, 'boom 2', retry_in => '0 s');
SELECT msg_id = :j1 AS j1, attempt FROM tx_receive('r.workers');
SELECT tx_nack('r.workers', :j1, 'boom 3');
SELECT count(*) AS after_dead_letter FROM tx_receive('r.workers');
SELECT topic, key, payload, consumer_group, attempts, reason, last_error,
       first_failed_at <= dead_at AS in_order
  FROM tx_message.dead_letters WHERE msg_id = :j1;

-- a message not held (any more) is not nacked
SELECT tx_nack('r.workers', :j1, 'late') IS NULL AS not_held;
SELECT tx_nack('r.workers', -1) IS NULL AS unknown;
SELECT tx_nack('r.workers', :j1, retry_in => '-1 s');
\echo :SQLSTATE
SELECT tx_nack('r.workers', NULL);
SELECT tx_nack(NULL, 1);
SELECT tx_nack('nobody', 1);

-- redrive gives a fresh round of attempts
SELECT tx_redrive('r.workers', ARRAY[:j1]);
SELECT tx_redrive('r.workers', ARRAY[:j1]);
SELECT count(*) AS dead_letters FROM tx_message.dead_letters WHERE msg_id = :j1;
SELECT msg_id = :j1 AS j1, attempt FROM tx_receive('r.workers');
SELECT tx_ack('r.workers', :j1);

-- max_retries 0: the first failure is final
SELECT tx_subscribe('r.jobs', 'r.once', max_retries => 0);
SELECT tx_send('r.jobs', '{"job": 2}') AS j2 \gset
SELECT attempt FROM tx_receive('r.once');
SELECT tx_nack('r.once', :j2, 'no second chance');
SELECT consumer_group, attempts, last_error FROM tx_message.dead_letters WHERE msg_id = :j2;
SELECT count(*) AS skipped_by_others FROM tx_receive('r.workers');	-- j2 is still theirs
SELECT tx_ack('r.workers', :j2);

-- an expired lease makes the message available again, attempt + 1, and
-- counts toward max_retries: a poison message ends in the dead letters
SELECT tx_subscribe('r.jobs', 'r.crashy', max_retries => 1, lease => '200 ms');
SELECT tx_send('r.jobs', '{"job": "poison"}') AS j3 \gset
SELECT attempt FROM tx_receive('r.crashy');
SELECT pg_sleep(0.3);
SELECT msg_id = :j3 AS j3, attempt FROM tx_receive('r.crashy');
SELECT pg_sleep(0.3);
SELECT count(*) AS gone FROM tx_receive('r.crashy');
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s AND consumer_group = %L)', :j3, 'r.crashy'));
SELECT attempts, reason, last_error FROM tx_message.dead_letters
 WHERE msg_id = :j3 AND consumer_group = 'r.crashy';

-- the holder of a re-delivery acks it; the expired first delivery is gone
SELECT tx_subscribe('r.jobs', 'r.slow', lease => '200 ms');
SELECT tx_send('r.jobs', '{"job": "slow"}') AS j4 \gset
SELECT attempt FROM tx_receive('r.slow');
SELECT pg_sleep(0.3);
SELECT attempt FROM tx_receive('r.slow');
SELECT tx_ack('r.slow', :j4);
SELECT tx_ack('r.slow', :j4);

-- extending a lease keeps the message
SELECT tx_send('r.jobs', '{"job": "long"}') AS j5 \gset
SELECT attempt FROM tx_receive('r.slow');
SELECT tx_extend_lease('r.slow', ARRAY[:j5], '1 min');
SELECT pg_sleep(0.3);
SELECT count(*) AS still_held FROM tx_receive('r.slow');
SELECT tx_extend_lease('r.slow', ARRAY[-1, :j5], '1 min');
SELECT tx_extend_lease('r.slow', ARRAY[:j5], '0 s');
\echo :SQLSTATE
SELECT tx_extend_lease('r.slow', ARRAY[:j5], NULL);
SELECT tx_extend_lease('r.slow', '{}', '1 min');
SELECT tx_ack('r.slow', ARRAY[:j5]);
SELECT tx_extend_lease('r.slow', ARRAY[:j5], '1 min');

-- redrive all of a group, and purge
SELECT tx_subscribe('r.jobs', 'r.batch', max_retries => 0);
SELECT tx_send('r.jobs', jsonb_build_object('job', i)) > 0 AS sent FROM generate_series(10, 12) i;
SELECT tx_nack('r.batch', msg_id, 'fail ' || (payload->>'job')) FROM tx_receive('r.batch') ORDER BY msg_id;
SELECT count(*) AS dead FROM tx_message.dead_letters WHERE consumer_group = 'r.batch';
SELECT tx_redrive('r.batch');
SELECT count(*) AS dead FROM tx_message.dead_letters WHERE consumer_group = 'r.batch';
SELECT array_agg(attempt) AS fresh_attempts FROM tx_receive('r.batch');
SELECT tx_nack('r.batch', msg_id, 'again') FROM tx_message.messages
 WHERE payload->>'job' IN ('10', '11', '12') ORDER BY msg_id;
SELECT tx_redrive('no.such.group');
SELECT tx_redrive('r.batch', '{}');
SELECT tx_redrive('r.batch', ARRAY[NULL]::bigint[]);
\echo :SQLSTATE
SELECT tx_purge_dead_letters('r.batch', '1 hour');
SELECT tx_purge_dead_letters('r.batch');
SELECT tx_purge_dead_letters('r.batch', '-1 s');
\echo :SQLSTATE
SELECT tx_purge_dead_letters('r.workers', NULL);
SELECT consumer_group, count(*) FROM tx_message.dead_letters GROUP BY 1 ORDER BY 1;

-- a half message whose check-backs ran out goes back to the half state
SELECT tx_create_topic('r.half', check_after => '10 ms', check_interval => '10 ms', check_max => 1);
SELECT tx_send_half('r.half', '{"half": true}') AS h \gset
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :h));
SELECT consumer_group IS NULL AS from_check_back, reason FROM tx_message.dead_letters WHERE msg_id = :h;
SELECT tx_redrive(NULL, ARRAY[:h]);
\echo :SQLSTATE
SELECT tx_redrive_half(ARRAY[:h]);
SELECT state, checks FROM tx_message.half_messages WHERE msg_id = :h;
SELECT state FROM tx_message.messages WHERE msg_id = :h;
SELECT tx_commit_half(:h);
SELECT tx_purge_dead_letters(NULL);
\echo :SQLSTATE
SELECT tx_purge_half_dead_letters();
SELECT tx_purge_dead_letters(consumer_group)
  FROM (SELECT DISTINCT consumer_group FROM tx_message.dead_letters) g ORDER BY 1;
SELECT count(*) AS dead_letters FROM tx_message.dead_letters;

-- an abandoned lease expires even behind many finished ones
SELECT tx_subscribe('r.jobs', 'r.busy', lease => '10 s');
SELECT tx_send('r.jobs', '{"job": "abandoned"}') AS j6 \gset
SELECT attempt FROM tx_receive('r.busy', 1, lease => '1 s');		-- and never acked
SELECT count(*) AS sent FROM tx_send_batch('r.jobs', ARRAY(SELECT jsonb_build_object('small', i) FROM generate_series(1, 150) i));
DO $$
BEGIN
	FOR i IN 1..150 LOOP
		PERFORM tx_ack('r.busy', array_agg(msg_id)) FROM tx_receive('r.busy', 1);
	END LOOP;
END $$;
SELECT msg_id = :j6 AS abandoned, attempt FROM tx_receive('r.busy', 10, wait => '5 s');

-- only members of a group's owner role redrive or purge its dead letters
SELECT tx_subscribe('r.jobs', 'r.guarded', max_retries => 0);
SELECT tx_send('r.jobs', '{"job": "guarded"}') AS j7 \gset
SELECT tx_nack('r.guarded', msg_id, 'no') FROM tx_receive('r.guarded', 1);
CREATE ROLE txm_outsider;
SET ROLE txm_outsider;
SELECT tx_redrive('r.guarded');
\echo :SQLSTATE
SELECT tx_purge_dead_letters('r.guarded');
\echo :SQLSTATE
RESET ROLE;
SELECT count(*) AS still_dead FROM tx_message.dead_letters WHERE consumer_group = 'r.guarded';
SELECT tx_purge_dead_letters('r.guarded');
DROP ROLE txm_outsider;

-- acks, nacks and extensions of ids the group does not hold, while it holds
-- many (from this or another connection): nothing, and in time linear in
-- the ids (an index of what the group holds is built once per call)
SELECT tx_subscribe('r.jobs', 'r.many');
SELECT count(*) AS sent FROM tx_send_batch('r.jobs', ARRAY(SELECT jsonb_build_object('many', i) FROM generate_series(1, 300) i));
SELECT count(*) AS held FROM tx_receive('r.many', 300);
SELECT tx_nack('r.many', 1) AS nacked_unknown;
SELECT tx_ack('r.many', 1) AS acked_unknown;
SELECT tx_ack('r.many', ARRAY(SELECT -i FROM generate_series(1, 20000) i)) AS acked_unknown;
SELECT tx_extend_lease('r.many', ARRAY(SELECT -i FROM generate_series(1, 20000) i), '1 min') AS extended_unknown;
SELECT tx_ack('r.many', array_agg(msg_id)) AS acked_held FROM tx_message.messages WHERE payload ? 'many';

-- thousands of retries due at once (a consumer that crashed holding a
-- large batch): a receive reads a batch of them, not all of them, whatever
-- the statistics say (they have not seen the burst yet)
SELECT tx_create_topic('r.mass'), tx_create_topic('r.mass2');
SELECT tx_subscribe('r.mass', 'r.bulk', lease => '200 ms'),
       tx_subscribe('r.mass2', 'r.bulk', lease => '200 ms');
SELECT count(*) AS sent FROM tx_send_batch('r.mass', array_fill('{"bulk": 1}'::jsonb, ARRAY[3000]));
SELECT count(*) AS held FROM tx_receive('r.bulk', 3000);
SELECT pg_sleep(0.3);
SELECT count(*) AS redelivered FROM tx_receive('r.bulk', 10);
SELECT count(*) >= 2980 AS due FROM tx_message.retries_data WHERE state = 'waiting';
-- a new session: its table statistics count this transaction's reads only
\c
BEGIN;
SELECT count(*) AS redelivered FROM tx_receive('r.bulk', 10);
SELECT seq_tup_read + idx_tup_fetch < 300 AS read_a_batch
  FROM pg_stat_xact_all_tables WHERE relid = 'tx_message.retries_data'::regclass;
COMMIT;
SELECT tx_unsubscribe('r.mass', 'r.bulk'), tx_unsubscribe('r.mass2', 'r.bulk');

-- a group's due retries come in the order they fell due, across its topics
SELECT tx_subscribe('r.mass', 'r.two'), tx_subscribe('r.mass2', 'r.two');
SELECT tx_send('r.mass2', '{"two": "a1"}') AS a1 \gset
SELECT tx_send('r.mass', '{"two": "b1"}') AS b1 \gset
SELECT tx_send('r.mass2', '{"two": "a2"}') AS a2 \gset
SELECT count(*) AS held FROM tx_receive('r.two', 3);
SELECT tx_nack('r.two', :a1, retry_in => '0 s');
SELECT tx_nack('r.two', :b1, retry_in => '0 s');
SELECT tx_nack('r.two', :a2, retry_in => '0 s');
SELECT payload->>'two' AS retried, attempt FROM tx_receive('r.two', 2);
SELECT payload->>'two' AS retried, attempt FROM tx_receive('r.two', 2);
SELECT tx_drop_topic('r.mass', "cascade" => true), tx_drop_topic('r.mass2', "cascade" => true);

SELECT tx_drop_topic('r.jobs', "cascade" => true), tx_drop_topic('r.half');
