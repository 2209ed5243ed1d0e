-- tx_message, the README's consumer loop: receive 100 (rows to the client,
-- the ids on the last row), ack them, commit, all in one transaction
BEGIN;
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g0', 100) \aset
SELECT tx_ack('g0', :ids::bigint[]);
COMMIT;
