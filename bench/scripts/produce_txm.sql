-- tx_message: the business transaction plus one tx_send
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
SELECT tx_send('bench', :payload);
COMMIT;
