# Producers across restarts and crashes, with and without
# shared_preload_libraries.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# Wait until a killed postmaster is really gone (see BUILD-NOTES: PID 1 reaps
# orphans late, and a new postmaster refuses to start until then).
sub kill9_and_wait
{
	my ($node) = @_;
	my $pm_pid = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	$node->kill9;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	usleep(100_000) while kill(0, $pm_pid) && time() < $deadline;
	ok(!kill(0, $pm_pid), 'killed postmaster is gone');
}

# Without the preload, the SQL API works and CREATE EXTENSION says so.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
my ($stdout, $stderr);
$plain->psql('postgres', 'CREATE EXTENSION tx_message', stderr => \$stderr);
like($stderr, qr/NOTICE:  tx_message is not loaded through shared_preload_libraries/,
	'CREATE EXTENSION without the preload warns in a NOTICE');
like($stderr, qr/HINT:  Add tx_message to shared_preload_libraries/, 'with a hint');
$plain->safe_psql('postgres', "SELECT tx_create_topic('t'); SELECT tx_send('t', '{\"x\": 1}')");
is($plain->safe_psql('postgres', 'SELECT count(*) FROM tx_message.messages'), '1',
	'tx_send works without the preload');
$plain->stop;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tx_message'");
$node->start;
$node->psql('postgres', 'CREATE EXTENSION tx_message', stderr => \$stderr);
unlike($stderr, qr/NOTICE/, 'no notice when preloaded');
$node->safe_psql('postgres', q{
	SELECT tx_create_topic('orders');
	SELECT tx_send('orders', jsonb_build_object('n', i)) FROM generate_series(1, 10) i;
	SELECT tx_send_half('orders', '{"half": 1}');
});

$node->restart;
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_message.messages WHERE state = 'committed'}),
	'10', 'committed messages survive a restart');

# A crash keeps committed messages and loses the uncommitted ones.
my $bg = $node->background_psql('postgres');
$bg->query_safe(q{BEGIN; SELECT tx_send('orders', '{"in flight": true}')});
$node->safe_psql('postgres', q{SELECT tx_send('orders', '{"n": 11}')});
kill9_and_wait($node);
eval { $bg->quit };
ok($node->start(fail_ok => 1), 'server starts again after kill -9');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_message.messages WHERE state = 'committed'}),
	'11', 'committed messages survive a crash');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tx_message.messages WHERE payload ? 'in flight'}),
	'0', 'the transaction in flight at the crash left nothing');
is($node->safe_psql('postgres', q{SELECT state FROM tx_message.messages WHERE payload ? 'half'}),
	'half', 'an unresolved half message survives a crash');
# message ids stay unique across the crash: the xid counter never goes back
is($node->safe_psql('postgres', q{
	SELECT tx_send('orders', '{"n": 12}') > max(msg_id) FROM tx_message.messages WHERE payload ? 'n'}),
	't', 'ids after the crash are larger than before');

$node->stop;
done_testing();
