-- outbox, as consume_outbox.sql, with the batch picked in a CTE (run once).
-- The steady state uses this form: while the table grows, the planner can
-- turn "id IN (SELECT ... LIMIT 100 FOR UPDATE SKIP LOCKED)" into a nested
-- loop that re-runs the locking subquery for every row of the outbox, and a
-- single DELETE then runs for minutes.
WITH batch AS (SELECT id FROM outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
DELETE FROM outbox o USING batch WHERE o.id = batch.id
RETURNING o.id, o.payload;
