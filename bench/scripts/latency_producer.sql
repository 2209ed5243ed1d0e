-- one message per transaction, stamped with the time of the send
SELECT tx_send('latency', jsonb_build_object('t', extract(epoch FROM clock_timestamp())));
