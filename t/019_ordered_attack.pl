# Attack on ordered groups whose open claims publish their keys in Bloom
# filters: 300 keys (a quarter of them longer than 255 bytes), pull
# consumers that receive several times per transaction, in savepoints that
# roll back or are released, ack and nack by id in the open transaction and
# roll back whole transactions; and an ordered handler subscription run by
# two executors at once with failing messages.
#
# Two independent checks:
#  * live: whoever gets a keyed message takes an advisory transaction lock on
#    its key without waiting; failing means another open transaction still
#    holds a message of that key: a row in "violations";
#  * afterwards: per key, the committed deliveries form one chain (seq 1 at
#    attempt 1 first; then either the same message again after a counted
#    nack, or the next seq after the previous one was acked: by id before,
#    or by tx_ack(group) in a transaction that ended before).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::Bin;
use TxmPgbench;

my $t_start = time();
my $node = PostgreSQL::Test::Cluster->new('ordered_attack');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.naptime = '10ms'
tx_message.executors = 4
tx_message.handler_batch_size = 15
max_connections = 40
log_statement = none
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('st');
	SELECT tx_create_topic('ht');
	SELECT tx_subscribe('st', 'sg', ordered => true, lease => '60 s', backoff => ARRAY['0 s']::interval[], max_retries => 10000);

	CREATE TABLE keys (key text PRIMARY KEY);
	INSERT INTO keys SELECT CASE WHEN i % 4 = 0 THEN i || '-' || repeat('L', 290) ELSE 'k' || i END FROM generate_series(1, 296) i;
	-- two pairs of keys equal in their first 255 bytes, multibyte too
	INSERT INTO keys VALUES ('P' || repeat('p', 260) || 'a'), ('P' || repeat('p', 260) || 'b'),
		(repeat('é', 127) || 'x' || repeat('z', 30) || '1'), (repeat('é', 127) || 'x' || repeat('z', 30) || '2');
	CREATE TABLE key_seq (topic text, key text, n int NOT NULL DEFAULT 0, PRIMARY KEY (topic, key));
	INSERT INTO key_seq SELECT t, key FROM unnest(ARRAY['st', 'ht']) t, keys;
	CREATE TABLE sent (msg_id bigint PRIMARY KEY, topic text, key text, seq int);

	CREATE SEQUENCE stamp;
	CREATE TABLE deliveries (id bigserial PRIMARY KEY, batch bigint, msg_id bigint, key text, seq int, attempt int, stamp bigint);
	CREATE INDEX ON deliveries (batch);
	CREATE INDEX ON deliveries (msg_id);
	CREATE TABLE finishes (batch bigint, msg_id bigint, attempt int, kind text, counted bool, stamp bigint);
	CREATE INDEX ON finishes (msg_id);
	CREATE TABLE ends (batch bigint PRIMARY KEY, acked int, stamp bigint);
	CREATE TABLE violations (who text, key text, msg_id bigint, batch bigint, at timestamptz);
	CREATE TABLE handled (msg_id bigint, key text, seq int, attempt int, stamp bigint, xid bigint);

	-- n messages to topic t in one transaction, keys drawn at random, per-key
	-- seq numbers in commit order (counters locked in one order)
	CREATE FUNCTION produce(t text, n int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		ks text[];
		ss int[];
		pl jsonb[];
		s int;
	BEGIN
		SELECT array_agg(k.key) INTO ks FROM generate_series(1, n) g,
			LATERAL (SELECT key FROM keys WHERE g > 0 ORDER BY random() LIMIT 1) k;
		PERFORM 1 FROM key_seq WHERE topic = t AND key = ANY (ks) ORDER BY key FOR UPDATE;
		FOR i IN 1 .. n LOOP
			UPDATE key_seq SET n = key_seq.n + 1 WHERE topic = t AND key = ks[i] RETURNING key_seq.n INTO s;
			ss[i] := s;
			pl[i] := jsonb_build_object('seq', s);
		END LOOP;
		INSERT INTO sent SELECT b.id, t, ks[b.ord], ss[b.ord]
		  FROM tx_send_batch(t, pl, keys => ks) WITH ORDINALITY AS b(id, ord);
	END $$;

	-- the key's advisory lock, waited for 200 ms at most: the holder's
	-- commit becomes visible a moment before its locks are released
	CREATE FUNCTION public.lock_key(ns text, k text) RETURNS bool LANGUAGE plpgsql AS $$
	BEGIN
		FOR i IN 1 .. 20 LOOP
			IF pg_try_advisory_xact_lock(hashtext(ns || k), hashtext(k || '#' || ns)) THEN
				RETURN true;
			END IF;
			PERFORM pg_sleep(0.01);
		END LOOP;
		RETURN false;
	END $$;

	CREATE FUNCTION take(b bigint, n int) RETURNS int LANGUAGE plpgsql AS $$
	DECLARE
		r record;
		got int := 0;
	BEGIN
		FOR r IN SELECT * FROM tx_receive('sg', n) LOOP
			IF NOT lock_key('st', r.key) THEN
				INSERT INTO violations VALUES ('pull', r.key, r.msg_id, b, clock_timestamp());
			END IF;
			INSERT INTO deliveries (batch, msg_id, key, seq, attempt, stamp)
			VALUES (b, r.msg_id, r.key, (r.payload->>'seq')::int, r.attempt, nextval('stamp'));
			got := got + 1;
		END LOOP;
		RETURN got;
	END $$;

	CREATE FUNCTION held(b bigint) RETURNS SETOF deliveries LANGUAGE sql AS $$
		SELECT d.* FROM deliveries d
		 WHERE d.batch = b
		   AND d.stamp = (SELECT max(d2.stamp) FROM deliveries d2 WHERE d2.batch = b AND d2.msg_id = d.msg_id)
		   AND NOT EXISTS (SELECT 1 FROM finishes f WHERE f.batch = b AND f.msg_id = d.msg_id
		                    AND f.counted AND f.stamp > d.stamp)
	$$;

	CREATE FUNCTION settle(b bigint, p_ack float8, p_nack float8) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		d deliveries;
		r float8;
		res text;
	BEGIN
		FOR d IN SELECT * FROM held(b) ORDER BY stamp LOOP
			r := random();
			IF r < p_nack THEN
				res := tx_nack('sg', d.msg_id, 'chaos', retry_in => '0 s');
				INSERT INTO finishes VALUES (b, d.msg_id, d.attempt, 'nack', res IS NOT NULL, nextval('stamp'));
			ELSIF r < p_nack + p_ack THEN
				res := tx_ack('sg', d.msg_id)::text;
				INSERT INTO finishes VALUES (b, d.msg_id, d.attempt, 'ack', res::bool, nextval('stamp'));
			END IF;
		END LOOP;
	END $$;

	-- tx_ack(group), then the stamp of the end of the transaction
	CREATE FUNCTION finish(b bigint) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		n int;
		h int;
	BEGIN
		SELECT count(*) INTO h FROM held(b);
		n := tx_ack('sg');
		IF n <> h THEN
			INSERT INTO violations VALUES ('ack_group ' || n || ' <> held ' || h, NULL, NULL, b, clock_timestamp());
		END IF;
		INSERT INTO ends VALUES (b, n, nextval('stamp'));
	END $$;

	-- the handler: checks that no other open transaction holds its key
	CREATE FUNCTION public.h(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF NOT public.lock_key('ht', m.key) THEN
			INSERT INTO public.violations VALUES ('handler', m.key, m.msg_id, txid_current(), clock_timestamp());
		END IF;
		INSERT INTO public.handled VALUES (m.msg_id, m.key, (m.payload->>'seq')::int, m.attempt, nextval('public.stamp'), txid_current());
		PERFORM pg_sleep(random() * 0.003);
		IF random() < 0.1 THEN
			RAISE EXCEPTION 'chaos';
		END IF;
	END $$;
	SELECT tx_subscribe('ht', 'hg', ordered => true, handler => 'public.h(tx_message.message)', handler_executors => 2,
		backoff => ARRAY['0 s']::interval[], max_retries => 10000);
});

# a backlog first, so that consumers find many keys at once
$node->safe_psql('postgres', q{SELECT produce('st', 50) FROM generate_series(1, 60); SELECT produce('ht', 50) FROM generate_series(1, 40);});

my $dir = $node->basedir;
my $pgb = TxmPgbench->new(node => $node, dir => $dir);
my %scripts = (
	p_st => "\\set n random(1, 30)\nSELECT produce('st', :n);\n",
	p_ht => "\\set n random(1, 30)\nSELECT produce('ht', :n);\n",
	c_ack => q{
\set n random(1, 80)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT finish(:b);
COMMIT;
},
	c_sp_rb => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SAVEPOINT s;
SELECT take(:b, :n);
SELECT settle(:b, 0.5, 0.3);
SELECT take(:b, :n);
ROLLBACK TO SAVEPOINT s;
SELECT take(:b, :n);
SELECT finish(:b);
COMMIT;
},
	c_sp_rel => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SAVEPOINT s;
SELECT take(:b, :n);
RELEASE SAVEPOINT s;
SAVEPOINT t;
SELECT take(:b, :n);
ROLLBACK TO SAVEPOINT t;
SELECT settle(:b, 0.5, 0.2);
SELECT take(:b, :n);
SELECT finish(:b);
COMMIT;
},
	c_nack => q{
\set n random(1, 40)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT settle(:b, 0.4, 0.4);
SELECT take(:b, :n);
SELECT settle(:b, 0.4, 0.4);
SELECT take(:b, :n);
SELECT finish(:b);
COMMIT;
},
	c_rollback => q{
\set n random(1, 60)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT settle(:b, 0.5, 0.3);
SELECT take(:b, :n);
ROLLBACK;
},
	c_slow => q{
\set n random(1, 20)
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, :n);
SELECT pg_sleep(0.3);
SELECT take(:b, :n);
SELECT finish(:b);
COMMIT;
},
	d_ack => q{
BEGIN;
SELECT txid_current() AS b \gset
SELECT take(:b, 2000);
SELECT finish(:b);
COMMIT;
},
);
append_to_file("$dir/$_.sql", $scripts{$_}) for keys %scripts;

my $prod = $pgb->start('producers', [ '-c', '2', '-T', '15', '-R', '40' ], p_st => 1, p_ht => 1);
my $cons = $pgb->start('consumers', [ '-c', '6', '-T', '20' ],
	c_ack => 30, c_sp_rb => 15, c_sp_rel => 15, c_nack => 20, c_rollback => 10, c_slow => 10);
$pgb->finish($prod);
my $out = $pgb->finish($cons);
diag("consumers:\n" . join("\n", grep { /^SQL script|^ - \d+ transactions/ } split /\n/, $out));

# drain
my $backlog_q = q{SELECT coalesce(sum(backlog), 0) FROM tx_message.stats WHERE consumer_group IN ('sg', 'hg')};
my $left = $pgb->drain($backlog_q, time() + 90, d_ack => 1);
is($left, '0', 'the backlogs drained');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tx_message.dead_letters'), '0', 'nothing dead-lettered');

diag($node->safe_psql('postgres', q{
	SELECT format('st: %s sent, %s deliveries (%s redeliveries), %s counted nacks, %s counted acks by id, %s transactions; ht: %s sent, %s handled, %s handler runs that failed',
		(SELECT count(*) FROM sent WHERE topic = 'st'), (SELECT count(*) FROM deliveries),
		(SELECT count(*) FROM deliveries WHERE attempt > 1),
		(SELECT count(*) FROM finishes WHERE kind = 'nack' AND counted),
		(SELECT count(*) FROM finishes WHERE kind = 'ack' AND counted), (SELECT count(*) FROM ends),
		(SELECT count(*) FROM sent WHERE topic = 'ht'), (SELECT count(*) FROM handled),
		(SELECT coalesce(sum(attempt - 1), 0) FROM handled))}));
diag('max distinct keys held by one transaction: ' . $node->safe_psql('postgres',
	'SELECT max(c) FROM (SELECT count(DISTINCT key) c FROM deliveries GROUP BY batch) s'));
diag('transactions with receives at once (max overlapping): ' . $node->safe_psql('postgres', q{
	SELECT max(c) FROM (SELECT (SELECT count(*) FROM ends e2 JOIN (SELECT batch, min(stamp) s FROM deliveries GROUP BY 1) f2 USING (batch)
	                            WHERE f2.s < e.stamp AND e2.stamp > e.stamp) c
	                      FROM ends e) x}));

$pgb->no_rows(q{SELECT * FROM violations}, 'no message was handed out while another transaction held its key');

# pull consumers: the chain of each key
$pgb->no_rows(q{
	WITH d AS (
		SELECT d.*, lag(msg_id) OVER w AS p_msg, lag(seq) OVER w AS p_seq, lag(attempt) OVER w AS p_attempt,
		       lag(stamp) OVER w AS p_stamp, lag(batch) OVER w AS p_batch
		  FROM deliveries d WINDOW w AS (PARTITION BY key ORDER BY stamp))
	SELECT format('%s: msg %s seq %s attempt %s (batch %s, stamp %s) after msg %s seq %s attempt %s (batch %s, stamp %s)',
	              left(key, 20), msg_id, seq, attempt, batch, stamp, p_msg, p_seq, p_attempt, p_batch, p_stamp)
	  FROM d
	 WHERE CASE
		WHEN p_msg IS NULL THEN NOT (seq = 1 AND attempt = 1)
		WHEN p_msg = msg_id THEN NOT (attempt = p_attempt + 1
			AND EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.msg_id AND f.kind = 'nack' AND f.counted
			             AND f.attempt = d.p_attempt AND f.stamp > d.p_stamp AND f.stamp < d.stamp)
			AND (p_batch = batch OR (SELECT e.stamp FROM ends e WHERE e.batch = d.p_batch) < d.stamp))
		ELSE NOT (seq = p_seq + 1 AND attempt = 1
			AND NOT EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.p_msg AND f.kind = 'nack' AND f.counted
			                 AND f.stamp > d.p_stamp AND f.stamp < d.stamp)
			AND (EXISTS (SELECT 1 FROM finishes f WHERE f.msg_id = d.p_msg AND f.kind = 'ack' AND f.counted
			              AND f.stamp > d.p_stamp AND f.stamp < d.stamp)
			     OR (p_batch <> batch AND (SELECT e.stamp FROM ends e WHERE e.batch = d.p_batch) < d.stamp)))
		END},
	'pull: per key, commit order, one at a time, each after the previous one ended');
$pgb->no_rows(q{SELECT k.key, k.n, max(d.seq) FROM key_seq k LEFT JOIN deliveries d USING (key) WHERE k.topic = 'st'
	GROUP BY 1, 2 HAVING k.n <> coalesce(max(d.seq), 0)}, 'pull: every key delivered to its last message');

# handler: successful runs commit with their ack: per key seq 1, 2, 3... once each
$pgb->no_rows(q{
	SELECT key, seq, prev FROM (SELECT key, seq, lag(seq) OVER (PARTITION BY key ORDER BY stamp) prev FROM handled) h
	 WHERE seq <> coalesce(prev, 0) + 1},
	'handler: per key, each message handled once, in commit order');
$pgb->no_rows(q{SELECT k.key, k.n, count(h.*) FROM key_seq k LEFT JOIN handled h USING (key) WHERE k.topic = 'ht'
	GROUP BY 1, 2 HAVING k.n <> count(h.*)}, 'handler: every message handled');

diag(sprintf('runtime %.1f s', time() - $t_start));
$node->stop;
done_testing();
