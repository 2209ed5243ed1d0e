-- tx_message, the README's loop over many groups: client c of :nclients
-- serves groups g<c>, g<c + nclients>, ..., one batch of 100 per
-- transaction, taking its groups in turn (:k counts this client's batches)
\set gid :client_id + :nclients * (:k % (:ngroups / :nclients))
\set k :k + 1
BEGIN;
SELECT msg_id, payload FROM tx_receive('g' || :gid, 100);
SELECT tx_ack('g' || :gid);
COMMIT;
