-- outbox: the business transaction plus one row carrying what a message carries (topic, time, payload)
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
INSERT INTO outbox (topic, payload) VALUES ('bench', :payload);
COMMIT;
