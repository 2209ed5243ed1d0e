-- tx_message: the business transaction plus one tx_send with a dedup key
-- (a new key each time, as a producer that retries requests would use)
\set customer_id random(1, 100000)
\set amount random(1, 100000)
\set request random(1, 1000000000000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
SELECT tx_send('bench', :payload, dedup_key => 'request-' || :request);
COMMIT;
