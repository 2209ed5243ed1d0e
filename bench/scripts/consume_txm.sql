-- tx_message: receive up to 100 messages (they go to the client; the last
-- row also carries the ids), then ack them.  The group is :group, or
-- g<client_id> when :group is "fanout".
\if :fanout
\set gid :client_id
\else
\set gid 0
\endif
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g' || :gid, 100) \aset
SELECT tx_ack('g' || :gid, :ids::bigint[]);
