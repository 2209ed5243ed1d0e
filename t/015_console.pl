# The web console (console/) in a real browser: Debian's chromium, driven by
# puppeteer-core from console/test/browser.mjs.  A cluster with a topic
# whose handler dead-letters a message, a pull group with a backlog, a half
# message, and a topic that a second role may monitor but not receive
# from.  The browser logs in as the superuser, reads the overview, opens
# every page, redrives the dead letter; then logs in as the other role.
# Here: what the pages showed is checked against the database.
use strict;
use warnings;
use FindBin;
use IO::Socket::INET;
use IPC::Run;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('console');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tx_message'\nlisten_addresses = '127.0.0.1'\n");
# the console's connections (TCP) need a password; the test's own (the socket) do not
open my $hba, '>', $node->data_dir . '/pg_hba.conf' or die $!;
print $hba "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
close $hba;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	CREATE TABLE switch (fail boolean NOT NULL);
	INSERT INTO switch VALUES (true);
	CREATE TABLE effects (msg_id bigint NOT NULL, payload jsonb NOT NULL);
	CREATE FUNCTION handle(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF m.payload ? 'fail' AND (SELECT fail FROM public.switch) THEN
			RAISE EXCEPTION 'cannot handle %', m.payload;
		END IF;
		INSERT INTO public.effects VALUES (m.msg_id, m.payload);
	END $$;
	SELECT tx_create_topic('orders');
	SELECT tx_create_topic('orders-dlq');
	SELECT tx_create_topic('secret');
	SELECT tx_subscribe('orders', 'billing', handler => 'handle(tx_message.message)', max_retries => 0,
						dead_letter_topic => 'orders-dlq');
	SELECT tx_subscribe('orders', 'pull');
	SELECT tx_subscribe('secret', 'vault');
	CREATE ROLE console_admin SUPERUSER LOGIN PASSWORD 'admin-secret-1';
	CREATE ROLE viewer LOGIN PASSWORD 'viewer-secret-1';
	SELECT tx_grant('orders', 'viewer', 'receive');
	SELECT tx_grant('orders', 'viewer', 'monitor');
	SELECT tx_grant('secret', 'viewer', 'monitor');
	SELECT count(tx_send('orders', jsonb_build_object('n', i))) FROM generate_series(1, 20) i;
	SELECT tx_send('orders', '{"n": 99, "fail": true}');
	SELECT tx_send('orders', '{"n": 98, "html": "<script>alert(1)</script>"}', key => '<img src=x onerror=alert(2)>');
	SELECT tx_send_half('orders', '{"n": 100}', key => 'half-1');
});
my $secret_id = $node->safe_psql('postgres',
	q{SELECT tx_send('secret', '{"code": "TOP-SECRET-42"}', key => 'vault-key')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM tx_message.dead_letters WHERE consumer_group = 'billing'}),
	'the handler dead-letters the failing message');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 21 FROM effects}), 'and handles the others');
# the fault is fixed: a redrive now succeeds
$node->safe_psql('postgres', 'UPDATE switch SET fail = false');

# the console, from a copy with its npm packages
my $work = PostgreSQL::Test::Utils::tempdir;
system('cp', '-r', "$FindBin::Bin/../console", "$work/console") == 0 or die "cp: $!";
system("rm -rf '$work/console/node_modules'");
is(system("cd '$work/console' && npm ci --no-audit --no-fund --silent >npm.log 2>&1"), 0,
	'npm ci installs the console and puppeteer-core') or diag(slurp_file("$work/console/npm.log"));
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $db = sprintf('postgres://127.0.0.1:%d/postgres', $node->port);
my $console = IPC::Run::start([ 'node', "$work/console/server.mjs", '--db', $db, '--port', $port,
								'--sample-every', '1' ],
	'>', "$work/console.log", '2>&1');
my $up = 0;
for (1 .. 100)
{
	$up = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp') ? 1 : 0;
	last if $up;
	usleep(100_000);
}
ok($up, 'the console listens on 127.0.0.1') or diag(slurp_file("$work/console.log"));
like(slurp_file("$work/console.log"), qr{console for database postgres: http://127\.0\.0\.1:$port/},
	'and says where');

my $shots = "$PostgreSQL::Test::Utils::log_path/console_screenshots";
my %env = (
	CONSOLE_URL => "http://127.0.0.1:$port/", OUT_DIR => $shots,
	ADMIN_USER => 'console_admin', ADMIN_PASSWORD => 'admin-secret-1',
	VIEWER_USER => 'viewer', VIEWER_PASSWORD => 'viewer-secret-1',
	MAIN_TOPIC => 'orders', MAIN_GROUP => 'billing',
	SECRET_TOPIC => 'secret', SECRET_MARKER => 'TOP-SECRET-42', SECRET_ID => $secret_id, SECRET_KEY => 'vault-key',
);
local @ENV{ keys %env } = values %env;
# what the overview will show: nothing changes until the browser acts
my %stats = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql('postgres',
	q{SELECT topic || '/' || consumer_group || '|' || backlog FROM tx_message.stats WHERE consumer_group IS NOT NULL});
my ($out, $err) = ('', '');
my $ran = IPC::Run::run([ 'node', "$work/console/test/browser.mjs" ], '>', \$out, '2>', \$err,
	IPC::Run::timeout(180));
ok($ran, 'the browser test ran in chromium') or diag("stdout: $out\nstderr: $err");
my $r = eval { decode_json($out) } // {};

# the overview shows the backlog of tx_message.stats
my %shown = map { ("$_->{topic}/$_->{group}" => $_->{backlog}) } @{ $r->{backlogs} // [] };
is_deeply(\%shown, \%stats, 'the overview shows each group\'s backlog as tx_message.stats has it');
is(scalar(@{ $r->{topic_message_ids} // [] }), 20, 'the topic page shows a page of 20 recent messages');
is($r->{half_rows}, 1, 'the half-message page shows the half message');
ok(grep({ $_ eq 'pending' || $_ eq 'acked' || $_ eq 'half' } @{ $r->{trace_states} // [] }), 'the message page shows its trace');

# the redrive, clicked in the browser, delivers the message
my $redriven = $r->{redriven} // 'none';
like($r->{redrive_flash} // '', qr/Redriven: 1 dead letter/, 'the redrive is confirmed on the page');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = $redriven"),
	'and the handler got the redriven message');
is($node->safe_psql('postgres', "SELECT count(*) FROM tx_message.dead_letters WHERE msg_id = $redriven"), '0',
	'which is no longer a dead letter');
like($r->{seek_flash} // '', qr/Group pull moved on topic orders: 0 message\(s\) ahead/, 'the seek is confirmed on the page');
# the seek skipped the backlog: only the half message, committed after it, comes
is($node->safe_psql('postgres', q{SELECT string_agg(payload->>'n', ',') FROM tx_receive('pull', 100)}), '100',
	'and the pull group gets nothing sent before it');
like($r->{half_flash} // '', qr/committed/, 'committing the half message is confirmed on the page');
is($node->safe_psql('postgres', q{SELECT state FROM tx_message.messages WHERE key = 'half-1'}), 'committed',
	'and it is committed');
is($r->{forged_without_token}, 403, 'a POST without the CSRF token is refused');
is($r->{forged_other_origin}, 403, 'and one from another origin');

# a role without 'receive' on the secret topic sees none of its payloads
my %viewer = %{ $r->{viewer} // {} };
ok(%viewer && !grep({ $viewer{$_}{secret} } keys %viewer), 'the viewer sees no payload of the secret topic on any page')
  or diag(explain(\%viewer));
ok($viewer{'viewer-main-topic'}{main_payloads}, 'but the payloads of the topic it may receive from');
like($r->{viewer_landing} // '', qr{/$}, 'the viewer logged in');
ok(!$r->{raw_markup}, 'a key and a payload holding markup are shown as text, not markup');
is($r->{wrong_password}, 401, 'a wrong password is refused');
is($r->{empty_password}, 401, 'and so is an empty one');
is($r->{other_host}, 421, 'a request for another host name (DNS rebinding) is refused');

# a console whose connections need no password (trust) lets nobody in
my $port2 = PostgreSQL::Test::Cluster::get_free_port();
my $trusting = IPC::Run::start([ 'node', "$work/console/server.mjs", '--port', $port2, '--db',
								 sprintf('postgres:///postgres?host=%s&port=%d', $node->host, $node->port) ],
	'>', "$work/console2.log", '2>&1');
my $http = HTTP::Tiny->new(max_redirect => 0);
my $form;
for (1 .. 100)
{
	$form = $http->get("http://127.0.0.1:$port2/login");
	last if $form->{status} == 200;
	usleep(100_000);
}
my ($token) = ($form->{content} // '') =~ /name="token" value="([0-9a-f]+)"/;
my ($cookie) = ($form->{headers}{'set-cookie'} // '') =~ /^(txm_login=[0-9a-f]+)/;
my $trust = $http->post_form("http://127.0.0.1:$port2/login",
	{ token => $token // '', user => 'viewer', password => 'anything' }, { headers => { Cookie => $cookie // '' } });
is($trust->{status}, 401, 'a role that trust authentication lets in without a password is refused');
like($trust->{content} // '', qr/without checking a password/, 'saying why');
$trusting->kill_kill;

my @missing = grep { !-s "$shots/$_.png" } qw(overview topic group half message dead-letters dead-letter
	redrive-confirm viewer-overview viewer-topic);
is("@missing", '', "a screenshot of each page in $shots");
unlike(slurp_file("$work/console.log"), qr/password|TOP-SECRET/i, 'the console\'s log holds no password and no payload');

$console->kill_kill;
$node->stop;
done_testing();
