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
#   outbox:  the same message as a row of bench/'s outbox (topic, time,
#            payload): the INSERT tx_send is held against
#   consume, per batch of 100, rows to the client:
#     cte:  one statement that receives and acks them
#     loop: the README's loop: BEGIN; receive; ack; COMMIT
#     auto: receive and ack as two autocommit statements
# The loop and auto forms take the ids back from the client as text, as a
# driver does.  Everything the consume sessions take is sent and ticked
# before the first of them, so that no session pays for a tick.
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
sql -c "CREATE TABLE outbox (id bigserial PRIMARY KEY, topic text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(), payload jsonb NOT NULL)" >/dev/null
if [ "${BENCH_CDC:-0}" = 1 ]; then
	sql -c "SELECT tx_cdc_enable()" >/dev/null
fi

PAYLOAD='{"event": "order.created", "order_id": 123456789, "customer_id": 4242, "amount": {"value": 129.90, "currency": "EUR"}, "items": [{"sku": "SKU-1001", "qty": 2}, {"sku": "SKU-2002", "qty": 1}], "channel": "web"}'

# Run n operations of a kind in one session (pgbench, prepared statements,
# rows to the client); print that backend's instructions.
session()
{
	local kind=$1 n=$2 f=$WORK/$1-$2.sql pid txns=$2
	case $kind in
	produce) echo "SELECT tx_send('t', :payload);" >"$f" ;;
	outbox) echo "INSERT INTO outbox (topic, payload) VALUES ('t', :payload);" >"$f" ;;
	cte) txns=$((n / 100))
		{
			echo "WITH r AS (SELECT msg_id, payload FROM tx_receive('g', 100)),"
			echo "     a AS (SELECT tx_ack('g', array_agg(msg_id)) AS acked FROM r)"
			echo "SELECT r.msg_id, r.payload, a.acked FROM r, a;"
		} >"$f" ;;
	loop) txns=$((n / 100))
		{
			echo "BEGIN;"
			echo "SELECT msg_id, payload FROM tx_receive('g', 100);"
			echo "SELECT tx_ack('g');"
			echo "COMMIT;"
		} >"$f" ;;
	loop_ids | auto) txns=$((n / 100))
		{
			[ "$kind" = loop_ids ] && echo "BEGIN;"
			echo "SELECT msg_id, payload, CASE WHEN row_number() OVER () = count(*) OVER ()"
			echo "       THEN array_agg(msg_id) OVER () END AS ids FROM tx_receive('g', 100) \\aset"
			echo "SELECT tx_ack('g', :ids::bigint[]);"
			[ "$kind" = loop_ids ] && echo "COMMIT;"
		} >"$f" ;;
	esac
	# the first transaction writes down the backend's pid (and pays one
	# statement more, which the two sessions' difference cancels)
	{
		echo "\\if :pid_saved = 0"
		echo "SELECT pg_backend_pid() AS backend \\gset"
		echo "\\shell echo :backend > $WORK/$kind-$n.pid"
		echo "\\set pid_saved 1"
		echo "\\endif"
		cat "$f"
	} >"$f.tmp"
	mv "$f.tmp" "$f"
	chmod 644 "$f"
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres PGDATABASE=postgres \
		"$BINDIR/pgbench" -n -M prepared -c 1 -t "$txns" -D "payload=$PAYLOAD" -D ids='{}' -D pid_saved=0 \
		-f "$f" >"$WORK/$kind-$n.out" 2>&1 </dev/null || { cat "$WORK/$kind-$n.out" >&2; return 1; }
	pid=$(cat "$WORK/$kind-$n.pid")
	# the backend writes its counts when it exits
	for _ in $(seq 120); do
		grep -q '^summary:' "$WORK/cg/cg.$pid" 2>/dev/null && break
		sleep 1
	done
	grep '^summary:' "$WORK/cg/cg.$pid" | awk '{ print $2 }'
}

describe()
{
	case $1 in
	produce) echo 'tx_send, one transaction' ;;
	outbox) echo "the outbox's INSERT, one transaction" ;;
	cte) echo 'receive 100 + ack, one statement' ;;
	loop) echo 'receive 100 + ack, the README loop (BEGIN; receive; tx_ack(group); COMMIT)' ;;
	loop_ids) echo 'receive 100 + ack, the README loop acking the ids (ids on the last row)' ;;
	auto) echo 'receive 100 + ack, two autocommit statements' ;;
	esac
}

printf '| operation | instructions per operation | first use of a session |\n|---|--:|--:|\n'
for kind in produce outbox cte loop loop_ids auto; do
	unit=$OPS
	if [ $kind = cte ]; then
		# the produce sessions sent 4 n; each of the four consume kinds takes 4 n
		sql -c "SELECT count(*) FROM tx_send_batch('t', array_fill('$PAYLOAD'::jsonb, ARRAY[$((12 * OPS))]))" \
			-c "SELECT tx_run_maintenance()" >/dev/null
	fi
	case $kind in produce | outbox) ;; *) unit=$((OPS / 100)) ;; esac
	one=$(session $kind "$OPS")
	three=$(session $kind $((3 * OPS)))
	per=$(( (three - one) / (2 * unit) ))
	printf '| %s | %s | %s |\n' "$(describe $kind)" "$per" "$(( one - unit * per ))"
done
