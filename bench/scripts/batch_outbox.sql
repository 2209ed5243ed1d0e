-- outbox: the business transaction plus a multi-row INSERT of 100 messages
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
INSERT INTO outbox (topic, payload) SELECT 'bench', :payload::jsonb FROM generate_series(1, 100);
COMMIT;
