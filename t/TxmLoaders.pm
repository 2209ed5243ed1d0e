# The load of t/006_failover.pl and t/007_faults.pl: loaders are shell loops
# that run one CALL per psql connection, reconnecting after whatever happened
# to the server, until their stop file exists; their psql errors go to a file
# each, classified at the end (connections lost to a fault are expected).
package TxmLoaders;

use strict;
use warnings;
use IPC::Run ();
use Time::HiRes ();
use PostgreSQL::Test::Utils;

my $loop = q{
	while [ ! -e "$1" ]; do
		"$2" -XAtq -v ON_ERROR_STOP=1 -d "$(cat "$3") application_name=$4" -c "$5" >/dev/null 2>>"$6" \
			|| sleep 0.2
	done
};

# dir: where stop and error files go; psql: the psql to run; connfile: a
# file holding the connection string (rewritten to follow a failover).
sub new
{
	my ($class, %args) = @_;
	return bless { %args, running => {} }, $class;
}

sub start
{
	my ($self, $name, $call, $stop) = @_;
	$self->{running}{$name} = IPC::Run::start(
		[ 'bash', '-c', $loop, 'loader', "$self->{dir}/$stop", $self->{psql}, $self->{connfile},
		  $name, $call, "$self->{dir}/$name.err" ],
		'<', \undef, '>', \my $out, '2>', \my $err);
	return;
}

sub stop
{
	my ($self, $stop, @names) = @_;
	append_to_file("$self->{dir}/$stop", '');
	for my $name (@names)
	{
		my $h = delete $self->{running}{$name} or next;
		eval { $h->finish; 1 } or $h->kill_kill;
	}
	unlink "$self->{dir}/$stop";
	return;
}

# Whatever happened, end the loops: for an END block.
sub kill_all
{
	my ($self, @stops) = @_;
	append_to_file("$self->{dir}/$_", '') for @stops;
	$_->kill_kill for values %{ $self->{running} };
	return;
}

my $expected_errors = qr/
	server\ closed\ the\ connection
	| connection\ to\ server .* failed
	| could\ not\ connect
	| terminating\ connection
	| the\ database\ system\ is\ (starting\ up|in\ recovery\ mode|shutting\ down|not\ yet\ accepting)
	| no\ connection\ to\ the\ server
	| connection\ to\ server\ was\ lost
	| This\ probably\ means\ the\ server\ terminated\ abnormally
	| before\ or\ while\ processing\ the\ request
	| Is\ the\ server\ running
	| terminated\ by\ administrator
	| Connection\ refused
	| No\ such\ file\ or\ directory
	| ^\s*$
	| Consistent\ recovery\ state\ has\ not\ been\ yet\ reached
	| another\ server\ process\ exited\ abnormally
	| In\ a\ moment\ you\ should\ be\ able\ to\ reconnect
	| ^CONTEXT: | ^\s*PL\/pgSQL | ^\s*SQL\ statement | ^psql:.*FATAL: | ^FATAL:
	| ^\s	# the continuation of the message before, classified on its own
/x;

# The loaders' errors: how many lines were lost connections, and every
# other line (a short ack of the same-transaction consumer, an internal
# error) with how often it came.
sub errors
{
	my ($self, @names) = @_;
	my (%unexpected, $n_expected);
	$n_expected = 0;
	for my $name (@names)
	{
		my $file = "$self->{dir}/$name.err";
		next unless -e $file;
		for my $line (split /\n/, slurp_file($file))
		{
			if ($line =~ $expected_errors) { $n_expected++; next; }
			$unexpected{"$name: $line"}++;
		}
	}
	return ($n_expected, \%unexpected);
}

# Waits (up to a minute) until the load makes progress on a node: the
# business rows and the effects of all three kinds of consumer grow.
sub wait_for_progress
{
	my ($class, $node) = @_;
	my $q = q{SELECT (SELECT count(*) FROM produced) || ' ' || (SELECT count(*) FROM pull_effects) || ' '
		|| (SELECT count(*) FROM ext_effects) || ' ' || (SELECT count(*) FROM handler_effects)};
	my @before = split / /, $node->safe_psql('postgres', $q);
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		Time::HiRes::usleep(200_000);
		my @now = split / /, $node->safe_psql('postgres', $q);
		return 1 unless grep { $now[$_] <= $before[$_] } 0 .. 3;
	}
	return 0;
}

1;
