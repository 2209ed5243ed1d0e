-- tx_message demo: played by scripts/demo.sh against a throwaway cluster.
\set VERBOSITY terse
\pset footer off

\echo
\echo '== 1. CREATE EXTENSION and a topic'
CREATE EXTENSION tx_message;
SELECT tx_create_topic('order-created');
SELECT topic, retention, check_after, check_interval, check_max FROM tx_message.topics;

\echo
\echo '== 2. An order and its event commit together ...'
CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric);
BEGIN;
INSERT INTO orders VALUES (1, 'alice', 30);
SELECT tx_send('order-created', '{"order": 1, "customer": "alice", "amount": 30}', key => 'order-1') > 0 AS sent;
COMMIT;

\echo '== ... or vanish together'
BEGIN;
INSERT INTO orders VALUES (2, 'bob', 99);
SELECT tx_send('order-created', '{"order": 2, "customer": "bob", "amount": 99}', key => 'order-2') > 0 AS sent;
ROLLBACK;
SELECT o.id AS order_id, m.key AS message_key, m.state
  FROM orders o FULL JOIN tx_message.messages m ON m.payload->>'order' = o.id::text;

\echo
\echo '== 3. A half message for a local transaction that lives elsewhere'
SELECT tx_send_half('order-created', '{"order": 3, "customer": "carol", "amount": 12}', key => 'order-3') AS half \gset
SELECT key, state FROM tx_message.messages WHERE key = 'order-3';
\echo '== the other service committed its transaction: commit the half message'
SELECT tx_commit_half(:half) AS decided, tx_commit_half(:half) AS decided_again;
SELECT key, state FROM tx_message.messages ORDER BY msg_id;
