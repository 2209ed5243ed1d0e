-- tx_message: receive 100 and ack them in one statement, the rows going to the client
WITH r AS (SELECT msg_id, payload FROM tx_receive('g0', 100)),
     a AS (SELECT tx_ack('g0', array_agg(msg_id)) AS acked FROM r)
SELECT r.msg_id, r.payload, a.acked FROM r, a;
