-- Half messages: RocketMQ's two-phase protocol.
\set VERBOSITY terse
SELECT tx_create_topic('transfers');

-- a half message is stored but not committed
SELECT tx_send_half('transfers', '{"from": "A", "to": "B", "amount": 100}',
                    key => 'tx-1', tags => '{bank}', headers => '{"service": "bank-a"}') AS h1 \gset
SELECT state, key, tags, headers, deliver_at IS NULL AS no_delivery_yet
  FROM tx_message.messages WHERE msg_id = :h1;
-- what the check-backs will need is stored with it
SELECT state, checks, last_check_at, resolved_at FROM tx_message.half_messages WHERE msg_id = :h1;

-- commit: true when this call decided it, false when it already had that outcome
SELECT tx_commit_half(:h1);
SELECT tx_commit_half(:h1);
SELECT state FROM tx_message.messages WHERE msg_id = :h1;
SELECT count(*) AS rows_for_message FROM tx_message.messages WHERE msg_id = :h1;
SELECT state, resolved_by, resolved_at IS NOT NULL AS resolved
  FROM tx_message.half_messages WHERE msg_id = :h1;

-- rollback
SELECT tx_send_half('transfers', '{"n": 2}') AS h2 \gset
SELECT tx_rollback_half(:h2);
SELECT tx_rollback_half(:h2);
SELECT state FROM tx_message.messages WHERE msg_id = :h2;

-- conflicting outcomes and unknown ids are errors with their own SQLSTATE
-- (ids depend on transaction ids, so errors are shown with ids masked)
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{6,}', 'N', 'g');
END $$;
SELECT try(format('SELECT tx_rollback_half(%s)', :h1));
SELECT try(format('SELECT tx_commit_half(%s)', :h2));
SELECT try('SELECT tx_commit_half(-1)');
SELECT try('SELECT tx_rollback_half(-1)');
SELECT try('SELECT tx_commit_half(NULL)');
SELECT state FROM tx_message.messages WHERE msg_id IN (:h1, :h2) ORDER BY msg_id;

-- the decision takes effect with the calling transaction
SELECT tx_send_half('transfers', '{"n": 3}') AS h3 \gset
BEGIN;
SELECT tx_commit_half(:h3);
ROLLBACK;
SELECT state FROM tx_message.messages WHERE msg_id = :h3;

-- a half message whose own transaction rolled back never existed
BEGIN;
SELECT tx_send_half('transfers', '{"n": "never"}') AS h4 \gset
ROLLBACK;
SELECT try(format('SELECT tx_commit_half(%s)', :h4));

-- the bank transfer of the source documents: debit and commit atomically
CREATE TABLE accounts (name text PRIMARY KEY, balance numeric NOT NULL CHECK (balance >= 0));
INSERT INTO accounts VALUES ('A', 100), ('B', 0);
SELECT tx_send_half('transfers', '{"from": "A", "to": "B", "amount": 60}', key => 'tx-5') AS h5 \gset
BEGIN;
UPDATE accounts SET balance = balance - 60 WHERE name = 'A';
SELECT tx_commit_half(:h5);
COMMIT;
SELECT tx_send_half('transfers', '{"from": "A", "to": "B", "amount": 60}', key => 'tx-6') AS h6 \gset
BEGIN;
SELECT tx_commit_half(:h6);
UPDATE accounts SET balance = balance - 60 WHERE name = 'A';	-- fails: not enough money
COMMIT;
SELECT name, balance FROM accounts ORDER BY name;
SELECT key, state FROM tx_message.messages WHERE key IN ('tx-5', 'tx-6') ORDER BY key;
SELECT tx_rollback_half(:h6);

-- bad input
SELECT tx_send_half(NULL, '{}');
SELECT tx_send_half('transfers', NULL);
SELECT tx_send_half('nope', '{}');
SELECT tx_send_half('transfers', '{}', tags => '{NULL}');
SELECT tx_send_half('transfers', '{}', headers => '1');
SET tx_message.max_payload_size = 64;
SELECT tx_send_half('transfers', jsonb_build_object('big', repeat('x', 100)));
RESET tx_message.max_payload_size;
SELECT state, count(*) FROM tx_message.half_messages GROUP BY state ORDER BY state;

-- half messages inside a prepared transaction appear with COMMIT PREPARED
BEGIN;
SELECT tx_send_half('transfers', '{"n": "prepared"}') > 0 AS sent;
PREPARE TRANSACTION 'txm_half';
SELECT count(*) AS while_prepared FROM tx_message.messages WHERE payload = '{"n": "prepared"}';
COMMIT PREPARED 'txm_half';
SELECT state FROM tx_message.messages WHERE payload = '{"n": "prepared"}';

DROP TABLE accounts;
DROP FUNCTION try;
