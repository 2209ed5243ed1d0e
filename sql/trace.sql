-- tx_trace: where a message is, per consumer group, and its life as a half message.
\set VERBOSITY terse
SELECT tx_create_topic('tr.orders');
SELECT tx_subscribe('tr.orders', 'tr.acker');
SELECT tx_subscribe('tr.orders', 'tr.holder');
SELECT tx_subscribe('tr.orders', 'tr.nacker', max_retries => 0);
SELECT tx_subscribe('tr.orders', 'tr.retrier');
SELECT tx_subscribe('tr.orders', 'tr.blue', tags => '{blue}');
SELECT tx_subscribe('tr.orders', 'tr.idle');
SELECT tx_send('tr.orders', '{"n": 1}', tags => '{red}') AS m \gset

-- not yet received by anyone: pending everywhere
SELECT consumer_group, state FROM tx_trace(:m);

SELECT count(tx_ack('tr.acker', msg_id)) AS acked FROM tx_receive('tr.acker', 1, wait => '5 s');
SELECT count(*) AS leased FROM tx_receive('tr.holder', 1, lease => '1 hour');
SELECT tx_nack('tr.nacker', msg_id, 'broken') FROM tx_receive('tr.nacker', 1);
SELECT tx_nack('tr.retrier', msg_id, 'later', retry_in => '1 hour') FROM tx_receive('tr.retrier', 1);
SELECT count(*) AS blue_gets_nothing FROM tx_receive('tr.blue', 1);
SELECT consumer_group, state, attempts, lease_pid = pg_backend_pid() AS my_lease,
       lease_until > now() + interval '50 minutes' AS held_long, last_error,
       sent_at <= now() AS sent, deliverable_at >= sent_at AS deliverable,
       CASE WHEN state = 'leased' THEN first_delivered_at IS NOT NULL END AS delivered,
       finished_at IS NOT NULL AS finished
  FROM tx_trace(:m);

-- a half message: one row of its own; once committed, rows per group too
SELECT tx_send_half('tr.orders', '{"n": "half"}') AS h \gset
SELECT consumer_group, state, attempts, finished_at IS NOT NULL AS finished FROM tx_trace(:h);
SELECT tx_commit_half(:h);
SELECT consumer_group, state, finished_at IS NOT NULL AS finished FROM tx_trace(:h)
 WHERE consumer_group IS NULL OR consumer_group IN ('tr.idle', 'tr.acker');
SELECT tx_send_half('tr.orders', '{"n": "dropped"}') AS r \gset
SELECT tx_rollback_half(:r);
SELECT consumer_group, state FROM tx_trace(:r);

-- a delayed message is pending, deliverable when it falls due
SELECT tx_send('tr.orders', '{"n": "later"}', delay => '1 hour') AS d \gset
SELECT consumer_group, state, deliverable_at > now() + interval '50 minutes' AS later
  FROM tx_trace(:d) WHERE consumer_group = 'tr.idle';

-- bad input, and 'receive' is needed
SELECT * FROM tx_trace(NULL);
SELECT * FROM tx_trace(0);
CREATE ROLE tr_stranger;
SET ROLE tr_stranger;
SELECT count(*) FROM tx_trace(:m);
RESET ROLE;
SELECT tx_drop_topic('tr.orders', cascade => true);
DROP ROLE tr_stranger;
