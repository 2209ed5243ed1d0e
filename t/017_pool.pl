# The pool of database workers: more databases than tx_message.max_workers
# are all served; a worker leaves a database with nothing to do, and comes
# back for a commit, a waiting consumer, a delayed message falling due, or a
# check-back; the pool is never exceeded.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $ndb = 8;
my $node = PostgreSQL::Test::Cluster->new('pool');
$node->init;
# Room for every database's worker and three executors: once workers stay
# (worker_idle_timeout = -1, below), those that came back for a deadline
# must not take the slots of the executors the last test needs.
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.max_workers = 2
tx_message.worker_idle_timeout = '1s'
max_worker_processes = 40
});
$node->start;

my @dbs = map { "pool$_" } 1 .. $ndb;
for my $db (@dbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{
		CREATE EXTENSION tx_message;
		CREATE TABLE handled (msg_id bigint PRIMARY KEY);
		CREATE FUNCTION handle(m tx_message.message) RETURNS void LANGUAGE sql
			AS 'INSERT INTO public.handled VALUES (m.msg_id)';
		CREATE FUNCTION say_commit(m tx_message.message) RETURNS text LANGUAGE sql
			AS $$SELECT 'commit'$$;
		SELECT tx_create_topic('pulled');
		SELECT tx_create_topic('handled');
		SELECT tx_create_topic('checked', check_function => 'say_commit(tx_message.message)',
							   check_after => '2 s');
		SELECT tx_subscribe('pulled', 'g');
		SELECT tx_subscribe('handled', 'hg', handler => 'handle(tx_message.message)');
		SELECT tx_subscribe('checked', 'cg');
	});
}

# The most database workers seen at once, sampled while the test runs.
my $most = 0;
sub sample_workers
{
	my $n = $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tx_message worker'});
	$most = $n if $n > $most;
	return $n;
}

# Waits until no database worker runs (in $db, or anywhere), as one test.
sub no_worker
{
	my ($label, $db) = @_;
	my $where = defined $db ? " AND datname = '$db'" : '';
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'tx_message worker'$where"), $label);
}

# Waits until a database worker runs in $db, as one test.
sub some_worker
{
	my ($label, $db) = @_;
	ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'tx_message worker' AND datname = '$db'"),
		$label);
}

# Every database is served, by at most two workers at a time.
$node->safe_psql($_, q{SELECT tx_send_batch('handled', array_fill('{}'::jsonb, ARRAY[20]))})
  for @dbs;
my $deadline = time() + 60;
my $all = 0;
while (time() < $deadline)
{
	sample_workers();
	$all = 1;
	for my $db (@dbs)
	{
		$all = 0 if $node->safe_psql($db, 'SELECT count(*) FROM handled') ne '20';
	}
	last if $all;
	usleep(100_000);
}
ok($all, "the handlers of all $ndb databases ran with tx_message.max_workers = 2");

# Without work, the workers leave; every database is still listed.
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity
	   WHERE backend_type IN ('tx_message worker', 'tx_message executor')}),
	'idle workers and their executors leave');
is($node->safe_psql('pool1', q{SELECT count(*) FILTER (WHERE pid IS NULL AND started_at IS NULL)
	|| '/' || count(*) FROM tx_worker_status()}), "$ndb/$ndb",
	'tx_worker_status lists every database served, without a pid while no worker is there');

# A commit brings a worker back: the message is sliced without anyone receiving.
$node->safe_psql('pool3', q{SELECT tx_send('pulled', '{"n": 1}')});
ok($node->poll_query_until('pool3', q{SELECT count(*) = 1 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload->>'n' = '1'}),
	'a commit into a database without a worker gets it ticked');
sample_workers();

# A consumer that waits in a database without a worker is woken by the next commit.
no_worker('the worker left again');
my $waiter = $node->background_psql('pool4');
$waiter->query_until(qr/waiting/, q{
	\echo waiting
	SELECT m.payload->>'n', round(extract(epoch FROM clock_timestamp() - (m.payload->>'at')::timestamptz) * 1000)
	  FROM tx_receive('g', 1, wait => '20 s') m;
});
sleep 1;
sample_workers();
$node->safe_psql('pool4', q{SELECT tx_send('pulled', jsonb_build_object('n', 7, 'at', clock_timestamp()))});
my $got = $waiter->query_safe('SELECT 1');
like($got, qr/^7\|\d+$/m, 'a consumer waiting in a database whose worker had left receives the next commit');
my ($ms) = $got =~ /^7\|(\d+)$/m;
cmp_ok($ms // 99999, '<', 1000, "within a second of its commit ($ms ms)");
$waiter->quit;

# A delayed message falls due in a database without a worker.
no_worker('no worker runs');
# The send brings a worker, which leaves; the delay gives it seconds to do so
# (it stays for a deadline within tx_message.worker_idle_timeout) on a
# loaded machine.
my $t_sent = time();
$node->safe_psql('pool5', q{SELECT tx_send('pulled', '{"n": "later"}', delay => '8 s')});
some_worker('a delayed message brings a worker', 'pool5');
no_worker('the worker leaves before the delay has passed', 'pool5');
note(sprintf('the worker left %.2f s after the send', time() - $t_sent));
is($node->safe_psql('pool5', 'SELECT count(*) FROM tx_message.delayed'), '1', 'the delayed message waits');
ok($node->poll_query_until('pool5', q{SELECT count(*) = 0 FROM tx_message.delayed}),
	'a worker comes back to release the delayed message when it falls due');
is($node->safe_psql('pool5', q{SELECT payload->>'n' FROM tx_receive('g', 10)}), 'later', 'and it is delivered');

# A half message nobody decides is checked back (by the check function) when due.
no_worker('no worker runs');
my $t_half = time();
$node->safe_psql('pool6', q{SELECT tx_send_half('checked', '{"n": "half"}', check_after => '8 s')});
some_worker('a half message brings a worker', 'pool6');
no_worker('the worker leaves before the check-back is due', 'pool6');
note(sprintf('the worker left %.2f s after the send', time() - $t_half));
is($node->safe_psql('pool6', q{SELECT count(*) FROM tx_receive('cg', 10)}), '0', 'the half message is not deliverable');
ok($node->poll_query_until('pool6', q{SELECT count(*) = 0 FROM tx_message.half_messages WHERE state = 'half'}),
	'a worker comes back for the check-back when it is due');
is($node->safe_psql('pool6', q{SELECT payload->>'n' FROM tx_receive('cg', 10)}), 'half',
	'and the check function committed it');

# DROP EXTENSION where no worker is: one comes to see it, and the database
# is no longer listed; CREATE EXTENSION again serves it again.
no_worker('no worker in pool7', 'pool7');
$node->safe_psql('pool7', 'DROP EXTENSION tx_message CASCADE');
ok($node->poll_query_until('pool1', q{SELECT count(*) = 0 FROM tx_worker_status() WHERE database = 'pool7'}),
	'a DROP EXTENSION in a database without a worker ends its row in tx_worker_status');
$node->safe_psql('pool7', q{CREATE EXTENSION tx_message; SELECT tx_create_topic('again'); SELECT tx_subscribe('again', 'g');
	SELECT tx_send('again', '{"n": "again"}')});
is($node->safe_psql('pool7', q{SELECT payload->>'n' FROM tx_receive('g', 10, wait => '10 s')}), 'again',
	'CREATE EXTENSION again: served');
ok($node->poll_query_until('pool1', q{SELECT count(*) = 1 FROM tx_worker_status() WHERE database = 'pool7'}),
	'and listed');

# tx_seek on a handler subscription where no worker is: one comes, and the
# executor replays.
$node->safe_psql('pool2', q{
	CREATE TABLE seek_seen (msg_id bigint);
	CREATE FUNCTION seek_handle(m tx_message.message) RETURNS void LANGUAGE sql
		AS 'INSERT INTO public.seek_seen VALUES (m.msg_id)';
	SELECT tx_subscribe('handled', 'seekg', handler => 'seek_handle(tx_message.message)', start_from => 'earliest');
});
ok($node->poll_query_until('pool2', q{SELECT count(*) = 20 FROM seek_seen}), 'a new handler group handles the backlog');
no_worker('and the worker leaves', 'pool2');
$node->safe_psql('pool2', q{SELECT tx_seek('seekg', 'handled', 'earliest')});
ok($node->poll_query_until('pool2', q{SELECT count(*) = 40 FROM seek_seen}),
	'tx_seek of a handler group in a database without a worker replays at once');

# A handler's retry falls due in a database without a worker: the first
# call fails (the sequence keeps the count through the rollback), the worker
# leaves while the retry waits out its backoff, and comes back for it.
$node->safe_psql('pool3', q{
	CREATE SEQUENCE attempts;
	CREATE TABLE retried (msg_id bigint);
	CREATE FUNCTION flaky(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF nextval('public.attempts') = 1 THEN
			RAISE EXCEPTION 'the first call fails';
		END IF;
		INSERT INTO public.retried VALUES (m.msg_id);
	END $$;
	SELECT tx_create_topic('flaky');
	SELECT tx_subscribe('flaky', 'fg', handler => 'flaky(tx_message.message)', backoff => '{8 s}');
	SELECT tx_send('flaky', '{}');
});
ok($node->poll_query_until('pool3', q{SELECT is_called FROM attempts}), 'the handler was called and failed');
no_worker('the worker leaves while the retry waits', 'pool3');
is($node->safe_psql('pool3', 'SELECT count(*) FROM retried'), '0', 'the retry is not made yet');
ok($node->poll_query_until('pool3', q{SELECT count(*) = 1 FROM retried}),
	'a worker comes back for the handler\'s retry when it is due');

# tx_message.enabled = off: no worker comes, and a waiting receive does not
# wait for one before it ticks for itself.
$node->append_conf('postgresql.conf', "tx_message.enabled = off\n");
$node->reload;
no_worker('tx_message.enabled = off: no worker');
sleep 1;
$node->safe_psql('pool8', q{SELECT tx_send('pulled', '{"n": "off"}')});
my $t_off = time();
is($node->safe_psql('pool8', q{SELECT payload->>'n' FROM tx_receive('g', 10, wait => '5 s')}), 'off',
	'a waiting receive gets the message without a worker');
my $took_off = time() - $t_off;
cmp_ok($took_off, '<', 0.5, sprintf('at once (%.3f s)', $took_off));
$node->append_conf('postgresql.conf', "tx_message.enabled = on\n");
$node->reload;

sample_workers();
cmp_ok($most, '<=', 2, "never more than tx_message.max_workers workers at once (most seen: $most)");

# Reload: -1 keeps the workers (with room in the pool: a lease left by the
# consumer above brings a worker back when it expires).
$node->append_conf('postgresql.conf', "tx_message.worker_idle_timeout = -1\ntx_message.max_workers = 8\n");
$node->reload;
$node->safe_psql($_, q{SELECT tx_send('pulled', '{}')}) for @dbs[0, 1];
my $ours = q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'tx_message worker' AND datname IN ('pool1', 'pool2')};
ok($node->poll_query_until('postgres', $ours, '2'),
	'with tx_message.worker_idle_timeout = -1 the workers started stay');
sleep 3;
is($node->safe_psql('postgres', $ours), '2', 'and are still there seconds later');

# A new handler subscription is served at its commit, not at the
# executor's next round (naptime, 10 s here): its backlog is handled within
# seconds.
$node->append_conf('postgresql.conf', "tx_message.naptime = '10s'\n");
$node->reload;
$node->safe_psql('pool1', q{
	SELECT tx_create_topic('late');
	SELECT tx_send_batch('late', array_fill('{}'::jsonb, ARRAY[50]));
	CREATE TABLE late_handled (msg_id bigint);
	CREATE FUNCTION late_handle(m tx_message.message) RETURNS void LANGUAGE sql
		AS 'INSERT INTO public.late_handled VALUES (m.msg_id)';
});
sleep 1;
my $t0 = time();
$node->safe_psql('pool1', q{SELECT tx_subscribe('late', 'lg', handler => 'late_handle(tx_message.message)',
										  start_from => 'earliest')});
ok($node->poll_query_until('pool1', q{SELECT count(*) = 50 FROM late_handled}), 'the new subscription is handled');
my $took = time() - $t0;
cmp_ok($took, '<', 5, sprintf('within seconds of its commit (%.2f s, naptime 10 s)', $took));

$node->stop;
done_testing();
