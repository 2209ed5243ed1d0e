-- outbox: the business transaction plus one row in a bigserial + jsonb table
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
INSERT INTO outbox (payload) VALUES (:payload);
COMMIT;
