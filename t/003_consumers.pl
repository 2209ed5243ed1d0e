# Consumers against a real server: exactly-once handler effects across a
# kill -9 of the whole server, a waiting tx_receive woken by a commit, the
# dead-letter notification, and retries seen at once despite the hints.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('consumers');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.handler_batch_size = 50
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('orders');
	-- the handler's effect: one row per message it handled
	CREATE TABLE credited (msg_id bigint, customer text, points int);
	CREATE FUNCTION credit(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO credited VALUES (m.msg_id, m.payload->>'customer', (m.payload->>'n')::int);
		PERFORM pg_sleep(0.002);
	END $$;
	SELECT tx_subscribe('orders', 'points', handler => 'credit(tx_message.message)');
});

# Enough messages that the crash lands while the handler is busy.
my $total = 2000;
$node->safe_psql('postgres', qq{
	SELECT count(*) FROM tx_send_batch('orders',
		ARRAY(SELECT jsonb_build_object('customer', 'c' || i % 10, 'n', i) FROM generate_series(1, $total) i))});
ok($node->poll_query_until('postgres', 'SELECT count(*) > 200 FROM credited'),
	'the handler is consuming');

my $pm_pid = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM credited');
$node->kill9;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
usleep(100_000) while kill(0, $pm_pid) && time() < $deadline;
ok(!kill(0, $pm_pid), 'killed postmaster is gone');
cmp_ok($before, '<', $total, "the crash came mid-way ($before of $total handled)");
ok($node->start(fail_ok => 1), 'server starts again after kill -9');

ok($node->poll_query_until('postgres', "SELECT count(*) = $total FROM credited"),
	'after the restart the worker handles the rest');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT msg_id) FROM credited'), $total,
	'every message was handled');
is($node->safe_psql('postgres', 'SELECT count(*) FROM (SELECT msg_id FROM credited GROUP BY 1 HAVING count(*) > 1) d'),
	'0', 'and none twice: effects and acks commit together');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tx_message.dead_letters'), '0', 'nothing was dead-lettered');
sleep 1;
is($node->safe_psql('postgres', 'SELECT count(*) FROM credited'), $total, 'and nothing more happens');

# A receive that waits is woken by a commit within milliseconds.
$node->safe_psql('postgres', q{SELECT tx_subscribe('orders', 'pull')});
my $waiter = $node->background_psql('postgres');
$waiter->query_until(qr/waiting/, q{
	\echo waiting
	SELECT 'received ' || (payload->>'n') || ' after ' || round(extract(epoch from clock_timestamp() - sent_at) * 1000) || ' ms'
	  FROM tx_receive('pull', 1, wait => '30 s');
});
usleep(300_000);
my $t0 = time();
$node->safe_psql('postgres', q{SELECT tx_send('orders', '{"n": "wake"}')});
my $got = $waiter->query_safe('SELECT 1');
my $elapsed = time() - $t0;
like($got, qr/received wake after \d+ ms/, 'the waiting receive got the message');
cmp_ok($elapsed, '<', 2, "promptly ($elapsed s including the client round trips)");
$waiter->quit;

# A dead-lettering is notified with a JSON payload and logged as a WARNING.
$node->safe_psql('postgres', q{SELECT tx_subscribe('orders', 'fragile', max_retries => 0)});
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN tx_message_dead_letter');
my $id = $node->safe_psql('postgres', q{SELECT tx_send('orders', '{"n": "poison"}', key => 'k-9')});
$node->safe_psql('postgres', qq{
	SELECT count(*) FROM tx_receive('fragile', 100000);
	SELECT tx_nack('fragile', $id, 'cannot parse');
});
my $notes = $listener->query_safe('SELECT 1');
$listener->quit;
like($notes, qr/"tx_message_dead_letter" with payload "\{"topic": "orders", "consumer_group": "fragile", "msg_id": $id, "key": "k-9", "reason": "max_retries exceeded"\}"/,
	'dead-lettering sends NOTIFY tx_message_dead_letter');
ok($node->log_contains(qr/WARNING:  message $id of topic "orders" moved to the dead letters/),
	'and a WARNING to the server log');
is($node->safe_psql('postgres', qq{SELECT last_error FROM tx_message.dead_letters WHERE msg_id = $id}),
	'cannot parse', 'the dead letter keeps the error');

# Waiting costs no CPU: the receive sleeps on a condition variable.
$node->safe_psql('postgres', q{SELECT tx_subscribe('orders', 'idle')});
my $idle = $node->background_psql('postgres');
$idle->query_until(qr/waiting/, q{
	\echo waiting
	SELECT count(*) FROM tx_receive('idle', 10, wait => '4 s');
});
my $idle_pid;
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE query LIKE '%tx_receive(''idle''%' AND state = 'active'});
$idle_pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
	WHERE query LIKE '%tx_receive(''idle''%' AND state = 'active'});
my @s1 = split / /, slurp_file("/proc/$idle_pid/stat");
sleep 2;
my @s2 = split / /, slurp_file("/proc/$idle_pid/stat");
my $cpu = ($s2[13] + $s2[14]) - ($s1[13] + $s1[14]);
cmp_ok($cpu, '<=', 10, "a waiting tx_receive uses next to no CPU ($cpu clock ticks in 2 s)");
$idle->quit;

# After DROP EXTENSION and CREATE EXTENSION, subscriptions are numbered from
# 1 again; what the shared memory remembered of the old ones must not matter.
$node->safe_psql('postgres', q{
	DROP EXTENSION tx_message CASCADE;
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('orders');
	SELECT tx_subscribe('orders', 'points');
	SELECT tx_send('orders', '{"n": "fresh"}');
});
is($node->safe_psql('postgres', q{SELECT payload->>'n' FROM tx_receive('points', 10, wait => '5 s')}),
	'fresh', 'a recreated installation delivers from its first position');

# Receives skip the look-up in tx_message.retries while shared memory says
# that none is due.  A retry committed after another receiver found nothing
# (and so noted "none due") must still be delivered at once.
$node->safe_psql('postgres', q{SELECT tx_subscribe('orders', 'hinted', backoff => '{1 h}')});
$id = $node->safe_psql('postgres', q{SELECT tx_send('orders', '{"n": "hinted"}')});
my $holder = $node->background_psql('postgres');
like($holder->query_safe(q{SELECT 'got ' || attempt FROM tx_receive('hinted', 10)}), qr/got 1/,
	'one session holds the message');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_receive('hinted', 10)}), '0',
	'another finds nothing due');
$holder->query_safe(qq{BEGIN; SELECT tx_nack('hinted', $id, 'try again', retry_in => '0 s')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_receive('hinted', 10)}), '0',
	'nor while the nack is not committed');
$holder->query_safe('COMMIT');
is($node->safe_psql('postgres', q{SELECT payload->>'n' || ' attempt ' || attempt FROM tx_receive('hinted', 10)}),
	'hinted attempt 2', 'the committed retry is delivered at once');
# a retry written behind the API's back (an administrator's UPDATE) is seen too
$node->safe_psql('postgres', qq{SELECT tx_nack('hinted', $id, 'later')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_receive('hinted', 10)}), '0',
	'a retry an hour away is not due');
$node->safe_psql('postgres', qq{UPDATE tx_message.retries SET due_at = now() WHERE msg_id = $id});
is($node->safe_psql('postgres', q{SELECT attempt FROM tx_receive('hinted', 10)}), '3',
	'until its due time is moved');
$holder->quit;

$node->stop;
done_testing();
