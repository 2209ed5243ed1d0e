# The pgbench runs of t/018_ordered.pl and t/019_ordered_attack.pl: scripts
# (written to dir as name.sql) run in the background with weights, their
# success and failed transactions checked at the end, a drain run until a
# backlog query answers 0, and the checks that a query finds no row.
package TxmPgbench;

use strict;
use warnings;
use IPC::Run ();
use Test::More;
use Time::HiRes ();

sub new
{
	my ($class, %args) = @_;
	return bless { %args }, $class;
}

# pgbench in the background: -f name@weight for each script
sub start
{
	my ($self, $label, $opts, %weights) = @_;
	my @cmd = ('pgbench', '-n', @$opts);
	push @cmd, '-f', "$self->{dir}/$_.sql\@$weights{$_}" for sort keys %weights;
	push @cmd, $self->{node}->connstr('postgres');
	my $r = { label => $label, out => '', err => '' };
	$r->{h} = IPC::Run::start(\@cmd, '<', \undef, '>', \$r->{out}, '2>', \$r->{err},
		IPC::Run::timeout(300));
	return $r;
}

# Wait for a run; it must succeed without a failed transaction.  Returns its output.
sub finish
{
	my ($self, $r) = @_;
	my $ok = eval { $r->{h}->finish; 1 };
	$r->{h}->kill_kill unless $ok;
	is($r->{h}->result(0) // -1, 0, "$r->{label}: pgbench succeeded")
	  or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
	like($r->{out}, qr/number of failed transactions: 0 /, "$r->{label}: no transaction failed");
	return $r->{out};
}

# Run the drain scripts (weights as for start) two seconds at a time until
# backlog_q answers 0 or the deadline passes; returns its last answer.
sub drain
{
	my ($self, $backlog_q, $deadline, %weights) = @_;
	my $left = $self->{node}->safe_psql('postgres', $backlog_q);
	while ($left > 0 && Time::HiRes::time() < $deadline)
	{
		my $drain = $self->start('drain', [ '-c', '2', '-T', '2' ], %weights);
		eval { $drain->{h}->finish; 1 } or $drain->{h}->kill_kill;
		$left = $self->{node}->safe_psql('postgres', $backlog_q);
	}
	return $left;
}

# The query finds no row; else the first ten are shown.
sub no_rows
{
	my ($self, $query, $name) = @_;
	my $rows = $self->{node}->safe_psql('postgres', "SELECT count(*) FROM ($query) v");
	is($rows, '0', $name)
	  or diag("first of them:\n" . $self->{node}->safe_psql('postgres', "$query LIMIT 10"));
	return;
}

1;
