-- outbox: take 100 rows, return them to the client, delete them
DELETE FROM outbox
 WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING id, payload;
