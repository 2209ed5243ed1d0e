-- tx_message: the business transaction plus one tx_send to one of
-- :ntopics topics t0, t1, ..., picked at random
\set customer_id random(1, 100000)
\set amount random(1, 100000)
\set t random(0, :ntopics - 1)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
SELECT tx_send('t' || :t, :payload);
COMMIT;
