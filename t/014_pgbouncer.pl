# PgBouncer in transaction mode (Debian's pgbouncer) in front of a real
# cluster, with two server connections for many clients: sending, the
# consumer loop that receives and acks in one transaction, a receive that
# waits (tx_receive(wait => ...)) while another client sends, and an
# external consumer whose ack comes in a later transaction (which may run
# on another server connection) all work through it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use IO::Socket::INET;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('pgbouncer');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tx_message'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	CREATE TABLE effects (msg_id bigint PRIMARY KEY, payload jsonb);
	SELECT tx_create_topic('jobs');
	SELECT tx_subscribe('jobs', 'loop');
	SELECT tx_subscribe('jobs', 'waiter');
	SELECT tx_subscribe('jobs', 'external');
});

my $dir = PostgreSQL::Test::Utils::tempdir;
my $port = do
{
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp');
	my $p = $s->sockport;
	close $s;
	$p;
};
my $user = getpwuid($<);
append_to_file("$dir/users.txt", qq{"$user" ""\n});
append_to_file("$dir/pgbouncer.ini", sprintf(<<'EOF', $node->host, $node->port, $port, $dir, $dir));
[databases]
app = host=%s port=%d dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
logfile = %s/pgbouncer.log
EOF
my ($out, $err) = ('', '');
my $bouncer = IPC::Run::start([ '/usr/sbin/pgbouncer', "$dir/pgbouncer.ini" ], '<', \undef, '>', \$out, '2>', \$err);
END { $bouncer->kill_kill if $bouncer && $bouncer->pumpable; }

my $conn = "host=127.0.0.1 port=$port dbname=app user=$user";
my $psql = $node->installed_command('psql');
sub via_bouncer
{
	my ($sql) = @_;
	my ($o, $e) = ('', '');
	IPC::Run::run([ $psql, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-c', $sql ], '>', \$o, '2>', \$e)
	  or die "through pgbouncer: $e";
	chomp $o;
	return $o;
}
my $deadline = time() + 30;
usleep(100_000) until time() > $deadline || eval { via_bouncer('SELECT 1') eq '1' };
is(via_bouncer('SELECT 1'), '1', 'pgbouncer is up, in transaction mode');

is(via_bouncer(q{BEGIN; SELECT count(tx_send('jobs', jsonb_build_object('n', i))) FROM generate_series(1, 30) i; COMMIT;}),
	'30', 'tx_send in a transaction through pgbouncer');

# the consumer loop: receive, effects and ack in one transaction
my $done = 0;
$deadline = time() + 30;
while ($done < 30 && time() < $deadline)
{
	$done += via_bouncer(q{BEGIN;
		WITH r AS (SELECT * FROM tx_receive('loop', 7, wait => '2 s')),
		     e AS (INSERT INTO effects SELECT msg_id, payload FROM r RETURNING msg_id)
		SELECT tx_ack('loop', coalesce((SELECT array_agg(msg_id) FROM e), '{}'));
		COMMIT;});
}
is($done, 30, 'the one-transaction consumer loop finished every message through pgbouncer');
is($node->safe_psql('postgres', 'SELECT count(*) FROM effects'), '30', 'each effect once');

# a waiting receive holds one of the two server connections; a sender uses the other
via_bouncer(q{SELECT count(*) FROM tx_receive('waiter', 100)});
my ($wout, $werr) = ('', '');
my $t0 = time();
my $waiter = IPC::Run::start([ $psql, '-XAtq', '-d', $conn, '-c',
	q{SELECT payload->>'n' FROM tx_receive('waiter', 1, wait => '20 s')} ], '>', \$wout, '2>', \$werr);
usleep(500_000);
via_bouncer(q{SELECT tx_send('jobs', '{"n": "woken"}')});
$waiter->finish;
is($wout, "woken\n", 'a receive waiting through pgbouncer gets a message another client sends');
cmp_ok(time() - $t0, '<', 10, 'well before its wait ran out');

# an external consumer: the lease in one transaction, the ack in a later one
my $ids = via_bouncer(q{SELECT array_agg(msg_id) FROM tx_receive('external', 100)});
is(via_bouncer(qq{SELECT tx_ack('external', '$ids'::bigint[])}), '31',
	'an ack in a later transaction (any server connection) finishes what was leased');

$bouncer->kill_kill;
$node->stop;
done_testing();
