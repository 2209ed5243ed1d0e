# The background worker's life cycle: start on CREATE EXTENSION without a
# restart, several databases, DROP EXTENSION, DROP DATABASE, restarts after
# pg_terminate_backend and after a crash of the whole server, reload and the
# switch, postmaster death, idleness, and the check-back NOTIFY contract.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run ();

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
max_prepared_transactions = 5
log_checkpoints = on
});
$node->start;

my $workers_q = q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'tx_message worker' AND datname = '%s'};

sub worker_pid
{
	my ($db) = @_;
	return $node->safe_psql('postgres', qq{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'tx_message worker' AND datname = '$db'});
}

# Sends a message and waits until the worker has made it deliverable.
sub delivers
{
	my ($db, $label) = @_;
	$node->safe_psql($db, qq{SELECT tx_send('life', jsonb_build_object('label', '$label'))});
	return $node->poll_query_until($db, qq{
		SELECT count(*) = 1 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
		  JOIN tx_message.messages m ON m.msg_id = p
		 WHERE m.payload->>'label' = '$label'});
}

# The launcher runs even before any database has the extension.
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tx_message launcher'}),
	'the launcher runs');

# CREATE EXTENSION gets a worker within about a second, without a restart.
$node->safe_psql('postgres', 'CREATE DATABASE db1');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
my $t0 = time();
$node->safe_psql('db1', "CREATE EXTENSION tx_message; SELECT tx_create_topic('life')");
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db1'), '1'), 'worker started for db1');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 3, "worker appeared after CREATE EXTENSION within seconds ($elapsed s)");
is($node->safe_psql('postgres', sprintf($workers_q, 'db2')), '0', 'no worker where the extension is absent');

# Two databases at once.
$node->safe_psql('db2', "CREATE EXTENSION tx_message; SELECT tx_create_topic('life')");
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db2'), '1'), 'worker started for db2');
is($node->safe_psql('db1', 'SELECT count(*) FROM tx_worker_status()'), '2',
	'tx_worker_status shows one row per database worker');
is($node->safe_psql('db1', q{SELECT string_agg(database::text, ',' ORDER BY database) FROM tx_worker_status()}),
	'db1,db2', 'for db1 and db2');
ok(delivers('db1', 'one'), 'db1 delivers');
ok(delivers('db2', 'two'), 'db2 delivers');
is($node->safe_psql('db1', q{SELECT delivered >= 1 AND started_at <= last_cycle_at AND errors = 0
	FROM tx_worker_status() WHERE database = 'db1'}), 't', 'its counters and times are reported');

# The worker reports what it does and names tx_message in pg_stat_activity.
like($node->safe_psql('postgres', q{SELECT backend_type || '/' || coalesce(wait_event, '')
	FROM pg_stat_activity WHERE backend_type = 'tx_message worker' AND datname = 'db1'}),
	qr{^tx_message worker/}, 'backend_type names tx_message');

# pg_terminate_backend: restarted within a few seconds, and delivers again.
my $pid = worker_pid('db1');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', sprintf(q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'tx_message worker' AND datname = 'db1' AND pid <> %d}, $pid)),
	'worker restarted after pg_terminate_backend');
ok(delivers('db1', 'after terminate'), 'and delivers');

# Messages committed while no worker ran are delivered once it is back.
$node->safe_psql('postgres', 'ALTER SYSTEM SET tx_message.enabled = off');
$node->reload;
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'tx_message worker'}),
	'tx_message.enabled = off stops the workers (SIGHUP reloads settings)');
$node->safe_psql('db1', q{SELECT tx_send('life', '{"label": "while disabled"}')});
$node->safe_psql('postgres', 'ALTER SYSTEM RESET tx_message.enabled');
$node->reload;
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db1'), '1'), 'and on starts them again');
ok($node->poll_query_until('db1', q{
	SELECT count(*) = 1 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	  JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload->>'label' = 'while disabled'}),
	'a message sent while disabled is delivered afterwards');

# An idle worker writes nothing and uses next to no CPU.  Let it settle
# first: the first reads after the last commits may still set hint bits,
# also on the catalog rows CREATE EXTENSION replaced (VACUUM sets them all).
$node->safe_psql('db1', 'VACUUM');
sleep 3;
$node->safe_psql('db1', 'CHECKPOINT');
my $lsn1 = $node->safe_psql('db1', 'SELECT pg_current_wal_insert_lsn()');
$pid = worker_pid('db1');
my @stat1 = split / /, slurp_file("/proc/$pid/stat");
sleep 3;
my @stat2 = split / /, slurp_file("/proc/$pid/stat");
my $lsn2 = $node->safe_psql('db1', 'SELECT pg_current_wal_insert_lsn()');
is($lsn2, $lsn1, 'an idle worker writes no WAL');
my $log_offset = -s $node->logfile;
$node->safe_psql('db1', 'CHECKPOINT');
like(slurp_file($node->logfile, $log_offset), qr/checkpoint complete: wrote 0 buffers/,
	'and dirties no pages');
my $ticks = ($stat2[13] + $stat2[14]) - ($stat1[13] + $stat1[14]);
cmp_ok($ticks, '<=', 10, "and uses next to no CPU ($ticks clock ticks in 3 s)");

# Idle consumer groups cost an idle worker nothing either: housekeeping
# looks only at groups with lease rows (it once ran a transaction per group
# and cycle, and ten thousand groups kept a core busy).
$node->safe_psql('db1', q{SELECT count(tx_subscribe('life', 'idle_' || i, start_from => 'earliest'))
	FROM generate_series(1, 4000) i});
sleep 2;
@stat1 = split / /, slurp_file("/proc/$pid/stat");
sleep 3;
@stat2 = split / /, slurp_file("/proc/$pid/stat");
$ticks = ($stat2[13] + $stat2[14]) - ($stat1[13] + $stat1[14]);
cmp_ok($ticks, '<=', 10, "4000 idle groups: still next to no CPU ($ticks clock ticks in 3 s)");
$node->safe_psql('db1', q{SELECT count(tx_unsubscribe('life', 'idle_' || i)) FROM generate_series(1, 4000) i});

# The worker keeps what user code the database has between cycles; a new
# handler subscription is seen at once all the same (its invalidation), not
# when what was kept gets old (a minute).
$node->safe_psql('db1', q{CREATE FUNCTION noop(m tx_message.message) RETURNS void LANGUAGE sql AS 'SELECT'});
sleep 2;
$t0 = time();
$node->safe_psql('db1', q{SELECT tx_subscribe('life', 'handled', handler => 'noop(tx_message.message)')});
ok($node->poll_query_until('db1', q{SELECT cardinality(executor_pids) > 0 FROM tx_worker_status()
	WHERE database = 'db1'}), 'a new handler subscription gets executors');
my $waited = time() - $t0;
cmp_ok($waited, '<', 15, "within seconds ($waited s)");
$node->safe_psql('db1', q{SELECT tx_unsubscribe('life', 'handled')});

# DROP EXTENSION ends the worker; DROP DATABASE neither hangs nor fails.
$node->safe_psql('db2', 'DROP EXTENSION tx_message');
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db2'), '0'), 'DROP EXTENSION ends the worker');
$node->safe_psql('db2', 'CREATE EXTENSION tx_message');
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db2'), '1'), 'CREATE EXTENSION brings it back');

# DROP EXTENSION does not deadlock with a busy worker, whose units lock the
# extension before its relations (the benchmark, which drops and creates the
# extension between runs, once lost a DROP to the deadlock detector).  Here
# DROP and CREATE come in one transaction, again and again, while the worker
# ticks and runs maintenance every 10 ms; then it serves the new installation.
$node->append_conf('postgresql.conf', 'tx_message.naptime = 10ms');
$node->reload;
my $install = q{SELECT tx_create_topic('life'); SELECT tx_subscribe('life', 'g');};
$node->safe_psql('db2', $install);
my $recreated = 0;
for my $i (1 .. 30)
{
	$node->safe_psql('db2', qq{SELECT tx_send('life', '{"i": $i}')});
	my ($r, $o, $e) = $node->psql('db2', qq{BEGIN; DROP EXTENSION tx_message CASCADE;
		CREATE EXTENSION tx_message; $install COMMIT;});
	$recreated++ if $r == 0;
	diag $e if $r != 0;
}
is($recreated, 30, 'DROP and CREATE EXTENSION succeed every time while the worker is busy');
is($node->safe_psql('postgres', sprintf($workers_q, 'db2')), '1', 'the worker stayed');
ok(delivers('db2', 'after-recreate'), 'and serves the new installation');
$node->append_conf('postgresql.conf', 'tx_message.naptime = 1s');
$node->reload;
$t0 = time();
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE db2');
$elapsed = time() - $t0;
is($ret, 0, 'DROP DATABASE succeeds although the worker was connected') or diag $err;
cmp_ok($elapsed, '<', 3, "without hanging ($elapsed s)");
is($node->safe_psql('postgres', sprintf($workers_q, 'db2')), '0', 'no worker is left for db2');
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE db1 RENAME TO db1_renamed');
is($ret, 0, 'ALTER DATABASE RENAME succeeds too') or diag $err;
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db1_renamed'), '1'),
	'and the worker comes back for the renamed database');
$node->safe_psql('postgres', 'ALTER DATABASE db1_renamed RENAME TO db1');
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db1'), '1'), 'renamed back');

# Check-backs without a check function: NOTIFY tx_message_check with JSON.
$node->safe_psql('db1', q{SELECT tx_create_topic('ext', check_after => '100 ms', check_interval => '100 ms', check_max => 2)});
my $listener = $node->background_psql('db1');
$listener->query_safe('LISTEN tx_message_check; LISTEN tx_message_dead_letter');
my $half = $node->safe_psql('db1', q{SELECT tx_send_half('ext', '{}', key => 'order-9')});
ok($node->poll_query_until('db1', "SELECT count(*) = 1 FROM tx_message.dead_letters WHERE msg_id = $half"),
	'unanswered half message is dead-lettered after check_max checks');
my $notes = $listener->query_safe('SELECT 1');
$listener->quit;
like($notes, qr/"tx_message_check" with payload "\{"topic": "ext", "msg_id": $half, "key": "order-9", "checks": 1\}"/,
	'first check NOTIFY carries topic, msg_id, key and checks');
like($notes, qr/"checks": 2\}/, 'second check NOTIFY');
like($notes, qr/"tx_message_dead_letter" with payload "\{"topic": "ext", "consumer_group": null, "msg_id": $half, "key": "order-9", "reason": "check-back exhausted"\}"/,
	'the dead-lettering is notified');
ok($node->log_contains(qr/WARNING:  message $half of topic "ext" moved to the dead letters/),
	'and logged as a WARNING');

# A topic's notify_channel gets the same NOTIFY as tx_message_check, and a
# half message's own check_after comes before the topic's.
$node->safe_psql('db1', q{SELECT tx_create_topic('chan', check_after => '1 h', check_interval => '1 h',
												 notify_channel => 'chan_checks')});
$listener = $node->background_psql('db1');
$listener->query_safe('LISTEN chan_checks');
$half = $node->safe_psql('db1', q{SELECT tx_send_half('chan', '{}', key => 'c-1', check_after => '100 ms')});
ok($node->poll_query_until('db1', "SELECT checks = 1 FROM tx_message.half_messages WHERE msg_id = $half"),
	'a half message is checked after its own check_after');
$notes = $listener->query_safe('SELECT 1');
$listener->quit;
like($notes, qr/"chan_checks" with payload "\{"topic": "chan", "msg_id": $half, "key": "c-1", "checks": 1\}"/,
	'the check NOTIFY goes to the topic\'s channel too');
$node->safe_psql('db1', "SELECT tx_rollback_half($half)");

# Prepared transactions with messages are reported, never resolved.
$node->safe_psql('db1', q{BEGIN; SELECT tx_send('ext', '{"prepared": true}'); PREPARE TRANSACTION 'stuck'});
ok($node->poll_query_until('db1', q{SELECT stale_prepared = 1 FROM tx_worker_status() WHERE database = 'db1'}),
	'an old prepared transaction with messages is counted in tx_worker_status');
ok($node->wait_for_log(qr/WARNING:  prepared transaction "stuck" holds tx_message messages/),
	'and reported with a WARNING');
is($node->safe_psql('db1', q{SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'stuck'}), '1',
	'but left alone');
$node->safe_psql('db1', q{COMMIT PREPARED 'stuck'});
ok($node->poll_query_until('db1', q{SELECT count(*) = 1 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload ? 'prepared'}),
	'COMMIT PREPARED makes its message deliverable');

# Tick pacing: while no consumer waits, commits are gathered for
# tx_message.tick_interval; a receiver that waits, or that finds commits not
# yet ticked, is served at once.
$node->safe_psql('db1', q{SELECT tx_subscribe('life', 'pace')});
$node->safe_psql('db1', q{SELECT count(*) FROM tx_receive('pace', 1000)});
$node->safe_psql('postgres', q{ALTER SYSTEM SET tx_message.tick_interval = '3s'});
$node->reload;
usleep(300_000);
my $ticks_before = $node->safe_psql('db1', q{SELECT max(tick_id) FROM tx_message.ticks});
$node->safe_psql('db1', q{DO $$ BEGIN
	FOR i IN 1..50 LOOP PERFORM tx_send('life', jsonb_build_object('n', i)); COMMIT; END LOOP;
END $$});
ok($node->poll_query_until('db1', q{SELECT count(*) = 50 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload ? 'n'}), 'paced commits are delivered');
my $ticks_used = $node->safe_psql('db1', q{SELECT max(tick_id) FROM tx_message.ticks}) - $ticks_before;
cmp_ok($ticks_used, '<=', 6, "50 commits gathered into few ticks ($ticks_used)");
is($node->safe_psql('db1', q{SELECT count(*) FROM tx_receive('pace', 1000)}), '50', 'and received');

# a receive right after a commit asks for the tick instead of waiting for it
$t0 = time();
is($node->safe_psql('db1', q{SELECT tx_send('life', '{"now": 1}') > 0;
	SELECT count(*) FROM tx_receive('pace', 10)}), "t\n1", 'a receive sees what committed before it');
cmp_ok(time() - $t0, '<', 2, 'without waiting for the tick interval');

# Starts psql with $select, a tx_receive(..., wait => '$wait') into $out and
# $err, and waits until it is blocked in it, as one test.
sub start_waiter
{
	my ($select, $wait, $label) = @_;
	($out, $err) = ('', '');
	my $w = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('db1'), '-c', $select ],
		'>', \$out, '2>', \$err);
	ok($node->poll_query_until('db1', qq{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE query LIKE '%wait => ''$wait''%' AND wait_event = 'Extension'}), $label);
	return $w;
}

# a receiver blocked in tx_receive(..., wait => ...) gets a tick per commit
my $waiter = start_waiter(q{SELECT extract(epoch FROM clock_timestamp() - (payload->>'at')::timestamptz)
	FROM tx_receive('pace', 10, wait => '20 s')}, '20 s', 'a receiver waits');
$node->safe_psql('db1', q{SELECT tx_send('life', jsonb_build_object('at', clock_timestamp()))});
$waiter->finish;
chomp $out;
cmp_ok($out, '<', 1, "the waiting receiver got the message at once ($out s), not after 3 s") or diag $err;

# ... but a receiver waiting for another topic does not hurry the ticks: the
# commits into 'life', 20 ms apart, are still gathered, and a commit into its
# own topic is ticked at once.
$node->safe_psql('db1', q{SELECT tx_create_topic('quiet'); SELECT tx_subscribe('quiet', 'quietg')});
$waiter = start_waiter(q{SELECT extract(epoch FROM clock_timestamp() - (payload->>'at')::timestamptz)
	FROM tx_receive('quietg', 10, wait => '30 s')}, '30 s', 'a receiver waits for another topic');
$ticks_before = $node->safe_psql('db1', q{SELECT max(tick_id) FROM tx_message.ticks});
$node->safe_psql('db1', q{DO $$ BEGIN
	FOR i IN 1..30 LOOP PERFORM tx_send('life', jsonb_build_object('m', i)); COMMIT; PERFORM pg_sleep(0.02); END LOOP;
END $$});
ok($node->poll_query_until('db1', q{SELECT count(*) = 30 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload ? 'm'}), 'the commits are delivered');
$ticks_used = $node->safe_psql('db1', q{SELECT max(tick_id) FROM tx_message.ticks}) - $ticks_before;
cmp_ok($ticks_used, '<=', 6, "and gathered into few ticks ($ticks_used) while a receiver of 'quiet' waits");
$node->safe_psql('db1', q{SELECT tx_send('quiet', jsonb_build_object('at', clock_timestamp()))});
$waiter->finish;
chomp $out;
cmp_ok($out, '<', 1, "the receiver of 'quiet' got its message at once ($out s)") or diag $err;

# A receiver that a tick of its topic left with nothing (its tag filter
# matches none of the messages) waits patiently: the commits it waits for
# are then ticked at most once a millisecond, not one tick each.
$node->safe_psql('db1', q{SELECT tx_subscribe('life', 'picky', tags => '{none-such}')});
$waiter = start_waiter(q{SELECT payload->>'last' FROM tx_receive('picky', 10, wait => '40 s')},
	'40 s', 'a picky receiver waits');
$ticks_before = $node->safe_psql('db1', q{SELECT max(tick_id) FROM tx_message.ticks});
$t0 = time();
$node->safe_psql('db1', q{DO $$ BEGIN
	FOR i IN 1..400 LOOP
		PERFORM tx_send('life', jsonb_build_object('fast', i));
		COMMIT;
		PERFORM count(*) FROM generate_series(1, 2000);	-- a few commits a millisecond
	END LOOP;
END $$});
my $sent_ms = (time() - $t0) * 1000;
ok($node->poll_query_until('db1', q{SELECT count(*) = 400 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload ? 'fast'}), 'the fast commits are delivered');
$ticks_used = $node->safe_psql('db1', q{SELECT max(tick_id) FROM tx_message.ticks}) - $ticks_before;
cmp_ok($ticks_used, '<=', int($sent_ms) + 2,
	sprintf('400 commits in %.0f ms made %d ticks: at most one a millisecond', $sent_ms, $ticks_used));
$node->safe_psql('db1', q{SELECT tx_send('life', '{"last": "picked"}', tags => '{none-such}')});
$waiter->finish;
is($out, "picked\n", 'and it still gets its message') or diag $err;

# A receive does not wait for the tick of commits into other topics: right
# after a commit into 'life', a receive of 'quietg' leaves it unticked (the
# worker's own tick, every naptime, may come between: three tries).
my $left_unticked = 0;
for my $try (1 .. 3)
{
	my $r = $node->safe_psql('db1', qq{
		SELECT tx_send('life', '{"try": $try}');
		SELECT count(*) FROM tx_receive('quietg', 10);
		SELECT count(*) FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
		  JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload->>'try' = '$try';});
	my @lines = split /\n/, $r;
	if ($lines[-1] eq '0')
	{
		$left_unticked = 1;
		last;
	}
}
ok($left_unticked, 'a receive of another topic does not wait for the tick of a commit');

# After a tick that made messages deliverable, the worker looks for more
# commits by itself at the next tick's time, and they do not wake it; once
# such a look finds nothing, the next commit wakes it again.  With the
# maintenance cycle a minute away, either going wrong would leave a commit
# unticked for up to a minute.
$node->safe_psql('postgres', q{ALTER SYSTEM SET tx_message.tick_interval = '1s'});
$node->safe_psql('postgres', q{ALTER SYSTEM SET tx_message.naptime = '60s'});
$node->reload;
usleep(1_500_000);

# Seconds from a send into 'life' until a slice holds it.
sub ticked_after_send
{
	my ($label) = @_;
	my $t = time();
	$node->safe_psql('db1', qq{SELECT tx_send('life', '{"look": "$label"}')});
	$node->poll_query_until('db1', qq{SELECT count(*) = 1 FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
		JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload->>'look' = '$label'})
	  or return 999;
	return time() - $t;
}
my $took = ticked_after_send('first');
cmp_ok($took, '<', 3, sprintf('a commit to an idle worker is ticked (%.2f s)', $took));
$took = ticked_after_send('looked');
cmp_ok($took, '<', 3, sprintf('the next commit is ticked when the worker looks again (%.2f s)', $took));
usleep(1_500_000);
$took = ticked_after_send('woke');
cmp_ok($took, '<', 2, sprintf('after a look that found nothing, a commit wakes the worker (%.2f s)', $took));
# ... and in between it sleeps: once its look has passed, its cycles (five
# samples 200 ms apart) change at most once, for a deadline of its own.
usleep(1_500_000);
my %cycles;
for (1 .. 5)
{
	$cycles{ $node->safe_psql('db1', q{SELECT last_cycle_at FROM tx_worker_status() WHERE database = 'db1'}) } = 1;
	usleep(200_000);
}
cmp_ok(scalar(keys %cycles), '<=', 2, 'the worker sleeps while nothing is committed');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET tx_message.naptime});
$node->safe_psql('postgres', q{ALTER SYSTEM RESET tx_message.tick_interval});
$node->reload;

# kill -9 of the whole server: after the restart the worker resumes.
$node->safe_psql('db1', q{SELECT tx_send('life', '{"label": "before crash"}')});
my $pm_pid = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
my $old_worker = worker_pid('db1');
$node->kill9;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
usleep(100_000) while (kill(0, $pm_pid) || kill(0, $old_worker)) && time() < $deadline;
ok(!kill(0, $pm_pid), 'killed postmaster is gone');
ok(!kill(0, $old_worker), 'postmaster death ends the worker');
ok($node->start(fail_ok => 1), 'server starts again after kill -9');
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db1'), '1'), 'worker is back after the crash');
ok(delivers('db1', 'after crash'), 'and delivers');
is($node->safe_psql('db1', q{SELECT count(*) FROM tx_message.slices s, unnest(tx_message._slice_positions(s.positions, s.packed)) p
	JOIN tx_message.messages m ON m.msg_id = p WHERE m.payload->>'label' = 'before crash'}), '1',
	'the message committed before the crash is delivered exactly once');

# tx_message.max_databases bounds the databases served (it needs a restart):
# with one slot, one database with the extension gets a worker, the other
# none, and the log says which setting to raise.
$node->safe_psql('postgres', 'CREATE DATABASE db3');
$node->safe_psql('db3', 'CREATE EXTENSION tx_message');
ok($node->poll_query_until('postgres', sprintf($workers_q, 'db3'), '1'), 'worker started for db3');
$node->append_conf('postgresql.conf', 'tx_message.max_databases = 1');
$log_offset = -s $node->logfile;
$node->restart;
is($node->safe_psql('postgres', 'SHOW tx_message.max_databases'), '1', 'tx_message.max_databases is set');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'tx_message worker' AND datname IN ('db1', 'db3')}),
	'one of the two databases with the extension gets a worker');
ok($node->wait_for_log(qr/LOG:  tx_message cannot serve more than 1 databases\n.*HINT:  Raise tx_message.max_databases\./,
	$log_offset), 'the other is reported, with the setting to raise');
sleep 2;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tx_message worker'}),
	'1', 'and never more than one worker runs');

$node->stop;
done_testing();
