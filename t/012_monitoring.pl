# Monitoring: examples/monitoring/queries.yaml served by Debian's
# prometheus-postgres-exporter against a real cluster, as a role that holds
# only 'monitor' on one topic and pg_monitor: /metrics has each group's
# backlog with the right value, the worker, and nothing of the other topic;
# and the alert rules pass promtool's check and unit tests.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use HTTP::Tiny;
use IPC::Run ();
use Time::HiRes qw(usleep time);

my $exporter = '/usr/bin/prometheus-postgres-exporter';
my $promtool = '/usr/bin/promtool';
my $dir = "$FindBin::Bin/../examples/monitoring";

# the rules first: they need no server
command_ok([ $promtool, 'check', 'rules', "$dir/alerts.yml" ], 'promtool check rules alerts.yml');
command_ok([ 'bash', '-c', "cd '$dir' && '$promtool' test rules alerts_test.yml" ],
	'promtool test rules alerts_test.yml');

my $node = PostgreSQL::Test::Cluster->new('monitoring');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tx_message'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	CREATE ROLE scraper LOGIN IN ROLE pg_monitor;
	SELECT tx_create_topic('orders');
	SELECT tx_create_topic('secret');
	SELECT tx_grant('orders', 'scraper', 'monitor');
	SELECT tx_subscribe('orders', 'billing');
	SELECT tx_subscribe('orders', 'audit');
	SELECT tx_subscribe('secret', 'spies');
	SELECT count(tx_send('orders', jsonb_build_object('n', i))) FROM generate_series(1, 25) i;
	SELECT count(tx_send('secret', '{}')) FROM generate_series(1, 5);
});
# billing finishes 7 of the 25; audit none
$node->safe_psql('postgres', q{SELECT count(tx_ack('billing', msg_id)) FROM tx_receive('billing', 7, wait => '5 s')});
my $deadline = time() + 30;
my $backlog;
while (time() < $deadline)
{
	$backlog = $node->safe_psql('postgres', q{SELECT backlog FROM tx_message.stats WHERE consumer_group = 'billing'});
	last if $backlog eq '18';
	usleep(100_000);
}
is($backlog, '18', 'tx_message.stats: billing has 18 messages left');

# a free port
my $port;
{
	use IO::Socket::INET;
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp');
	$port = $s->sockport;
	close $s;
}
my $dsn = sprintf('postgresql://scraper@:%d/postgres?host=%s&sslmode=disable', $node->port, $node->host);
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ $exporter, "--web.listen-address=127.0.0.1:$port", "--extend.query-path=$dir/queries.yaml",
	  '--disable-default-metrics', '--disable-settings-metrics', '--log.level=warn' ],
	'<', \undef, '>', \$out, '2>', \$err,
	init => sub { $ENV{DATA_SOURCE_NAME} = $dsn; });
END { $h->kill_kill if $h && $h->pumpable; }

my $metrics = '';
$deadline = time() + 30;
while (time() < $deadline)
{
	my $r = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$port/metrics");
	$metrics = $r->{content} if $r->{success};
	last if $metrics =~ /^tx_message_backlog\{/m;
	usleep(200_000);
}
# the exporter adds a label of its own (server)
like($metrics, qr/^tx_message_backlog\{consumer_group="billing",(?:server="[^"]*",)?topic="orders"\} 18$/m,
	'the exporter serves tx_message_backlog{topic="orders",consumer_group="billing"} 18');
like($metrics, qr/^tx_message_backlog\{consumer_group="audit",(?:server="[^"]*",)?topic="orders"\} 25$/m,
	'and 25 for audit');
like($metrics, qr/^tx_message_acked_total\{consumer_group="billing",(?:server="[^"]*",)?topic="orders"\} \d+$/m,
	'the acked total of billing');
like($metrics, qr/^tx_message_topic_sent_total\{(?:server="[^"]*",)?topic="orders"\} 25$/m, 'what the topic holds');
like($metrics, qr/^tx_message_worker_up\{database="postgres"(?:,server="[^"]*")?\} 1$/m, 'the worker is up');
unlike($metrics, qr/secret|spies/, 'nothing of a topic the scraper may not monitor');
unlike($err, qr/level=error/, 'the exporter reported no error') or diag($err);

$h->kill_kill;
$node->stop;
done_testing();
