# Commit order is the order of the commit records, also when a transaction
# commits after seeing another's commit before that one's commit callbacks
# ran.
#
# A commit becomes visible before the transaction's commit callbacks run,
# and so its row locks stop holding others back before tx_message's
# callback has put it in the commit ring.  Here a test module
# (t/commit_pause) holds producer A between the two, for a while: producer
# B updates the key's counter row that A updated (it does not wait: A's
# commit is visible), sends the key's next message and commits, so its
# ring entry comes first.  A consumer must still get A's message first, and
# the ticks made while A was held must wait for A's ring entry rather than
# place A after B.  The same holds for a prepared transaction: its COMMIT
# PREPARED orders it like a commit, before a transaction that saw it.
# A transaction whose ring entry was lost because the ring wrapped, or
# that was still committing when the tick gave up waiting for it, comes
# before those that kept theirs, and commits hurry the tick before the
# ring wraps.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use File::Copy qw(copy);
use FindBin;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('order');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
max_prepared_transactions = 4
});
$node->start;

# The module is built here with the server's PGXS, and loaded from here.
my $dir = $node->basedir . '/commit_pause';
mkdir $dir or die "mkdir $dir: $!";
for my $f ('commit_pause.c', 'Makefile')
{
	copy("$FindBin::Bin/commit_pause/$f", "$dir/$f") or die "copy $f: $!";
}
my ($bindir) = $node->config_data('--bindir');
my ($make_out, $make_err) = ('', '');
my $built = IPC::Run::run([ 'make', '-s', '-C', $dir, "PG_CONFIG=$bindir/pg_config" ],
	'>', \$make_out, '2>', \$make_err);
ok($built && -f "$dir/commit_pause.so", 'the test module builds') or diag($make_err);
my $so = "$dir/commit_pause.so";

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('o');
	SELECT tx_subscribe('o', 'g');
	CREATE TABLE counter (key text PRIMARY KEY, n int NOT NULL);
	INSERT INTO counter VALUES ('k', 0);
});

my $send = q{WITH u AS (UPDATE counter SET n = n + 1 WHERE key = 'k' RETURNING n)
	SELECT tx_send('o', jsonb_build_object('n', n), key => 'k') FROM u};

# A session that holds the ticks' lock, so that one tick finds what
# commits meanwhile; released by release_ticks.
sub hold_ticks
{
	my $what = shift;
	my %h = (in => '', out => '');
	$h{run} = IPC::Run::start([ $node->installed_command('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') ],
		'<', \$h{in}, '>', \$h{out}, '2>', \$h{out});
	$h{in} .= "BEGIN;\nLOCK TABLE tx_message.ticks IN EXCLUSIVE MODE;\nSELECT 'locked';\n";
	my $deadline = time() + 30;
	$h{run}->pump_nb while $h{out} !~ /locked/ && time() < $deadline;
	like($h{out}, qr/locked/, "$what: the ticks are held off");
	return \%h;
}

sub release_ticks
{
	my $h = shift;
	$h->{in} .= "COMMIT;\n\\q\n";
	$h->{run}->finish;
}

# The n of the messages one receive of the group gets, in its order.
sub receive_n
{
	my $wait = shift;
	my $r = $node->safe_psql('postgres', qq{
		BEGIN;
		SELECT 'n=' || (payload->>'n') FROM tx_receive('g', 10, wait => '$wait');
		SELECT tx_ack('g');
		COMMIT;});
	return map { /^n=(\d+)$/ ? $1 : () } split /\n/, $r;
}

sub counter
{
	return $node->safe_psql('postgres', q{SELECT n FROM counter WHERE key = 'k'});
}

# Producer A, whose commit callbacks the test module holds for ms once its
# commit is visible; returns once the counter row shows A's commit.
sub start_held_a
{
	my ($ms, $a_n) = @_;
	my %a = (in => '', out => '');
	$a{run} = IPC::Run::start([ $node->installed_command('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') ],
		'<', \$a{in}, '>', \$a{out}, '2>', \$a{out});
	$a{in} .= "LOAD '$so';\nBEGIN;\nSET LOCAL commit_pause.ms = $ms;\n$send;\nCOMMIT;\nSELECT 'a done';\n\\q\n";
	my $deadline = time() + 30;
	while (time() < $deadline && counter() ne $a_n)
	{
		$a{run}->pump_nb;
		usleep(10_000);
	}
	return \%a;
}

for my $round (1 .. 3)
{
	my $a_n = 2 * $round - 1;
	my $a = start_held_a(3000, $a_n);
	my $b_at = time();
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	my $b_took = time() - $b_at;
	$a->{run}->pump_nb;
	unlike($a->{out}, qr/a done/, "round $round: B committed while A's commit callbacks were held");
	cmp_ok($b_took, '<', 1.5, sprintf("round $round: B did not wait for A (%.2f s)", $b_took));

	# a tick while A is held (the worker's may come first): it waits for A's entry
	$node->safe_psql('postgres', 'SELECT tx_run_maintenance()');
	$a->{run}->finish;
	like($a->{out}, qr/a done/, "round $round: A committed");

	# what the group gets, in its order, until both messages are in
	my @got;
	my $deadline = time() + 30;
	push @got, receive_n('1 s') while @got < 2 && time() < $deadline;
	is_deeply(\@got, [ $a_n, $a_n + 1 ], "round $round: the consumer gets A's message before B's");
}

# A prepared transaction: B updates the row that COMMIT PREPARED made
# visible.  The ticks are held off until both have committed, so that one
# tick finds both.
{
	my $n = counter();
	my $l = hold_ticks('prepared');
	$node->safe_psql('postgres', "BEGIN; $send; PREPARE TRANSACTION 'p1';");
	$node->safe_psql('postgres', "COMMIT PREPARED 'p1';");
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	release_ticks($l);
	$node->safe_psql('postgres', 'SELECT tx_run_maintenance()');
	is_deeply([ receive_n('5 s') ], [ $n + 1, $n + 2 ],
		"prepared: the consumer gets the prepared transaction's message first");
}

# A's commit callbacks are held longer than a tick waits for a ring entry
# (10 s), and the ticks are held off until B has committed, so that one
# tick finds both: it logs and goes on, and places A before the
# transactions that kept their entries, B among them, which saw A's
# commit.
{
	my $n = counter();
	my $l = hold_ticks('timeout');
	my $a = start_held_a(14000, $n + 1);
	my $log_at = -s $node->logfile;
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	release_ticks($l);
	# this tick, or the worker's before it (then this one waits for its lock)
	$node->safe_psql('postgres', 'SELECT tx_run_maintenance()');
	$a->{run}->pump_nb;
	unlike($a->{out}, qr/a done/, 'timeout: A was still held when the tick went on');
	ok($node->log_contains(
			qr/LOG:  tx_message: a tick goes on without the commit order of a transaction still committing after 10000 ms/,
			$log_at),
		'timeout: the tick says it went on without A');
	$a->{run}->finish;
	like($a->{out}, qr/a done/, 'timeout: A committed');
	is_deeply([ receive_n('5 s') ], [ $n + 1, $n + 2 ], "timeout: the consumer gets A's message before B's");
}

# The ring wrapped while the ticks were held off: A's entry was overwritten
# by the 4 200 commits after it, B's is kept.  One tick finds both; A
# committed first and must come first.
$node->safe_psql('postgres', q{SELECT tx_create_topic('filler')});
my $fill = q{SET synchronous_commit = off;
	DO $$ BEGIN FOR i IN 1 .. %d LOOP PERFORM tx_send('filler', '{}'); COMMIT; END LOOP; END $$};
{
	my $n = counter();
	my $l = hold_ticks('wrapped');
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	$node->safe_psql('postgres', sprintf($fill, 4200));
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	release_ticks($l);
	$node->safe_psql('postgres', 'SELECT tx_run_maintenance()');
	is_deeply([ receive_n('5 s') ], [ $n + 1, $n + 2 ],
		'wrapped: the transaction whose ring entry was lost comes first');
}

# Before the ring wraps, the commits hurry the tick, whatever the
# tick_interval: with 10 s, a single commit waits for it, half a ring of
# commits does not.  The worker's maintenance cycle also ticks: its naptime
# goes beyond the test, after one more cycle at the old one.  A consumer
# of another topic polls, so that the ticks are paced (t/021).
$node->safe_psql('postgres', q{
	SELECT tx_create_topic('idle');
	SELECT tx_subscribe('idle', 'reader');
	ALTER SYSTEM SET tx_message.tick_interval = '10s';
	ALTER SYSTEM SET tx_message.naptime = '60s';
	SELECT pg_reload_conf()});
sleep 2;
{
	my $last_tick = sub {
		$node->safe_psql('postgres', 'SELECT coalesce(max(tick_id), 0) FROM tx_message.ticks');
	};
	my $poll = sub {
		$node->safe_psql('postgres', q{SELECT count(*) FROM tx_receive('reader', 1)});
	};
	$poll->();
	my $t0 = $last_tick->();
	$node->safe_psql('postgres', sprintf($fill, 1));
	my $deadline = time() + 30;
	while ($last_tick->() == $t0 && time() < $deadline)
	{
		$poll->();
		usleep(50_000);
	}
	my $t1 = $last_tick->();
	cmp_ok($t1, '>', $t0, 'paced: the worker ticks a commit');
	my $t1_seen = time();

	$node->safe_psql('postgres', sprintf($fill, 1));
	sleep 1;
	is($last_tick->(), $t1, 'paced: the next commit waits for the tick_interval');

	$node->safe_psql('postgres', sprintf($fill, 2200));
	my $filled = time() - $t1_seen;
	usleep(50_000) while $last_tick->() == $t1 && time() < $t1_seen + 8;
	my $t2 = $last_tick->();
	cmp_ok($t2, '>', $t1,
		sprintf('paced: half a ring of commits is ticked before the tick_interval is up (filled in %.1f s)', $filled));
	my $gap = $node->safe_psql('postgres', qq{
		SELECT coalesce(extract(epoch FROM
			(SELECT created_at FROM tx_message.ticks
			  WHERE tick_id = (SELECT min(tick_id) FROM tx_message.ticks WHERE tick_id > $t1))
			- (SELECT created_at FROM tx_message.ticks WHERE tick_id = $t1)), 999)});
	cmp_ok($gap, '<', 8, "paced: the hurried tick came $gap s after the last");
}

$node->stop;
done_testing();
