# Security against a real server: user code in the executor runs as the
# role that named it, each call with fresh settings (what one handler sets
# never reaches the next, the role's own defaults apply); a handler whose
# role loses 'receive' stops and resumes when granted again, even when the
# revoke comes while its batch is being claimed; pg_dump and restore keep
# the grants.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();

my $node = PostgreSQL::Test::Cluster->new('security');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.handler_batch_size = 10
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	CREATE ROLE evil;
	CREATE ROLE points_team;
	CREATE SCHEMA evil AUTHORIZATION evil;
	-- what each handler call saw, and whether the planted lower() ever ran
	CREATE TABLE seen (handler text, who text, path text, work_mem text, lowered text);
	CREATE TABLE canary (who text);
	GRANT INSERT ON seen, canary TO PUBLIC;
	CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.canary VALUES (current_user);
		RETURN 'captured';
	END $$;
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
	GRANT EXECUTE ON FUNCTION evil.lower(text) TO PUBLIC;
	-- the attacker's handler changes settings for whatever runs next
	CREATE FUNCTION evil_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.seen VALUES ('evil', current_user, current_setting('search_path'),
										current_setting('work_mem'), NULL);
		PERFORM set_config('search_path', 'evil, pg_catalog', false);
		PERFORM set_config('work_mem', '77kB', false);
	END $$;
	-- a superuser's handler that calls lower() unqualified
	CREATE FUNCTION victim_handler(m tx_message.message) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.seen VALUES ('victim', current_user, current_setting('search_path'),
										current_setting('work_mem'), lower('ABC'));
	END $$;
	ALTER ROLE evil SET work_mem = '1MB';
	SELECT tx_create_topic('events');
	SELECT tx_grant('events', 'evil', 'receive');
	SET ROLE evil;
	SELECT tx_subscribe('events', 'a-evil', handler => 'evil_handler(tx_message.message)');
	RESET ROLE;
	SELECT tx_subscribe('events', 'b-victim', handler => 'victim_handler(tx_message.message)');
});

$node->safe_psql('postgres',
	q{SELECT count(*) FROM tx_send_batch('events', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 30)))});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 60 FROM seen}),
	'the executor ran both handlers on every message');
is($node->safe_psql('postgres', q{SELECT count(*) FROM canary}), '0',
	"the attacker's lower() never ran");
is($node->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT format('%s as %s: %s, %s, %s', handler, who, path, work_mem, lowered), '; ')
	    FROM seen}),
	'evil as evil: "$user", public, 1MB, ; victim as postgres: "$user", public, 4MB, abc',
	'each call ran as its own role, from fresh settings with its role defaults');

# Revoking 'receive' stops the handler: its messages wait, nothing is lost.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	SELECT tx_revoke('events', 'evil', 'receive');
	SELECT count(*) FROM tx_send_batch('events', ARRAY(SELECT '{"late": true}'::jsonb FROM generate_series(1, 5)));
});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 35 FROM seen WHERE handler = 'victim'}),
	'the other handler goes on');
ok($node->wait_for_log(qr/handler (public\.)?evil_handler\(tx_message\.message\) of consumer group "a-evil" on topic "events" is stopped/,
	$log_offset), 'the stopped handler is reported in the log');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM seen WHERE handler = 'evil'} ), '30', 'the stopped handler ran no more');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM tx_message.dead_letters WHERE consumer_group = 'a-evil'}), '0',
	'its messages were not dead-lettered');
$node->safe_psql('postgres', q{SELECT tx_grant('events', 'evil', 'receive')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 35 FROM seen WHERE handler = 'evil'}),
	'granted again, it handles the messages that waited');

# The attack on the check: a revoke that commits while a handler's batch,
# checked already, waits inside its claim (here for a lock on the lease
# table that another session holds).  The batch must not run: the claim is
# checked again once made and rolled back.  Its message waits, without an
# attempt, and the other group's handler goes on.
my ($hout, $herr) = ('', '');
my $holder = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres') . ' application_name=lease_holder', '-f', '-' ],
	'<', \"BEGIN;\nLOCK TABLE tx_message.leases IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\nSELECT pg_sleep(120);\n",
	'>', \$hout, '2>', \$herr);
my $deadline = time() + 30;
while ($hout !~ /locked/ && time() < $deadline)
{
	$holder->pump_nb;
	sleep 1;
}
like($hout, qr/locked/, 'a session holds the lease table');
$node->safe_psql('postgres', q{SELECT tx_send('events', '{"sent": "before the revoke"}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) >= 2 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	 WHERE NOT l.granted AND l.relation = 'tx_message.leases'::regclass
	   AND a.backend_type = 'tx_message executor'}),
	"both groups' handler batches wait inside their claims");
$node->safe_psql('postgres', q{
	SELECT tx_revoke('events', 'evil', 'receive');
	SELECT tx_send('events', '{"sent": "after the revoke"}');
});
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lease_holder'});
$holder->finish;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 37 FROM seen WHERE handler = 'victim'}),
	'the claims go on once the lock is gone: the other handler ran both messages');
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE handler = 'evil'}), '35',
	'the batch claimed after the revoke did not run');
is($node->safe_psql('postgres', q{SELECT tx_grant('events', 'evil', 'receive')}), '', 'granted again');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 37 FROM seen WHERE handler = 'evil'}),
	'it handles both messages');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM tx_message.dead_letters WHERE consumer_group = 'a-evil'}), '0',
	'and none was dead-lettered meanwhile');

# pg_dump and restore keep topics, grants and group owners.
$node->safe_psql('postgres', q{
	CREATE ROLE orders_svc;
	SELECT tx_create_topic('order-created');
	SELECT tx_grant('order-created', 'orders_svc', 'send');
	SELECT tx_grant('order-created', 'points_team', 'receive');
	SET ROLE points_team;
	SELECT tx_subscribe('order-created', 'points-service');
	RESET ROLE;
});
my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
my $restore_offset = -s $node->logfile;
$node->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $node->connstr('restored'), '-f', $dump ],
	'restore');
# the worker takes the dump over (t/010_dump_restore.pl shows the rest)
ok($node->wait_for_log(qr/tx_message took over the messages of a restored dump/, $restore_offset),
	'the worker takes the restored dump over');
is($node->safe_psql('restored', q{SELECT tx_create_topic('after-restore'); SELECT tx_subscribe('after-restore', 'g2');
	SELECT count(*) = (SELECT count(*) FROM tx_message.subscriptions) FROM tx_message.sub_state}),
	"\n\nt", 'new topics and subscriptions after a restore, and every subscription has a position');
my $grants_q = q{SELECT string_agg(format('%s %s %s', topic, grantee, privilege), '; ' ORDER BY 1) FROM tx_message.grants};
is($node->safe_psql('restored', $grants_q), $node->safe_psql('postgres', $grants_q), 'grants restored');
is($node->safe_psql('restored',
	q{SELECT owner::text FROM tx_message.consumer_groups WHERE consumer_group = 'points-service'}),
	'points_team', 'group owner restored');
my ($rc, $out, $err) = $node->psql('restored',
	q{SET ROLE orders_svc; SELECT tx_send('order-created', '{}') > 0;});
is($out, 't', 'a restored grant lets its grantee send');
($rc, $out, $err) = $node->psql('restored',
	q{SET ROLE orders_svc; SELECT * FROM tx_receive('points-service')});
like($err, qr/permission denied/, 'and nothing more');

# The attack: a role with nothing but CONNECT tries COPY into tx_message's
# tables (what a restore does, which pauses the worker while the restoring
# session is connected) and then stays connected.  The COPY is refused and
# the worker goes on: a message sent meanwhile is still delivered.
$node->safe_psql('postgres', q{
	CREATE ROLE intruder LOGIN;
	SELECT tx_create_topic('stillrunning');
	SELECT tx_subscribe('stillrunning', 'watchers');
});
my ($iout, $ierr) = ('', '');
my $intruder = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres') . ' user=intruder', '-f', '-' ],
	'<', \"COPY tx_message.topics (topic) FROM STDIN;\nSELECT pg_sleep(15);\n",
	'>', \$iout, '2>', \$ierr);
$deadline = time() + 10;
while ($ierr !~ /permission denied/ && time() < $deadline)
{
	$intruder->pump_nb;
	sleep 1;
}
like($ierr, qr/permission denied for table topics/, 'the intruder\'s COPY into tx_message.topics is refused');
$node->safe_psql('postgres', q{SELECT tx_send('stillrunning', '{"still": "delivered"}')});
is($node->safe_psql('postgres', q{SELECT payload->>'still' FROM tx_receive('watchers', 1, wait => '10 s')}),
	'delivered', 'and the worker is not paused by the session that stays connected');
is($node->safe_psql('postgres', q{SELECT coalesce(restore_state, 'none') FROM tx_worker_status() WHERE database = 'postgres'}),
	'none', 'nor does it say a restore is under way');
$intruder->kill_kill;

$node->stop;
done_testing();
