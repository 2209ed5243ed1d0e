-- limit: the business transaction alone
\set customer_id random(1, 100000)
\set amount random(1, 100000)
BEGIN;
INSERT INTO orders (customer_id, amount) VALUES (:customer_id, :amount);
COMMIT;
