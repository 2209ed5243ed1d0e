-- Check-backs (RocketMQ's 回查) and the worker cycle, driven through
-- tx_run_maintenance().  The background worker of this database may run a
-- cycle at any time too, so the tests assert outcomes, never who made them.
\set VERBOSITY terse

-- Run worker cycles in this session until a condition holds (10 s at most).
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

-- what one cycle reports
SELECT jsonb_object_keys(tx_run_maintenance()) AS reported ORDER BY 1;

-- the check function answers from the producer's own table, as RocketMQ's
-- checkLocalTransaction does
CREATE TABLE local_tx (id text PRIMARY KEY, state text NOT NULL);
CREATE FUNCTION check_local(m tx_message.message) RETURNS text
	LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT CASE state WHEN 'done' THEN 'commit'
	                                   WHEN 'failed' THEN 'rollback'
	                                   ELSE 'unknown' END
	                   FROM local_tx WHERE id = m.key), 'unknown') $$;
SELECT tx_create_topic('checked', check_function => 'check_local(tx_message.message)',
                       check_after => '50 ms', check_interval => '50 ms', check_max => 3);

INSERT INTO local_tx VALUES ('commit-me', 'done'), ('roll-me-back', 'failed');
SELECT tx_send_half('checked', '{"n": 1}', key => 'commit-me') AS h_commit,
       tx_send_half('checked', '{"n": 2}', key => 'roll-me-back') AS h_rollback,
       tx_send_half('checked', '{"n": 3}', key => 'no-answer') AS h_unknown \gset
-- not checked before check_after
SELECT state, checks FROM tx_message.half_messages WHERE msg_id = :h_commit;

CALL maintain_until(format($$(SELECT count(*) = 2 FROM tx_message.half_messages
                               WHERE msg_id IN (%s, %s) AND state <> 'half')$$, :h_commit, :h_rollback));
SELECT key, state, resolved_by FROM tx_message.half_messages
 WHERE msg_id IN (:h_commit, :h_rollback) ORDER BY key;
-- 'commit' made it deliverable: it is in the log now, exactly once
SELECT key, state FROM tx_message.messages WHERE msg_id IN (:h_commit, :h_rollback) ORDER BY key;

-- 'unknown' three times (check_max): the message moves to the dead letters
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :h_unknown));
SELECT topic, key, payload, consumer_group, attempts, reason, last_error,
       first_failed_at <= dead_at AS times_in_order
  FROM tx_message.dead_letters WHERE msg_id = :h_unknown;
SELECT count(*) AS still_half FROM tx_message.half_messages WHERE msg_id = :h_unknown;
SELECT count(*) AS in_messages FROM tx_message.messages WHERE msg_id = :h_unknown;

-- a check function that fails, or runs too long, counts as an unknown answer;
-- the other checks go on
CREATE FUNCTION check_boom(m tx_message.message) RETURNS text
	LANGUAGE plpgsql AS $$
BEGIN
	IF m.key = 'sleep' THEN
		PERFORM pg_sleep(30);		-- beyond tx_message.check_timeout (test.conf)
	END IF;
	IF m.key = 'boom' THEN
		RAISE EXCEPTION 'boom for %', m.key;
	END IF;
	RETURN 'commit';
END $$;
SELECT tx_create_topic('flaky', check_function => 'check_boom(tx_message.message)',
                       check_after => '10 ms', check_interval => '10 ms', check_max => 1);
SELECT tx_send_half('flaky', '{}', key => 'boom') AS h_boom,
       tx_send_half('flaky', '{}', key => 'sleep') AS h_sleep,
       tx_send_half('flaky', '{}', key => 'fine') AS h_fine \gset
CALL maintain_until(format($$(SELECT count(*) = 2 FROM tx_message.dead_letters
                               WHERE msg_id IN (%s, %s))$$, :h_boom, :h_sleep), '30 s');
SELECT key, attempts, reason, last_error FROM tx_message.dead_letters
 WHERE msg_id IN (:h_boom, :h_sleep) ORDER BY key;
CALL maintain_until(format($$(SELECT state = 'committed' FROM tx_message.half_messages WHERE msg_id = %s)$$, :h_fine));

-- the check function runs as the topic's owner, never as a superuser
CREATE ROLE txm_checker;
CREATE TABLE check_calls (who text, key text);
GRANT INSERT ON check_calls TO txm_checker;
CREATE FUNCTION check_who(m tx_message.message) RETURNS text
	LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO check_calls VALUES (current_user, m.key);
	RETURN 'commit';
END $$;
GRANT EXECUTE ON FUNCTION tx_create_topic TO txm_checker;
SET ROLE txm_checker;
SELECT tx_create_topic('owned', check_function => 'check_who(tx_message.message)',
                       check_after => '10 ms', check_interval => '10 ms');
SELECT tx_send_half('owned', '{}', key => 'who') AS h_who \gset
RESET ROLE;
CALL maintain_until(format($$(SELECT state = 'committed' FROM tx_message.half_messages WHERE msg_id = %s)$$, :h_who));
SELECT DISTINCT who, key FROM check_calls;

-- without a check function, due checks are sent as NOTIFY tx_message_check
-- (the payload is shown by the TAP tests) and count towards check_max
SELECT tx_create_topic('external', check_after => '10 ms', check_interval => '10 ms', check_max => 2);
SELECT tx_send_half('external', '{}', key => 'ext') AS h_ext \gset
CALL maintain_until(format('(SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = %s)', :h_ext));
SELECT key, attempts, reason, last_error FROM tx_message.dead_letters WHERE msg_id = :h_ext;

-- an answer from the producer ends the checks
SELECT tx_send_half('external', '{}', key => 'answered') AS h_answered \gset
SELECT tx_commit_half(:h_answered);
CALL maintain_until('true');
SELECT state, checks FROM tx_message.half_messages WHERE msg_id = :h_answered;

-- the answer to the last allowed check is accepted for check_interval: the
-- message becomes a dead letter only at the scan after that
SELECT tx_create_topic('last-call', check_after => '10 ms', check_interval => '1 hour', check_max => 1);
SELECT tx_send_half('last-call', '{}', key => 'late answer') AS h_last \gset
CALL maintain_until(format('(SELECT checks = 1 FROM tx_message.half_messages WHERE msg_id = %s)', :h_last));
SELECT tx_run_maintenance()->'dead_lettered' AS dead_lettered_meanwhile;
SELECT state, checks FROM tx_message.half_messages WHERE msg_id = :h_last;
SELECT tx_commit_half(:h_last) AS answered;
SELECT state FROM tx_message.messages WHERE msg_id = :h_last;
SELECT tx_drop_topic('last-call');

-- delayed messages: committed now, moved into the log when due, not before
SELECT tx_create_topic('later');
SELECT tx_send('later', '{"when": "soon"}', delay => '2 s') AS d_soon,
       tx_send('later', '{"when": "tomorrow"}', delay => '1 day') AS d_tomorrow \gset
SELECT tx_run_maintenance()->'delayed_released' AS released_before_due;
SELECT count(*) AS waiting FROM tx_message.delayed WHERE msg_id IN (:d_soon, :d_tomorrow);
CALL maintain_until(format('(SELECT count(*) = 0 FROM tx_message.delayed WHERE msg_id = %s)', :d_soon));
SELECT payload, state FROM tx_message.messages WHERE msg_id = :d_soon;
SELECT count(*) AS still_waiting FROM tx_message.delayed WHERE msg_id = :d_tomorrow;

DROP TABLE local_tx, check_calls;
DROP FUNCTION check_boom(tx_message.message);
REVOKE EXECUTE ON FUNCTION tx_create_topic FROM txm_checker;
SELECT tx_drop_topic(topic) FROM tx_message.topics WHERE topic IN ('checked', 'flaky', 'owned', 'external');
DROP FUNCTION check_local(tx_message.message), check_who(tx_message.message);
DROP ROLE txm_checker;
