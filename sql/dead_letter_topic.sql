-- Dead letters as a topic: every message a subscription dead-letters is
-- also sent to its dead-letter topic, in the same transaction, and can be
-- consumed there like any message (with retries of its own).
\set VERBOSITY terse
SELECT tx_create_topic('dl.orders');
SELECT tx_create_topic('dl.dead');
SELECT tx_subscribe('dl.orders', 'dl.billing', max_retries => 1, backoff => '{0 s}',
                    dead_letter_topic => 'dl.dead');
SELECT tx_subscribe('dl.dead', 'dl.alerts');
SELECT topic, consumer_group, dead_letter_topic, dead_letter_owner::text
  FROM tx_message.subscriptions WHERE topic LIKE 'dl.%' ORDER BY 1, 2;

SELECT tx_send('dl.orders', '{"order": 1}', key => 'o-1', tags => '{eu}',
               headers => '{"trace": "t-1"}') AS m1 \gset
SELECT msg_id = :m1 AS m1, attempt FROM tx_receive('dl.billing', wait => '5 s');
SELECT tx_nack('dl.billing', :m1, 'card declined');
SELECT msg_id = :m1 AS m1, attempt FROM tx_receive('dl.billing', wait => '5 s');
-- the last attempt fails: a dead letter, and a copy on dl.dead in the same transaction
BEGIN;
SELECT tx_nack('dl.billing', :m1, 'card declined again');
SELECT count(*) AS copies_before_commit FROM tx_message.messages WHERE topic = 'dl.dead';
ROLLBACK;
SELECT count(*) AS rolled_back_dead_letters FROM tx_message.dead_letters WHERE msg_id = :m1;
SELECT count(*) AS rolled_back_copies FROM tx_message.messages WHERE topic = 'dl.dead';
-- the rolled-back nack left the message leased to us
SELECT tx_nack('dl.billing', :m1, 'card declined again');
SELECT consumer_group, attempts, reason, last_error FROM tx_message.dead_letters WHERE msg_id = :m1;

-- the alerting group receives the copy: payload, key and tags as they were,
-- the headers plus "dead_letter" (msg_id as a string: ids exceed 2^53)
SELECT msg_id <> :m1 AS new_id, topic, key, tags, payload,
       headers - 'dead_letter' AS own_headers,
       headers -> 'dead_letter' -> 'topic' AS dl_topic,
       headers -> 'dead_letter' -> 'consumer_group' AS dl_group,
       headers -> 'dead_letter' ->> 'msg_id' = :'m1' AS dl_msg_id,
       jsonb_typeof(headers -> 'dead_letter' -> 'msg_id') AS id_type,
       headers -> 'dead_letter' -> 'attempts' AS dl_attempts,
       headers -> 'dead_letter' -> 'reason' AS dl_reason,
       headers -> 'dead_letter' -> 'last_error' AS dl_last_error
  FROM tx_receive('dl.alerts', wait => '5 s') \gset a_
\echo :a_new_id :a_topic :a_key :a_tags :a_payload :a_own_headers
\echo :a_dl_topic :a_dl_group :a_dl_msg_id :a_id_type :a_dl_attempts :a_dl_reason :a_dl_last_error
SELECT tx_ack('dl.alerts', msg_id) FROM tx_message.messages WHERE topic = 'dl.dead';

-- the dead letter stays in tx_message.dead_letters for redrive
SELECT tx_redrive('dl.billing', ARRAY[:m1]);
SELECT msg_id = :m1 AS m1, attempt FROM tx_receive('dl.billing', wait => '5 s');
SELECT tx_ack('dl.billing', :m1);

-- a message without headers gets headers holding "dead_letter" only
SELECT tx_subscribe('dl.orders', 'dl.once', max_retries => 0, dead_letter_topic => 'dl.dead');
SELECT tx_send('dl.orders', '{"order": 2}') AS m2 \gset
SELECT tx_ack('dl.billing', msg_id) FROM tx_receive('dl.billing', wait => '5 s');
SELECT tx_nack('dl.once', msg_id, NULL) FROM tx_receive('dl.once', wait => '5 s');
SELECT jsonb_object_keys(headers) AS keys, headers -> 'dead_letter' -> 'last_error' AS last_error,
       headers -> 'dead_letter' -> 'attempts' AS attempts
  FROM tx_receive('dl.alerts', wait => '5 s');

-- a handler that fails dead-letters the same way, from the executor
CREATE TABLE dl_alerts (reason text, consumer_group text, payload jsonb);
CREATE FUNCTION dl_fail(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'handler refuses %', m.payload; END $$;
CREATE FUNCTION dl_alert(m tx_message.message) RETURNS void LANGUAGE sql AS $$
	INSERT INTO dl_alerts VALUES (m.headers -> 'dead_letter' ->> 'reason',
								  m.headers -> 'dead_letter' ->> 'consumer_group', m.payload) $$;
SELECT tx_unsubscribe('dl.dead', 'dl.alerts');
SELECT tx_subscribe('dl.dead', 'dl.alerter', handler => 'dl_alert(tx_message.message)');
SELECT tx_subscribe('dl.orders', 'dl.handled', handler => 'dl_fail(tx_message.message)',
                    max_retries => 0, dead_letter_topic => 'dl.dead');
SELECT tx_send('dl.orders', '{"order": 3}') > 0 AS sent;
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN EXISTS (SELECT FROM dl_alerts WHERE payload = '{"order": 3}');
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT * FROM dl_alerts ORDER BY payload::text;

-- re-subscribing without the option removes it; '' is not a topic
SELECT tx_subscribe('dl.orders', 'dl.once', max_retries => 0);
SELECT dead_letter_topic IS NULL AS removed, dead_letter_owner IS NULL AS owner_removed
  FROM tx_message.subscriptions WHERE consumer_group = 'dl.once';
SELECT tx_subscribe('dl.orders', 'dl.once', dead_letter_topic => '');
\echo :SQLSTATE
SELECT tx_subscribe('dl.orders', 'dl.once', dead_letter_topic => 'dl.orders');
\echo :SQLSTATE
SELECT tx_subscribe('dl.orders', 'dl.once', dead_letter_topic => 'dl.nosuch');
\echo :SQLSTATE

-- a dead-letter topic is dropped only with cascade, which removes it from
-- those that name it: their dead letters then stay in the table only (a
-- topic created again under the name gets none of them)
SELECT tx_create_topic('dl.gone');
SELECT tx_subscribe('dl.orders', 'dl.lost', max_retries => 0, dead_letter_topic => 'dl.gone');
SELECT tx_drop_topic('dl.gone');
\echo :SQLSTATE
SELECT tx_drop_topic('dl.gone', cascade => true);
SELECT dead_letter_topic IS NULL AS removed FROM tx_message.subscriptions WHERE consumer_group = 'dl.lost';
SELECT tx_create_topic('dl.gone');
SELECT tx_subscribe('dl.gone', 'dl.thief', start_from => 'earliest');
SELECT tx_send('dl.orders', '{"order": 4}') AS m4 \gset
SELECT tx_ack('dl.once', msg_id) FROM tx_receive('dl.once', wait => '5 s');
SELECT tx_nack('dl.lost', msg_id, 'x') FROM tx_receive('dl.lost', wait => '5 s');
SELECT count(*) AS dead_letter_kept FROM tx_message.dead_letters
 WHERE consumer_group = 'dl.lost' AND msg_id = :m4;
SELECT count(*) AS nothing_for_the_new_topic FROM tx_receive('dl.thief', wait => '100 ms');
SELECT tx_drop_topic('dl.gone', cascade => true);

-- check-back dead letters: the topic's dead-letter topic
SELECT tx_create_topic('dl.pay', check_after => '1 s', check_interval => '1 s', check_max => 1,
                       dead_letter_topic => 'dl.dead');
SELECT topic, dead_letter_topic, dead_letter_owner::text FROM tx_message.topics WHERE topic = 'dl.pay';
SELECT tx_send_half('dl.pay', '{"pay": 1}', key => 'p-1') AS h1 \gset
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN EXISTS (SELECT FROM dl_alerts WHERE payload = '{"pay": 1}');
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT * FROM dl_alerts WHERE payload = '{"pay": 1}';
SELECT consumer_group IS NULL AS half, reason FROM tx_message.dead_letters WHERE msg_id = :h1;
SELECT tx_alter_topic('dl.pay', dead_letter_topic => '');
SELECT dead_letter_topic IS NULL AS removed FROM tx_message.topics WHERE topic = 'dl.pay';

SELECT sum(tx_purge_dead_letters(g)) > 0 AS purged
  FROM unnest('{dl.billing,dl.once,dl.handled,dl.lost}'::text[]) g;
SELECT tx_purge_half_dead_letters(msg_ids => ARRAY[:h1]);
SELECT tx_drop_topic('dl.orders', cascade => true);
SELECT tx_drop_topic('dl.pay', cascade => true);
SELECT tx_drop_topic('dl.dead', cascade => true);
DROP TABLE dl_alerts;
DROP FUNCTION dl_fail(tx_message.message), dl_alert(tx_message.message);
