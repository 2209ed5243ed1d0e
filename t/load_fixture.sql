-- The load fixture of t/006_failover.pl and t/007_faults.pl: the
-- business tables the producers write, the tables of the three consumers'
-- effects, the topic with its check function, the handler and the
-- consumer loops, and what the tests count.
CREATE EXTENSION tx_message;
CREATE SEQUENCE business_id;
-- what the producers committed: one row per message that must be delivered
CREATE TABLE produced (id bigint PRIMARY KEY, kind text NOT NULL,
	at timestamptz NOT NULL DEFAULT clock_timestamp());
-- the consumers' business effects, one row per effect
CREATE TABLE pull_effects (id bigint NOT NULL, msg_id bigint NOT NULL, attempt int NOT NULL,
	pid int NOT NULL DEFAULT pg_backend_pid(), at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE ext_effects (LIKE pull_effects INCLUDING DEFAULTS);
CREATE TABLE handler_effects (LIKE pull_effects INCLUDING DEFAULTS);
CREATE INDEX ON pull_effects (id);
CREATE INDEX ON ext_effects (id);
CREATE INDEX ON handler_effects (id);
CREATE VIEW effects AS
	SELECT 'pull' AS kind, id, msg_id FROM pull_effects
	UNION ALL SELECT 'ext', id, msg_id FROM ext_effects
	UNION ALL SELECT 'handler', id, msg_id FROM handler_effects;

-- checkLocalTransaction: commit once the business row exists; a producer
-- that vanished before its business transaction is rolled back after 10 s
CREATE FUNCTION order_check(m tx_message.message) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN EXISTS (SELECT 1 FROM public.produced WHERE id = (m.payload->>'id')::bigint)
	            THEN 'commit'
	            WHEN m.sent_at < now() - interval '10 s' THEN 'rollback'
	            ELSE 'unknown' END $$;
SELECT tx_create_topic('orders', check_function => 'order_check(tx_message.message)',
	check_after => '1 s', check_interval => '1 s', check_max => 100);

-- the handler fails the first attempt of some messages
CREATE FUNCTION handle(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF (m.payload->>'id')::bigint % 53 = 0 AND m.attempt = 1 THEN
		RAISE EXCEPTION 'simulated handler failure';
	END IF;
	INSERT INTO public.handler_effects (id, msg_id, attempt)
	VALUES ((m.payload->>'id')::bigint, m.msg_id, m.attempt);
END $$;
SELECT tx_subscribe('orders', 'pull', backoff => '{200 ms}', lease => '5 s');
SELECT tx_subscribe('orders', 'ext', backoff => '{200 ms}', lease => '3 s');
SELECT tx_subscribe('orders', 'handler', handler => 'handle(tx_message.message)', backoff => '{200 ms}');

-- A producer: a business row and its message in one transaction, for
-- about `seconds`, at most 100 transactions a second; one transaction in
-- ten rolls back.
CREATE PROCEDURE produce(kind text, seconds float8) LANGUAGE plpgsql AS $$
DECLARE
	t_end timestamptz := clock_timestamp() + make_interval(secs => seconds);
	i int := 0;
	b bigint;
	ids bigint[];
	h bigint;
BEGIN
	WHILE clock_timestamp() < t_end LOOP
		i := i + 1;
		PERFORM pg_sleep(0.01);
		IF kind = 'single' THEN
			b := nextval('business_id');
			INSERT INTO produced (id, kind) VALUES (b, kind);
			PERFORM tx_send('orders', jsonb_build_object('id', b), key => (b % 16)::text,
							delay => CASE WHEN b % 10 = 3 THEN interval '300 ms' END);
			IF i % 10 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
		ELSIF kind = 'batch' THEN
			SELECT array_agg(nextval('business_id')) INTO ids FROM generate_series(1, 5);
			INSERT INTO produced (id, kind) SELECT unnest(ids), kind;
			PERFORM tx_send_batch('orders', ARRAY(SELECT jsonb_build_object('id', x) FROM unnest(ids) x));
			IF i % 10 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
		ELSE
			-- half messages: the message first, then the business transaction
			b := nextval('business_id');
			h := tx_send_half('orders', jsonb_build_object('id', b));
			COMMIT;
			IF i % 20 = 0 THEN
				PERFORM tx_rollback_half(h);			-- the business transaction failed
			ELSIF i % 20 = 1 THEN
				NULL;									-- the producer vanished: the check rolls back
			ELSIF i % 10 = 5 THEN
				INSERT INTO produced (id, kind) VALUES (b, 'half-checked');	-- no answer: the check commits
			ELSE
				BEGIN
					INSERT INTO produced (id, kind) VALUES (b, 'half');
					PERFORM tx_commit_half(h);
				EXCEPTION WHEN object_not_in_prerequisite_state THEN
					NULL;								-- a check rolled it back first: no business row
				END;
			END IF;
			COMMIT;
		END IF;
	END LOOP;
END $$;

-- A backlog: many business rows and their messages in one transaction.
CREATE PROCEDURE produce_burst(n int) LANGUAGE plpgsql AS $$
DECLARE
	ids bigint[];
BEGIN
	SELECT array_agg(nextval('business_id')) INTO ids FROM generate_series(1, n);
	INSERT INTO produced (id, kind) SELECT unnest(ids), 'burst';
	PERFORM tx_send_batch('orders', ARRAY(SELECT jsonb_build_object('id', x) FROM unnest(ids) x));
END $$;

-- Exactly once: receive, effect and ack in one transaction.  Some first
-- attempts fail (nack, no effect).  An ack that finishes fewer messages
-- than were received in this very transaction is an error.
CREATE PROCEDURE consume_pull(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
	t_end timestamptz := clock_timestamp() + make_interval(secs => seconds);
	r record;
	ids bigint[];
	n int;
BEGIN
	WHILE clock_timestamp() < t_end LOOP
		ids := '{}';
		FOR r IN SELECT msg_id, (payload->>'id')::bigint AS id, attempt
		           FROM tx_receive('pull', 50, wait => '100 ms') LOOP
			IF r.id % 50 = 7 AND r.attempt = 1 THEN
				PERFORM tx_nack('pull', r.msg_id, 'simulated failure', retry_in => '200 ms');
			ELSE
				INSERT INTO pull_effects (id, msg_id, attempt) VALUES (r.id, r.msg_id, r.attempt);
				ids := ids || r.msg_id;
			END IF;
		END LOOP;
		IF cardinality(ids) > 0 THEN
			n := tx_ack('pull', ids);
			IF n <> cardinality(ids) THEN
				RAISE EXCEPTION 'short ack: % of % messages received in this transaction', n, cardinality(ids);
			END IF;
		END IF;
		COMMIT;
	END LOOP;
END $$;

-- At least once: the lease, the effect and the ack in three transactions,
-- with an "external call" between effect and ack.
CREATE PROCEDURE consume_ext(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
	t_end timestamptz := clock_timestamp() + make_interval(secs => seconds);
	ids bigint[];
	bids bigint[];
	atts int[];
BEGIN
	WHILE clock_timestamp() < t_end LOOP
		SELECT array_agg(msg_id), array_agg((payload->>'id')::bigint), array_agg(attempt)
		  INTO ids, bids, atts
		  FROM tx_receive('ext', 50, wait => '100 ms');
		COMMIT;
		IF ids IS NOT NULL THEN
			INSERT INTO ext_effects (id, msg_id, attempt) SELECT * FROM unnest(bids, ids, atts);
			COMMIT;
			PERFORM pg_sleep(0.02);
			PERFORM tx_ack('ext', ids);
			COMMIT;
		END IF;
	END LOOP;
END $$;

-- per consumer kind: messages committed without an effect (lost), effects of
-- messages never committed (phantom), effects beyond the first (dup), all
-- effects, and dead letters
CREATE VIEW effect_counts AS
SELECT k.kind,
	(SELECT count(*) FROM produced p
	  WHERE NOT EXISTS (SELECT 1 FROM effects e WHERE e.kind = k.kind AND e.id = p.id)) AS lost,
	(SELECT count(*) FROM effects e
	  WHERE e.kind = k.kind AND NOT EXISTS (SELECT 1 FROM produced p WHERE p.id = e.id)) AS phantom,
	(SELECT count(*) - count(DISTINCT id) FROM effects e WHERE e.kind = k.kind) AS dup,
	(SELECT count(*) FROM effects e WHERE e.kind = k.kind) AS effects,
	(SELECT count(*) FROM tx_message.dead_letters d WHERE d.consumer_group = k.kind) AS dead
  FROM (VALUES ('pull'), ('ext'), ('handler')) k(kind);
