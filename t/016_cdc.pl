# Change data capture: with tx_cdc_enable(), every message that enters the
# log is also a transactional logical decoding message (prefix
# "tx_message").  Read here with pg_recvlogical and Debian's wal2json
# (format 2) while producers run: a late committer, concurrent pgbench
# producers, a batch, a half message committed, a delayed message released,
# an aborted transaction and a rolled-back savepoint.  Every message the
# log holds appears exactly once, in commit order, with its topic name;
# nothing of what rolled back appears.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cdc');
$node->init(allows_streaming => 'logical');
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tx_message'\nmax_connections = 40\n");
$node->start;
# builds that restrict output plugins (output_plugin_libraries) must name wal2json
if ($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'}))
{
	$node->safe_psql('postgres', q{ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json});
	$node->reload;
}
$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('orders');
	SELECT tx_create_topic('payments');
});

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT tx_send(\'orders\', \'{"before": true}\')');
is($ret, 0, 'a message sent before CDC is on');
$node->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('cdc', 'wal2json')});
$node->safe_psql('postgres', 'SELECT tx_cdc_enable()');
is($node->safe_psql('postgres', 'SELECT cdc FROM tx_message.instance'), 't', 'tx_cdc_enable() switches it on');

# a transaction that sends first and commits last
my $late = $node->background_psql('postgres');
$late->query_safe(q{BEGIN});
my $late_id = $late->query_safe(q{SELECT tx_send('orders', '{"late": true}', key => 'late')});

# concurrent producers, each message recorded with its transaction
$node->safe_psql('postgres', 'CREATE TABLE sent (msg_id bigint PRIMARY KEY)');
my $script = $node->basedir . '/produce.sql';
open my $fh, '>', $script or die $!;
print $fh q{\set n random(1, 1000000)
BEGIN;
INSERT INTO sent SELECT tx_send(CASE WHEN :n % 2 = 0 THEN 'orders' ELSE 'payments' END,
                                jsonb_build_object('client', :client_id, 'n', :n), key => 'k' || :n);
COMMIT;
};
close $fh;
$node->command_ok([ 'pgbench', '-n', '-c', '4', '-t', '100', '-f', $script, $node->connstr('postgres') ],
	'four producers send 400 messages');
my $before_late = $node->safe_psql('postgres', 'SELECT count(*) FROM sent');

$late->query_safe(q{COMMIT});
$late->quit;

# a batch, a half message committed, a delayed message, what rolls back
$node->safe_psql('postgres', q{SELECT count(*) FROM tx_send_batch('payments', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[],
	tags => '{batch}', headers => '{"h": "x"}')});
my $half = $node->safe_psql('postgres', q{SELECT tx_send_half('orders', '{"half": true}')});
$node->safe_psql('postgres', "SELECT tx_commit_half($half)");
$node->safe_psql('postgres', q{SELECT tx_send('orders', '{"delayed": true}', delay => '1 s')});
$node->safe_psql('postgres', q{BEGIN; SELECT tx_send('orders', '{"aborted": true}'); ROLLBACK});
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT tx_send('orders', '{"kept": true}');
	SAVEPOINT s;
	SELECT tx_send('orders', '{"rolled_back": true}');
	ROLLBACK TO s;
	COMMIT;
});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM tx_message.delayed}), 'the delayed message is released');
$node->safe_psql('postgres', 'SELECT tx_cdc_disable()');
$node->safe_psql('postgres', q{SELECT tx_send('orders', '{"after": true}')});

# everything the log holds, as the decoder must have seen it
my %stored = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', q{
	SELECT coalesce(msg_id, pos) FROM (SELECT * FROM tx_message.log_0 UNION ALL SELECT * FROM tx_message.log_1
									   UNION ALL SELECT * FROM tx_message.log_2) l
	 WHERE NOT payload ?| ARRAY['before', 'after']});
my $end = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $file = $node->basedir . '/cdc.json';
$node->command_ok([ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 'cdc', '--start', '--no-loop',
					'-E', $end, '-f', $file, '-o', 'format-version=2', '-o', 'add-msg-prefixes=tx_message' ],
	'pg_recvlogical reads the slot');

my (@ids, %topic, %payload, $tables);
for my $line (split /\n/, slurp_file($file))
{
	my $rec = decode_json($line);
	if (($rec->{action} // '') eq 'M')
	{
		is($rec->{transactional}, JSON::PP::true, 'a transactional message') if !@ids;
		my $m = decode_json($rec->{content});
		push @ids, $m->{id};
		$topic{ $m->{id} } = $m->{topic};
		$payload{ $m->{id} } = $m->{payload};
	}
	$tables++ if ($rec->{action} // '') =~ /^[IUDT]$/;
}
my %seen;
my @dups = grep { $seen{$_}++ } @ids;
is(scalar(@dups), 0, 'no message appears twice');
is_deeply([ sort keys %seen ], [ sort keys %stored ], 'every message the log holds appears, and nothing else')
  or diag(scalar(@ids) . ' decoded, ' . scalar(keys %stored) . ' stored');
ok(!grep({ exists $payload{$_}{aborted} || exists $payload{$_}{rolled_back} } @ids),
	'nothing of an aborted transaction or a rolled-back savepoint');
ok(!grep({ exists $payload{$_}{before} || exists $payload{$_}{after} } @ids), 'nothing from before it was on or after it was off');

# commit order: the late committer after every message committed before it
my %index = map { $ids[$_] => $_ } 0 .. $#ids;
my @committed_before = split /\n/, $node->safe_psql('postgres', "SELECT msg_id FROM sent ORDER BY msg_id LIMIT $before_late");
ok(defined $index{$late_id} && !grep({ $index{$_} > $index{$late_id} } @committed_before),
	'the late committer comes after the 400 messages that committed before it');
is($topic{$late_id}, 'orders', 'with its topic name');
is($topic{$half}, 'orders', 'the half message, once committed, with its own id');
is(scalar(grep { ($topic{$_} // '') eq 'payments' && exists $payload{$_}{b} } @ids), 3, 'the batch, one message each');

my $content = (grep { ($payload{$_}{b} // 0) == 1 } @ids)[0];
my $raw = (grep { /"b": 1/ || /\\"b\\": 1/ } split /\n/, slurp_file($file))[0] // '';
like($raw, qr/\\"tags\\": \[\\"batch\\"\]/, 'tags and headers travel') if $content;
like($raw, qr/\\"sent_at\\": \\"\d{4}-\d\d-\d\dT/, 'and sent_at, as ISO 8601');

$node->stop;
done_testing();
