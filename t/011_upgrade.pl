# Upgrades.  A database installed at 1.0 (from its own script) and filled
# with messages in every state keeps working with the current library, is
# updated with ALTER EXTENSION tx_message UPDATE, and then delivers
# everything it held; and a fresh install of the current version and the
# updated one have the same catalog: the same member objects, table
# definitions, constraints, indexes, functions (bodies, settings,
# privileges), views, policies, triggers and dumped tables.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.naptime = 200
});
$node->start;

my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'tx_message'});
isnt($default, '1.0', "the current version ($default) is not 1.0");

$node->safe_psql('postgres', q{CREATE DATABASE old; CREATE DATABASE fresh});
$node->safe_psql('old', q{CREATE EXTENSION tx_message VERSION '1.0'});
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'tx_message'}),
	'1.0', 'installed at 1.0');

# messages in every state, made by the current library on the 1.0 catalog
$node->safe_psql('old', q{
	CREATE TABLE decided (id bigint PRIMARY KEY);
	CREATE TABLE effects (msg_id bigint, payload jsonb);
	CREATE FUNCTION decide(m tx_message.message) RETURNS text LANGUAGE sql AS $$
		SELECT CASE WHEN EXISTS (SELECT FROM public.decided WHERE id = m.msg_id) THEN 'commit' ELSE 'unknown' END $$;
	CREATE FUNCTION handle(m tx_message.message) RETURNS void LANGUAGE sql AS $$
		INSERT INTO public.effects VALUES (m.msg_id, m.payload) $$;
	SELECT tx_create_topic('orders', check_function => 'decide(tx_message.message)',
		check_after => '1 s', check_interval => '1 s', check_max => 1000);
	SELECT tx_subscribe('orders', 'pull', max_retries => 1, backoff => '{1 s}');
	SELECT tx_subscribe('orders', 'handled', handler => 'handle(tx_message.message)');
	SELECT tx_send('orders', jsonb_build_object('n', i)) FROM generate_series(1, 20) i;
});
my $half = $node->safe_psql('old', q{SELECT tx_send_half('orders', '{"n": "half"}')});
$node->safe_psql('old', q{SELECT tx_send('orders', '{"n": "delayed"}', delay => '3 s')});
# acked, leased (an external consumer that never acks), retrying, dead
$node->safe_psql('old', q{
	SELECT tx_ack('pull', array_agg(msg_id)) FROM tx_receive('pull', 5, wait => '5 s');
});
$node->safe_psql('old', q{SELECT count(*) FROM tx_receive('pull', 5, lease => '2 s')});
$node->safe_psql('old', q{
	SELECT tx_nack('pull', msg_id, 'failed', retry_in => '0') FROM tx_receive('pull', 2);
});
$node->safe_psql('old', q{
	SELECT tx_nack('pull', msg_id, 'failed again') FROM tx_receive('pull', 1, wait => '5 s');
});
my $state_q = q{SELECT (SELECT count(*) FROM tx_message.dead_letters) || ' dead, '
	|| (SELECT count(*) FROM tx_message.retries) || ' retrying, '
	|| (SELECT count(*) FROM tx_message.messages WHERE state = 'half') || ' half, '
	|| (SELECT count(*) FROM tx_message.delayed) || ' delayed'};
my $before = $node->safe_psql('old', $state_q);
like($before, qr/^1 dead, [1-9]\d* retrying, 1 half, 1 delayed$/, "1.0 holds messages in every state ($before)");

# The update makes the log tables again.  Sessions that sent or received
# before it (they know the 1.0 tables) and send or receive while it runs
# wait for it; then the send goes into the new table, and the receive either
# gets the message or fails to be tried again, but never takes it for gone.
$node->safe_psql('old', q{SELECT tx_create_topic('side'); SELECT tx_subscribe('side', 'side_g')});
my $producer = $node->background_psql('old');
my $consumer = $node->background_psql('old');
$consumer->query_safe(q{\set VERBOSITY verbose
\set ON_ERROR_STOP 0});
$consumer->query_safe(q{SELECT count(*) FROM tx_receive('side_g', 10)});
$producer->query_safe(q{SELECT tx_send('side', '{"n": "before the update"}')});
$node->poll_query_until('old', q{SELECT count(*) = 1 FROM tx_message.slices s
	JOIN tx_message.topics t USING (topic_id) WHERE t.topic = 'side'});
my $updater = $node->background_psql('old');
$updater->query_safe(q{BEGIN; ALTER EXTENSION tx_message UPDATE});
$producer->query_until(qr/sending/, qq{\\echo sending\nSELECT tx_send('side', '{"n": "during the update"}') > 0 AS sent;\n});
$consumer->query_until(qr/receiving/, qq{\\echo receiving\nSELECT coalesce(string_agg(payload->>'n', ', '), 'none') FROM (SELECT payload, tx_ack('side_g', ARRAY[msg_id]) FROM tx_receive('side_g', 10)) r;\n});
ok($node->poll_query_until('old', q{
	SELECT count(*) = 2 FROM pg_stat_activity
	 WHERE wait_event_type = 'Lock' AND (query LIKE '%during the update%' OR query LIKE '%side_g%')}),
	'a send and a receive wait for the update');
$updater->query_safe('COMMIT');
$updater->quit;
my ($sent, $failed) = $producer->query(q{SELECT 'then'});
is("$failed: $sent", "0: t\nthen", 'the send succeeds when it has committed');
$producer->quit;
my ($got, $got_failed) = $consumer->query(q{SELECT 'then'});
my $consumer_err = $consumer->{stderr};
$consumer->quit;
# it may also have got the one sent during the update, if that was ticked first
like("$got_failed: $got | $consumer_err",
	qr/^(0: before the update(, during the update)?\nthen |1: then \| .*40001)/s,
	'the receive gets the message sent before, or fails with 40001');
my @side = $got_failed ? () : split(/, /, (split /\n/, $got)[0]);
my $side_deadline = time() + 30;
while (time() < $side_deadline && @side < 2)
{
	push @side, grep { $_ ne '' } split /\n/, $node->safe_psql('old', q{
		SELECT payload->>'n' FROM (SELECT payload, tx_ack('side_g', ARRAY[msg_id])
		  FROM tx_receive('side_g', 10, wait => '1 s')) r});
}
is(join(', ', sort @side), 'before the update, during the update',
	'the group gets both messages once: none was taken for gone');
is($node->safe_psql('old', q{
	SELECT string_agg(payload->>'n', ', ' ORDER BY msg_id) FROM tx_message.messages WHERE topic = 'side'}),
	'before the update, during the update', 'both messages are in the log');
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'tx_message'}),
	$default, "updated to $default");

# everything delivers after the update
$node->safe_psql('old', qq{INSERT INTO decided VALUES ($half)});
$node->safe_psql('old', q{SELECT tx_redrive('pull')});
my $received = 0;
my $deadline = time() + 60;
while (time() < $deadline && $received < 17)
{
	$received += $node->safe_psql('old', q{
		WITH r AS (SELECT * FROM tx_receive('pull', 100, wait => '1 s'))
		SELECT count(tx_ack('pull', msg_id)) FROM r});
}
# 20 sent: 5 acked, 5 leased (their lease expires), 1 retrying, 1 dead
# (redriven), 8 never received; and the half and the delayed message
is($received, 17, 'the pull group gets every message it had not acked before the update');
$deadline = time() + 60;
my $handled;
while (time() < $deadline)
{
	$handled = $node->safe_psql('old', q{SELECT count(*) || ' ' || count(DISTINCT msg_id) FROM effects});
	last if $handled eq '22 22';
	usleep(200_000);
}
is($handled, '22 22', 'the handler ran once on each of the 20 messages, the half and the delayed one');
is($node->safe_psql('old', q{SELECT tx_send('orders', '{}') > max(msg_id) FROM effects}), 't',
	'and sending goes on');
ok($node->poll_query_until('old', q{SELECT count(*) > 0 FROM tx_message.slices WHERE packed IS NOT NULL}),
	'the ticker packs the positions of what is sent after the update');
is($node->safe_psql('old', q{
	SELECT count(*) FILTER (WHERE positions IS NOT NULL AND packed IS NULL) > 0
	       AND count(*) FILTER (WHERE positions IS NULL AND packed IS NOT NULL) > 0
	  FROM tx_message.slices}), 't',
	'slices made before the update keep their positions; those made after are packed');
is($node->safe_psql('old', q{SELECT count(*) FROM tx_stats() WHERE topic = 'orders'}), '3',
	'what 1.1 adds works in the updated database (tx_stats: the topic and its two groups)');

is($node->safe_psql('old', q{
	SELECT tx_send('orders', '{}', dedup_key => 'k') = tx_send('orders', '{}', dedup_key => 'k')}), 't',
	'a dedup key works in the updated database');
is($node->safe_psql('old', q{SELECT tx_seek('pull', 'orders', now() - interval '1 hour') >= 0}), 't',
	'and so does tx_seek, over the slices made before the update too');

# Functions that gained arguments are made again: what was granted and
# revoked on the old ones holds for the new ones.
$node->safe_psql('postgres', q{CREATE DATABASE acl; CREATE ROLE upg_producer; CREATE ROLE upg_nobody});
$node->safe_psql('acl', q{
	CREATE EXTENSION tx_message VERSION '1.0';
	REVOKE EXECUTE ON FUNCTION tx_send(text, jsonb, text, text[], jsonb, interval) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION tx_send(text, jsonb, text, text[], jsonb, interval) TO upg_producer;
	GRANT EXECUTE ON FUNCTION tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean)
		TO upg_producer WITH GRANT OPTION;
	REVOKE EXECUTE ON FUNCTION tx_ack(text, bigint[]) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION tx_ack(text, bigint[]) TO upg_producer;
	ALTER EXTENSION tx_message UPDATE;
});
is($node->safe_psql('acl', q{
	SELECT has_function_privilege('upg_producer', 'tx_send(text, jsonb, text, text[], jsonb, interval, text)', 'EXECUTE')
	    || ' ' || has_function_privilege('upg_nobody', 'tx_send(text, jsonb, text, text[], jsonb, interval, text)', 'EXECUTE')
	    || ' ' || has_function_privilege('upg_producer',
	              'tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text)',
	              'EXECUTE WITH GRANT OPTION')
	    || ' ' || has_function_privilege('upg_nobody',
	              'tx_create_topic(text, interval, regprocedure, interval, interval, integer, boolean, text, text)', 'EXECUTE')
	    || ' ' || has_function_privilege('upg_nobody', 'tx_subscribe(text, text, text[], regprocedure, integer, interval[], interval, boolean, text, text, jsonpath, integer)', 'EXECUTE')}),
	'true false true false true',
	'grants and revokes on functions made again by the update are carried over');
# tx_ack(group), which the update adds, is for whoever may run tx_ack(group, ids)
is($node->safe_psql('acl', q{
	SELECT has_function_privilege('upg_producer', 'tx_ack(text)', 'EXECUTE')
	    || ' ' || has_function_privilege('upg_nobody', 'tx_ack(text)', 'EXECUTE')}),
	'true false', 'tx_ack(group) gets the privileges of tx_ack(group, ids)');
# and they are the database's, not the extension's: pg_dump carries them
my ($dump, $dump_err) = run_command([ $node->installed_command('pg_dump'), '-s', '-d', $node->connstr('acl') ]);
like($dump, qr/REVOKE ALL ON FUNCTION public\.tx_ack\(consumer_group text\) FROM PUBLIC;/,
	'pg_dump dumps the revoke given to tx_ack(group)');
like($dump, qr/REVOKE ALL ON FUNCTION public\.tx_send\(.*?dedup_key text\) FROM PUBLIC;/,
	'pg_dump dumps the revoke carried over');
like($dump, qr/GRANT ALL ON FUNCTION public\.tx_send\(.*?dedup_key text\) TO upg_producer;/,
	'and the grant');
like($dump, qr/GRANT ALL ON FUNCTION public\.tx_create_topic\(.*?\) TO upg_producer WITH GRANT OPTION;/,
	'and the grant on a function the extension keeps from PUBLIC');
unlike($dump, qr/GRANT ALL ON FUNCTION public\.tx_subscribe/, 'and nothing for a function whose privileges were not changed');
is($node->safe_psql('acl', q{SELECT count(*) FROM pg_proc WHERE proname LIKE '\_old\_%' OR proname = '_carry_privileges'}),
	'0', 'and nothing of the update\'s scaffolding is left');

# the same catalog as a fresh install
$node->safe_psql('fresh', q{CREATE EXTENSION tx_message});
my @catalog_queries = (
	# member objects
	q{SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
	   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tx_message') ORDER BY 1},
	# columns
	q{SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	         a.attidentity, a.attstorage, a.attcollation::regcollation, pg_get_expr(d.adbin, d.adrelid)
	    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	   WHERE c.relnamespace = 'tx_message'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
	   ORDER BY 1, 2},
	# relations: kind, options, access method, privileges, row security
	q{SELECT relname, relkind, reloptions, relam::regclass, relacl, relrowsecurity
	    FROM pg_class WHERE relnamespace = 'tx_message'::regnamespace ORDER BY 1},
	# constraints and indexes
	q{SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint
	   WHERE connamespace = 'tx_message'::regnamespace ORDER BY 1, 2},
	q{SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
	   WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'tx_message'::regnamespace) ORDER BY 1},
	# functions and procedures, in both schemas
	q{SELECT p.oid::regprocedure, p.prokind, p.provolatile, p.proparallel, p.prosecdef, p.proconfig,
	         p.proacl, p.prosrc, pg_get_function_result(p.oid), d.description
	    FROM pg_proc p LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
	   WHERE p.oid IN (SELECT objid FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
	                   AND deptype = 'e' AND classid = 'pg_proc'::regclass
	                   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tx_message'))
	   ORDER BY p.oid::regprocedure::text},
	# views, policies, triggers
	q{SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c
	   WHERE c.relnamespace = 'tx_message'::regnamespace AND c.relkind = 'v' ORDER BY 1},
	q{SELECT polrelid::regclass, polname, polcmd, pg_get_expr(polqual, polrelid) FROM pg_policy ORDER BY 1, 2},
	q{SELECT tgrelid::regclass, tgname, pg_get_triggerdef(oid) FROM pg_trigger
	   WHERE tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'tx_message'::regnamespace)
	   ORDER BY 1, 2},
	# what pg_dump carries, and the schema's privileges
	q{SELECT extconfig::regclass[], extcondition FROM pg_extension WHERE extname = 'tx_message'},
	q{SELECT nspacl FROM pg_namespace WHERE nspname = 'tx_message'});
for my $q (@catalog_queries)
{
	my $fresh = $node->safe_psql('fresh', $q);
	my $updated = $node->safe_psql('old', $q);
	my ($what) = $q =~ /^\s*SELECT\s+(\S+)/;
	is($updated, $fresh, "an updated database and a fresh one agree on the catalog ($what ...)");
}

# An ordered group in a database still at 1.0, which has no index on the
# keys of its retries: the current library holds back the messages whose
# key waits in retries there too, and lets the other keys flow.
$node->safe_psql('postgres', 'CREATE DATABASE ord10');
$node->safe_psql('ord10', q{
	CREATE EXTENSION tx_message VERSION '1.0';
	SELECT tx_create_topic('o');
	SELECT tx_subscribe('o', 'og', ordered => true);
	SELECT count(*) FROM tx_send_batch('o', array_fill('{}'::jsonb, ARRAY[3]), ARRAY['a', 'b', 'a']);
});
is($node->safe_psql('ord10', q{
	SELECT string_agg(CASE WHEN key = 'a' THEN tx_nack('og', msg_id, 'failed', retry_in => '1 hour')
						   ELSE tx_ack('og', msg_id)::text END, ',' ORDER BY msg_id)
	  FROM tx_receive('og', 10, wait => '5 s')}), 'retry,true',
	'at 1.0, an ordered group gets one message per key');
$node->safe_psql('ord10', q{
	SELECT count(*) FROM tx_send_batch('o', array_fill('{}'::jsonb, ARRAY[2]), ARRAY['c', 'a'])});
is($node->safe_psql('ord10', q{
	SELECT string_agg(key, ',' ORDER BY msg_id) FROM tx_receive('og', 10, wait => '5 s')}), 'c',
	'at 1.0, the keys waiting in retries are held back, the others flow');

# A dump taken at 1.0 restores into the current version (pg_dump names no
# version): its slices keep their positions as an array, the ticker packs
# those it makes after, and the group gets the messages of both, once.
$node->safe_psql('postgres', 'CREATE DATABASE dump10');
$node->safe_psql('dump10', q{
	CREATE EXTENSION tx_message VERSION '1.0';
	SELECT tx_create_topic('t10');
	SELECT tx_subscribe('t10', 'g10');
	SELECT count(*) FROM tx_send_batch('t10',
		(SELECT array_agg(jsonb_build_object('n', i)) FROM generate_series(1, 300) i));
});
ok($node->poll_query_until('dump10', q{SELECT sum(cardinality(positions)) = 300 FROM tx_message.slices}),
	'a database at 1.0 with 300 messages in its stream');
$node->safe_psql('dump10', q{SELECT tx_ack('g10', array_agg(msg_id)) FROM tx_receive('g10', 100)});
my $dumpfile = $node->basedir . '/dump10.dump';
$node->command_ok([ $node->installed_command('pg_dump'), '-Fc', '-f', $dumpfile, '-d', $node->connstr('dump10') ],
	'pg_dump of the database at 1.0');
$node->safe_psql('postgres', 'CREATE DATABASE restored10');
$node->command_ok([ $node->installed_command('pg_restore'), '--exit-on-error',
	'-d', $node->connstr('restored10'), $dumpfile ], 'it restores into the current version');
is($node->safe_psql('restored10', q{
	SELECT extversion || ', ' || (SELECT count(*) FILTER (WHERE positions IS NOT NULL AND packed IS NULL)
	                                     || ' of ' || count(*) FROM tx_message.slices)
	  FROM pg_extension WHERE extname = 'tx_message'}),
	"$default, 2 of 2", 'the restored slices keep their positions as an array');
$node->safe_psql('restored10', q{
	SELECT count(*) FROM tx_send_batch('t10',
		(SELECT array_agg(jsonb_build_object('n', i)) FROM generate_series(301, 305) i))});
ok($node->poll_query_until('restored10', q{SELECT count(*) = 1 FROM tx_message.slices WHERE packed IS NOT NULL}),
	'the ticker packs the positions of what is sent after the restore');
my @got10;
$deadline = time() + 60;
while (time() < $deadline && @got10 < 205)
{
	push @got10, grep { $_ ne '' } split /\n/, $node->safe_psql('restored10', q{
		SELECT payload->>'n' FROM (SELECT payload, tx_ack('g10', ARRAY[msg_id])
		  FROM tx_receive('g10', 100, wait => '1 s')) r});
}
is(join(',', @got10), join(',', 101 .. 305),
	'the group gets the 200 messages it had not acked and the 5 sent after, once each, in order');

$node->stop;
done_testing();
