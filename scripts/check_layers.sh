#!/usr/bin/env bash
# The layering check of src/ (docs/design.md, "Source map").  Each directory
# of src/ is a layer, and a file may include the headers of its own layer
# and of the layers below it only:
#
#   base < storage < engine < api < process < tx_message.c (the entry)
#
# It also checks that headers are included as "src/<layer>/<name>.h", that a
# private header (<module>_internal.h) is included only by its module's
# files, that the modules do not include each other in a cycle, and that no
# file and no function grows past the sizes a reader can take in at once.
# Prints one "ok" or "not ok" line per check; exits non-zero if any failed.
#
#   bash scripts/check_layers.sh              # check this tree
#   bash scripts/check_layers.sh DIR          # check the tree in DIR
#   bash scripts/check_layers.sh --self-test  # break a copy of this tree in
#                                             # each way: every check must fail

set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${1:-}" = --self-test ]; then
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
	status=0
	# the check that must fail, and an edit of a copy of the tree that breaks it
	while IFS='|' read -r check edit; do
		rm -rf "$scratch/tree"
		mkdir "$scratch/tree"
		tar -C "$REPO" -cf - tx_message.c src | tar -C "$scratch/tree" -xf -
		(cd "$scratch/tree" && eval "$edit")
		if bash "$0" "$scratch/tree" 2>&1 | grep -qx "not ok - $check"; then
			echo "ok - the check of $check catches a violation"
		else
			echo "not ok - the check of $check misses a violation"
			status=1
		fi
	done <<'BREAKS'
placement|echo "int x;" > src/stray.c
layers|sed -i 's|^#include "src/base/catalog.h"|#include "src/engine/claim.h"\n&|' src/base/spi.c
includes|sed -i 's|^#include "src/base/catalog.h"|#include "catalog.h"|' src/base/spi.c
private headers|sed -i 's|^#include "src/base/shmem.h"|#include "src/base/shmem_internal.h"|' src/engine/claim.c
cycles|sed -i 's|^#include "src/storage/log.h"|&\n#include "src/storage/stream.h"|' src/storage/log.c && sed -i 's|^#include "src/storage/stream.h"|&\n#include "src/storage/log.h"|' src/storage/stream.c
file size|seq 1000 | sed 's|.*|/* line & */|' >> src/base/spi.c
function size|{ echo "void"; echo "txm_long(void)"; echo "{"; seq 100 | sed 's|.*|\t;|'; echo "}"; } >> src/base/spi.c
BREAKS
	exit $status
fi

cd "${1:-$REPO}" || exit 2
exec perl -e '
use strict;
use warnings;

my @layers = qw(base storage engine api process);
my %rank = map { $layers[$_] => $_ + 1 } 0 .. $#layers;
my $entry_rank = @layers + 1;
my $max_file_lines = 1000;
my $max_function_lines = 100;

my @files = ("tx_message.c", sort glob("src/*/*.[ch]"));
push @files, sort glob("src/*.[ch]");
my (%problems, %edges);
sub problem { my ($check, $msg) = @_; push @{ $problems{$check} }, $msg; }

sub layer_of
{
	my ($f) = @_;
	return ("entry", $entry_rank) if $f eq "tx_message.c";
	return ($1, $rank{$1}) if $f =~ m{^src/([^/]+)/} && exists $rank{$1};
	return (undef, undef);
}

# A module is a header and the files that implement it: src/base/shmem.h,
# shmem.c, shmem_ring.c and shmem_internal.h are one module.
sub module_of
{
	my ($f) = @_;
	return "tx_message" if $f eq "tx_message.c";
	my ($dir, $name) = $f =~ m{^(src/[^/]+)/([^/]+)\.[ch]$} or return $f;
	if ($name =~ /^([a-z]+)_/ && -f "$dir/$1.h") { $name = $1; }
	return "$dir/$name";
}

for my $f (@files)
{
	my ($layer, $rank) = layer_of($f);
	if (!defined $layer)
	{
		problem("placement", "$f is not in a layer directory (src/{" . join(",", @layers) . "}/)");
		next;
	}
	open(my $fh, "<", $f) or die "$f: $!";
	my @lines = <$fh>;
	close $fh;

	problem("file size", sprintf("%s has %d lines (at most %d)", $f, scalar @lines, $max_file_lines))
		if @lines > $max_file_lines;

	my ($fn, $start);
	for my $i (0 .. $#lines)
	{
		my $line = $lines[$i];
		if ($line =~ /^#\s*include\s+"([^"]+)"/)
		{
			my $inc = $1;
			if ($inc =~ m{^src/([^/]+)/([^/]+\.h)$})
			{
				my ($tlayer, $tfile) = ($1, "src/$1/$2");
				if (!-f $tfile) { problem("includes", "$f:" . ($i + 1) . " includes $inc, which does not exist"); next; }
				if (!exists $rank{$tlayer} || $rank{$tlayer} > $rank)
				{
					problem("layers", "$f:" . ($i + 1) . " ($layer) includes $inc ($tlayer), a layer above its own");
				}
				if ($tfile =~ m{/([a-z]+)_internal\.h$} && module_of($f) ne module_of($tfile))
				{
					problem("private headers", "$f:" . ($i + 1) . " includes $inc, private to module " . module_of($tfile));
				}
				my ($from, $to) = (module_of($f), module_of($tfile));
				$edges{$from}{$to} = "$f:" . ($i + 1) if $from ne $to;
			}
			elsif ($inc =~ m{^src/} || $inc =~ m{^\.} || -f "src/$inc" || grep { -f "src/$_/$inc" } @layers)
			{
				problem("includes", "$f:" . ($i + 1) . " includes \"$inc\"; write \"src/<layer>/<name>.h\"");
			}
		}
		if ($f =~ /\.c$/)
		{
			if (!defined $fn && $line =~ /^([a-zA-Z_][a-zA-Z0-9_]*)\(/) { ($fn, $start) = ($1, $i); }
			elsif (defined $fn && $line =~ /^\}/)
			{
				my $len = $i - $start + 1;
				problem("function size", "$f: $fn has $len lines (at most $max_function_lines)")
					if $len > $max_function_lines;
				undef $fn;
			}
		}
	}
}

# cycles between modules: a depth-first search that meets a module on its path
my (%state, @path);
sub visit
{
	my ($m) = @_;
	$state{$m} = 1;
	push @path, $m;
	for my $n (sort keys %{ $edges{$m} || {} })
	{
		if (($state{$n} // 0) == 1)
		{
			my @cycle = (@path[(grep { $path[$_] eq $n } 0 .. $#path)[0] .. $#path], $n);
			problem("cycles", "modules include each other in a cycle: " . join(" -> ", @cycle));
		}
		elsif (!$state{$n}) { visit($n); }
	}
	pop @path;
	$state{$m} = 2;
}
visit($_) for sort keys %edges;

my $failed = 0;
for my $check ("placement", "layers", "includes", "private headers", "cycles", "file size", "function size")
{
	if ($problems{$check})
	{
		print "not ok - $check\n";
		print "    $_\n" for @{ $problems{$check} };
		$failed++;
	}
	else
	{
		print "ok - $check\n";
	}
}
exit($failed ? 1 : 0);
'
