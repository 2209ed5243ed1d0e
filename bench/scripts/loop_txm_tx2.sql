-- tx_message, the README's loop in two round trips (run with -M simple):
-- BEGIN goes with the receive and the ack with COMMIT, as a driver that
-- pipelines (libpq's pipeline mode, pgjdbc, psycopg's pipeline, pgx's
-- batches) or sends several statements in one query string does.  pgbench
-- allows no \aset in a pipeline, hence one simple query string each.
BEGIN \;
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g0', 100) \aset
SELECT tx_ack('g0', ':ids'::bigint[]) \; COMMIT;
