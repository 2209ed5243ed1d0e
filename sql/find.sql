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
SELECT tx_drop_topic('f.orders');
DROP ROLE f_stranger;
