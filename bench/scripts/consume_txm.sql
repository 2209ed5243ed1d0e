-- tx_message, the consumer loop of the README: receive up to 100 messages
-- (rows to the client), ack what the transaction received with
-- tx_ack(group), commit, in one transaction.  The group is g0, or
-- g<client_id> when :fanout is set.
\if :fanout
\set gid :client_id
\else
\set gid 0
\endif
BEGIN;
SELECT msg_id, payload FROM tx_receive('g' || :gid, 100);
SELECT tx_ack('g' || :gid);
COMMIT;
