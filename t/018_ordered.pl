# Ordered subscriptions under concurrency, checked as strictly as the README
# allows ("Order": per topic and group, commit order; an ordered
# subscription never hands out a message while an earlier one with the same
# key is leased or waiting for a retry; "Duplicates": a message comes again
# only after its lease expired or a nack, with a higher attempt).
#
# One group, og, subscribes ordered to two topics.  Producers (pgbench)
# commit messages over 32 keys per topic, single sends and batches, with keys
# interleaved in each transaction; some transactions roll back, and some
# sends roll back to a savepoint.  Each message carries its key's sequence
# number, taken from a counter row of the key that the producer locks until
# it commits, so that per key the numbers follow commit order.
#
# Consumers (pgbench) attack the group: acking the transaction's messages,
# nacking with retry_in '0 s' and receiving again in the same transaction,
# acking by id and receiving the next ones of those keys in the same
# transaction, rolling back whole transactions or savepoints after acks,
# nacks and receives, acking and nacking in transactions of their own
# (sometimes after the lease, as an old holder), abandoning what they
# received, and stalling past the lease in the receiving transaction.
#
# Every delivery and every ack or nack is recorded in the transaction that
# made it, so what rolled back leaves no trace, and stamped with a sequence
# value: a delivery's after its receive returned, an ack's or nack's before
# its transaction committed.  A claim that honours the guarantee happens
# after the commit of whatever unblocked it, so per key the deliveries in
# stamp order must form one chain: seq 1 at attempt 1 first, and after each
# delivery either the next attempt of the same message (after a counted
# nack of that delivery, or once its lease had ended) or, after a counted
# ack of its message, the next seq at attempt 1.  Besides, every message is
# acked exactly once, tx_ack(group) acks exactly what the transaction still
# holds, nothing is dead-lettered, and the backlog drains.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::Bin;
use TxmPgbench;

my $t_start = time();

# The worker's housekeeping (expiring leases, moving the watermark, which
# deletes the lease rows of finished blocks) runs every 10 ms, the shortest
# naptime, so that it keeps changing what claims read while they run.
my $node = PostgreSQL::Test::Cluster->new('ordered');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.naptime = '10ms'
max_connections = 40
log_statement = none
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('ord');
	SELECT tx_create_topic('ord2');
	-- nothing may be dead-lettered: every nack and expired lease is one more attempt
	SELECT tx_subscribe(t, 'og', ordered => true, lease => '2 s', backoff => '{0 s}', max_retries => 10000)
	  FROM unnest(ARRAY['ord', 'ord2']) t;

	-- per key, the sequence number of its last committed message
	CREATE TABLE key_seq (topic text, key text, n int NOT NULL DEFAULT 0, PRIMARY KEY (topic, key));
	INSERT INTO key_seq SELECT t, 'k' || i FROM unnest(ARRAY['ord', 'ord2']) t, generate_series(1, 32) i;
	CREATE SEQUENCE unkeyed;
	CREATE TABLE sent (msg_id bigint PRIMARY KEY, topic text, key text, seq int);

	CREATE SEQUENCE stamp;
	CREATE TABLE deliveries (id bigserial PRIMARY KEY, batch bigint, msg_id bigint, topic text, key text,
		seq int, attempt int, lease_until timestamptz, stamp bigint, at timestamptz);
	CREATE INDEX ON deliveries (batch);
	CREATE TABLE finishes (id bigserial PRIMARY KEY, batch bigint, msg_id bigint, attempt int,
		kind text, counted bool, result text, stamp bigint);
	CREATE INDEX ON finishes (msg_id);
	-- tx_ack(group): what it returned, and what the transaction still held
	CREATE TABLE ack_calls (batch bigint, returned int, held int);

	-- n messages in one transaction: keys drawn at random (one in twenty
	-- without a key), their counters locked in one order so that producers
	-- never deadlock, then sent in the drawn order; one transaction in ten
	-- also sends and bumps counters in a subtransaction that rolls back
	CREATE FUNCTION produce(n int, batched bool) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		topics text[];
		keys text[];
		seqs int[];
		payloads jsonb[];
		s int;
	BEGIN
		SELECT array_agg(CASE WHEN batched THEN NULL WHEN random() < 0.5 THEN 'ord' ELSE 'ord2' END),
		       array_agg(CASE WHEN random() < 0.05 THEN NULL ELSE 'k' || (1 + floor(random() * 32))::int END)
		  INTO topics, keys FROM generate_series(1, n);
		IF batched THEN
			topics := array_fill((CASE WHEN random() < 0.5 THEN 'ord' ELSE 'ord2' END)::text, ARRAY[n]);
		END IF;
		PERFORM 1 FROM key_seq WHERE (topic, key) IN (SELECT * FROM unnest(topics, keys))
		 ORDER BY topic, key FOR UPDATE;
		FOR i IN 1 .. n LOOP
			IF keys[i] IS NULL THEN
				s := nextval('unkeyed');
			ELSE
				UPDATE key_seq SET n = key_seq.n + 1 WHERE topic = topics[i] AND key = keys[i] RETURNING key_seq.n INTO s;
			END IF;
			seqs[i] := s;
			payloads[i] := jsonb_build_object('topic', topics[i], 'key', keys[i], 'seq', s);
			IF NOT batched THEN
				INSERT INTO sent VALUES (tx_send(topics[i], payloads[i], key => keys[i]), topics[i], keys[i], s);
			END IF;
			IF i = 1 AND random() < 0.1 THEN
				BEGIN
					FOR j IN 1 .. 3 LOOP
						IF keys[1] IS NOT NULL THEN
							UPDATE key_seq SET n = key_seq.n + 1 WHERE topic = topics[1] AND key = keys[1];
						END IF;
						PERFORM tx_send(topics[1], '{"doomed": true}', key => keys[1]);
					END LOOP;
					RAISE EXCEPTION 'doomed';
				EXCEPTION WHEN raise_exception THEN
					NULL;
				END;
			END IF;
		END LOOP;
		IF batched THEN
			INSERT INTO sent SELECT t.id, topics[1], keys[t.ord], seqs[t.ord]
			  FROM tx_send_batch(topics[1], payloads, keys => keys) WITH ORDINALITY AS t(id, ord);
		END IF;
	END $$;

	-- receive for batch b (the receiving transaction's id) and record each
	-- delivery, stamped after the receive returned
	CREATE FUNCTION take(b bigint, n int, lease_for interval DEFAULT NULL, wait_for interval DEFAULT '0')
	RETURNS int LANGUAGE plpgsql AS $$
	DECLARE
		got int;
	BEGIN
		INSERT INTO deliveries (batch, msg_id, topic, key, seq, attempt, lease_until, stamp, at)
		SELECT b, r.msg_id, r.topic, r.key, (r.payload->>'seq')::int, r.attempt, r.lease_until,
		       nextval('stamp'), clock_timestamp()
		  FROM tx_receive('og', n, wait => wait_for, lease => lease_for) r;
		GET DIAGNOSTICS got = ROW_COUNT;
		RETURN got;
	END $$;

	-- the deliveries of batch b whose message has not been acked or nacked
	-- (counted) since: the last delivery of each message.  In the receiving
	-- transaction itself, not those whose lease expired and which a later
	-- receive of the transaction moved to the retries without taking them
	-- back (nobody else can have written their retry row meanwhile)
	CREATE FUNCTION held(b bigint) RETURNS SETOF deliveries LANGUAGE sql AS $$
		SELECT d.* FROM deliveries d
		 WHERE d.batch = b
		   AND d.stamp = (SELECT max(d2.stamp) FROM deliveries d2 WHERE d2.batch = b AND d2.msg_id = d.msg_id)
		   AND NOT EXISTS (SELECT 1 FROM finishes f WHERE f.batch = b AND f.msg_id = d.msg_id
		                    AND f.counted AND f.stamp > d.stamp)
		   AND NOT (txid_current_if_assigned() = b
		            AND EXISTS (SELECT 1 FROM tx_message.retries_data r WHERE r.msg_id = d.msg_id
		                         AND NOT (r.state = 'leased' AND r.attempt = d.attempt)))
	$$;

	-- nack (retry_in '0 s') with probability p_nack, else ack by id with
	-- probability p_ack, each held message of batch b
	CREATE FUNCTION settle(b bigint, p_ack float8, p_nack float8) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		d deliveries;
		r float8;
		res text;
	BEGIN
		FOR d IN SELECT * FROM held(b) ORDER BY stamp LOOP
			r := random();
			IF r < p_nack THEN
				res := tx_nack('og', d.msg_id, 'chaos', retry_in => '0 s');
				INSERT INTO finishes (batch, msg_id, attempt, kind, counted, result, stamp)
				VALUES (b, d.msg_id, d.attempt, 'nack', res IS NOT NULL, res, nextval('stamp'));
			ELSIF r < p_nack + p_ack THEN
				res := tx_ack('og', d.msg_id)::text;
				INSERT INTO finishes (batch, msg_id, attempt, kind, counted, result, stamp)
				VALUES (b, d.msg_id, d.attempt, 'ack', res::bool, res, nextval('stamp'));
			END IF;
		END LOOP;
	END $$;

	-- tx_ack(group) in the receiving transaction: it must ack what is held
	CREATE FUNCTION ack_held(b bigint) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		ids bigint[];
		n int;
	BEGIN
		SELECT array_agg(h.id) INTO ids FROM held(b) h;
		n := tx_ack('og');
		IF n > 0 OR ids IS NOT NULL THEN
			INSERT INTO ack_calls VALUES (b, n, coalesce(cardinality(ids), 0));
		END IF;
		INSERT INTO finishes (batch, msg_id, attempt, kind, counted, result, stamp)
		SELECT b, d.msg_id, d.attempt, 'ack', true, 'group', nextval('stamp')
		  FROM deliveries d WHERE d.id = ANY (ids);
	END $$;
});

# ---------------------------------------------------------------------------
# The scripts
# ---------------------------------------------------------------------------
my $dir = $node->basedir;
my $pgb = TxmPgbench->new(node => $node, dir => $dir);
my %scripts = (
	# producers
	p_single => q{
\set n random(1, 6)
BEGIN;
SELECT produce(:n, false);
COMMIT;
},
	p_batch => q{
\set n random(1, 20)
BEGIN;
SELECT produce(:n, true);
COMMIT;
},
	p_abort => q{
\set n random(1, 10)
BEGIN;
SELECT produce(:n, :n % 2 = 0);
ROLLBACK;
},
	# consumers: receive and tx_ack(group) in one transaction
	c_ack => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT ack_held(:b);
COMMIT;
},
	# nack some, then receive again in the same transaction (due retries first)
	c_nack => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT settle(:b, 0.0, 0.4);
SELECT take(:b, :n);
SELECT ack_held(:b);
COMMIT;
},
	# ack by id, then receive what that unblocked, in the same transaction
	c_chain => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT settle(:b, 0.8, 0.1);
SELECT take(:b, :n);
SELECT settle(:b, 0.8, 0.1);
SELECT take(:b, :n);
SELECT ack_held(:b);
COMMIT;
},
	# what a subtransaction acked, nacked and received goes back with it
	c_savepoint => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SAVEPOINT s;
SELECT settle(:b, 0.6, 0.3);
SELECT take(:b, :n);
ROLLBACK TO SAVEPOINT s;
SELECT take(:b, :n);
SELECT ack_held(:b);
COMMIT;
},
	c_rollback => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT settle(:b, 0.6, 0.3);
SELECT take(:b, :n);
ROLLBACK;
},
	# the receive commits; acks and nacks by id in a transaction of their own
	c_external => q{
\set n random(1, 20)
SELECT txid_current() AS b, take(txid_current(), :n) AS got \gset
SELECT settle(:b, 0.8, 0.2);
},
	# slow consumers (which wait for their turn: ordered claims of the
	# group are serialized, and the fast consumers take most turns): half
	# acked at once, the rest after the lease, when they may have gone to
	# another consumer already
	s_late => q{
\set n random(1, 4)
SELECT txid_current() AS b, take(txid_current(), :n, '1 s', '300 ms') AS got \gset
SELECT settle(:b, 0.5, 0.0);
\sleep 1100 ms
SELECT settle(:b, 0.7, 0.3);
},
	# a consumer that dies: its leases expire
	s_abandon => q{
\set n random(1, 4)
SELECT take(txid_current(), :n, '1 s', '300 ms');
\sleep 200 ms
},
	# a receiving transaction that outlives its lease, receives again
	# (its own expired lease may come back to it) and acks
	s_stall => q{
\set n random(1, 4)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n, '0.3 s', '300 ms');
\sleep 400 ms
SELECT take(:b, :n);
SELECT ack_held(:b);
COMMIT;
},
	# drain what is left
	d_ack => q{
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, 1000);
SELECT ack_held(:b);
COMMIT;
},
);
for my $name (keys %scripts)
{
	append_to_file("$dir/$name.sql", $scripts{$name});
}

# ---------------------------------------------------------------------------
# The run: producers spread over about 20 s, consumers a while longer
# ---------------------------------------------------------------------------
my $producers = $pgb->start('producers', [ '-c', '3', '-t', '900', '-R', '140' ],
	p_single => 45, p_batch => 45, p_abort => 10);
my $consumers = $pgb->start('consumers', [ '-c', '4', '-T', '28' ],
	c_ack => 30, c_nack => 15, c_chain => 15, c_savepoint => 10, c_rollback => 10, c_external => 20);
my $slow = $pgb->start('slow consumers', [ '-c', '2', '-T', '28' ],
	s_late => 10, s_abandon => 6, s_stall => 1);

$pgb->finish($producers);
diag(sprintf('producers done after %.1f s', time() - $t_start));
$pgb->finish($slow);
my $out = $pgb->finish($consumers);
diag("consumers:\n" . join("\n", grep { /^SQL script|^ - \d+ transactions/ } split /\n/, $out));

# Drain what is left (expired leases come back at once: backoff 0 s).
my $backlog_q = q{SELECT coalesce(sum(backlog), 0) FROM tx_message.stats WHERE consumer_group = 'og'};
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
diag(sprintf('backlog when the consumers stopped (%.1f s): %d', time() - $t_start,
	$node->safe_psql('postgres', $backlog_q)));
my $left = $pgb->drain($backlog_q, $deadline, d_ack => 1);
is($left, '0', 'the backlog drained');
is($node->safe_psql('postgres', q{SELECT coalesce(sum(in_flight), 0) + coalesce(sum(retrying), 0)
	FROM tx_message.stats WHERE consumer_group = 'og'}), '0', 'nothing in flight or retrying');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tx_message.dead_letters'), '0',
	'nothing was dead-lettered');

# ---------------------------------------------------------------------------
# The checks
diag($node->safe_psql('postgres', q{
	SELECT format('%s messages sent (%s keyed); %s deliveries (%s redeliveries), %s counted acks, %s counted nacks, '
	              || '%s acks and %s nacks that counted nothing, %s tx_ack(group) calls',
		(SELECT count(*) FROM sent), (SELECT count(key) FROM sent),
		(SELECT count(*) FROM deliveries), (SELECT count(*) FROM deliveries WHERE attempt > 1),
		(SELECT count(*) FROM finishes WHERE kind = 'ack' AND counted),
		(SELECT count(*) FROM finishes WHERE kind = 'nack' AND counted),
		(SELECT count(*) FROM finishes WHERE kind = 'ack' AND NOT counted),
		(SELECT count(*) FROM finishes WHERE kind = 'nack' AND NOT counted),
		(SELECT count(*) FROM ack_calls))}));

# The producers' model: per key, the committed sequence numbers are 1..n.
$pgb->no_rows(q{SELECT k.topic, k.key, k.n, count(s.*), min(s.seq), max(s.seq), count(DISTINCT s.seq)
	FROM key_seq k LEFT JOIN sent s USING (topic, key) GROUP BY 1, 2, 3
	HAVING k.n <> count(s.*) OR k.n <> count(DISTINCT s.seq) OR (k.n > 0 AND (min(s.seq) <> 1 OR max(s.seq) <> k.n))},
	'per key, the committed messages are numbered 1..n');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM sent'), '>', 5000, 'the producers committed messages');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_message.messages WHERE payload ? 'doomed'}), '0',
	'what rolled back to a savepoint was never sent');

# Every message came as sent, and nothing else came.
$pgb->no_rows(q{SELECT d.* FROM deliveries d LEFT JOIN sent s USING (msg_id)
	WHERE s.msg_id IS NULL OR (d.topic, d.key, d.seq) IS DISTINCT FROM (s.topic, s.key, s.seq)},
	'every delivery is of a committed message, with its topic, key and payload');
$pgb->no_rows(q{SELECT s.msg_id, count(f.*) FROM sent s LEFT JOIN finishes f ON f.msg_id = s.msg_id AND f.kind = 'ack' AND f.counted
	GROUP BY 1 HAVING count(f.*) <> 1},
	'every message was acked exactly once');
$pgb->no_rows(q{SELECT f.* FROM finishes f LEFT JOIN sent s USING (msg_id) WHERE s.msg_id IS NULL},
	'no ack or nack of anything else');
$pgb->no_rows(q{SELECT * FROM ack_calls WHERE returned <> held},
	'tx_ack(group) acked exactly what its transaction still held');
$pgb->no_rows(q{SELECT * FROM finishes WHERE kind = 'nack' AND counted AND result <> 'retry'},
	'every counted nack scheduled a retry');

# Redeliveries, per message: attempts count up by one.  (Between them the
# chain below asks for a counted nack or an ended lease.)
$pgb->no_rows(q{SELECT msg_id FROM deliveries GROUP BY 1
	HAVING min(attempt) <> 1 OR max(attempt) <> count(*) OR count(DISTINCT attempt) <> count(*)},
	'per message, the attempts of its deliveries are 1, 2, 3, ...');

# The chain of each key.
my $chain = q{
	WITH d AS (
		SELECT d.*, lag(msg_id) OVER w AS p_msg, lag(seq) OVER w AS p_seq, lag(attempt) OVER w AS p_attempt,
		       lag(stamp) OVER w AS p_stamp, lag(lease_until) OVER w AS p_until,
		       lead(stamp) OVER w AS n_stamp
		  FROM deliveries d WHERE key IS NOT NULL
		WINDOW w AS (PARTITION BY topic, key ORDER BY stamp))
	SELECT format('%s/%s: %s (seq %s attempt %s, stamp %s) after %s (seq %s attempt %s, stamp %s, lease until %s)',
	              topic, key, msg_id, seq, attempt, stamp, p_msg, p_seq, p_attempt, p_stamp, p_until) AS violation
	  FROM d
	 WHERE CASE
		WHEN p_msg IS NULL THEN NOT (seq = 1 AND attempt = 1)
		WHEN p_msg = msg_id THEN NOT (
			attempt = p_attempt + 1
			AND NOT EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.msg_id AND f.kind = 'ack' AND f.counted
			                 AND f.stamp < d.stamp)
			AND (p_until <= d.at
			     OR EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.msg_id AND f.kind = 'nack' AND f.counted
			                 AND f.attempt = d.p_attempt AND f.stamp > d.p_stamp AND f.stamp < d.stamp)))
		ELSE NOT (
			seq = p_seq + 1 AND attempt = 1
			AND EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.p_msg AND f.kind = 'ack' AND f.counted
			             AND f.stamp > d.p_stamp AND f.stamp < d.stamp)
			AND NOT EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.p_msg AND f.kind = 'nack' AND f.counted
			                 AND f.stamp > d.p_stamp AND f.stamp < d.stamp))
		END
	UNION ALL
	-- the last delivery of a key: its last message, acked after it
	SELECT format('%s/%s: the last delivery is %s (seq %s of %s)', topic, key, msg_id, seq, k.n)
	  FROM d JOIN key_seq k USING (topic, key)
	 WHERE n_stamp IS NULL
	   AND (seq <> k.n OR NOT EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.msg_id AND f.kind = 'ack'
	                                   AND f.counted AND f.stamp > d.stamp))
	UNION ALL
	SELECT format('%s/%s: %s messages, never delivered', topic, key, n)
	  FROM key_seq k WHERE n > 0 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE (d.topic, d.key) = (k.topic, k.key))
};
# The streams themselves: per key, the ticker put the messages in commit
# order (which the producers' row locks make the order of seq).
$pgb->no_rows(q{
	SELECT format('%s/%s: seq %s at stream position %s, after seq %s at %s (xids %s, %s)',
	              topic, key, seq, at, n_seq, n_at, pos >> 20, n_pos >> 20)
	  FROM (SELECT x.topic, x.key, x.seq, x.msg_id AS pos, st.at,
	               lead(x.seq) OVER w AS n_seq, lead(st.at) OVER w AS n_at, lead(x.msg_id) OVER w AS n_pos
	          FROM sent x
	          JOIN (SELECT t.topic, p.pos, sl.first_seq + p.ord - 1 AS at
	                  FROM tx_message.slices sl JOIN tx_message.topics t USING (topic_id),
	                       unnest(tx_message._slice_positions(sl.positions, sl.packed)) WITH ORDINALITY p(pos, ord)
	                 WHERE t.topic IN ('ord', 'ord2')) st ON st.pos = x.msg_id AND st.topic = x.topic
	         WHERE x.key IS NOT NULL
	        WINDOW w AS (PARTITION BY x.topic, x.key ORDER BY x.seq)) q
	 WHERE n_at < at}, 'per key, the streams hold the messages in commit order');
$pgb->no_rows($chain, 'per key, deliveries come in commit order, one at a time, each after the previous one ended');

# The attack did what it meant to: keys in flight together, redeliveries
# after nacks and after expired leases, old holders that came too late.
cmp_ok($node->safe_psql('postgres', q{SELECT max(c) FROM (SELECT count(DISTINCT (topic, key)) c FROM deliveries GROUP BY batch) s}),
	'>', 10, 'one receive held many keys at once');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM finishes WHERE kind = 'nack' AND counted}),
	'>', 100, 'messages were nacked');
cmp_ok($node->safe_psql('postgres', q{
	SELECT count(*) FROM deliveries d WHERE attempt > 1 AND NOT EXISTS (
		SELECT 1 FROM finishes f WHERE f.msg_id = d.msg_id AND f.kind = 'nack' AND f.counted AND f.attempt = d.attempt - 1)}),
	'>', 10, 'messages came again after an expired lease');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM finishes WHERE NOT counted}),
	'>', 0, 'old holders acked or nacked in vain');

# A receive that waits for a key another open transaction holds is woken
# when that transaction acks and commits, not at the end of its wait: the
# ack of an ordered group wakes the waiting receivers (no tick follows it,
# nothing new being sent; the worker's cycles, which might wake them too,
# are 20 s apart now).
$node->safe_psql('postgres', q{ALTER SYSTEM SET tx_message.naptime = '20s'; SELECT pg_reload_conf()});
sleep 1;
$node->safe_psql('postgres', q{
	SELECT tx_create_topic('o.wake');
	SELECT tx_subscribe('o.wake', 'o.wake', ordered => true);
	SELECT tx_send_batch('o.wake', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], keys => ARRAY['k', 'k']);
});
my ($a_in, $a_out, $b_out) = ('', '', '');
my $holder = IPC::Run::start([ $node->installed_command('psql'), '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$a_in, '>', \$a_out, '2>', \$a_out);
$a_in .= "BEGIN;\nSELECT 'held ' || (payload->>'n') FROM tx_receive('o.wake', 1, wait => '10 s');\n";
$deadline = time() + 30;
$holder->pump_nb while $a_out !~ /held 1/ && time() < $deadline;
like($a_out, qr/held 1/, 'the first message of the key is held by an open transaction');
my $waiter = IPC::Run::start([ $node->installed_command('psql'), '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c',
	q{SELECT 'got ' || (payload->>'n') FROM tx_receive('o.wake', 1, wait => '30 s')} ],
	'>', \$b_out, '2>', \$b_out);
sleep 2;
$waiter->pump_nb;
is($b_out, '', 'a competing receive waits: the next message of the key is held back');
my $acked_at = time();
$a_in .= "SELECT tx_ack('o.wake');\nCOMMIT;\n\\q\n";
$holder->finish;
$waiter->finish;
my $woken_after = time() - $acked_at;
like($b_out, qr/got 2/, 'the waiting receive gets the next message of the key');
cmp_ok($woken_after, '<', 3, sprintf('and is woken by the commit of the ack (%.2f s later, its wait was 30 s)', $woken_after));

diag(sprintf('runtime %.1f s', time() - $t_start));
$node->stop;
done_testing();
