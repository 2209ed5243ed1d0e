-- tx_message, the consumer loop of the README acking by id: receive up to
-- 100 messages (rows to the client, the ids on the last row only), ack
-- those ids, commit, in one transaction (the headline consume loop until
-- run 36; consume_txm.sql acks with tx_ack(group) instead).
\set gid 0
BEGIN;
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g' || :gid, 100) \aset
SELECT tx_ack('g' || :gid, :ids::bigint[]);
COMMIT;
