# The example consumers of examples/clients, each run against a real
# cluster: Python (psycopg 3), C (libpq), shell (psql) and Node.js
# (node-postgres, installed from npm).  Each group gets 60 messages of
# which 5 fail every time: each client must record the 55 others exactly
# once, nack the 5 until they are dead letters, and then stop cleanly on
# SIGTERM (exit status 0, nothing lost of its last batch).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use File::Copy;
use IPC::Run ();
use Time::HiRes qw(usleep time);

my $clients = "$FindBin::Bin/../examples/clients";
my $node = PostgreSQL::Test::Cluster->new('clients');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tx_message'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	CREATE TABLE client_effects (client text NOT NULL, msg_id bigint NOT NULL, payload jsonb NOT NULL);
	SELECT tx_create_topic('jobs');
});

my $work = PostgreSQL::Test::Utils::tempdir;
my %command = (
	python => [ '/usr/bin/python3', "$clients/consumer.py" ],
	shell => [ 'bash', "$clients/consumer.sh" ],
);
system('cc', '-Wall', '-Wextra', '-Werror', '-o', "$work/consumer", "$clients/consumer.c",
	'-I' . `pg_config --includedir` =~ s/\s+$//r, '-lpq') == 0
  or BAIL_OUT('the C consumer does not build');
$command{c} = [ "$work/consumer" ];
my $node_ok = system("cd '$work' && npm install --silent --no-audit --no-fund pg >npm.log 2>&1") == 0;
if ($node_ok)
{
	copy("$clients/consumer.mjs", "$work/consumer.mjs") or die $!;
	$command{node} = [ 'node', "$work/consumer.mjs" ];
}

my %env = (PGHOST => $node->host, PGPORT => $node->port, PGDATABASE => 'postgres', PGUSER => scalar getpwuid($<));
for my $client (qw(python c shell node))
{
  SKIP:
	{
		skip 'npm install pg failed: ' . slurp_file("$work/npm.log"), 5 if $client eq 'node' && !$node_ok;
		my $group = "g_$client";
		$node->safe_psql('postgres', qq{
			SELECT tx_subscribe('jobs', '$group', max_retries => 1, backoff => '{100 ms}');
			SELECT count(tx_send('jobs', jsonb_build_object('i', i, 'fail', i % 12 = 0)))
			  FROM generate_series(1, 60) i});
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start([ @{ $command{$client} }, $group ], '<', \undef, '>', \$out, '2>', \$err,
			init => sub { $ENV{$_} = $env{$_} for keys %env; });
		my $q = qq{SELECT (SELECT count(*) FROM client_effects WHERE client = '$client') || ' '
			|| (SELECT count(DISTINCT msg_id) FROM client_effects WHERE client = '$client') || ' '
			|| (SELECT count(*) FROM tx_message.dead_letters WHERE consumer_group = '$group')};
		my $state;
		my $deadline = time() + 60;
		while (time() < $deadline)
		{
			$state = $node->safe_psql('postgres', $q);
			last if $state eq '55 55 5';
			usleep(200_000);
		}
		is($state, '55 55 5', "$client: 55 messages done once each, the 5 failing ones dead-lettered");
		is($node->safe_psql('postgres', qq{SELECT string_agg(DISTINCT last_error, ', ')
			FROM tx_message.dead_letters WHERE consumer_group = '$group'}),
			'the payload says fail', "$client: the nacks carry the error");
		# a stop while it waits in tx_receive
		$h->signal('TERM');
		my $t0 = time();
		while ($h->pumpable && time() - $t0 < 15)
		{
			$h->pump_nb;
			usleep(100_000);
		}
		my $stopped = !$h->pumpable;
		ok($stopped, "$client: stops on SIGTERM");
		$stopped ? $h->finish : $h->kill_kill;
		is($h->result(0), 0, "$client: exit status 0") or diag("stdout: $out\nstderr: $err");
		like($out, qr/stopped/, "$client: says it stopped");
	}
}

$node->stop;
done_testing();
