-- Check-backs per message and per topic channel: tx_send_half(...,
-- check_after) and the topic option notify_channel.
\set VERBOSITY terse
SELECT tx_create_topic('co.pay', check_after => '1 h', check_interval => '1 s',
                       notify_channel => 'co_pay_checks');
SELECT notify_channel FROM tx_message.topics WHERE topic = 'co.pay';
-- (the NOTIFY on the channel is shown by t/002_worker.pl)

-- the topic waits an hour before its first check; this message 1 second
SELECT tx_send_half('co.pay', '{"p": 1}', key => 'p-1', check_after => '1 s') AS h1 \gset
SELECT tx_send_half('co.pay', '{"p": 2}', key => 'p-2') AS h2 \gset
SELECT msg_id = :h1 AS h1, check_after FROM tx_message.half_messages
 WHERE topic_id = (SELECT topic_id FROM tx_message.topics WHERE topic = 'co.pay') ORDER BY msg_id;
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN (SELECT checks FROM tx_message.half_messages WHERE key = 'p-1') > 0;
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT key, checks > 0 AS checked FROM tx_message.half_messages
 WHERE topic_id = (SELECT topic_id FROM tx_message.topics WHERE topic = 'co.pay') ORDER BY key;
-- every check and its answer, for roles that may receive from the topic
SELECT msg_id = :h1 AS h1, topic, answer, detail FROM tx_message.half_check_history
 WHERE topic = 'co.pay' ORDER BY checked_at LIMIT 1;
CREATE ROLE co_stranger;
SELECT tx_grant('co.pay', 'co_stranger', 'monitor');
SET ROLE co_stranger;
SELECT count(*) AS hidden FROM tx_message.half_check_history;
RESET ROLE;
SELECT tx_revoke('co.pay', 'co_stranger', 'monitor');
DROP ROLE co_stranger;
SELECT tx_commit_half(:h1);

-- the channel can be changed and removed; bounds
SELECT tx_alter_topic('co.pay', notify_channel => 'co_other');
SELECT notify_channel FROM tx_message.topics WHERE topic = 'co.pay';
SELECT tx_alter_topic('co.pay', notify_channel => '');
SELECT notify_channel IS NULL AS removed FROM tx_message.topics WHERE topic = 'co.pay';
SELECT tx_alter_topic('co.pay', notify_channel => repeat('c', 64));
\echo :SQLSTATE
SELECT tx_alter_topic('co.pay', notify_channel => repeat('c', 63));
SELECT octet_length(notify_channel) FROM tx_message.topics WHERE topic = 'co.pay';
SELECT tx_send_half('co.pay', '{}', check_after => '0 s');
\echo :SQLSTATE
SELECT tx_send_half('co.pay', '{}', check_after => '101 years');
\echo :SQLSTATE

SELECT tx_rollback_half(:h2);
SELECT tx_drop_topic('co.pay');
