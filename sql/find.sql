-- tx_find: the stored messages of a topic with a key, newest first.
\set VERBOSITY terse
SELECT tx_create_topic('f.orders');
SELECT count(tx_send('f.orders', jsonb_build_object('n', i), key => 'order-' || (i % 3)))
  FROM generate_series(1, 9) i;
SELECT tx_send_half('f.orders', '{"half": 1}', key => 'order-1') IS NOT NULL AS half_sent;
SELECT tx_send('f.orders', '{"later": 1}', key => 'order-1', delay => '1 hour') IS NOT NULL AS delayed_sent;
SELECT topic, key, payload, state, deliver_at > sent_at AS later FROM tx_find('f.orders', 'order-1');
SELECT count(*) AS two FROM tx_find('f.orders', 'order-1', max => 2);
SELECT count(*) AS none_since FROM tx_find('f.orders', 'order-1', since => now() + interval '1 minute');
SELECT count(*) AS no_such_key FROM tx_find('f.orders', 'nope');

-- bad input
SELECT * FROM tx_find(NULL, 'k');
SELECT * FROM tx_find('f.orders', NULL);
SELECT * FROM tx_find('f.orders', 'k', NULL);
SELECT * FROM tx_find('f.orders', 'k', max => 0);
SELECT * FROM tx_find('f.orders', 'k', max => 10001);
SELECT * FROM tx_find('f.nope', 'k');
SELECT * FROM tx_find('f.orders', repeat('k', 1025));

-- 'receive' is needed, as for tx_message.messages
CREATE ROLE f_stranger;
SET ROLE f_stranger;
SELECT count(*) FROM tx_find('f.orders', 'order-1');
RESET ROLE;
SELECT tx_grant('f.orders', 'f_stranger', 'monitor');
SET ROLE f_stranger;
SELECT count(*) FROM tx_find('f.orders', 'order-1');
RESET ROLE;
SELECT tx_grant('f.orders', 'f_stranger', 'receive');
SET ROLE f_stranger;
SELECT count(*) AS allowed FROM tx_find('f.orders', 'order-1');
RESET ROLE;

-- tx_recent: the latest messages of a topic, newest first in commit order,
-- paged with skip; delayed and half messages once they are in the stream
SELECT tx_create_topic('f.recent');
SELECT count(tx_send('f.recent', jsonb_build_object('n', i))) AS sent FROM generate_series(1, 600) i;
BEGIN;
SELECT tx_send('f.recent', '{"n": "late"}', key => 'late') AS late \gset
SELECT tx_send_half('f.recent', '{"n": "half"}') AS half \gset
SELECT tx_commit_half(:half);
COMMIT;
SELECT tx_run_maintenance() IS NOT NULL AS ticked;
SELECT array_agg(payload->>'n' ORDER BY ord) AS newest
  FROM tx_recent('f.recent', 5) WITH ORDINALITY AS r(msg_id, topic, key, tags, headers, payload, state, sent_at, deliver_at, ord);
SELECT msg_id = :half AS half_keeps_its_id, state, deliver_at IS NULL AS no_deliver_at
  FROM tx_recent('f.recent', 1);
-- pages across blocks of 256 positions
SELECT array_agg(payload->>'n' ORDER BY ord) AS page_3
  FROM tx_recent('f.recent', 4, 300) WITH ORDINALITY AS r(msg_id, topic, key, tags, headers, payload, state, sent_at, deliver_at, ord);
SELECT count(*) AS all_of_them FROM tx_recent('f.recent', 1000);
SELECT count(*) AS past_the_end FROM tx_recent('f.recent', 10, 602);
SELECT * FROM tx_recent('f.recent', 0);
SELECT * FROM tx_recent('f.recent', 1001);
SELECT * FROM tx_recent('f.recent', 10, -1);
SELECT * FROM tx_recent('f.recent', NULL);
SELECT * FROM tx_recent('f.nope');
SET ROLE f_stranger;
SELECT count(*) FROM tx_recent('f.recent');
RESET ROLE;
SELECT tx_drop_topic('f.recent');

SELECT tx_drop_topic('f.orders');
DROP ROLE f_stranger;
