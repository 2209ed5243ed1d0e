-- outbox, one autocommit statement: take 100 rows, return them to the
-- client, delete them (the loops scenario's outbox_auto)
DELETE FROM outbox
 WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING id, payload;
