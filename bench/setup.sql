-- Objects shared by every benchmark run (database "bench").  The systems'
-- own state is reset before each run by bench/run.sh (reset_*).

CREATE EXTENSION pgq;

-- The business table every produce scenario writes to.
CREATE TABLE orders (
	id bigserial PRIMARY KEY,
	customer_id integer NOT NULL,
	amount integer NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- The hand-rolled outbox everyone writes, carrying what a message carries:
-- the topic to route by and when it was written.
CREATE TABLE outbox (
	id bigserial PRIMARY KEY,
	topic text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	payload jsonb NOT NULL
);

-- Latency samples (scenario "latency"): each message's send, by which
-- pgbench client, and when the consumer got it (epoch seconds) ...
CREATE TABLE latency_samples (
	rate integer NOT NULL,
	rep integer NOT NULL,
	client integer NOT NULL,
	sent float8 NOT NULL,
	got float8 NOT NULL
);

-- ... and when each producer transaction's COMMIT returned, from pgbench's
-- transaction log: the n-th transaction of a client sent its n-th message.
CREATE TABLE latency_commits (
	rate integer NOT NULL,
	rep integer NOT NULL,
	client integer NOT NULL,
	txn integer NOT NULL,
	done float8 NOT NULL
);

/*
 * A consumer blocked in tx_receive(..., wait => ...) for `seconds`: records,
 * for every message, the clock_timestamp() of its tx_send (in the payload,
 * with the pgbench client that sent it) and the moment tx_receive returned
 * it.
 */
CREATE PROCEDURE txm_latency_consumer(consumer_group text, seconds float8, rate integer, rep integer)
LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + seconds * interval '1 s';
	ids bigint[];
	sent float8[];
	clients integer[];
	got_at float8;
BEGIN
	-- kept in a temporary table meanwhile: no WAL, no array copied per batch
	CREATE TEMP TABLE IF NOT EXISTS got (client integer, sent float8, got float8);
	TRUNCATE got;
	WHILE clock_timestamp() < deadline LOOP
		SELECT array_agg(msg_id), array_agg((payload->>'t')::float8), array_agg((payload->>'c')::integer),
			   extract(epoch FROM max(clock_timestamp()))
		  INTO ids, sent, clients, got_at
		  FROM tx_receive(consumer_group, 1000, wait => '200 ms');
		IF ids IS NOT NULL THEN
			INSERT INTO got SELECT c, s, got_at FROM unnest(clients, sent) AS u(c, s);
			PERFORM tx_ack(consumer_group, ids);
		END IF;
		COMMIT;
	END LOOP;
	INSERT INTO latency_samples SELECT rate, rep, g.client, g.sent, g.got FROM got g;
END $$;

/*
 * Subscribe `groups` handler groups to the backlog of topic "bench", commit,
 * and watch the worker's handled counter until `target` more messages were
 * handled (it counts since the worker started: take the difference).
 * Returns how many, and the seconds since the subscriptions committed.
 */
CREATE PROCEDURE bench_handler_drain(groups integer, target bigint, wide integer,
									 INOUT handled bigint, INOUT secs float8)
LANGUAGE plpgsql AS $$
DECLARE
	h0 bigint;
	t0 timestamptz;
BEGIN
	SELECT w.handled INTO h0 FROM tx_worker_status() w WHERE w.database = current_database();
	PERFORM tx_subscribe('bench', 'handled' || i, handler => 'bench_noop(tx_message.message)',
						 start_from => 'earliest', handler_executors => wide)
	   FROM generate_series(1, groups) i;
	COMMIT;
	t0 := clock_timestamp();
	LOOP
		SELECT w.handled - h0 INTO handled FROM tx_worker_status() w WHERE w.database = current_database();
		EXIT WHEN handled >= target OR clock_timestamp() > t0 + interval '20 min';
		PERFORM pg_sleep(0.005);
	END LOOP;
	secs := extract(epoch FROM clock_timestamp() - t0);
END $$;

-- Fill helpers for the large backlogs: `total` messages, `per_txn` per transaction.
CREATE PROCEDURE fill_outbox(total bigint, per_txn integer, payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	done bigint := 0;
BEGIN
	WHILE done < total LOOP
		INSERT INTO outbox (topic, payload) SELECT 'bench', payload FROM generate_series(1, least(per_txn, total - done));
		done := done + least(per_txn, total - done);
		COMMIT;
	END LOOP;
END $$;

CREATE PROCEDURE fill_txm(topic text, total bigint, per_txn integer, payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	done bigint := 0;
BEGIN
	WHILE done < total LOOP
		PERFORM count(*) FROM tx_send_batch(topic, array_fill(payload, ARRAY[least(per_txn, total - done)::integer]));
		done := done + least(per_txn, total - done);
		COMMIT;
	END LOOP;
END $$;

-- A tx_message backlog whose messages carry keys, nkeys of them in turn
-- (for an ordered subscription: each batch of 100 finds 100 keys free).
CREATE PROCEDURE fill_txm_keys(topic text, total bigint, per_txn integer, payload jsonb, nkeys integer)
LANGUAGE plpgsql AS $$
DECLARE
	done bigint := 0;
	n integer;
BEGIN
	WHILE done < total LOOP
		n := least(per_txn, total - done)::integer;
		PERFORM count(*) FROM tx_send_batch(topic, array_fill(payload, ARRAY[n]),
			keys => (SELECT array_agg('k' || ((done + i) % nkeys)) FROM generate_series(1, n) i));
		done := done + n;
		COMMIT;
	END LOOP;
END $$;

-- A tx_message backlog whose messages carry headers: every other
-- transaction's match the filter of the parity scenario.
CREATE PROCEDURE fill_txm_headers(topic text, total bigint, per_txn integer, payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	done bigint := 0;
	i bigint := 0;
BEGIN
	WHILE done < total LOOP
		PERFORM count(*) FROM tx_send_batch(topic, array_fill(payload, ARRAY[least(per_txn, total - done)::integer]),
			headers => CASE WHEN i % 2 = 0 THEN '{"region": "eu", "amount": 150}'::jsonb
							ELSE '{"region": "us", "amount": 150}'::jsonb END);
		done := done + least(per_txn, total - done);
		i := i + 1;
		COMMIT;
	END LOOP;
END $$;

-- A PgQ backlog: 100 events per transaction, each followed by a tick (the
-- queue's ticker_max_count is 100), so that every batch holds 100 events.
CREATE PROCEDURE fill_pgq(total bigint, per_txn integer, payload text)
LANGUAGE plpgsql AS $$
DECLARE
	done bigint := 0;
BEGIN
	WHILE done < total LOOP
		PERFORM pgq.insert_event('bench', 'order.created', payload)
		   FROM generate_series(1, least(per_txn, total - done));
		done := done + least(per_txn, total - done);
		COMMIT;
		PERFORM pgq.ticker('bench');
		COMMIT;
	END LOOP;
END $$;
