# Faults under load: while producers and consumers run, the postmaster is
# killed with SIGKILL three times, the database worker and the executors once
# each (restart_after_crash = on: the postmaster reinitializes), and the
# consumers holding leases are ended with pg_terminate_backend.  After each
# fault, and after a soak of TXM_SOAK_SECONDS (default 120) without faults,
# the producers stop, the backlog drains, and the business tables are
# compared with what the producers committed:
#
#   lost     a committed business row whose message had no effect
#   phantom  an effect for a business row that was never committed
#   dup      an effect beyond the first for one business row
#
# for three kinds of consumer of the topic:
#
#   pull     receive, effect and ack in one transaction: exactly once
#   handler  a handler run by the executor: exactly once
#   ext      an external consumer that records its effect in a transaction
#            of its own and acks afterwards: at least once, so its
#            duplicates are counted and reported but only lost and phantom
#            effects are errors.
#
# The producers commit a business row and its message together: tx_send
# (some delayed), tx_send_batch, and half messages decided by tx_commit_half
# in the business transaction, by tx_rollback_half, or by the topic's check
# function (which answers 'commit' once the business row exists).  One
# transaction in ten rolls back, so that a phantom effect would show.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use TxmLoaders;
use Time::HiRes qw(usleep time);
use IPC::Run ();

my $soak_seconds = $ENV{TXM_SOAK_SECONDS} // 120;
my $t_start = time();

my $node = PostgreSQL::Test::Cluster->new('faults');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.handler_batch_size = 50
restart_after_crash = on
max_connections = 40
log_statement = none
});
$node->start;

$node->safe_psql('postgres', slurp_file("$FindBin::Bin/load_fixture.sql"));

# ---------------------------------------------------------------------------
# Load: each loader is a shell loop that runs one CALL (about a second) per
# connection, reconnecting after whatever happened to the server, until its
# stop file exists.  Its psql errors go to a file, read at the end.
# ---------------------------------------------------------------------------
my $dir = $node->basedir;
my $connfile = "$dir/loader_conn";
append_to_file($connfile, $node->connstr('postgres') . ' connect_timeout=5');
my $psql = $node->installed_command('psql');
my $loaders = TxmLoaders->new(dir => $dir, psql => $psql, connfile => $connfile);

my @producers = qw(prod_single1 prod_single2 prod_batch prod_half);
my @consumers = qw(cons_pull1 cons_pull2 cons_ext);

sub start_producers
{
	$loaders->start('prod_single1', q{CALL produce('single', 1)}, 'stop_producers');
	$loaders->start('prod_single2', q{CALL produce('single', 1)}, 'stop_producers');
	$loaders->start('prod_batch', q{CALL produce('batch', 1)}, 'stop_producers');
	$loaders->start('prod_half', q{CALL produce('half', 1)}, 'stop_producers');
	return;
}

sub start_consumers
{
	$loaders->start('cons_pull1', q{CALL consume_pull(1)}, 'stop_consumers');
	$loaders->start('cons_pull2', q{CALL consume_pull(1)}, 'stop_consumers');
	$loaders->start('cons_ext', q{CALL consume_ext(1)}, 'stop_consumers');
	return;
}

END
{
	# whatever happened, end the loops this test started
	$loaders->kill_all('stop_producers', 'stop_consumers') if $loaders;
}

# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------
my $counts_q = 'SELECT * FROM effect_counts ORDER BY 1';

sub counts
{
	my %c;
	for my $line (split /\n/, $node->safe_psql('postgres', $counts_q))
	{
		my ($kind, $lost, $phantom, $dup, $effects, $dead) = split /\|/, $line;
		$c{$kind} = { lost => $lost, phantom => $phantom, dup => $dup, effects => $effects, dead => $dead };
	}
	return \%c;
}

my $prev_produced = 0;
my $prev_ext_dup = 0;

# Stops the producers, waits for the backlog to drain, counts and asserts.
sub drain_and_check
{
	my ($label) = @_;
	$loaders->stop('stop_producers', @producers);
	my $t0 = time();
	my $c;
	while (1)
	{
		$c = eval { counts() };
		last if $c && !grep { $c->{$_}{lost} > 0 } keys %$c;
		last if time() - $t0 > 90;
		usleep(500_000);
	}
	my $drained = time() - $t0;
	# a moment more: an effect that comes late would be a duplicate
	sleep 1;
	$c = counts();
	my $produced = $node->safe_psql('postgres', 'SELECT count(*) FROM produced');
	my $kinds = $node->safe_psql('postgres',
		q{SELECT string_agg(kind || '=' || n, ' ' ORDER BY kind) FROM (SELECT kind, count(*) n FROM produced GROUP BY 1) s});
	diag(sprintf("%s: %d committed messages (%d new; all so far: %s), drained in %.1f s", $label, $produced,
		$produced - $prev_produced, $kinds, $drained));
	for my $kind (qw(pull handler ext))
	{
		diag(sprintf("  %-7s effects %6d  lost %d  phantom %d  duplicate %d  dead letters %d", $kind,
			$c->{$kind}{effects}, $c->{$kind}{lost}, $c->{$kind}{phantom}, $c->{$kind}{dup}, $c->{$kind}{dead}));
	}
	diag(sprintf("  ext duplicates from this phase: %d", $c->{ext}{dup} - $prev_ext_dup));
	cmp_ok($produced, '>', $prev_produced, "$label: the producers committed messages");
	for my $kind (qw(pull handler ext))
	{
		is($c->{$kind}{lost}, 0, "$label: $kind lost nothing");
		is($c->{$kind}{phantom}, 0, "$label: $kind has no phantom effect");
	}
	is($c->{pull}{dup}, 0, "$label: pull (same-transaction ack) has no duplicate effect");
	is($c->{handler}{dup}, 0, "$label: handler has no duplicate effect");
	$prev_produced = $produced;
	$prev_ext_dup = $c->{ext}{dup};
	return;
}

sub pids_alive
{
	return grep { kill(0, $_) } @_;
}

# kill -9 of the postmaster, then start it again once every process of the
# old server is gone.
sub crash_postmaster
{
	my ($label) = @_;
	my $pm_pid = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my @pids = split /\n/, $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity');
	$node->kill9;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	usleep(100_000) while pids_alive($pm_pid, @pids) && time() < $deadline;
	ok(!pids_alive($pm_pid, @pids), "$label: the killed postmaster and its processes are gone");
	my $started = 0;
	for (1 .. 10)
	{
		last if ($started = $node->start(fail_ok => 1));
		sleep 1;
	}
	ok($started, "$label: the server starts again");
	return;
}

# kill -9 of a background process (of every one of that type: there may be
# several executors): the postmaster reinitializes.
sub crash_process
{
	my ($label, $backend_type) = @_;
	my @pids = split /\n/, $node->safe_psql('postgres',
		qq{SELECT pid FROM pg_stat_activity WHERE backend_type = '$backend_type'});
	cmp_ok(scalar(@pids), '>=', 1, "$label: the $backend_type runs (" . scalar(@pids) . ')');
	my $log_offset = -s $node->logfile;
	kill 'KILL', @pids;
	ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset),
		"$label: the postmaster reinitializes");
	my $old = join(',', @pids, 0);
	ok($node->poll_query_until('postgres', qq{SELECT count(*) >= 1 AND count(*) FILTER (WHERE pid IN ($old)) = 0
		FROM pg_stat_activity WHERE backend_type = '$backend_type'}), "$label: a new $backend_type runs");
	return;
}

# ---------------------------------------------------------------------------
# The faults
# ---------------------------------------------------------------------------
start_consumers();
start_producers();
ok(TxmLoaders->wait_for_progress($node), 'the load runs: messages produced and consumed by all three consumers');
sleep 1;
drain_and_check('no fault');

my @faults = (
	[ 'postmaster kill -9 #1', sub { crash_postmaster('postmaster kill -9 #1') } ],
	[ 'worker kill -9', sub { crash_process('worker kill -9', 'tx_message worker') } ],
	[ 'postmaster kill -9 #2', sub { crash_postmaster('postmaster kill -9 #2') } ],
	[ 'executor kill -9', sub { crash_process('executor kill -9', 'tx_message executor') } ],
	[ 'pg_terminate_backend of consumers holding leases', sub {
		my $label = 'pg_terminate_backend';
		# The external consumer holds committed leases while it "calls out"
		# (pg_sleep) between its effect and its ack; the pull consumers hold
		# theirs in their open transactions.  End them all at a moment the
		# external one holds some.
		my ($leases, $ended_ext, $ended_pull) = (0, 0, 0);
		for (1 .. 200)
		{
			($leases, $ended_ext, $ended_pull) = split /\|/, $node->safe_psql('postgres', q{
				WITH held AS MATERIALIZED (
					SELECT count(*) AS n FROM tx_message.leases l JOIN pg_stat_activity a ON l.holder = a.pid
					 WHERE a.application_name = 'cons_ext' AND l.covered <> l.done),
				victims AS MATERIALIZED (
					SELECT application_name, pg_terminate_backend(pid) AS ended FROM pg_stat_activity, held
					 WHERE application_name IN ('cons_ext', 'cons_pull1', 'cons_pull2') AND held.n > 0)
				SELECT held.n,
				       (SELECT count(*) FROM victims WHERE ended AND application_name = 'cons_ext'),
				       (SELECT count(*) FROM victims WHERE ended AND application_name <> 'cons_ext')
				  FROM held});
			last if $leases > 0;
			usleep(20_000);
		}
		diag("$label: ended the external consumer ($ended_ext) holding $leases unfinished lease rows, "
			. "and $ended_pull pull consumers");
		cmp_ok($leases, '>', 0, "$label: the external consumer held leases");
		is($ended_ext, 1, "$label: it was ended");
	} ],
	[ 'postmaster kill -9 #3', sub { crash_postmaster('postmaster kill -9 #3') } ],
);

for my $fault (@faults)
{
	my ($label, $inject) = @$fault;
	start_producers();
	ok(TxmLoaders->wait_for_progress($node), "$label: the load runs before the fault");
	sleep 1;
	# a backlog, so that the fault comes while the consumers work through it
	$node->safe_psql('postgres', 'CALL produce_burst(3000)');
	usleep(300_000);
	$inject->();
	ok(TxmLoaders->wait_for_progress($node), "$label: the load runs again after the fault");
	sleep 1;
	drain_and_check($label);
}

# ---------------------------------------------------------------------------
# The soak: the same load, no fault
# ---------------------------------------------------------------------------
my $pm_pid = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
my $worker_pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tx_message worker'});
start_producers();
my $soak_end = time() + $soak_seconds;
while (time() < $soak_end)
{
	sleep(($soak_end - time() > 10) ? 10 : 1);
}
drain_and_check("soak of $soak_seconds s");
# Longer than the leases (5 s and 3 s): a message whose lease survived
# without its ack would have been delivered again meanwhile.
sleep 6;
my $c = counts();
diag(sprintf("after the leases expired: %s", join('; ', map { sprintf("%s effects %d lost %d phantom %d duplicate %d",
	$_, $c->{$_}{effects}, $c->{$_}{lost}, $c->{$_}{phantom}, $c->{$_}{dup}) } qw(pull handler ext))));
is($c->{$_}{lost} + $c->{$_}{phantom}, 0, "in the end, $_ lost nothing and has no phantom effect")
	for qw(pull handler ext);
is($c->{$_}{dup}, 0, "in the end, $_ has no duplicate effect") for qw(pull handler);
is((split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0], $pm_pid,
	'the soak ran on one postmaster');
is($node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tx_message worker'}),
	$worker_pid, 'and one worker');

$loaders->stop('stop_consumers', @consumers);

# The loaders' errors: connections lost to the faults are expected, anything
# else (a short ack of the same-transaction consumer, an internal error) is
# reported and fails.
my ($n_expected, $unexpected) = $loaders->errors(@producers, @consumers);
my %unexpected = %$unexpected;
diag("loader errors from the faults: $n_expected lines");
diag("unexpected loader error ($unexpected{$_} times): $_") for sort keys %unexpected;
is(scalar(keys %unexpected), 0, 'the loaders saw no error but lost connections');

$node->stop;
diag(sprintf('007_faults took %.0f s', time() - $t_start));
done_testing();
