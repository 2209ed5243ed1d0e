-- pgq: the business transaction plus 100 events
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
SELECT count(pgq.insert_event('bench', 'order.created', :payload::text)) FROM generate_series(1, 100);
COMMIT;
