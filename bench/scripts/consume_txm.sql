-- tx_message, the consumer loop of the README: receive up to 100 messages
-- (rows to the client, the ids on the last row only), ack them, commit, in
-- one transaction.  The group is g0, or g<client_id> when :fanout is set.
\if :fanout
\set gid :client_id
\else
\set gid 0
\endif
BEGIN;
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g' || :gid, 100) \aset
SELECT tx_ack('g' || :gid, :ids::bigint[]);
COMMIT;
