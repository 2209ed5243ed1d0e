-- tx_ack(consumer_group): finish what this transaction received from the
-- group and still holds, without sending the ids back.
\set VERBOSITY terse
SELECT tx_create_topic('ar.jobs');
-- a short lease, so that what was not finished comes back within the test
SELECT tx_subscribe('ar.jobs', 'ar.g', lease => '3 s', max_retries => 5);
SELECT tx_subscribe('ar.jobs', 'ar.other', lease => '3 s', max_retries => 5);
SELECT count(*) AS sent FROM tx_send_batch('ar.jobs', ARRAY(SELECT jsonb_build_object('n', i) FROM generate_series(1, 24) i));
CREATE TABLE ar_done (n int, msg_id bigint);

-- the loop: receive, write the effects, ack, commit
BEGIN;
INSERT INTO ar_done SELECT (payload->>'n')::int, msg_id FROM tx_receive('ar.g', 3);
SELECT tx_ack('ar.g') AS acked;
-- a second call finds nothing more held
SELECT tx_ack('ar.g') AS acked_again;
-- another group's messages are not this group's
SELECT tx_ack('ar.other') AS other_acked;
COMMIT;
SELECT array_agg(n ORDER BY n) AS done FROM ar_done;

-- a transaction that rolls back finishes nothing: the messages come again
BEGIN;
SELECT array_agg((payload->>'n')::int ORDER BY msg_id) AS received FROM tx_receive('ar.g', 2);
SELECT tx_ack('ar.g') AS acked;
ROLLBACK;
SELECT array_agg((payload->>'n')::int ORDER BY msg_id) AS again, max(attempt) AS attempt
  FROM tx_receive('ar.g', 2);
-- ... received by that autocommit statement, in another transaction than this ack's
SELECT tx_ack('ar.g') AS acked_in_other_xact;

-- a nacked message is not acked; one acked by id is not counted twice
BEGIN;
SELECT array_agg(msg_id ORDER BY msg_id) AS ids FROM tx_receive('ar.g', 3) \gset
SELECT tx_nack('ar.g', (:'ids'::bigint[])[1], 'bad', retry_in => '0 s') AS nacked;
SELECT tx_ack('ar.g', (:'ids'::bigint[])[2]) AS acked_by_id;
SELECT tx_ack('ar.g') AS acked;
COMMIT;
SELECT msg_id = (:'ids'::bigint[])[1] AS the_nacked_one, attempt FROM tx_receive('ar.g', 1);

-- received, nacked and received again in one transaction: acked once
BEGIN;
SELECT msg_id AS again_id FROM tx_receive('ar.g', 1) \gset
SELECT tx_nack('ar.g', :again_id, retry_in => '0 s') AS nacked;
SELECT msg_id = :again_id AS same, attempt FROM tx_receive('ar.g', 1);
SELECT tx_ack('ar.g') AS acked;
COMMIT;

-- what a subtransaction that committed into its parent received is acked,
-- what a rolled-back one received went back and is not
BEGIN;
SELECT count(*) AS outer_received FROM tx_receive('ar.g', 1);
SAVEPOINT t;
SELECT count(*) AS inner_received FROM tx_receive('ar.g', 1);
RELEASE SAVEPOINT t;
SAVEPOINT s;
SELECT array_agg(msg_id ORDER BY msg_id) AS sub_ids FROM tx_receive('ar.g', 2) \gset
ROLLBACK TO SAVEPOINT s;
SELECT tx_ack('ar.g') AS acked;
COMMIT;
SELECT array_agg(msg_id ORDER BY msg_id) = :'sub_ids'::bigint[] AS given_back, max(attempt) AS attempt
  FROM tx_receive('ar.g', 2);

-- an ack in a subtransaction that rolls back is undone, and acked again
BEGIN;
SELECT count(*) AS received FROM tx_receive('ar.g', 3);
SAVEPOINT s;
SELECT tx_ack('ar.g') AS acked;
ROLLBACK TO SAVEPOINT s;
SELECT tx_ack('ar.g') AS acked_after_rollback_to;
COMMIT;
-- ... also when the subtransaction is a PL/pgSQL exception block
BEGIN;
SELECT count(*) AS received FROM tx_receive('ar.g', 2);
DO $$
BEGIN
	PERFORM tx_ack('ar.g');
	RAISE EXCEPTION 'effects failed';
EXCEPTION WHEN raise_exception THEN
	NULL;
END $$;
SELECT tx_ack('ar.g') AS acked_after_exception;
COMMIT;

-- a message nacked and received again in a subtransaction that rolls back
-- is held by the first delivery again, and acked
BEGIN;
SELECT msg_id AS x FROM tx_receive('ar.g', 1) \gset
SAVEPOINT s;
SELECT tx_nack('ar.g', :x, retry_in => '0 s') AS nacked;
SELECT msg_id = :x AS same, attempt FROM tx_receive('ar.g', 1);
ROLLBACK TO SAVEPOINT s;
SELECT tx_ack('ar.g') AS acked;
COMMIT;

-- a group consumed by its handler: tx_receive gives nothing of it to ack
CREATE FUNCTION ar_handler(m tx_message.message) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT tx_subscribe('ar.jobs', 'ar.handled', handler => 'ar_handler(tx_message.message)');
SELECT tx_ack('ar.handled');
\echo :SQLSTATE
SELECT tx_unsubscribe('ar.jobs', 'ar.handled');
DROP FUNCTION ar_handler(tx_message.message);

-- once every lease expired, what was acked (1 to 3 and 7 to 11, 14 to 19) never comes
-- back; what was received and left unfinished comes again, and what was
-- never received comes for the first time
SELECT pg_sleep(3.2);
SELECT string_agg(format('%s:%s', payload->>'n', attempt), ' ' ORDER BY (payload->>'n')::int) AS n_attempt
  FROM tx_receive('ar.g', 100);
SELECT tx_ack('ar.g') AS acked_in_other_xact;

-- a role that may not consume in the group cannot ack in it either
CREATE ROLE ar_outsider;
SET ROLE ar_outsider;
BEGIN;
SELECT tx_ack('ar.g');
\echo :SQLSTATE
ROLLBACK;
RESET ROLE;
DROP ROLE ar_outsider;

SELECT tx_drop_topic('ar.jobs', "cascade" => true);
DROP TABLE ar_done;
