-- tx_message, the README's loop over many groups: client c of :nclients
-- serves groups g<c>, g<c + nclients>, ..., one batch of 100 per
-- transaction, taking its groups in turn (:k counts this client's batches)
\set gid :client_id + :nclients * (:k % (:ngroups / :nclients))
\set k :k + 1
BEGIN;
SELECT msg_id, payload,
       CASE WHEN row_number() OVER () = count(*) OVER () THEN array_agg(msg_id) OVER () END AS ids
  FROM tx_receive('g' || :gid, 100) \aset
SELECT tx_ack('g' || :gid, :ids::bigint[]);
COMMIT;
