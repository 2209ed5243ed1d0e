-- Idempotent send: a second send with the same dedup key to the same topic,
-- while the first message is stored, returns the first message's id and
-- stores nothing.
\set VERBOSITY terse
SELECT tx_create_topic('dd.orders');
SELECT tx_create_topic('dd.other');
SELECT tx_subscribe('dd.orders', 'dd.g');

SELECT tx_send('dd.orders', '{"v": 1}', dedup_key => 'order-1') AS d1 \gset
SELECT tx_send('dd.orders', '{"v": 2}', dedup_key => 'order-1') = :d1 AS same_id;
-- in the same transaction, and with a delay, too
BEGIN;
SELECT tx_send('dd.orders', '{"v": 3}', dedup_key => 'order-2') AS d2 \gset
SELECT tx_send('dd.orders', '{"v": 4}', dedup_key => 'order-2', delay => '1 h') = :d2 AS same_in_xact;
COMMIT;
-- keys are per topic; no key, no deduplication
SELECT tx_send('dd.other', '{"v": 5}', dedup_key => 'order-1') <> :d1 AS other_topic_own_id;
SELECT tx_send('dd.orders', '{"v": 6}') <> tx_send('dd.orders', '{"v": 6}') AS without_key_two;
SELECT array_agg(payload->>'v' ORDER BY msg_id) AS delivered FROM tx_receive('dd.g', wait => '5 s');

-- a rolled-back send holds no key
BEGIN;
SELECT tx_send('dd.orders', '{"v": 7}', dedup_key => 'order-3') AS rolled \gset
ROLLBACK;
SELECT tx_send('dd.orders', '{"v": 8}', dedup_key => 'order-3') <> :rolled AS sent_anew;

-- tx_send_batch: dedup_keys one per payload (NULL: none); a key given twice
-- in one batch answers the first element's id
SELECT i, id = :d1 AS is_d1, id = lag(id) OVER (ORDER BY i) AS same_as_previous
  FROM tx_send_batch('dd.orders', ARRAY['{"v": 9}', '{"v": 10}', '{"v": 11}', '{"v": 12}']::jsonb[],
					 dedup_keys => ARRAY['order-1', NULL, 'order-4', 'order-4']) WITH ORDINALITY AS b(id, i)
 ORDER BY i;
SELECT count(DISTINCT id) AS distinct_ids FROM tx_send_batch('dd.orders', ARRAY['{}', '{}', '{}']::jsonb[],
	dedup_keys => ARRAY['order-5', 'order-5', 'order-5']) AS id;
SELECT array_agg(payload->>'v' ORDER BY msg_id) AS delivered FROM tx_receive('dd.g', wait => '5 s');

-- half messages share the topic's keys; a rolled-back half message gives its key up
SELECT tx_send_half('dd.orders', '{"v": "h1"}', dedup_key => 'order-1') = :d1 AS half_finds_sent;
SELECT tx_send_half('dd.orders', '{"v": "h2"}', dedup_key => 'pay-1') AS h2 \gset
SELECT tx_send_half('dd.orders', '{"v": "h3"}', dedup_key => 'pay-1') = :h2 AS half_twice;
SELECT tx_send('dd.orders', '{"v": "s"}', dedup_key => 'pay-1') = :h2 AS send_finds_half;
SELECT tx_rollback_half(:h2);
SELECT tx_send_half('dd.orders', '{"v": "h4"}', dedup_key => 'pay-1') <> :h2 AS after_rollback_new;
SELECT count(*) AS dedup_rows FROM tx_message.dedup d JOIN tx_message.topics t USING (topic_id)
 WHERE t.topic LIKE 'dd.%';

-- the rows of a dropped topic go with the housekeeping
SELECT tx_drop_topic('dd.other');
SELECT (tx_run_maintenance() IS NOT NULL) AS ran;
SELECT count(*) AS orphans FROM tx_message.dedup d
 WHERE NOT EXISTS (SELECT FROM tx_message.topics t WHERE t.topic_id = d.topic_id);

SELECT tx_drop_topic('dd.orders', cascade => true);
