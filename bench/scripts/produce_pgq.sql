-- pgq: the business transaction plus one PgQ event
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
SELECT pgq.insert_event('bench', 'order.created', :payload);
COMMIT;
