# Failover to a synchronous streaming standby under load.
#
# A primary and a synchronous standby run on this machine.  While producers
# (a business row and its message in one transaction), pull consumers
# (receive, effect and ack in one transaction), an external consumer (effect
# and ack in separate transactions: at least once) and a handler (effect and
# ack together, in the executor) run against the primary:
#
#   * on the standby no tx_message worker or executor runs, the views can be
#     read, and every writing function of the API fails with SQLSTATE 25006
#     (read_only_sql_transaction) and a message that says why;
#
# then the primary is stopped with -m immediate in the middle of the load,
# the standby is promoted, and the load moves to it:
#
#   * the worker starts by itself within seconds of the promotion;
#   * every message whose business row committed (counted on the promoted
#     node) has exactly one effect for the pull consumers and the handler,
#     and at least one for the external consumer (whose leases taken at the
#     failover may come again: its duplicates are reported, not failed); no
#     effect exists for a business row that never committed.
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

my $t_start = time();

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.handler_batch_size = 50
max_connections = 40
shared_buffers = 32MB
log_statement = none
hot_standby_feedback = on
});
$primary->start;

$primary->safe_psql('postgres', slurp_file("$FindBin::Bin/load_fixture.sql"));
$primary->safe_psql('postgres', q{
-- What the calls on the standby need to find: a topic with a subscription
-- and a grant, half messages, a dead letter and a dead half message.
CREATE ROLE someone;
SELECT tx_create_topic('spare');
SELECT tx_create_topic('spare-half', check_after => '100 ms', check_interval => '100 ms', check_max => 1);
SELECT tx_subscribe('spare', 'spare-group');
SELECT tx_subscribe('spare', 'dl', max_retries => 0);
SELECT tx_grant('spare', 'someone', 'receive');
});

my ($dead_id, $half_commit, $half_rollback, $half_dead) = (
	$primary->safe_psql('postgres', q{SELECT tx_send('spare', '{"dead": true}')}),
	$primary->safe_psql('postgres', q{SELECT tx_send_half('spare', '{"half": 1}')}),
	$primary->safe_psql('postgres', q{SELECT tx_send_half('spare', '{"half": 2}')}),
	$primary->safe_psql('postgres', q{SELECT tx_send_half('spare-half', '{"half": 3}')}));
$primary->safe_psql('postgres', qq{
	SELECT count(*) FROM tx_receive('dl', 10);
	SELECT tx_nack('dl', $dead_id, 'poison')});
ok($primary->poll_query_until('postgres', qq{SELECT count(*) = 2 FROM tx_message.dead_letters
	WHERE msg_id IN ($dead_id, $half_dead)}), 'the fixture has a dead letter and a dead half message');

# The standby, from a base backup (taken before synchronous_standby_names
# is set, so that the promoted node does not wait for a standby of its own).
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$primary->append_conf('postgresql.conf', q{synchronous_standby_names = '*'});
$primary->reload;
$standby->start;
ok($primary->poll_query_until('postgres',
	q{SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'}),
	'the standby is synchronous');

# ---------------------------------------------------------------------------
# Load: each loader is a shell loop that runs one CALL (about a second) per
# connection, reconnecting after whatever happened to the server, until its
# stop file exists.  It connects to the node named in $connfile.
# ---------------------------------------------------------------------------
my $dir = $primary->basedir;
my $connfile = "$dir/loader_conn";
sub point_loaders_at
{
	my ($node) = @_;
	open my $fh, '>', "$connfile.new" or die $!;
	print $fh $node->connstr('postgres') . ' connect_timeout=5';
	close $fh;
	rename "$connfile.new", $connfile or die $!;
	return;
}
point_loaders_at($primary);
my $psql = $primary->installed_command('psql');
my $loaders = TxmLoaders->new(dir => $dir, psql => $psql, connfile => $connfile);

my @producers = qw(prod_single1 prod_single2 prod_batch prod_half);
my @consumers = qw(cons_pull1 cons_pull2 cons_ext);

END
{
	# whatever happened, end the loops this test started
	$loaders->kill_all('stop_producers', 'stop_consumers') if $loaders;
}

$loaders->start($_, q{CALL consume_pull(1)}, 'stop_consumers') for qw(cons_pull1 cons_pull2);
$loaders->start('cons_ext', q{CALL consume_ext(1)}, 'stop_consumers');
$loaders->start($_, q{CALL produce('single', 1)}, 'stop_producers') for qw(prod_single1 prod_single2);
$loaders->start('prod_batch', q{CALL produce('batch', 1)}, 'stop_producers');
$loaders->start('prod_half', q{CALL produce('half', 1)}, 'stop_producers');
ok(TxmLoaders->wait_for_progress($primary), 'the load runs on the primary');

# ---------------------------------------------------------------------------
# The standby, under that load
# ---------------------------------------------------------------------------
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# Give a launcher time to do the wrong thing, then look.
my $procs_q = q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type IN ('tx_message worker', 'tx_message executor')};
my $seen = 0;
for (1 .. 30)
{
	$seen += $standby->safe_psql('postgres', $procs_q);
	usleep(100_000);
}
is($seen, 0, 'no tx_message worker or executor runs on the standby');
diag('tx_message processes on the standby: '
	. ($standby->safe_psql('postgres', q{SELECT coalesce(string_agg(backend_type, ', '), 'none')
		FROM pg_stat_activity WHERE backend_type LIKE 'tx_message%'})));

# The views can be read.
cmp_ok($standby->safe_psql('postgres', q{SELECT count(*) FROM tx_message.messages WHERE topic = 'orders'}),
	'>', 0, 'tx_message.messages can be read on the standby');
is($standby->safe_psql('postgres', q{SELECT string_agg(topic, ',' ORDER BY topic) FROM tx_message.topics}),
	'orders,spare,spare-half', 'tx_message.topics can be read on the standby');
is($standby->safe_psql('postgres', q{SELECT string_agg(consumer_group, ',' ORDER BY consumer_group)
	FROM tx_message.subscriptions}), 'dl,ext,handler,pull,spare-group',
	'tx_message.subscriptions can be read on the standby');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM tx_message.dead_letters
	WHERE msg_id IN (} . "$dead_id, $half_dead)"), '2', 'tx_message.dead_letters can be read on the standby');
is($standby->safe_psql('postgres', q{SELECT grantee::text || ' ' || privilege FROM tx_message.grants}),
	'someone receive', 'tx_message.grants can be read on the standby');
my ($rc, $out, $err) = $standby->psql('postgres', 'SELECT count(*) FROM tx_message.retries');
is($rc, 0, 'tx_message.retries can be read on the standby') or diag $err;
($rc, $out, $err) = $standby->psql('postgres', 'SELECT count(*) FROM tx_worker_status()');
diag("tx_worker_status() on the standby: rc $rc, rows '$out' $err");

# Every writing call fails with 25006, saying why.  The arguments are valid:
# on the primary each of these calls would write.
my $msg_id = $standby->safe_psql('postgres', q{SELECT max(msg_id) FROM tx_message.messages WHERE topic = 'orders'});
my @writing_calls = (
	q{SELECT tx_send('orders', '{"on": "standby"}')},
	q{SELECT tx_send('orders', '{"on": "standby"}', key => 'k', delay => '1 s')},
	q{SELECT * FROM tx_send_batch('orders', ARRAY['{"a": 1}', '{"a": 2}']::jsonb[])},
	q{SELECT tx_send_half('orders', '{"on": "standby"}')},
	qq{SELECT tx_commit_half($half_commit)},
	qq{SELECT tx_rollback_half($half_rollback)},
	q{SELECT tx_create_topic('standby-topic')},
	q{SELECT tx_alter_topic('spare', retention => '4 days')},
	q{SELECT tx_drop_topic('spare', cascade => true)},
	q{SELECT tx_grant('spare', 'someone', 'send')},
	q{SELECT tx_revoke('spare', 'someone', 'receive')},
	q{SELECT tx_subscribe('spare', 'standby-group')},
	q{SELECT tx_subscribe('spare', 'spare-group', max_retries => 3)},
	q{SELECT tx_unsubscribe('spare', 'spare-group')},
	q{SELECT * FROM tx_receive('pull', 10)},
	q{SELECT * FROM tx_receive('spare-group', 10, wait => '2 s')},
	qq{SELECT tx_ack('pull', ARRAY[$msg_id]::bigint[])},
	qq{SELECT tx_ack('pull', ${msg_id}::bigint)},
	qq{SELECT tx_nack('pull', $msg_id, 'failed')},
	qq{SELECT tx_extend_lease('pull', ARRAY[$msg_id]::bigint[], '1 min')},
	q{SELECT tx_redrive('dl')},
	qq{SELECT tx_redrive('dl', ARRAY[$dead_id]::bigint[])},
	q{SELECT tx_purge_dead_letters('dl')},
	q{SELECT tx_redrive_half()},
	qq{SELECT tx_purge_half_dead_letters(msg_ids => ARRAY[$half_dead]::bigint[])},
	q{SELECT tx_seek('pull', 'orders', 'earliest')},
	q{SELECT tx_cdc_enable()},
	q{SELECT tx_cdc_disable()},
	q{SELECT tx_send('orders', '{"on": "standby"}', dedup_key => 'd')},
	q{SELECT tx_run_maintenance()},
	q{CALL tx_maintenance_loop('0 s')},
);
my %tried;
for my $call (@writing_calls)
{
	$tried{$1} = 1 if $call =~ /(tx_\w+)\(/;
	my ($rc, $out, $err) = $standby->psql('postgres', "\\set VERBOSITY verbose\n$call");
	my ($state, $message) = $err =~ /ERROR:  ([0-9A-Z]{5}): ([^\n]*)/ ? ($1, $2) : ('none', "rc $rc, output '$out' $err");
	is($state, '25006', "on the standby, $call fails with 25006") or diag("got: $message");
	like($message, qr/recovery|read-only|standby/i, "  with a message that says why: $message");
}
# the functions that only read work on the standby
for my $call (q{SELECT count(*) FROM tx_stats()}, q{SELECT count(*) FROM tx_find('orders', 'k')},
	q{SELECT count(*) FROM tx_recent('orders')},
	qq{SELECT count(*) FROM tx_trace($msg_id)})
{
	$tried{$1} = 1 if $call =~ /(tx_\w+)\(/;
	my ($rc, $out, $err) = $standby->psql('postgres', $call);
	is($rc, 0, "on the standby, $call reads") or diag($err);
}
my @untried = grep { !$tried{$_} && $_ ne 'tx_worker_status' } split /\n/, $standby->safe_psql('postgres',
	q{SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	   JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
	  WHERE e.extname = 'tx_message' AND p.proname LIKE 'tx\_%' ORDER BY 1});
is("@untried", '', 'every function of the API but tx_worker_status (above) was tried on the standby');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM tx_message.topics WHERE topic = 'spare'}), '1',
	'and the primary still has what they would have changed');

# ---------------------------------------------------------------------------
# The failover, in the middle of the load
# ---------------------------------------------------------------------------
ok(TxmLoaders->wait_for_progress($primary), 'the load still runs on the primary');
# A backlog, so that the failover comes while every consumer works through
# it: the primary stops once the pull consumers have done a tenth of it.
my $burst = 10000;
$primary->safe_psql('postgres', "CALL produce_burst($burst)");
my $burst_q = q{SELECT string_agg(format('%s %s', kind, n), ', ' ORDER BY kind) FROM (
	SELECT e.kind, count(*) AS n FROM effects e JOIN produced p USING (id) WHERE p.kind = 'burst' GROUP BY 1) s};
my $progress = '';
my $deadline = time() + 60;
while (time() < $deadline)
{
	$progress = $primary->safe_psql('postgres', $burst_q);
	last if $progress =~ /pull (\d+)/ && $1 >= $burst / 10;
	usleep(20_000);
}
my $before = $primary->safe_psql('postgres', 'SELECT count(*) FROM produced');
$primary->stop('immediate');
diag("the primary stopped with $before business rows committed; effects of the $burst-message backlog: $progress");
my $t0 = time();
$standby->promote;
my $promoted_in = time() - $t0;
point_loaders_at($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'the standby is promoted');
my $worker_after;
while (time() - $t0 < 60)
{
	if ($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'tx_message worker'}) eq '1')
	{
		$worker_after = time() - $t0;
		last;
	}
	usleep(50_000);
}
ok(defined $worker_after, 'the worker starts on the promoted node by itself');
$worker_after //= 60;
diag(sprintf('promotion took %.2f s; the worker ran %.2f s after the promotion began', $promoted_in, $worker_after));
cmp_ok($worker_after, '<', 10, 'within a few seconds');
ok($standby->poll_query_until('postgres', q{SELECT count(*) >= 1 FROM pg_stat_activity
	WHERE backend_type = 'tx_message executor'}), 'and executors for the handler and the check function');

ok(TxmLoaders->wait_for_progress($standby), 'the load runs on the promoted node');
sleep 2;

# ---------------------------------------------------------------------------
# Drain and count on the promoted node
# ---------------------------------------------------------------------------
$loaders->stop('stop_producers', @producers);
my $counts_q = 'SELECT * FROM effect_counts ORDER BY 1';
my %c;
sub counts
{
	%c = ();
	for my $line (split /\n/, $standby->safe_psql('postgres', $counts_q))
	{
		my ($kind, $lost, $phantom, $dup, $effects, $dead) = split /\|/, $line;
		$c{$kind} = { lost => $lost, phantom => $phantom, dup => $dup, effects => $effects, dead => $dead };
	}
	return;
}
$t0 = time();
while (1)
{
	counts();
	last unless grep { $c{$_}{lost} > 0 } keys %c;
	last if time() - $t0 > 90;
	usleep(500_000);
}
my $drained = time() - $t0;
# longer than the leases (5 s and 3 s): a message whose lease survived
# without its ack would be delivered again meanwhile
sleep 6;
counts();
$loaders->stop('stop_consumers', @consumers);

my $produced = $standby->safe_psql('postgres', 'SELECT count(*) FROM produced');
my $kinds = $standby->safe_psql('postgres',
	q{SELECT string_agg(kind || '=' || n, ' ' ORDER BY kind) FROM (SELECT kind, count(*) n FROM produced GROUP BY 1) s});
diag(sprintf('%d committed messages on the promoted node (%s), drained in %.1f s',
	$produced, $kinds, $drained));
for my $kind (qw(pull handler ext))
{
	diag(sprintf("  %-7s effects %6d  lost %d  phantom %d  duplicate %d  dead letters %d", $kind,
		$c{$kind}{effects}, $c{$kind}{lost}, $c{$kind}{phantom}, $c{$kind}{dup}, $c{$kind}{dead}));
}
cmp_ok($produced, '>=', $before, 'every business row the primary had committed is on the promoted node');
for my $kind (qw(pull handler ext))
{
	is($c{$kind}{lost}, 0, "$kind lost nothing across the failover");
	is($c{$kind}{phantom}, 0, "$kind has no phantom effect");
}
is($c{pull}{dup}, 0, 'pull (same-transaction ack) has no duplicate effect');
is($c{handler}{dup}, 0, 'handler has no duplicate effect');

# The loaders' errors: connections lost to the failover are expected,
# anything else is reported and fails.
my ($n_expected, $unexpected) = $loaders->errors(@producers, @consumers);
my %unexpected = %$unexpected;
diag("loader errors from the failover: $n_expected lines");
diag("unexpected loader error ($unexpected{$_} times): $_") for sort keys %unexpected;
is(scalar(keys %unexpected), 0, 'the loaders saw no error but lost connections');

$standby->stop;
diag(sprintf('006_failover took %.0f s', time() - $t_start));
done_testing();
