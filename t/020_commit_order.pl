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

for my $round (1 .. 3)
{
	my $a_n = 2 * $round - 1;
	my ($a_in, $a_out) = ('', '');
	my $a = IPC::Run::start([ $node->installed_command('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') ],
		'<', \$a_in, '>', \$a_out, '2>', \$a_out);
	$a_in .= "LOAD '$so';\nBEGIN;\nSET LOCAL commit_pause.ms = 3000;\n$send;\nCOMMIT;\nSELECT 'a done';\n\\q\n";

	# A's commit is visible (its counter value can be read), its callbacks held
	my $deadline = time() + 30;
	while (time() < $deadline
		&& $node->safe_psql('postgres', q{SELECT n FROM counter WHERE key = 'k'}) ne $a_n)
	{
		$a->pump_nb;
		usleep(10_000);
	}
	my $b_at = time();
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	my $b_took = time() - $b_at;
	$a->pump_nb;
	unlike($a_out, qr/a done/, "round $round: B committed while A's commit callbacks were held");
	cmp_ok($b_took, '<', 1.5, sprintf("round $round: B did not wait for A (%.2f s)", $b_took));

	# a tick while A is held (the worker's may come first): it waits for A's entry
	$node->safe_psql('postgres', 'SELECT tx_run_maintenance()');
	$a->finish;
	like($a_out, qr/a done/, "round $round: A committed");

	# what the group gets, in its order, until both messages are in
	my @got;
	$deadline = time() + 30;
	while (@got < 2 && time() < $deadline)
	{
		my $r = $node->safe_psql('postgres', q{
			BEGIN;
			SELECT 'n=' || (payload->>'n') FROM tx_receive('g', 10, wait => '1 s');
			SELECT tx_ack('g');
			COMMIT;});
		push @got, map { /^n=(\d+)$/ ? $1 : () } split /\n/, $r;
	}
	is_deeply(\@got, [ $a_n, $a_n + 1 ], "round $round: the consumer gets A's message before B's");
}

# A prepared transaction: B updates the row that COMMIT PREPARED made
# visible.  The session holding the ticks' lock keeps every tick off until
# both have committed, so that one tick finds both.
{
	my $n = $node->safe_psql('postgres', q{SELECT n FROM counter WHERE key = 'k'});
	my ($l_in, $l_out) = ('', '');
	my $l = IPC::Run::start([ $node->installed_command('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres') ],
		'<', \$l_in, '>', \$l_out, '2>', \$l_out);
	$l_in .= "BEGIN;\nLOCK TABLE tx_message.ticks IN EXCLUSIVE MODE;\nSELECT 'locked';\n";
	my $deadline = time() + 30;
	$l->pump_nb while $l_out !~ /locked/ && time() < $deadline;
	like($l_out, qr/locked/, 'prepared: the ticks are held off');
	$node->safe_psql('postgres', "BEGIN; $send; PREPARE TRANSACTION 'p1';");
	$node->safe_psql('postgres', "COMMIT PREPARED 'p1';");
	$node->safe_psql('postgres', "BEGIN; $send; COMMIT;");
	$l_in .= "COMMIT;\n\\q\n";
	$l->finish;
	$node->safe_psql('postgres', 'SELECT tx_run_maintenance()');
	my $r = $node->safe_psql('postgres', q{
		BEGIN;
		SELECT 'n=' || (payload->>'n') FROM tx_receive('g', 10, wait => '5 s');
		SELECT tx_ack('g');
		COMMIT;});
	my @got = map { /^n=(\d+)$/ ? $1 : () } split /\n/, $r;
	is_deeply(\@got, [ $n + 1, $n + 2 ], "prepared: the consumer gets the prepared transaction's message first");
}

$node->stop;
done_testing();
