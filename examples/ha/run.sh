#!/usr/bin/env bash
# tx_message under pg_auto_failover: a monitor and two nodes on this machine
# (Debian's postgresql-15-auto-failover), tx_message preloaded on both, the
# load of t/007_faults.pl running through a multi-host connection string,
# then `pg_autoctl perform failover`.  Afterwards the load goes on against
# the new primary, the backlog drains, and every effect is counted against
# the committed business rows (see examples/ha/README.md for a recorded run).
#
#   bash examples/ha/run.sh                 # builds and installs this tree
#   HA_INSTALLED=1 bash examples/ha/run.sh  # tx_message already installed
#
# Run by hand: it is not part of scripts/test.sh.  Ports 56100 (monitor),
# 56101 and 56102 (nodes) on localhost; everything lives in a temporary
# directory, stopped and removed at the end (KEEP_WORKDIR=1 keeps it).

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

LOAD_SECS=${LOAD_SECS:-20}
MON_PORT=56100
NODE_PORTS=(56101 56102)

ensure_deps postgresql-15-auto-failover
make_workdir tx_message-ha
PIDS=()
finish()
{
	local status=$?
	as_user touch "$WORK/stop_producers" "$WORK/stop_consumers" 2>/dev/null || true
	for d in node1 node2 monitor; do
		[ -d "$WORK/$d" ] && as_user pg_autoctl stop --pgdata "$WORK/$d" >/dev/null 2>&1 || true
	done
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	sleep 2
	cleanup_workdir
	exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM HUP
if [ "${HA_INSTALLED:-0}" != 1 ]; then
	build_and_install
fi

MONITOR="postgres://autoctl_node@localhost:$MON_PORT/pg_auto_failover?sslmode=disable"
# the application's view: whichever node is the primary
APP="host=localhost,localhost port=${NODE_PORTS[0]},${NODE_PORTS[1]} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=5"
app() { as_user "$BINDIR/psql" -X -v ON_ERROR_STOP=1 -Atq -d "$APP" "$@"; }
node_sql() { as_user "$BINDIR/psql" -X -Atq -d "host=localhost port=$1 user=postgres dbname=postgres" -c "$2"; }
state() { as_user pg_autoctl show state --pgdata "$WORK/monitor" 2>/dev/null; }
wait_for_state()
{
	local want=$1 i
	for i in $(seq 1 180); do
		state | grep -Eq "$want" && return 0
		sleep 1
	done
	echo "timed out waiting for: $want" >&2
	state >&2
	return 1
}
step() { echo; echo "== $(date -u +%H:%M:%S) $*"; }

step "monitor on port $MON_PORT"
as_user pg_autoctl create monitor --pgdata "$WORK/monitor" --pgport $MON_PORT --hostname localhost \
	--auth trust --no-ssl --pgctl "$BINDIR/pg_ctl" >"$WORK/monitor.log" 2>&1
as_user pg_autoctl run --pgdata "$WORK/monitor" >>"$WORK/monitor.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 60); do
	as_user "$BINDIR/pg_isready" -q -h localhost -p $MON_PORT && break
	sleep 1
done

step "node1 on port ${NODE_PORTS[0]}, with tx_message preloaded"
as_user pg_autoctl create postgres --pgdata "$WORK/node1" --pgport "${NODE_PORTS[0]}" --name node1 \
	--hostname localhost --auth trust --no-ssl --monitor "$MONITOR" --pgctl "$BINDIR/pg_ctl" \
	>"$WORK/node1.log" 2>&1
# the standby is a base backup of this data directory, configuration included
as_user "$BINDIR/pg_ctl" -D "$WORK/node1" -m fast -w stop >/dev/null 2>&1 || true
echo "shared_preload_libraries = 'tx_message'" | as_user tee -a "$WORK/node1/postgresql.conf" >/dev/null
as_user pg_autoctl run --pgdata "$WORK/node1" >>"$WORK/node1.log" 2>&1 &
PIDS+=($!)
wait_for_state 'node1 .*\| *single *\| *single'

step "node2 on port ${NODE_PORTS[1]}"
as_user pg_autoctl create postgres --pgdata "$WORK/node2" --pgport "${NODE_PORTS[1]}" --name node2 \
	--hostname localhost --auth trust --no-ssl --monitor "$MONITOR" --pgctl "$BINDIR/pg_ctl" \
	>"$WORK/node2.log" 2>&1
as_user pg_autoctl run --pgdata "$WORK/node2" >>"$WORK/node2.log" 2>&1 &
PIDS+=($!)
wait_for_state 'node2 .*\| *secondary *\| *secondary'
wait_for_state 'node1 .*\| *primary *\| *primary'
state
echo "synchronous_standby_names on node1: $(node_sql "${NODE_PORTS[0]}" 'SHOW synchronous_standby_names')"

step "the load of t/007_faults.pl through \"$APP\""
app -f "$WORK/src/t/load_fixture.sql" >/dev/null
loop()
{
	local name=$1 stop=$2 call=$3
	as_user bash -c 'while [ ! -e "$1" ]; do
			"$2" -XAtq -v ON_ERROR_STOP=1 -d "$3 application_name=$4" -c "$5" >/dev/null 2>>"$6" || sleep 0.2
		done' loop "$WORK/$stop" "$BINDIR/psql" "$APP" "$name" "$call" "$WORK/$name.err" </dev/null &
	PIDS+=($!)
}
for k in single batch half; do loop "prod_$k" stop_producers "CALL produce('$k', 1)"; done
loop cons_pull1 stop_consumers "CALL consume_pull(1)"
loop cons_pull2 stop_consumers "CALL consume_pull(1)"
loop cons_ext stop_consumers "CALL consume_ext(1)"
sleep "$LOAD_SECS"
echo "on node1 (primary):"
node_sql "${NODE_PORTS[0]}" "SELECT 'worker ' || pid || ', executors ' || executor_pids::text FROM tx_worker_status()"
echo "on node2 (standby): $(node_sql "${NODE_PORTS[1]}" 'SELECT count(*) FROM tx_worker_status()') tx_message workers;" \
	"$(node_sql "${NODE_PORTS[1]}" "SELECT tx_send('orders', '{}')" 2>&1 | head -n 1)"

step "pg_autoctl perform failover"
as_user pg_autoctl perform failover --pgdata "$WORK/monitor" 2>&1 | tail -n 5 || true
wait_for_state 'node2 .*\| *primary *\| *primary'
wait_for_state 'node1 .*\| *secondary *\| *secondary'
state
sleep "$LOAD_SECS"
echo "on node2 (the new primary):"
node_sql "${NODE_PORTS[1]}" "SELECT 'worker ' || pid || ', executors ' || executor_pids::text FROM tx_worker_status()"
echo "on node1 (now a standby): $(node_sql "${NODE_PORTS[0]}" 'SELECT count(*) FROM tx_worker_status()') tx_message workers"

step "producers stop, the backlog drains"
as_user touch "$WORK/stop_producers"
for i in $(seq 1 120); do
	[ "$(app -c 'SELECT sum(lost) FROM effect_counts')" = 0 ] && break
	sleep 1
done
sleep 2
as_user touch "$WORK/stop_consumers"
sleep 3
echo "committed business rows: $(app -c 'SELECT count(*) FROM produced')"
echo "kind    | lost | phantom | duplicate | effects | dead letters"
app -c "SELECT rpad(kind, 7) || ' | ' || lost || ' | ' || phantom || ' | ' || dup || ' | ' || effects || ' | ' || dead FROM effect_counts ORDER BY 1"
echo "client errors (connections lost during the failover are expected):"
cat "$WORK"/*.err 2>/dev/null | grep -E '^(psql: )?(ERROR|FATAL|error)' | sed 's/^.*\(ERROR\|FATAL\|error\)/\1/' | sort | uniq -c | sort -rn | head -n 10
fail=$(app -c "SELECT count(*) FROM effect_counts WHERE lost > 0 OR phantom > 0 OR (kind <> 'ext' AND dup > 0)")
if [ "$fail" = 0 ]; then
	echo "OK: nothing lost, no phantom, exactly once for the pull consumer and the handler"
else
	echo "FAILED: see the counts above"
	exit 1
fi
