# Fuzzes the whole SQL API for a bounded time: every function of the
# extension (found in the catalogs, so new ones are covered without a
# change here) is called with random, boundary and hostile arguments by an
# in-server driver (t/fuzz_driver.sql), in three phases:
#
#   superuser   two concurrent sessions, with the background worker running
#               and a fixture of topics, subscriptions (handlers and check
#               functions among them), half messages and dead letters;
#   unprivileged  a role with LOGIN and nothing else, with the worker off:
#               no row of any table of the schema tx_message may change
#               (count and hash of every table), and no call of a writing
#               function may succeed with an effect: a void function that
#               returns, an id, true, a non-zero count, a non-empty set.
#               A success that did nothing (0, false, NULL, no rows) is
#               allowed and counted in the output;
#   granted     (only if tx_grant exists) a role granted send, receive and
#               monitor on fz-g1 and every privilege on fz-g2: nothing of any
#               other topic may change.
#
# Throughout, the server must never restart and no call may fail with a
# SQLSTATE of class XX (internal error) or 58 (system error).
#
# TXM_FUZZ_SECONDS (default 30) is the fuzzing time of all phases together;
# TXM_FUZZ_SEED (default: from the clock) seeds every random choice, and is
# printed so that a failing run can be replayed; TXM_FUZZ_LOG_CALLS=0 stops
# the driver from writing each call to the server log (the log shows the
# exact statement a crashed backend was running); TXM_FUZZ_SKIP, a regular
# expression, leaves out the functions whose signature it matches (for
# example '^tx_nack\(' while a known bug in it is being fixed).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use List::Util qw(min sum0);
use IPC::Run ();
use FindBin;

my $fuzz_seconds = $ENV{TXM_FUZZ_SECONDS} // 30;
my $seed = $ENV{TXM_FUZZ_SEED} // (int(time() * 1000) ^ ($$ << 12)) % 2147483647;
my $log_calls = $ENV{TXM_FUZZ_LOG_CALLS} // 1;
my $skip = $ENV{TXM_FUZZ_SKIP} // '';
diag("fuzzing with TXM_FUZZ_SEED=$seed TXM_FUZZ_SECONDS=$fuzz_seconds (set both to replay)");
srand($seed);

my $driver = slurp_file("$FindBin::Bin/fuzz_driver.sql");
if ($skip ne '')
{
	diag("TXM_FUZZ_SKIP=$skip: the functions it matches are not fuzzed");
	(my $re = $skip) =~ s/'/''/g;
	$driver .= "DELETE FROM pg_temp.fuzz_api WHERE label ~ '$re';\n"
	  . "UPDATE pg_temp.fuzz_api a SET ord = r.n FROM (SELECT label, row_number() OVER (ORDER BY ord) AS n"
	  . " FROM pg_temp.fuzz_api) r WHERE a.label = r.label;\n";
}
my $db = 'postgres';
my $superuser;

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
my $test_conf = "$FindBin::Bin/../test.conf";
$node->append_conf('postgresql.conf', slurp_file($test_conf)) if -f $test_conf;
# verbose: errors in the server log carry their SQLSTATE (the fuzzing
# sessions log terse, one line per call)
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
max_prepared_transactions = 10
log_error_verbosity = verbose
});
$node->start;
$superuser = $node->safe_psql($db, 'SELECT current_user');

# The fixture: user code of every shape a check function or handler could
# be given, right and wrong, and two roles.
$node->safe_psql($db, q{
CREATE EXTENSION tx_message;
CREATE ROLE fuzz_nopriv LOGIN;
CREATE ROLE fuzz_granted LOGIN;
ALTER ROLE fuzz_nopriv SET log_error_verbosity = terse;
ALTER ROLE fuzz_granted SET log_error_verbosity = terse;
ALTER ROLE fuzz_nopriv SET log_min_error_statement = panic;
ALTER ROLE fuzz_granted SET log_min_error_statement = panic;
CREATE FUNCTION fx_ok(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION fx_bool(m tx_message.message) RETURNS boolean LANGUAGE sql AS $$ SELECT m.msg_id % 2 = 0 $$;
CREATE FUNCTION fx_text(m tx_message.message) RETURNS text LANGUAGE sql AS $$ SELECT 'handled' $$;
CREATE FUNCTION fx_fail(m tx_message.message) RETURNS void LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'fx_fail %', m.msg_id; END $$;
CREATE FUNCTION fx_check(m tx_message.message) RETURNS text LANGUAGE sql
	AS $$ SELECT (ARRAY['commit', 'rollback', 'unknown', NULL, 'garbage'])[1 + abs(m.msg_id % 5)::int] $$;
CREATE FUNCTION fx_check_fail(m tx_message.message) RETURNS text LANGUAGE plpgsql
	AS $$ BEGIN RAISE EXCEPTION 'check failed'; END $$;
-- user code that calls the API back
CREATE FUNCTION fx_reenter(m tx_message.message) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM tx_send('fz-a', coalesce(m.payload, 'null'), key => m.key);
	PERFORM tx_commit_half(m.msg_id);
	RETURN 'commit';
END $$;
CREATE FUNCTION fx_strict(m tx_message.message) RETURNS text LANGUAGE sql STRICT AS $$ SELECT 'commit' $$;
CREATE FUNCTION fx_record(m tx_message.message) RETURNS tx_message.message LANGUAGE sql AS $$ SELECT m $$;
CREATE FUNCTION fx_noexec(m tx_message.message) RETURNS text LANGUAGE sql AS $$ SELECT 'commit' $$;
REVOKE EXECUTE ON FUNCTION fx_noexec(tx_message.message) FROM PUBLIC;
CREATE FUNCTION fx_secdef(m tx_message.message) RETURNS text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT 'rollback' $$;
CREATE FUNCTION fx_int(i integer) RETURNS text LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE FUNCTION fx_two(m tx_message.message, i integer DEFAULT 1) RETURNS text LANGUAGE sql
	AS $$ SELECT 'commit' $$;
CREATE PROCEDURE fx_proc(m tx_message.message) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION fx_setof(m tx_message.message) RETURNS SETOF text LANGUAGE sql
	AS $$ VALUES ('commit'), ('rollback') $$;
CREATE FUNCTION fx_agg_sf(s text, m tx_message.message) RETURNS text LANGUAGE sql AS $$ SELECT 'commit' $$;
CREATE AGGREGATE fx_agg(tx_message.message) (sfunc = fx_agg_sf, stype = text);
});

# Topics, subscriptions, messages, half messages and dead letters, made
# again before every round of the superuser phase (whose calls drop and
# change them).
my $replenish = q{
SELECT tx_create_topic(t, if_not_exists => true)
  FROM unnest(ARRAY['fz-a', 'fz-b', 'fz-c', 'fz-d', 'fz-g1', 'fz-g2']) t;
SELECT tx_alter_topic('fz-b', check_function => 'fx_check(tx_message.message)',
	check_after => '1 ms', check_interval => '1 ms', check_max => 2);
SELECT tx_alter_topic('fz-c', check_function => 'fx_reenter(tx_message.message)',
	check_after => '1 ms', check_interval => '1 ms');
SELECT tx_alter_topic('fz-d', check_function => '-', check_after => '1 ms',
	check_interval => '1 ms', check_max => 1);
SELECT tx_subscribe('fz-a', 'g-pull');
SELECT tx_subscribe('fz-a', 'g-ord', ordered => true);
SELECT tx_subscribe('fz-a', 'g-dead', max_retries => 0);
SELECT tx_subscribe('fz-a', 'g-handler', handler => 'fx_ok(tx_message.message)');
SELECT tx_subscribe('fz-b', 'g-fail', handler => 'fx_fail(tx_message.message)', max_retries => 0);
SELECT tx_subscribe('fz-c', 'g-reenter', handler => 'fx_reenter(tx_message.message)',
	max_retries => 1, backoff => '{1 ms}');
SELECT tx_subscribe('fz-g1', 'g-g1');
SELECT tx_subscribe('fz-g2', 'g-g2', max_retries => 0);
SELECT count(tx_send(t, jsonb_build_object('i', g), key => 'k' || g % 3))
  FROM unnest(ARRAY['fz-a', 'fz-b', 'fz-c', 'fz-g1', 'fz-g2']) t, generate_series(1, 4) g;
SELECT tx_send('fz-a', '{"delayed": true}', delay => '200 ms');
SELECT count(tx_send_half(t, '{"half": true}', key => 'h'))
  FROM unnest(ARRAY['fz-a', 'fz-b', 'fz-c', 'fz-d', 'fz-g1']) t;
SELECT count(tx_nack('g-dead', msg_id, 'fuzz fixture')) FROM tx_receive('g-dead', 3, wait => '100 ms');
SELECT count(tx_nack('g-g2', msg_id, 'fuzz fixture')) FROM tx_receive('g-g2', 2, wait => '100 ms');
SELECT tx_run_maintenance();
};

my $start_time = $node->safe_psql($db, 'SELECT pg_postmaster_start_time()');
my $has_enabled = $node->safe_psql($db,
	q{SELECT count(*) FROM pg_settings WHERE name = 'tx_message.enabled'}) eq '1';
my $has_grant = $node->safe_psql($db,
	q{SELECT count(*) > 0 FROM pg_proc WHERE proname = 'tx_grant'}) eq 't';
note('API under test: ' . $node->safe_psql($db, q{
	SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.proname)
	  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	   AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'tx_message'
	 WHERE p.proname !~ '^_'}));

# What the phases found.
my (%hist, %calls, %fn_hist, %script_hist, @bad, @lost, %effects, %batches);
my $crashed = 0;
my $log_offset = 0;

sub sqlstates_in
{
	my ($err) = @_;
	return ($err =~ /(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5})\s*$/mg);
}

# psql runs a script from a file and writes to files, so that the sessions
# of a round run at once, whatever the test process is waiting for.
my $scratch = PostgreSQL::Test::Utils::tempdir();
my $script_no = 0;

sub start_psql
{
	my ($user, $script) = @_;
	my $base = "$scratch/psql_" . ++$script_no;
	my $r = { files => [ "$base.sql", "$base.out", "$base.err" ] };
	PostgreSQL::Test::Utils::append_to_file("$base.sql", $script);
	$r->{h} = IPC::Run::start(
		[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0',
		  '-d', $node->connstr($db), '-U', $user, '-f', "$base.sql" ],
		'<', \undef, '>', "$base.out", '2>', "$base.err",
		IPC::Run::timeout(120));
	return $r;
}

sub finish_psql
{
	my ($r) = @_;
	my $timed_out = !eval { $r->{h}->finish; 1 };
	$r->{h}->kill_kill if $timed_out;
	$r->{rc} = $r->{h}->result(0) // -1;
	$r->{out} = slurp_file($r->{files}[1]);
	$r->{err} = slurp_file($r->{files}[2]) . ($timed_out ? "\n(psql timed out)\n" : '');
	unlink @{ $r->{files} };
	return $r;
}

# A superuser session that (in the superuser phase) makes the fixture again,
# and returns the statements that fill a fuzzing session's pools.
sub pools
{
	my ($with_fixture, $focus) = @_;
	my $script = "\\set VERBOSITY sqlstate\n" . ($with_fixture ? $replenish : '') . $driver
	  . "SELECT pg_temp.fuzz_snapshot(ARRAY[" . join(', ', map { "'$_'" } @{ $focus // [] }) . "]::text[]);\n";
	my $r = finish_psql(start_psql($superuser, $script));
	for my $state (sqlstates_in($r->{err}))
	{
		$script_hist{fixture}{$state}++;
		push @bad, { phase => 'fixture', fn => '(fixture statement)', state => $state,
			msg => $r->{err}, call => '(see t/005_fuzz.pl, $replenish)' } if $state =~ /^(XX|58)/;
	}
	return join('', grep { /^INSERT INTO pg_temp\.fuzz_pools/ } split /^/m, $r->{out});
}

sub batch_script
{
	my (%o) = @_;
	my $s = "\\set VERBOSITY sqlstate\nSET statement_timeout = '10s';\nSET lock_timeout = '200ms';\n";
	if ($o{superuser})
	{
		$s .= "SET log_error_verbosity = terse;\nSET log_min_error_statement = panic;\n";
		# the limit is the superuser's to set per session: a small one makes
		# payloads around it cheap
		my @limits = ("'1kB'", "'0'", "'64kB'", 'DEFAULT');
		$s .= "SET tx_message.max_payload_size = $limits[int(rand(@limits))];\n";
	}
	$s .= $driver . $o{pools};
	$s .= sprintf("CALL pg_temp.fuzz_batch(%.10f, 100000, %d, %s, '%s');\n",
		$o{seed} / 2**31, $o{ms}, $log_calls ? 'true' : 'false', $o{tag});
	# a few calls in prepared transactions, committed or rolled back
	for my $k (1 .. $o{prepared})
	{
		my $gid = "fz_$o{tag}_$k";
		$gid =~ s/-/_/g;
		$s .= "SELECT pg_temp.fuzz_gen() AS q \\gset\nBEGIN;\n:q;\n"
		  . "PREPARE TRANSACTION '$gid';\n"
		  . (rand() < 0.5 ? 'COMMIT' : 'ROLLBACK') . " PREPARED '$gid';\n";
	}
	my $clean = sub { "regexp_replace($_[0], '[\\t\\n\\r]', ' ', 'g')" };
	$s .= "SELECT concat_ws(E'\\t', 'STAT', fn, state, effect, n) FROM pg_temp.fuzz_stats;\n";
	$s .= sprintf("SELECT concat_ws(E'\\t', 'BAD', fn, state, %s, %s) FROM pg_temp.fuzz_bad;\n",
		$clean->('msg'), $clean->('call'));
	$s .= sprintf("SELECT concat_ws(E'\\t', 'EFF', fn, %s, %s) FROM pg_temp.fuzz_effects;\n",
		$clean->('result'), $clean->('call'));
	return $s;
}

sub parse_batch
{
	my ($phase, $bt) = @_;
	my $r = $bt->{r};
	my $batch_calls = 0;
	for my $line (split /\n/, $r->{out})
	{
		my @f = split /\t/, $line, -1;
		if ($f[0] eq 'STAT' && @f == 5)
		{
			my ($fn, $state, $effect, $n) = @f[ 1 .. 4 ];
			$hist{$phase}{$state} += $n;
			$calls{$phase} += $n;
			$batch_calls += $n;
			$fn_hist{$phase}{$fn}{$state} += $n;
			$effects{$phase}{$fn}{ $effect eq 't' ? 'effect' : 'no effect' } += $n
			  if $state eq '00000';
		}
		elsif ($f[0] eq 'BAD' && @f == 5)
		{
			push @bad, { phase => $phase, batch => $bt->{tag}, seed => $bt->{seed},
				fn => $f[1], state => $f[2], msg => $f[3], call => $f[4] };
		}
		elsif ($f[0] eq 'EFF' && @f == 4)
		{
			push @{ $effects{$phase}{samples} }, "$f[1] returned '$f[2]': $f[3]";
		}
	}
	for my $state (sqlstates_in($r->{err}))
	{
		$script_hist{$phase}{$state}++;
		push @bad, { phase => $phase, batch => $bt->{tag}, seed => $bt->{seed},
			fn => '(statement of the batch script)', state => $state, msg => $r->{err},
			call => 'see the batch script: a prepared-transaction round or the CALL' }
		  if $state =~ /^(XX|58)/;
	}
	if ($r->{rc} != 0 || $r->{err} =~ /server closed the connection|connection to server was lost|no connection to the server|psql timed out/)
	{
		push @lost, "$bt->{tag} (seed $bt->{seed}, psql exit $r->{rc}): "
		  . join(' | ', grep { /\S/ } split /\n/, $r->{err});
	}
	$batches{$phase}++;
	note("batch $bt->{tag}: $batch_calls calls");
}

# Whether the server is still the one that started; if not, report what
# the crashed backend was running, from the log.
sub check_alive
{
	my ($running) = @_;
	my $log = slurp_file($node->logfile, $log_offset);
	$log_offset += length($log);
	my ($ret, $now) = $node->psql($db, 'SELECT pg_postmaster_start_time()');
	return 1 if $ret == 0 && $now eq $start_time
	  && $log !~ /terminated by signal|server process .* was terminated|PANIC:/;
	$crashed = 1;
	diag('the server crashed or restarted during the batches '
		  . join(', ', map { "$_->{tag} (seed $_->{seed})" } @$running));
	for my $line (grep { /terminated by signal|was terminated|PANIC|TRAP/ } split /\n/, $log)
	{
		diag("  log: $line");
		if ($line =~ /PID (\d+)\)/)
		{
			my $pid = $1;
			my @mine = grep { /\[$pid\].*txm-fuzz/ } split /\n/, slurp_file($node->logfile);
			diag("  its last call: $mine[-1]") if @mine;
		}
	}
	diag("  log: $1") while $log =~ /(DETAIL:\s+Failed process was running:[^\n]*)/g;
	# The test framework sets restart_after_crash = off: start the server
	# again so that the rest of the test can look at it.
	if ($node->psql($db, 'SELECT 1') != 0)
	{
		my $deadline = time() + 60;
		usleep(100_000) while -e $node->data_dir . '/postmaster.pid' && time() < $deadline;
		$node->stop('immediate', fail_ok => 1);    # forgets the old postmaster
		$node->start(fail_ok => 1);
	}
	$node->poll_query_until($db, 'SELECT true');
	return 0;
}

sub run_phase
{
	my (%o) = @_;
	my $deadline = time() + $o{seconds};
	my $round = 0;
	$calls{ $o{name} } //= 0;
	while (!$crashed)
	{
		my $ms = int(min(2500, ($deadline - time()) * 1000));
		last if $ms < 300;
		$round++;
		my $pools = pools($o{fixture}, $o{focus});
		my @running;
		for my $j (1 .. $o{jobs})
		{
			my $bt = { tag => "$o{name}-r$round-j$j", seed => int(rand(2**31)) };
			note("batch $bt->{tag}: seed $bt->{seed}, $ms ms");
			$bt->{r} = start_psql($o{user}, batch_script(%o, %$bt, ms => $ms, pools => $pools,
				prepared => $o{prepared}));
			push @running, $bt;
		}
		finish_psql($_->{r}) for @running;
		parse_batch($o{name}, $_) for @running;
		last unless check_alive(\@running);
	}
}

sub worker_enabled
{
	my ($on) = @_;
	return unless $has_enabled;
	$node->safe_psql($db, $on ? 'ALTER SYSTEM RESET tx_message.enabled'
		: 'ALTER SYSTEM SET tx_message.enabled = off');
	$node->reload;
	return if $on;
	$node->poll_query_until($db, q{SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type IN ('tx_message worker', 'tx_message executor')})
	  or diag('the background worker did not stop: rows it writes may differ');
}

# count and order-independent hash of each table of the schema tx_message;
# $where maps a table to a condition on its rows (or undef to skip it)
sub table_digests
{
	my ($where) = @_;
	my @tables = split /\n/, $node->safe_psql($db, q{
		SELECT c.relname || '|' || c.oid::regclass || '|' ||
			   coalesce(string_agg(a.attname, ',' ORDER BY a.attnum), '')
		  FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		   AND NOT a.attisdropped AND a.attname IN ('topic', 'topic_id', 'msg_id', 'pos')
		 WHERE c.relnamespace = 'tx_message'::regnamespace AND c.relkind IN ('r', 'p')
		 GROUP BY c.oid ORDER BY c.relname});
	my (@parts, %query);
	for (@tables)
	{
		my ($name, $rel, $cols) = split /\|/, $_, -1;
		my $cond = $where ? $where->($name, { map { $_ => 1 } split /,/, $cols }) : 'true';
		next unless defined $cond;
		$query{$name} = "SELECT x::text FROM $rel x WHERE $cond";
		push @parts, "SELECT '$name' || ': ' || count(*) || ' rows, hash '"
		  . " || coalesce(sum(hashtextextended(x::text, 0)::numeric), 0) FROM $rel x WHERE $cond";
	}
	my %d = map { split /: /, $_, 2 } split /\n/, $node->safe_psql($db, join("\nUNION ALL ", @parts));
	$d{_query} = \%query;
	return \%d;
}

sub compare_digests
{
	my ($before, $after, $what) = @_;
	my @diff = grep { $_ ne '_query' && ($before->{$_} // 'absent') ne ($after->{$_} // 'absent') }
	  sort keys %{ { %$before, %$after } };
	ok(!@diff, $what) or diag(map {
		"  $_: before $before->{$_}, after $after->{$_}; some rows now:\n"
		  . join('', map { "    $_\n" } split /\n/,
			$node->safe_psql($db, "$after->{_query}{$_} ORDER BY 1 DESC LIMIT 8"))
	} @diff);
}

sub settle
{
	# no half-finished prepared transaction of a batch survives a phase
	my @gids = split /\n/, $node->safe_psql($db, 'SELECT gid FROM pg_prepared_xacts');
	diag("prepared transaction left behind by a batch: $_") for @gids;
	$node->safe_psql($db, "ROLLBACK PREPARED '$_'") for @gids;
	# grants made by the superuser phase's calls are undone
	$node->safe_psql($db, q{SELECT count(tx_revoke(topic, grantee, privilege)) FROM tx_message.grants})
	  if $node->safe_psql($db, q{SELECT to_regclass('tx_message.grants') IS NOT NULL}) eq 't';
}

my $t0 = time();
my @phases = $has_grant ? ([ 'superuser', 0.5 ], [ 'unprivileged', 0.3 ], [ 'granted', 0.2 ])
  : ([ 'superuser', 0.6 ], [ 'unprivileged', 0.4 ]);
my %share = map { $_->[0] => $_->[1] * $fuzz_seconds } @phases;

# Phase 1: the superuser, two sessions at once, the worker running.
$node->safe_psql($db, $replenish);
run_phase(name => 'superuser', user => $superuser,
	seconds => $share{superuser}, jobs => 2, fixture => 1, superuser => 1, prepared => 3);

# Phase 2: a role with LOGIN and nothing else, the worker off.  Nothing of
# tx_message may change.
SKIP:
{
	skip 'the server crashed', 3 if $crashed;
	pools(1);
	worker_enabled(0);
	# the worker's pending work is done now, so that nothing but the calls
	# of the phase could change a row
	$node->safe_psql($db, 'SELECT tx_run_maintenance()') for 1 .. 2;
	settle();
	if ($node->safe_psql($db, q{SELECT to_regclass('tx_message.grants') IS NOT NULL}) eq 't')
	{
		is($node->safe_psql($db, q{SELECT count(*) FROM tx_message.grants
			WHERE grantee IN ('fuzz_nopriv', 'public')}), '0', 'the unprivileged role holds no grant');
	}
	my $only_config = sub {
		# without tx_message.enabled the worker keeps running: compare only
		# the tables it does not write
		my ($name) = @_;
		return $has_enabled || $name =~ /^(topics|subscriptions|topic_grants|consumer_groups)$/
		  ? 'true' : undef;
	};
	my $before = table_digests($only_config);
	run_phase(name => 'unprivileged', user => 'fuzz_nopriv', seconds => $share{unprivileged},
		jobs => 1, fixture => 0, superuser => 0, prepared => 3);
	skip 'the server crashed', 2 if $crashed;
	compare_digests($before, table_digests($only_config),
		'the unprivileged role changed no row of the tables of tx_message');
	my @effective = grep { $_ ne 'samples' && ($effects{unprivileged}{$_}{effect} // 0) > 0 }
	  sort keys %{ $effects{unprivileged} // {} };
	ok(!@effective, 'no call of a writing function by the unprivileged role reported an effect')
	  or diag(map { "  $_: $effects{unprivileged}{$_}{effect} calls\n" } @effective),
	  diag(map { "  e.g. $_\n" } grep { defined } @{ $effects{unprivileged}{samples} // [] }[ 0 .. 9 ]);
	diag("unprivileged calls that succeeded without an effect (allowed): "
		  . join(', ', map { "$_ $effects{unprivileged}{$_}{'no effect'}" }
			  grep { $_ ne 'samples' && $effects{unprivileged}{$_}{'no effect'} }
			  sort keys %{ $effects{unprivileged} // {} }));
}

# Phase 3: a role granted privileges on two topics (send, receive and
# monitor on fz-g1; every privilege, admin included, on fz-g2, which it may
# thus drop) changes nothing of any other topic.
if ($has_grant && !$crashed)
{
	settle();
	my %grants = ('fz-g1' => [qw(send receive monitor)], 'fz-g2' => [qw(all monitor)]);
	my @granted = sort keys %grants;
	my $granted_sql = 'ARRAY[' . join(', ', map { "'$_'" } @granted) . ']';
	for my $topic (@granted)
	{
		$node->safe_psql($db, "SELECT tx_create_topic('$topic', if_not_exists => true)");
		$node->safe_psql($db, "SELECT tx_grant('$topic', 'fuzz_granted', '$_')") for @{ $grants{$topic} };
	}
	note('granted: ' . $node->safe_psql($db, q{SELECT string_agg(topic || ' ' || privilege, ', ')
		FROM tx_message.grants WHERE grantee = 'fuzz_granted'}));
	# every id sent from now on is above this one
	my $hwm = $node->safe_psql($db, q{SELECT (pg_current_xact_id()::text::bigint) << 20});
	note("ids of messages sent from now on are at least $hwm");
	# (the role may drop fz-g2: its rows keep these ids)
	my $granted_ids = $node->safe_psql($db,
		"SELECT array_agg(topic_id) FROM tx_message.topics WHERE topic = ANY ($granted_sql)");
	my $others = sub {
		my ($name, $cols) = @_;
		my $other = $cols->{topic} ? "(topic IS NULL OR topic <> ALL ($granted_sql))"
		  : $cols->{topic_id} ? "(topic_id IS NULL OR topic_id <> ALL ('$granted_ids'::int[]))"
		  : undef;
		return undef unless defined $other;
		# the log, delayed and retry copies may be moved by receivers'
		# ticks: only new messages of the other topics count there
		my $id = $cols->{pos} ? 'coalesce(msg_id, pos)' : $cols->{msg_id} ? 'msg_id' : undef;
		return $name =~ /^(topics|subscriptions|topic_grants|dead_letters|dead_letters_data|half_messages)$/
		  ? $other : defined $id ? "$other AND $id >= $hwm" : undef;
	};
	my $before = table_digests($others);
	run_phase(name => 'granted', user => 'fuzz_granted', seconds => $share{granted},
		jobs => 1, fixture => 0, superuser => 0, prepared => 2, focus => \@granted);
	compare_digests($before, table_digests($others),
		"the role granted privileges on @granted changed nothing of any other topic") unless $crashed;
}
elsif (!$has_grant)
{
	note('tx_grant does not exist: no phase with a granted role');
}

worker_enabled(1);

# The outcome.
for my $phase (map { $_->[0] } @phases)
{
	next unless exists $calls{$phase};
	diag(sprintf("%s: %d calls in %d batches; SQLSTATEs: %s", $phase, $calls{$phase},
		$batches{$phase} // 0,
		join(', ', map { "$_ $hist{$phase}{$_}" }
			sort { $hist{$phase}{$b} <=> $hist{$phase}{$a} } keys %{ $hist{$phase} })));
	diag(sprintf("%s: batch-script statements (prepared rounds, timeouts): %s", $phase,
		join(', ', map { "$_ $script_hist{$phase}{$_}" } sort keys %{ $script_hist{$phase} })))
	  if $script_hist{$phase};
	for my $fn (sort keys %{ $fn_hist{$phase} })
	{
		my $h = $fn_hist{$phase}{$fn};
		note(sprintf("  %s %s: %d calls: %s", $phase, $fn, sum0(values %$h),
			join(', ', map { "$_ $h->{$_}" } sort { $h->{$b} <=> $h->{$a} } keys %$h)));
	}
	cmp_ok($calls{$phase}, '>', 0, "the $phase phase made calls");
}
diag(sprintf('fuzzing took %.1f s', time() - $t0));

# the same failure of the same function once, with how often and a call
my (%bad_kinds, @bad_order);
for my $e (@bad)
{
	my $key = "$e->{fn}: $e->{state} $e->{msg}";
	push @bad_order, $key unless $bad_kinds{$key}++;
	$bad_kinds{"$key\0first"} //= $e;
}
is(scalar(@bad), 0, 'no call failed with a SQLSTATE of class XX or 58')
  or diag(map {
	my $e = $bad_kinds{"$_\0first"};
	"  $_ ($bad_kinds{$_} times; first in $e->{phase} batch " . ($e->{batch} // '-')
	  . ', seed ' . ($e->{seed} // '-') . ")\n    reproduce: $e->{call};\n"
  } @bad_order[ 0 .. min($#bad_order, 19) ]);
is(scalar(@lost), 0, 'no fuzzing session was lost') or diag(map { "  $_\n" } @lost);

my ($ret, $now) = $node->psql($db, 'SELECT pg_postmaster_start_time()');
is($now, $start_time, 'the server never restarted');
my $log = slurp_file($node->logfile);
my @crash_lines = grep { /terminated by signal|server process .* was terminated|PANIC:|TRAP:/ } split /\n/, $log;
is(scalar(@crash_lines), 0, 'the server log shows no crash') or diag(map { "  $_\n" } @crash_lines);
my @internal = grep { /(?:ERROR|FATAL|PANIC|WARNING):\s+(?:XX|58)[0-9A-Z]{3}:/ } split /\n/, $log;
is(scalar(@internal), 0, 'no process logged an error of class XX or 58')
  or diag(map { "  $_\n" } @internal[ 0 .. min($#internal, 19) ]);

my @left = split /\n/, $node->safe_psql($db, 'SELECT gid FROM pg_prepared_xacts');
$node->safe_psql($db, "ROLLBACK PREPARED '$_'") for @left;
$node->stop;
done_testing();
