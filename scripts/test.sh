#!/usr/bin/env bash
# Check the layering of src/, build with -Werror, install, and run every
# test of tx_message: pg_regress, isolation and TAP, each against throwaway
# clusters, and the benchmark's smoke run.  Ends with "N passed, M failed"
# and exits non-zero if anything failed.
#
#   bash scripts/test.sh                  # everything
#   SUITES="regress isolation" bash scripts/test.sh
#   SKIP_INSTALL=1 bash scripts/test.sh   # non-root without sudo, after "sudo make install"

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e
set -m		# each suite runs as its own process group, so it can be stopped as a whole

SUITES=${SUITES:-"layers regress isolation tap bench package"}
PASSED=0
FAILED=0
JOB=

on_signal()
{
	[ -n "$JOB" ] && kill -TERM -- "-$JOB" 2>/dev/null
	exit 130
}
trap on_signal INT TERM HUP
trap 'cleanup_workdir' EXIT

# t/012 runs the exporter and promtool of Debian, t/013 the example consumers, t/014 pgbouncer,
# t/015 the console in Debian's chromium (and Node.js, Debian's if there is none), t/016 wal2json
node_pkgs=()
command -v node >/dev/null && command -v npm >/dev/null || node_pkgs=(nodejs npm)
ensure_deps prometheus-postgres-exporter prometheus python3-psycopg libpq-dev pgbouncer chromium \
	postgresql-15-wal2json \
	"${node_pkgs[@]}" || exit 1
make_workdir tx_message-test
# warnings are errors here (the build of scripts/demo.sh only reports them)
WERROR=1 build_and_install || { echo "0 passed, 1 failed"; exit 1; }

# Run one suite in the background (so traps fire at once) and keep its log.
run_suite()
{
	local name=$1
	shift
	echo "== $name"
	( cd "$WORK/src" && "$@" 2>&1 | tee "$WORK/$name.log"; exit "${PIPESTATUS[0]}" ) &
	JOB=$!
	wait "$JOB"
	local rc=$?
	JOB=
	return $rc
}

# pg_regress and isolation: one line per test, "... ok" or "... FAILED".
count_pg_regress()
{
	local log=$1 rc=$2 ok bad
	ok=$(grep -cE '\.\.\. ok( |$)' "$log")
	bad=$(grep -cE '\.\.\. (FAILED|failed)' "$log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + bad))
}

# check_layers.sh: one "ok" or "not ok" line per check.
count_checks()
{
	local log=$1 rc=$2 ok bad
	ok=$(grep -c '^ok ' "$log")
	bad=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + bad))
}

# prove: total from "Tests=N", failures from the per-file "Failed: N)".
count_tap()
{
	local log=$1 rc=$2 total bad
	total=$(grep -oE 'Tests=[0-9]+' "$log" | tail -n1 | cut -d= -f2)
	bad=$(grep -oE 'Failed: [0-9]+\)' "$log" | grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
	total=${total:-0}
	bad=${bad:-0}
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	PASSED=$((PASSED + total - (bad > total ? total : bad)))
	FAILED=$((FAILED + bad))
}

MAKE=(make -s PG_CONFIG="$PG_CONFIG")
for suite in $SUITES; do
	case $suite in
	layers)
		# the layering of src/, and that each of its checks can fail
		run_suite layers bash -c 'bash scripts/check_layers.sh; a=$?; bash scripts/check_layers.sh --self-test; b=$?; exit $((a | b))'
		count_checks "$WORK/layers.log" $?
		# the release tarball of the committed tree, when this is a git checkout
		if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
			run_suite release bash "$REPO/scripts/check_release.sh" "$REPO" "$WORK/dist"
			count_checks "$WORK/release.log" $?
		fi
		;;
	regress)
		run_suite regress as_user "${MAKE[@]}" installcheck ISOLATION= TAP_TESTS=
		rc=$?
		[ $rc -ne 0 ] && [ -f "$WORK/src/regression.diffs" ] && cat "$WORK/src/regression.diffs"
		count_pg_regress "$WORK/regress.log" $rc
		;;
	isolation)
		run_suite isolation as_user "${MAKE[@]}" installcheck REGRESS= TAP_TESTS=
		rc=$?
		[ $rc -ne 0 ] && [ -f "$WORK/src/output_iso/regression.diffs" ] && cat "$WORK/src/output_iso/regression.diffs"
		count_pg_regress "$WORK/isolation.log" $rc
		;;
	tap)
		run_suite tap as_user "${MAKE[@]}" installcheck REGRESS= ISOLATION= PROVE_FLAGS=--timer
		rc=$?
		if [ $rc -ne 0 ]; then
			for f in "$WORK"/src/tmp_check/log/regress_log_*; do
				[ -f "$f" ] && { echo "---- $f (tail)"; tail -n 60 "$f"; }
			done
		fi
		count_tap "$WORK/tap.log" $rc
		;;
	bench)
		if [ -x "$WORK/src/bench/run.sh" ]; then
			# as the caller: run.sh installs PgQ if needed and runs its cluster as postgres
			run_suite bench env BENCH_INSTALLED=1 BENCH_PORT=54339 bash "$WORK/src/bench/run.sh" --smoke --out "$WORK/bench-out"
			rc=$?
			if [ $rc -eq 0 ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
		fi
		;;
	package)
		# the Debian package: build it, install it over the source install,
		# play the demo against the installed files, then go back
		run_suite package bash "$REPO/scripts/check_package.sh" "$WORK"
		count_checks "$WORK/package.log" $?
		;;
	*)
		echo "unknown suite $suite"
		FAILED=$((FAILED + 1))
		;;
	esac
done

cleanup_workdir
trap - EXIT
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
