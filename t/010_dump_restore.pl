# Dump and restore in the middle of load.  While producers and consumers
# run on one cluster (the load of t/007_faults.pl: business rows and their
# messages committed together, a same-transaction consumer, an external
# consumer that acks in a later transaction, and a handler), the database
# is dumped three times: in custom format, restored with pg_restore -j 2,
# in plain format, restored with psql, with INSERT statements
# (--inserts), restored with psql in one transaction as the README says,
# and without tx_message.sub_state.
# Each is restored into a fresh database of a second cluster with the
# library preloaded, whose worker starts while the restore is still
# loading.  Then, in each complete restore:
#
#   - the worker says it took the dump over (tx_worker_status().restore_state);
#   - every message id made there is above every id in the dump;
#   - topics and subscriptions can be created (their identities continue);
#   - draining the restored backlog, every committed business row of the
#     dump gets its effect, exactly once for the same-transaction consumer
#     and the handler (messages acked before the dump never run again), at
#     least once for the external consumer (its leases of dump time come
#     again), and no effect appears for a row that was never committed.
#
# The restore without positions says so: a WARNING and restore_state.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use TxmLoaders;
use IPC::Run ();
use Time::HiRes qw(usleep time);

my $conf = qq{
shared_preload_libraries = 'tx_message'
tx_message.handler_batch_size = 50
max_connections = 40
max_worker_processes = 16
};
my $src = PostgreSQL::Test::Cluster->new('dump_source');
$src->init;
$src->append_conf('postgresql.conf', $conf);
$src->start;
my $dst = PostgreSQL::Test::Cluster->new('dump_target');
$dst->init;
$dst->append_conf('postgresql.conf', $conf);
$dst->start;

$src->safe_psql('postgres', slurp_file("$FindBin::Bin/load_fixture.sql"));

my $dir = $src->basedir;
my $connfile = "$dir/loader_conn";
append_to_file($connfile, $src->connstr('postgres') . ' connect_timeout=5');
my $loaders = TxmLoaders->new(dir => $dir, psql => $src->installed_command('psql'),
	connfile => $connfile);
END { $loaders->kill_all('stop') if $loaders; }

$loaders->start('prod_single', q{CALL produce('single', 1)}, 'stop');
$loaders->start('prod_batch', q{CALL produce('batch', 1)}, 'stop');
$loaders->start('prod_half', q{CALL produce('half', 1)}, 'stop');
$loaders->start('cons_pull', q{CALL consume_pull(1)}, 'stop');
$loaders->start('cons_ext', q{CALL consume_ext(1)}, 'stop');

# a backlog to carry, and effects of every kind before the dump
$src->safe_psql('postgres', 'CALL produce_burst(3000)');
my $deadline = time() + 60;
usleep(200_000) until time() > $deadline || $src->safe_psql('postgres',
	q{SELECT (SELECT count(*) FROM pull_effects) > 100 AND (SELECT count(*) FROM ext_effects) > 100
	     AND (SELECT count(*) FROM handler_effects) > 100}) eq 't';

# a rotation of the log tables before the dumps: the restore must go on
# with the same current table and heads
$src->safe_psql('postgres', q{SELECT tx_alter_topic('orders', retention => '20 s')});
$deadline = time() + 60;
my $current_q = 'SELECT slot FROM tx_message.log_slots WHERE is_current';
usleep(200_000) until time() > $deadline || $src->safe_psql('postgres', $current_q) ne '0';
isnt($src->safe_psql('postgres', $current_q), '0', 'the log tables rotated before the dumps');

# the current table and when it became current (which stays after later rotations)
my $opened_q = q{SELECT slot || ' ' || opened_at FROM tx_message.log_slots WHERE is_current};
my %current_at_dump;
my %dumps = (
	custom => [ '-Fc', '-f', "$dir/dump.custom" ],
	plain => [ '-f', "$dir/dump.sql" ],
	inserts => [ '--inserts', '-f', "$dir/dump_inserts.sql" ],
	no_positions => [ '-Fc', '-f', "$dir/dump_nopos.custom", '--exclude-table-data=tx_message.sub_state' ],
);
for my $name (qw(custom plain inserts no_positions))
{
	sleep 1;
	# a backlog for each dump: the consumers may have caught up meanwhile
	$src->safe_psql('postgres', 'CALL produce_burst(3000)');
	my $before = $src->safe_psql('postgres', $opened_q);
	$src->command_ok([ $src->installed_command('pg_dump'), '-d', $src->connstr('postgres'),
		@{ $dumps{$name} } ], "pg_dump ($name) in the middle of load");
	# known only if no rotation happened while it ran
	$current_at_dump{$name} = $before if $before eq $src->safe_psql('postgres', $opened_q);
}
$loaders->stop('stop', qw(prod_single prod_batch prod_half cons_pull cons_ext));
my ($n_expected, $unexpected) = $loaders->errors(qw(prod_single prod_batch prod_half cons_pull cons_ext));
is_deeply($unexpected, {}, 'the load ran without errors');

$dst->safe_psql('postgres',
	'CREATE DATABASE r_custom; CREATE DATABASE r_plain; CREATE DATABASE r_inserts; CREATE DATABASE r_nopos');
$dst->command_ok([ $dst->installed_command('pg_restore'), '-j', '2', '--exit-on-error',
	'-d', $dst->connstr('r_custom'), "$dir/dump.custom" ], 'pg_restore -j 2 of the custom dump');
$dst->command_ok([ $dst->installed_command('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
	'-d', $dst->connstr('r_plain'), '-f', "$dir/dump.sql" ], 'psql restores the plain dump');
$dst->command_ok([ $dst->installed_command('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
	'-d', $dst->connstr('r_inserts'), '-f', "$dir/dump_inserts.sql" ],
	'psql restores the dump of INSERT statements in one transaction');
$dst->command_ok([ $dst->installed_command('pg_restore'), '--exit-on-error',
	'-d', $dst->connstr('r_nopos'), "$dir/dump_nopos.custom" ], 'pg_restore of the dump without positions');

sub restore_state
{
	my ($db) = @_;
	my $state;
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		$state = $dst->safe_psql($db,
			"SELECT restore_state FROM tx_worker_status() WHERE database = '$db'");
		last if $state ne '';
		usleep(200_000);
	}
	return $state;
}

# restore_state once it is no longer the waiting one
sub restore_state_after
{
	my ($db) = @_;
	my $state = '';
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		$state = $dst->safe_psql($db,
			"SELECT coalesce(restore_state, '') FROM tx_worker_status() WHERE database = '$db'");
		last if $state ne '' && $state !~ /waiting/;
		usleep(200_000);
	}
	return $state;
}

my $counts_q = q{SELECT kind || ' ' || lost || ' ' || phantom || ' ' || dup || ' ' || effects
	FROM effect_counts ORDER BY 1};

sub counts
{
	my ($db) = @_;
	my %c;
	for my $line (split /\n/, $dst->safe_psql($db, $counts_q))
	{
		my ($kind, $lost, $phantom, $dup, $effects) = split / /, $line;
		$c{$kind} = { lost => $lost, phantom => $phantom, dup => $dup, effects => $effects };
	}
	return \%c;
}

for my $db (qw(r_custom r_plain r_inserts))
{
	is(restore_state($db), 'taken over', "$db: the worker took the dump over");
	my $name = substr($db, 2);
	SKIP:
	{
		skip "the log tables rotated while $name was dumped", 1 unless defined $current_at_dump{$name};
		my ($slot) = split / /, $current_at_dump{$name};
		is($dst->safe_psql($db, "SELECT slot || ' ' || opened_at FROM tx_message.log_slots WHERE slot = $slot"),
			$current_at_dump{$name}, "$db: the log tables' state is the dumped database's");
	}
	is($dst->safe_psql($db, q{SELECT count(*) FROM tx_message.log_slots
		WHERE opened_heads = 'null' OR sealed_heads = 'null' OR (is_current AND opened_heads IS NULL)}),
		'0', "$db: the log tables' heads came back");

	# the largest id the dump holds anywhere (rows moved into the log keep theirs)
	my $max_dumped = $dst->safe_psql($db, q{SELECT greatest(
		(SELECT max(msg_id) FROM tx_message.messages), (SELECT max(msg_id) FROM tx_message.retries),
		(SELECT max(msg_id) FROM tx_message.dead_letters),
		(SELECT max(msg_id) FROM pull_effects), (SELECT max(msg_id) FROM ext_effects),
		(SELECT max(msg_id) FROM handler_effects))});
	my $waiting = $dst->safe_psql($db, q{SELECT count(*) FROM tx_message.messages});
	my $before = counts($db);
	diag("$db: $waiting messages stored, largest id $max_dumped; effects at dump time: "
		. join(', ', map { "$_ $before->{$_}{effects}" } sort keys %$before));
	cmp_ok($waiting, '>', 0, "$db: the dump carried stored messages");
	cmp_ok($before->{pull}{lost}, '>', 0, "$db: the dump carried an undelivered backlog");

	my $new_id = $dst->safe_psql($db, q{INSERT INTO produced (id, kind) VALUES (-1, 'after restore');
		SELECT tx_send('orders', '{"id": -1}')});
	cmp_ok($new_id, '>', $max_dumped, "$db: a new message id is above every id of the dump");
	$dst->safe_psql($db, q{SELECT tx_create_topic('after_restore'); SELECT tx_subscribe('after_restore', 'g')});
	pass("$db: topics and subscriptions can be created after the restore");

	# drain: the pull and external consumers here, the handler in the executor
	my $c;
	my $t0 = time();
	while (time() - $t0 < 120)
	{
		$dst->safe_psql($db, 'CALL consume_pull(1)');
		$dst->safe_psql($db, 'CALL consume_ext(1)');
		$c = counts($db);
		last unless grep { $c->{$_}{lost} > 0 } keys %$c;
	}
	sleep 1;
	$dst->safe_psql($db, 'CALL consume_pull(0.5)');
	$dst->safe_psql($db, 'CALL consume_ext(0.5)');
	$c = counts($db);
	diag(sprintf("%s: drained in %.1f s; %s", $db, time() - $t0,
		join('; ', map { "$_ effects $c->{$_}{effects} lost $c->{$_}{lost} phantom $c->{$_}{phantom} dup $c->{$_}{dup}" }
			sort keys %$c)));
	for my $kind (qw(pull handler ext))
	{
		is($c->{$kind}{lost}, 0, "$db: $kind lost nothing");
		is($c->{$kind}{phantom}, 0, "$db: $kind has no phantom effect");
	}
	is($c->{pull}{dup}, 0, "$db: pull (same-transaction ack) has no duplicate effect");
	is($c->{handler}{dup}, 0, "$db: the handler never ran again over a message acked before the dump");
	is($dst->safe_psql($db, q{SELECT count(*) FROM tx_message.dead_letters}), '0',
		"$db: nothing was dead-lettered");
}

# While a session that loaded rows is still connected, the restore is not
# over: the worker waits and says so, and a call that would take the dump
# over refuses (55000) instead of taking over what may be incomplete.
$dst->safe_psql('postgres', 'CREATE DATABASE r_loading');
$dst->safe_psql('r_loading', 'CREATE EXTENSION tx_message');
my ($lout, $lerr) = ('', '');
my $loader = IPC::Run::start(
	[ $dst->installed_command('psql'), '-X', '-d', $dst->connstr('r_loading'), '-f', '-' ],
	'<', \("COPY tx_message.lineage (token, id_base, updated_at) FROM STDIN;\n"
	  . "00000000-0000-0000-0000-000000000001\t0\t2026-01-01 00:00:00+00\n\\.\nSELECT pg_sleep(4);\n"),
	'>', \$lout, '2>', \$lerr);
my $waiting;
$deadline = time() + 30;
while (time() < $deadline)
{
	$loader->pump_nb;		# feeds psql its input
	$waiting = $dst->safe_psql('r_loading',
		q{SELECT restore_state FROM tx_worker_status() WHERE database = 'r_loading'});
	last if $waiting =~ /waiting/;
	usleep(200_000);
}
like($waiting, qr/waiting for a restore to finish/, 'while the loading session is connected, the worker waits');
my ($rc, $out, $err) = $dst->psql('r_loading', "\\set VERBOSITY verbose\nSELECT tx_create_topic('early')");
like($err, qr/55000: a restore of this database is still loading/, 'and an early call refuses with 55000');
$loader->finish;
is(restore_state_after('r_loading'), 'taken over', 'once the session is gone, the worker takes the dump over');

like(restore_state('r_nopos'), qr/without a position/,
	'a restore without positions says so in tx_worker_status()');
like(slurp_file($dst->logfile), qr/WARNING:.*has no position in the restored dump/,
	'and in the server log');

$src->stop;
$dst->stop;
done_testing();
