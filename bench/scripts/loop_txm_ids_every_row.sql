-- tx_message, the README's loop with the id array on every row
-- (array_agg(msg_id) OVER ()): what a driver user who does not pick the
-- last row pays; the array goes to the client 100 times per batch
BEGIN;
SELECT msg_id, payload, array_agg(msg_id) OVER () AS ids
  FROM tx_receive('g0', 100) \aset
SELECT tx_ack('g0', :ids::bigint[]);
COMMIT;
