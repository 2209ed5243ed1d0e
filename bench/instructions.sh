#!/usr/bin/env bash
# CPU instructions per hot-path operation, counted by callgrind: the same
# figure for the same build, whatever else the (shared, noisy) machine is
# doing, so two builds can be compared where bench/run.sh's timings drift.
#
#   bash bench/instructions.sh            # builds and installs this tree
#   BENCH_INSTALLED=1 bash bench/instructions.sh --ops 4000
#
# The server runs under valgrind --tool=callgrind (every process counted
# separately) with tx_message.enabled = off, so that tx_receive ticks in its
# own backend and nothing else runs between the statements measured.  Two
# sessions per operation run n and 3n operations; their difference, divided
# by 2n, is the cost of one operation, and what is left of the first session
# is the cost of a session's first use (the catalog and plan caches).  With
# KEEP_WORKDIR=1 the callgrind files stay in the work directory, next to the
# pid of each session (<kind>-<n>.pid), for callgrind_annotate.
#
#   produce: SELECT tx_send(topic, payload) in autocommit (one transaction)
#   consume: one statement that receives 100 and acks them (per batch)
#
# BENCH_CDC=1 runs the server with wal_level = logical and tx_cdc_enable():
# what change data capture adds to each operation.

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

OPS=1000
while [ $# -gt 0 ]; do
	case $1 in
	--ops) OPS=$2; shift ;;
	*) echo "usage: bench/instructions.sh [--ops N]" >&2; exit 2 ;;
	esac
	shift
done
[ $((OPS % 100)) -eq 0 ] || { echo "--ops must be a multiple of 100" >&2; exit 2; }

trap 'cleanup_workdir' EXIT
trap 'exit 130' INT TERM HUP
ensure_deps valgrind
make_workdir tx_message-instructions
if [ "${BENCH_INSTALLED:-0}" != 1 ]; then
	build_and_install
fi

PGPORT=${BENCH_PORT:-54333}
export PGHOST=$WORK PGPORT PGUSER=postgres
as_user "$BINDIR/initdb" -D "$WORK/data" -U postgres -A trust --no-sync >"$WORK/initdb.log" 2>&1 ||
	{ cat "$WORK/initdb.log"; exit 1; }
{
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$WORK'"
	echo "port = $PGPORT"
	echo "shared_preload_libraries = 'tx_message'"
	echo "tx_message.enabled = off"
	echo "autovacuum = off"
	echo "fsync = off"
	if [ "${BENCH_CDC:-0}" = 1 ]; then echo "wal_level = logical"; fi
} | as_user tee -a "$WORK/data/postgresql.conf" >/dev/null
mkdir -p "$WORK/cg"
chmod 777 "$WORK/cg"
# the postmaster's pidfile lets stop_servers() stop it however this script ends
as_user bash -c "valgrind --tool=callgrind --trace-children=yes \
	--callgrind-out-file='$WORK/cg/cg.%p' '$BINDIR/postgres' -D '$WORK/data' \
	>'$WORK/server.log' 2>&1 &"

sql() { psql_run -d postgres -Atq "$@"; }
for i in $(seq 300); do
	sql -c "SELECT 1" >/dev/null 2>&1 && break
	sleep 1
done
for i in $(seq 300); do
	# the launcher's first scan gives the database its slot in shared memory
	[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tx_message launcher'" 2>/dev/null)" = 1 ] && break
	sleep 1
done
sleep 3
sql -c "CREATE EXTENSION tx_message" -c "SELECT tx_create_topic('t')" -c "SELECT tx_subscribe('t', 'g')" >/dev/null
if [ "${BENCH_CDC:-0}" = 1 ]; then
	sql -c "SELECT tx_cdc_enable()" >/dev/null
fi

PAYLOAD='{"event": "order.created", "order_id": 123456789, "customer_id": 4242, "amount": {"value": 129.90, "currency": "EUR"}, "items": [{"sku": "SKU-1001", "qty": 2}, {"sku": "SKU-2002", "qty": 1}], "channel": "web"}'

# Run n operations of a kind in one session; print that backend's instructions.
session()
{
	local kind=$1 n=$2 f=$WORK/$1-$2.sql pid
	case $kind in
	produce) for _ in $(seq "$n"); do echo "SELECT tx_send('t', '$PAYLOAD');"; done ;;
	consume) for _ in $(seq $((n / 100))); do
			echo "WITH r AS (SELECT msg_id FROM tx_receive('g', 100)) SELECT tx_ack('g', array_agg(msg_id)) FROM r;"
		done ;;
	esac >"$f"
	echo "SELECT pg_backend_pid();" >>"$f"
	chmod 644 "$f"
	pid=$(sql -f "$f" | tail -n 1)
	echo "$pid" >"$WORK/$kind-$n.pid"
	# the backend writes its counts when it exits
	for _ in $(seq 120); do
		grep -q '^summary:' "$WORK/cg/cg.$pid" 2>/dev/null && break
		sleep 1
	done
	grep '^summary:' "$WORK/cg/cg.$pid" | awk '{ print $2 }'
}

printf '| operation | instructions per operation | first use of a session |\n|---|--:|--:|\n'
for kind in produce consume; do
	unit=$OPS
	[ $kind = consume ] && unit=$((OPS / 100))
	# the two produce sessions leave the 4 n messages the consume sessions take
	one=$(session $kind "$OPS")
	three=$(session $kind $((3 * OPS)))
	per=$(( (three - one) / (2 * unit) ))
	printf '| %s | %s | %s |\n' \
		"$([ $kind = produce ] && echo 'tx_send, one transaction' || echo 'receive 100 + ack, one statement')" \
		"$per" "$(( one - unit * per ))"
done
