-- tx_message: the business transaction plus tx_send_batch of 100 messages
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
SELECT count(*) FROM tx_send_batch('bench', array_fill(:payload::jsonb, ARRAY[100]));
COMMIT;
