-- pgq: one batch per transaction (consumer c<client_id>): the events go to
-- the client, then the batch is finished
SELECT coalesce(pgq.next_batch('bench', 'c' || :client_id), 0) AS batch_id \gset
\if :batch_id > 0
SELECT ev_id, ev_data FROM pgq.get_batch_events(:batch_id);
SELECT pgq.finish_batch(:batch_id);
\endif
