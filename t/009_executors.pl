# User code isolation with the default tx_message.executors: a handler that
# sleeps 2 s per message on one subscription delays neither another
# subscription's trivial handler (its messages are handled well within
# 1.5 s) nor check-backs (run within a second of their due time).  A
# subscription with handler_executors => 2 runs in both handler executors
# at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('executors');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
# two databases' workers and executors, and the launcher
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	CREATE TABLE fast_seen (msg_id bigint, sent_at timestamptz, handled_at timestamptz);
	CREATE TABLE checks_seen (msg_id bigint, due_at timestamptz, checked_at timestamptz);
	CREATE TABLE slow_seen (msg_id bigint);
	CREATE FUNCTION slow_handler(m tx_message.message) RETURNS void LANGUAGE sql AS $$
		SELECT pg_sleep(2);
		INSERT INTO public.slow_seen VALUES (m.msg_id) $$;
	CREATE FUNCTION fast_handler(m tx_message.message) RETURNS void LANGUAGE sql AS $$
		INSERT INTO public.fast_seen VALUES (m.msg_id, m.sent_at, clock_timestamp()) $$;
	CREATE FUNCTION record_check(m tx_message.message) RETURNS text LANGUAGE sql AS $$
		INSERT INTO public.checks_seen VALUES (m.msg_id, m.sent_at + interval '1 s', clock_timestamp());
		SELECT 'commit' $$;
	SELECT tx_create_topic('slow');
	SELECT tx_create_topic('fast');
	SELECT tx_create_topic('checked', check_function => 'record_check(tx_message.message)',
						   check_after => '1 s');
	SELECT tx_subscribe('slow', 'slow-g', handler => 'slow_handler(tx_message.message)');
	SELECT tx_subscribe('fast', 'fast-g', handler => 'fast_handler(tx_message.message)');
});
ok($node->poll_query_until('postgres',
	q{SELECT cardinality(executor_pids) = 3 FROM tx_worker_status()}),
	'one executor for check functions, two for the two handler subscriptions');

# the slow subscription gets 10 s of work
$node->safe_psql('postgres',
	q{SELECT count(*) FROM tx_send_batch('slow', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 5)))});
usleep(300_000);
for my $i (1 .. 20)
{
	$node->safe_psql('postgres', qq{SELECT tx_send('fast', '{"i": $i}')});
	$node->safe_psql('postgres', qq{SELECT tx_send_half('checked', '{"i": $i}')}) if $i % 5 == 0;
	usleep(250_000);
}
ok($node->poll_query_until('postgres', q{SELECT count(*) = 20 FROM fast_seen}),
	'the fast handler handled every message');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM slow_seen}), '<', 5,
	'while the slow handler was still busy');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 4 FROM checks_seen}),
	'every check-back ran');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM tx_message.half_messages WHERE state = 'half'}), '0',
	'and committed its half message');

my $fast = $node->safe_psql('postgres',
	q{SELECT round(extract(epoch FROM max(handled_at - sent_at))::numeric, 3) FROM fast_seen});
cmp_ok($fast, '<', 1.5, "the fast handler's slowest message took $fast s, with the slow one busy");
my $late = $node->safe_psql('postgres',
	q{SELECT round(extract(epoch FROM max(checked_at - due_at))::numeric, 3) FROM checks_seen});
cmp_ok($late, '<', 1.0, "check-backs ran at most $late s after they were due");
ok($node->poll_query_until('postgres', q{SELECT count(*) = 5 FROM slow_seen}),
	'and the slow handler got through its messages too');

# handler_executors, in a database of its own: its one subscription gets
# two executors, and its batches run in both at once, each message handled
# once; set back to 1, one executor at a time again, while another
# subscription keeps the second executor there.  Batches of one message,
# so that there is a second batch to run.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET tx_message.handler_batch_size = 1;
	SELECT pg_reload_conf();
	CREATE DATABASE wide;
});
$node->safe_psql('wide', q{
	CREATE EXTENSION tx_message;
	CREATE TABLE wide_seen (msg_id bigint, pid integer, started timestamptz, ended timestamptz);
	CREATE FUNCTION wide_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		t0 timestamptz := clock_timestamp();
	BEGIN
		PERFORM pg_sleep(0.4);
		INSERT INTO public.wide_seen VALUES (m.msg_id, pg_backend_pid(), t0, clock_timestamp());
	END $$;
	SELECT tx_create_topic('wide');
	SELECT tx_subscribe('wide', 'wide-g', handler => 'wide_handler(tx_message.message)',
						handler_executors => 2);
});
ok($node->poll_query_until('wide',
	q{SELECT cardinality(executor_pids) = 2 FROM tx_worker_status() WHERE database = 'wide'}),
	'a subscription with handler_executors => 2 gets two executors');
$node->safe_psql('wide', q{
	SELECT tx_create_topic('quiet');
	SELECT tx_subscribe('quiet', 'quiet-g', handler => 'wide_handler(tx_message.message)');
});
my $overlaps = q{SELECT count(*) FROM wide_seen a JOIN wide_seen b
	ON a.msg_id < b.msg_id AND a.started < b.ended AND b.started < a.ended
	WHERE a.msg_id = ANY (:ids) AND b.msg_id = ANY (:ids)};
my $ids = $node->safe_psql('wide',
	q{SELECT array_agg(id)::text FROM tx_send_batch('wide', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 8))) id});
ok($node->poll_query_until('wide', qq{SELECT count(*) = 8 FROM wide_seen WHERE msg_id = ANY ('$ids')}),
	'handler_executors => 2: every message handled');
is($node->safe_psql('wide', qq{SELECT count(DISTINCT msg_id) || ' ' || count(DISTINCT pid)
	FROM wide_seen WHERE msg_id = ANY ('$ids')}), '8 2', 'once each, by two executors');
(my $q = $overlaps) =~ s/:ids/'$ids'/g;
cmp_ok($node->safe_psql('wide', $q), '>', 0, 'whose batches ran at the same time');

$node->safe_psql('wide', q{
	SELECT tx_subscribe('wide', 'wide-g', handler => 'wide_handler(tx_message.message)')});
is($node->safe_psql('wide',
	q{SELECT cardinality(executor_pids) FROM tx_worker_status() WHERE database = 'wide'}), '2',
	'two executors still run handlers');
$ids = $node->safe_psql('wide',
	q{SELECT array_agg(id)::text FROM tx_send_batch('wide', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 8))) id});
ok($node->poll_query_until('wide', qq{SELECT count(*) = 8 FROM wide_seen WHERE msg_id = ANY ('$ids')}),
	'handler_executors back at 1: every message handled');
($q = $overlaps) =~ s/:ids/'$ids'/g;
is($node->safe_psql('wide', $q), '0', 'one batch at a time');

$node->stop;
done_testing();
