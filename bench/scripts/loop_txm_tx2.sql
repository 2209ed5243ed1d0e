-- tx_message, the README's loop in two round trips (run with -M simple):
-- BEGIN goes with the receive and the ack with COMMIT, as a driver that
-- pipelines (libpq's pipeline mode, pgjdbc, psycopg's pipeline, pgx's
-- batches) or sends several statements in one query string does.
BEGIN \;
SELECT msg_id, payload FROM tx_receive('g0', 100);
SELECT tx_ack('g0') \; COMMIT;
