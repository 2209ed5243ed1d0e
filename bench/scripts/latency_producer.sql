-- one message per transaction, stamped with the time of the send and the
-- pgbench client (the run matches it with that client's transaction log)
SELECT tx_send('latency', jsonb_build_object('t', extract(epoch FROM clock_timestamp()), 'c', :client_id::integer));
