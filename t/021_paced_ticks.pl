# The worker ticks every tx_message.tick_interval only for readers: while
# a consumer received within the last 10 s, or the database has handlers.
# A database whose messages nobody reads has its commits ticked at the
# maintenance cycle (here every 60 s), or when a receiver comes: that
# receiver gets what was committed before it at once, and from then on the
# ticks are paced again, until 10 s without a receive.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('paced');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.naptime = '60s'
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('t');
	SELECT tx_subscribe('t', 'g');
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM tx_worker_status() WHERE last_cycle_at IS NOT NULL}),
	'the worker serves the database');

my $last_tick = sub {
	$node->safe_psql('postgres', 'SELECT coalesce(max(tick_id), 0) FROM tx_message.ticks');
};
my $send = sub {
	$node->safe_psql('postgres', "SELECT tx_send('t', '{}')");
};
# Poll for a tick after $t0 for up to $secs; returns the seconds it took,
# or undef.
my $ticked_within = sub {
	my ($t0, $secs) = @_;
	my $start = time();
	while (time() < $start + $secs)
	{
		return time() - $start if $last_tick->() > $t0;
		usleep(20_000);
	}
	return undef;
};

# Nobody has received yet: a commit waits for the next maintenance cycle.
my $t0 = $last_tick->();
my $id1 = $send->();
ok(!defined $ticked_within->($t0, 1.5),
	'without readers, a commit is not ticked at the tick_interval');

# A receiver gets it at once: its receive asks for the tick.
my ($got, $took) = split /\|/, $node->safe_psql('postgres', q{
	SELECT string_agg(msg_id::text, ','), extract(epoch FROM clock_timestamp() - statement_timestamp())
	  FROM tx_receive('g', 10)});
my $read_at = time();
is($got, $id1, 'a receiver gets what was committed before it');
cmp_ok($took, '<', 0.8, sprintf('without waiting for the maintenance cycle (%.3f s)', $took));
$node->safe_psql('postgres', q{SELECT tx_ack('g', ARRAY[} . $id1 . q{]::bigint[])});

# Now the database has a reader: commits are ticked at the tick_interval.
$t0 = $last_tick->();
$send->();
my $after = $ticked_within->($t0, 2);
ok(defined $after, 'after a receive, a commit is ticked without a receiver asking');
cmp_ok($after // 99, '<', 1, sprintf('within a second (%.3f s)', $after // 99));

# 10 s after the last receive, the ticks wait for the maintenance cycle again.
my $rest = $read_at + 11.5 - time();
usleep(int($rest * 1_000_000)) if $rest > 0;
$t0 = $last_tick->();
$send->();
ok(!defined $ticked_within->($t0, 1.5),
	'10 s after the last receive, a commit is not ticked at the tick_interval');
$got = $node->safe_psql('postgres', q{SELECT count(*) FROM tx_receive('g', 10)});
is($got, 2, 'a receiver gets the two messages waiting');
$node->safe_psql('postgres', q{SELECT tx_ack('g')});

# Handlers are readers: in a database that has a handler subscription from
# the start (another database, which nobody ever receives from), commits
# are ticked at the tick_interval, from the worker's first maintenance
# cycle on.
$node->safe_psql('postgres', 'CREATE DATABASE hdb');
$node->safe_psql('hdb', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('h');
	CREATE TABLE handled (msg_id bigint, sent_at timestamptz, handled_at timestamptz);
	CREATE FUNCTION note(m tx_message.message) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO public.handled VALUES (m.msg_id, m.sent_at, clock_timestamp()) $$;
	SELECT tx_subscribe('h', 'hg', handler => 'note(tx_message.message)');
});
ok($node->poll_query_until('hdb', q{
	SELECT cardinality(executor_pids) > 0 FROM tx_worker_status() WHERE database = 'hdb'}),
	'an executor runs for the handler');
my $hid = $node->safe_psql('hdb', "SELECT tx_send('h', '{}')");
ok($node->poll_query_until('hdb', "SELECT count(*) = 1 FROM handled WHERE msg_id = $hid"),
	'the handler handles the message');
$took = $node->safe_psql('hdb', qq{
	SELECT extract(epoch FROM handled_at - sent_at) FROM handled WHERE msg_id = $hid});
cmp_ok($took, '<', 2, sprintf('a handler subscription keeps the ticks paced (%.3f s)', $took));

$node->stop;
done_testing();
