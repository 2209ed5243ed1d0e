# A consumer group whose housekeeping fails every cycle (here: a trigger
# planted on the retries refuses its expired lease) is logged and counted,
# and holds up nothing else: another group's expired leases come back on
# time, and delayed messages are released on time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('contained');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tx_message'
tx_message.naptime = '200ms'
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tx_message;
	SELECT tx_create_topic('a');
	SELECT tx_create_topic('b');
	SELECT tx_subscribe('a', 'bad', lease => '1 s', backoff => '{100 ms}');
	SELECT tx_subscribe('b', 'good', lease => '1 s', backoff => '{100 ms}');
	SELECT tx_send('a', '{"n": 1}'), tx_send('b', '{"n": 2}');
});
# both groups lease their message and let the lease run out
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM tx_receive('bad', 1, wait => '5 s'))
	     + (SELECT count(*) FROM tx_receive('good', 1, wait => '5 s'))}), '2', 'both leased');

# plant the failure: a trigger that refuses the bad group's retries, so that
# moving its expired lease to the retries fails every time
$node->safe_psql('postgres', q{
	CREATE FUNCTION public.refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.sub_id = (SELECT sub_id FROM tx_message.subscriptions WHERE consumer_group = 'bad') THEN
			RAISE EXCEPTION 'planted failure of group bad';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER planted BEFORE INSERT ON tx_message.retries_data
		FOR EACH ROW EXECUTE FUNCTION public.refuse_bad();
});
my $errors_before = $node->safe_psql('postgres', 'SELECT sum(errors) FROM tx_worker_status()');
my $log_offset = -s $node->logfile;
my $t0 = time();
$node->safe_psql('postgres', q{SELECT tx_send('b', '{"delayed": true}', delay => '1 s')});

ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM tx_message.retries r JOIN tx_message.subscriptions s USING (sub_id)
	 WHERE s.consumer_group = 'good'}), "the good group's expired lease became a retry");
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 4, "on time despite the failing group ($elapsed s)");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM tx_message.messages WHERE payload ? 'delayed' AND state = 'committed'
	   AND NOT EXISTS (SELECT FROM tx_message.delayed)}), 'the delayed message was released');
$elapsed = time() - $t0;
cmp_ok($elapsed, '<', 4, "on time despite the failing group ($elapsed s)");
is($node->safe_psql('postgres',
	q{SELECT attempt FROM tx_receive('good', 10, wait => '5 s') WHERE payload ? 'n'}), '2',
	'and is delivered again');

ok($node->wait_for_log(qr/planted failure of group bad/, $log_offset), 'the failure is logged');
ok($node->poll_query_until('postgres',
	"SELECT sum(errors) > $errors_before FROM tx_worker_status()"), 'and counted');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM tx_message.retries r JOIN tx_message.subscriptions s USING (sub_id)
	 WHERE s.consumer_group = 'bad'}), '0', "the failing group's own work is rolled back each time");

$node->stop;
done_testing();
