-- tx_message: consume_txm.sql for the group :group
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive(:group, 100) \aset
SELECT tx_ack(:group, :ids::bigint[]);
