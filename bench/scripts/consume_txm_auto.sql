-- tx_message, receive and ack as two autocommit statements: receive up to
-- 100 messages (they go to the client; the last row also carries the ids),
-- then ack them.  The group is g0, or g<client_id> when :fanout is set.
\if :fanout
\set gid :client_id
\else
\set gid 0
\endif
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g' || :gid, 100) \aset
SELECT tx_ack('g' || :gid, :ids::bigint[]);
