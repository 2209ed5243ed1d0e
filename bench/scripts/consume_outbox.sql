-- outbox, the consumer loop in one transaction: take 100 rows, return them
-- to the client (the effects would be written here), delete them, commit
BEGIN;
WITH batch AS (SELECT id FROM outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
DELETE FROM outbox o USING batch WHERE o.id = batch.id
RETURNING o.id, o.payload;
COMMIT;
