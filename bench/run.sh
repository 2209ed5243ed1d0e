#!/usr/bin/env bash
# The tx_message benchmark: tx_message side by side with the business
# transaction alone ("limit"), a hand-rolled outbox and PgQ, on a throwaway
# cluster.  Systems are interleaved within each repetition (A B C A B C ...),
# and the report gives medians and the ratios computed within each
# repetition.  See bench/README.md for the scenarios and bench/RESULTS.md for
# the latest full run.
#
#   bash bench/run.sh              # full run, about an hour
#   bash bench/run.sh --quick      # shorter runs; no 10 M backlog, 3-minute steady state
#   bash bench/run.sh --smoke      # a few seconds per scenario: do all scripts work?
#   bash bench/run.sh --scale --only "databases backlog"   # 100 databases, a 30 M backlog
#
# Options: --reps N, --only "produce batch consume held latency backlog
# steady hold handler idle soak stats parity console loops topics groups
# databases",
# --out DIR (default bench/out).  Installs PgQ
# (postgresql-15-pgq3) if it is missing, and builds and installs tx_message
# unless BENCH_INSTALLED=1.

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

MODE=full
REPS=
ONLY=
SCALE=0
OUT=$REPO/bench/out
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) MODE=smoke ;;
	--quick) MODE=quick ;;
	--full) MODE=full ;;
	--reps) REPS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--scale) SCALE=1 ;;
	--out) OUT=$2; shift ;;
	*) echo "usage: bench/run.sh [--smoke|--quick|--full] [--scale] [--reps N] [--only \"scenario ...\"] [--out DIR]" >&2
	   exit 2 ;;
	esac
	shift
done

# What each mode measures.  Durations in seconds.
USER_REPS=$REPS
case $MODE in
full)
	REPS=${USER_REPS:-3} PRODUCE_REPS=${USER_REPS:-5} PRODUCE_SECS=10 PRODUCE_CLIENTS="1 8" SYNC_MODES="on off"
	BACKLOG=200000 LOOP_BACKLOG=1000000 LATENCY_SECS=20 LATENCY_RATES="500 5000"
	BACKLOG_SIZES="1000 1000000 10000000" STEADY_SECS=600 SAMPLE_SECS=2
	HANDLER_MSGS=200000 IDLE_SECS=10 CALIBRATE_SECS=10 BACKLOG_ROUNDS=40
	HOLD_PHASES="60 180 120" HOLD_SAMPLE_SECS=5 SOAK_SECS=600 STATS_BACKLOG=10000000 CONSOLE_BACKLOG=1000000
	TOPICS=10000 DRAIN_MSGS=100000 NGROUPS=1000 GROUP_DELIVERIES=400000 DATABASES=20
	SCENARIOS="produce batch consume held latency backlog steady hold handler idle soak stats parity console loops topics groups databases" ;;
quick)
	REPS=${USER_REPS:-3} PRODUCE_REPS=${USER_REPS:-3} PRODUCE_SECS=5 PRODUCE_CLIENTS="1 8" SYNC_MODES="on off"
	BACKLOG=200000 LOOP_BACKLOG=600000 LATENCY_SECS=10 LATENCY_RATES="500 5000"
	BACKLOG_SIZES="1000 1000000" STEADY_SECS=180 SAMPLE_SECS=2
	HANDLER_MSGS=100000 IDLE_SECS=5 CALIBRATE_SECS=5 BACKLOG_ROUNDS=20
	HOLD_PHASES="30 60 60" HOLD_SAMPLE_SECS=5 SOAK_SECS=120 STATS_BACKLOG=1000000 CONSOLE_BACKLOG=1000000
	TOPICS=10000 DRAIN_MSGS=100000 NGROUPS=1000 GROUP_DELIVERIES=200000 DATABASES=20
	SCENARIOS="produce batch consume held latency backlog steady hold handler idle soak stats parity console loops topics groups databases" ;;
smoke)
	REPS=${USER_REPS:-1} PRODUCE_REPS=${USER_REPS:-1} PRODUCE_SECS=1 PRODUCE_CLIENTS="2" SYNC_MODES="on"
	BACKLOG=2000 LOOP_BACKLOG=2000 LATENCY_SECS=2 LATENCY_RATES="500"
	BACKLOG_SIZES="1000" STEADY_SECS=4 SAMPLE_SECS=2
	HANDLER_MSGS=2000 IDLE_SECS=1 CALIBRATE_SECS=0 BACKLOG_ROUNDS=2
	HOLD_PHASES="2 2 2" HOLD_SAMPLE_SECS=1 SOAK_SECS=3 STATS_BACKLOG=2000 CONSOLE_BACKLOG=2000
	TOPICS=20 DRAIN_MSGS=1000 NGROUPS=8 GROUP_DELIVERIES=8000 DATABASES=3
	SCENARIOS="produce batch consume held latency backlog steady hold handler idle soak stats parity console loops topics groups databases" ;;
esac
# --scale: 100 databases (issue 15, target 6), and the largest backlog is
# 30 M messages (target 7).  Check
# the disk first: 30 M times the bytes_per_msg a 1 M run reports, for each
# system in turn (the systems are reset between them).
[ "$SCALE" = 1 ] && BACKLOG_SIZES="1000 1000000 30000000" DATABASES=100
SCENARIOS=${ONLY:-$SCENARIOS}
# narrower experiments: BENCH_CLIENTS="8" BENCH_SYNC="on" bash bench/run.sh --only produce,
# BENCH_LOOPS="outbox_tx txm_tx_ordered" bash bench/run.sh --only loops
PRODUCE_CLIENTS=${BENCH_CLIENTS:-$PRODUCE_CLIENTS}
SYNC_MODES=${BENCH_SYNC:-$SYNC_MODES}
LOOPS=${BENCH_LOOPS:-outbox_tx outbox_auto txm_tx txm_tx2 txm_tx_ids txm_ids_every_row txm_auto txm_cte
outbox_tx_async txm_tx_async txm_tx_ordered}

# A ~200-byte JSON message, the same for every system.
PAYLOAD='{"event": "order.created", "order_id": 123456789, "customer_id": 4242, "amount": {"value": 129.90, "currency": "EUR"}, "items": [{"sku": "SKU-1001", "qty": 2}, {"sku": "SKU-2002", "qty": 1}], "channel": "web"}'

SERVER_SETTINGS=(
	"shared_buffers = '2GB'"
	"max_wal_size = '8GB'"
	"checkpoint_timeout = '30min'"
	"fsync = on"
	"synchronous_commit = on"
	"max_connections = 50"
	"log_min_messages = warning"
)

HOLDER_PID=
CONSOLE_PID=
BG_PIDS=()
CONS_PIDS=()
on_exit()
{
	local status=$?
	[ -z "${WORK:-}" ] || as_user touch "$WORK/soak_stop_producers" "$WORK/soak_stop_consumers" 2>/dev/null
	for pid in "${BG_PIDS[@]}" "${CONS_PIDS[@]}" $HOLDER_PID $CONSOLE_PID; do kill "$pid" 2>/dev/null || true; done
	if [ $status -ne 0 ] && [ -f "${WORK:-/nonexistent}/server.log" ]; then
		echo "---- server log (tail)"
		tail -n 30 "$WORK/server.log"
	fi
	cleanup_workdir
	exit $status
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

ensure_deps postgresql-15-pgq3
make_workdir tx_message-bench
if [ "${BENCH_INSTALLED:-0}" != 1 ]; then
	build_and_install
fi
PGPORT_DEMO=${BENCH_PORT:-54331}
echo "== starting a throwaway cluster in $WORK ($MODE run, $REPS repetition(s))"
start_cluster "${SERVER_SETTINGS[@]}"
BENCH=$WORK/src/bench
RESULTS=$WORK/results.csv
as_user touch "$RESULTS"
as_user "$BINDIR/createdb" bench
psql_run -d bench -q -f "$BENCH/setup.sql"

#----------------------------------------------------------------------
# Helpers
#----------------------------------------------------------------------

sql() { psql_run -d bench -Atq -c "$1"; }
# psql reading a script from standard input
psql_in()
{
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres \
		"$BINDIR/psql" -X -v ON_ERROR_STOP=1 -d bench -q "$@" >/dev/null
}

# pgbench against the bench database; PGOPTIONS_RUN sets per-run settings.
pgb()
{
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres PGDATABASE=bench \
		PGOPTIONS="${PGOPTIONS_RUN:-}" \
		"$BINDIR/pgbench" -n -M prepared -D "payload=$PAYLOAD" -D ids='{}' -D fanout=0 "$@" </dev/null
}

tps_of() { sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$1"; }
txns_of() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }

# record scenario variant system rep metric value
record() { echo "$1,$2,$3,$4,$5,$6" | as_user tee -a "$RESULTS" >/dev/null; }

lsn() { sql "SELECT pg_current_wal_lsn()"; }
wal_since() { sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "NaN"; else printf "%.4f\n", a / b }'; }

# Where the WAL since LSN $5 went, per transaction ($6 of them), recorded as
# metrics wal_<part> of scenario $1, variant $2, system $3, repetition $4:
# pg_waldump's records by the relation of their first block (full-page
# images included), sorted into the message row, its index, the outbox's
# sequence, the slices and ticks of tx_message, commit records, the
# business transaction's rows and the rest; "pages" is what no record
# accounts for (page headers, alignment).
wal_split()
{
	local end total map
	end=$(lsn)
	total=$(wal_since "$5")
	map=$WORK/relfilenodes
	sql "SELECT relfilenode || ' ' || relname FROM pg_class WHERE relfilenode <> 0" | as_user tee "$map" >/dev/null
	as_user "$BINDIR/pg_waldump" -p "$WORK/data/pg_wal" -s "$5" -e "$end" 2>/dev/null |
		awk -v txns="$6" -v total="$total" -v map="$map" '
			BEGIN {
				while ((getline line < map) > 0) { split(line, f, " "); rel[f[1]] = f[2] }
				np = split("message index sequence slices ticks commit business other", parts, " ")
			}
			{
				i = index($0, "len (rec/tot):")
				if (i == 0) next
				split(substr($0, i + 14), a, ","); split(a[1], b, "/"); len = b[2] + 0
				name = ""
				j = index($0, " rel ")
				if (j > 0) { split(substr($0, j + 5), c, " "); n = split(c[1], d, "/"); name = rel[d[n] + 0] }
				if ($2 == "Transaction") part = "commit"
				else if (name == "outbox" || name ~ /^log_[0-9]$/) part = "message"
				else if (name == "outbox_pkey" || name ~ /^log_[0-9]_pos$/) part = "index"
				else if (name == "outbox_id_seq") part = "sequence"
				else if (name == "slices" || name == "slices_pkey") part = "slices"
				else if (name == "ticks" || name == "ticks_pkey") part = "ticks"
				else if (name ~ /^orders/) part = "business"
				else part = "other"
				sum[part] += len; all += len
			}
			END {
				for (k = 1; k <= np; k++) printf "%s %.4f\n", parts[k], sum[parts[k]] / txns
				printf "pages %.4f\n", (total - all) / txns
			}' |
		while read -r part value; do
			record "$1" "$2" "$3" "$4" "wal_$part" "$value"
		done
}

# Every system back to empty: no rows, no queue, a fresh tx_message with
# topic "bench" and the given number of consumer groups g0.. / consumers c0..
reset_systems()
{
	local groups=${1:-1} i
	psql_in <<-EOF
		TRUNCATE orders, outbox RESTART IDENTITY;
		SELECT pgq.drop_queue(queue_name, true) FROM pgq.queue;
		SELECT pgq.create_queue('bench');
		SELECT pgq.set_queue_config('bench', 'ticker_max_count', '100');
		SELECT pgq.register_consumer('bench', 'c' || i) FROM generate_series(0, $groups - 1) i;
		SET client_min_messages = warning;
		DROP EXTENSION IF EXISTS tx_message CASCADE;
		CREATE EXTENSION tx_message;
		SELECT tx_create_topic('bench');
		SELECT tx_subscribe('bench', 'g' || i) FROM generate_series(0, $groups - 1) i;
		TRUNCATE latency_samples, latency_commits;
	EOF
}

# The database worker comes back within a second of CREATE EXTENSION.
wait_worker()
{
	local i
	for i in $(seq 1 100); do
		[ "$(sql "SELECT count(*) FROM tx_worker_status() WHERE database = 'bench'")" = 1 ] && return 0
		sleep 0.1
	done
	echo "the tx_message worker did not start" >&2
	return 1
}

checkpoint() { sql "CHECKPOINT" >/dev/null; }

# The systems in the order of repetition $1: rotated by one place per
# repetition, so that no system always runs first or last.
in_turn()
{
	local rep=$1
	shift
	local list=("$@") n=$# i
	for i in $(seq 0 $((n - 1))); do
		echo "${list[$(((i + rep - 1) % n))]}"
	done
}

# Busy and total CPU time of the whole machine so far (/proc/stat, in ticks).
machine_cpu()
{
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# Cores the machine kept busy between two machine_cpu readings $1 and $2.
cores_busy()
{
	local b0 t0 b1 t1
	read -r b0 t0 <<<"$1"
	read -r b1 t1 <<<"$2"
	awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v c="$(nproc)" 'BEGIN { printf "%.2f\n", t ? b / t * c : 0 }'
}

# CPU ticks (user and system) used so far by the processes $@; one that
# has gone counts nothing.
pids_cpu()
{
	local p s=0
	for p in "$@"; do
		s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$s"
}

# The pids of tx_message's processes (launcher, workers, executors).
relay_pids() { sql "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type LIKE 'tx_message%'"; }

# CPU ticks used so far by tx_message's processes in the cluster.
relay_cpu() { pids_cpu $(relay_pids); }

# Wait until the worker has made every message of topic "bench" deliverable.
wait_ticked()
{
	local want=$1 i
	for i in $(seq 1 6000); do
		[ "$(sql "SELECT coalesce(sum(cardinality(tx_message._slice_positions(positions, packed))), 0) >= $want FROM tx_message.slices")" = t ] && return 0
		sleep 0.05
	done
	echo "messages were not made deliverable in time" >&2
	return 1
}

fill()
{
	local system=$1 n=$2 per_txn=${3:-100}
	case $system in
	outbox) sql "CALL fill_outbox($n, $per_txn, '$PAYLOAD')" ;;
	pgq) sql "CALL fill_pgq($n, $per_txn, '$PAYLOAD')" ;;
	txm) sql "CALL fill_txm('bench', $n, $per_txn, '$PAYLOAD')"; wait_ticked "$n" ;;
	esac
}

# Messages of a system still waiting to be consumed (all groups together).
remaining()
{
	local system=$1 groups=$2
	case $system in
	outbox) sql "SELECT count(*) FROM outbox" ;;
	pgq) sql "SELECT coalesce(sum(pending_events), 0) FROM pgq.get_consumer_info('bench')" ;;
	txm)
		local total=0 got i
		# acked as they come, a thousand at a time: an ordered group hands out
		# one message per key until the one before is finished, and looks
		# ahead ten times what it is asked for
		for i in $(seq 0 $((groups - 1))); do
			while got=$(sql "SELECT tx_ack('g$i', coalesce(array_agg(msg_id), '{}')) FROM tx_receive('g$i', 1000)") &&
				[ "$got" -gt 0 ]; do
				total=$((total + got))
			done
		done
		echo $total ;;
	esac
}

# A session that holds a snapshot (and so the xmin horizon) until stopped.
start_holder()
{
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres PGDATABASE=bench \
		PGAPPNAME=bench_holder "$BINDIR/psql" -X -q -c \
		"BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM orders; SELECT pg_sleep(86400);" \
		>/dev/null 2>&1 </dev/null &
	HOLDER_PID=$!
	local i
	for i in $(seq 1 100); do
		[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench_holder' AND backend_xmin IS NOT NULL")" = 1 ] && return 0
		sleep 0.05
	done
	echo "the snapshot holder did not start" >&2
	return 1
}

stop_holder()
{
	sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench_holder'" >/dev/null
	wait "$HOLDER_PID" 2>/dev/null || true
	HOLDER_PID=
}

# Relations of a system, for sizes and dead tuples.
rel_filter()
{
	case $1 in
	outbox) echo "relid = 'outbox'::regclass" ;;
	txm) echo "schemaname = 'tx_message'" ;;
	pgq) echo "schemaname = 'pgq'" ;;
	esac
}
dead_tuples() { sql "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE $(rel_filter "$1")"; }
total_size() { sql "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_stat_user_tables WHERE $(rel_filter "$1")"; }

#----------------------------------------------------------------------
# Scenarios
#----------------------------------------------------------------------

# 1. produce: the business transaction plus one message, per client count
#    and synchronous_commit; and batches of 100.
scenario_produce()
{
	local rep sync clients system out a wal txns m0 m1 r0 r1
	# the shortest runs and the noisiest numbers: more repetitions
	for rep in $(seq 1 "$PRODUCE_REPS"); do
		for sync in $SYNC_MODES; do
			for clients in $PRODUCE_CLIENTS; do
				for system in $(in_turn "$rep" limit outbox pgq txm); do
					reset_systems 1
					wait_worker
					checkpoint
					a=$(lsn)
					out=$WORK/produce.out
					m0=$(machine_cpu)
					r0=$(relay_cpu)
					PGOPTIONS_RUN="-c synchronous_commit=$sync" \
						pgb -c "$clients" -j "$clients" -T "$PRODUCE_SECS" -f "$BENCH/scripts/produce_$system.sql" >"$out" 2>&1 ||
						{ cat "$out"; return 1; }
					r1=$(relay_cpu)
					m1=$(machine_cpu)
					wal=$(wal_since "$a")
					txns=$(txns_of "$out")
					record produce "c${clients}_sync_$sync" $system "$rep" tps "$(tps_of "$out")"
					record produce "c${clients}_sync_$sync" $system "$rep" wal_per_txn "$(div "$wal" "$txns")"
					record produce "c${clients}_sync_$sync" $system "$rep" cores_busy "$(cores_busy "$m0" "$m1")"
					# the ticks' share (tx_message's processes; the worker waits between runs)
					if [ $system = txm ]; then
						record produce "c${clients}_sync_$sync" $system "$rep" relay_cores \
							"$(div "$(div $((r1 - r0)) "$(getconf CLK_TCK)")" "$PRODUCE_SECS")"
					fi
					case $system in outbox | txm)
						wal_split produce "c${clients}_sync_$sync" $system "$rep" "$a" "$txns" ;;
					esac
					echo "   produce rep $rep, $clients client(s), sync $sync, $system: $(tps_of "$out") TPS"
				done
			done
		done
	done
}

scenario_batch()
{
	local rep clients system out a wal txns tps
	# as short and noisy as the produce runs: as many repetitions
	for rep in $(seq 1 "$PRODUCE_REPS"); do
		for clients in $PRODUCE_CLIENTS; do
			for system in $(in_turn "$rep" outbox pgq txm); do
				reset_systems 1
				wait_worker
				checkpoint
				a=$(lsn)
				out=$WORK/batch.out
				pgb -c "$clients" -j "$clients" -T "$PRODUCE_SECS" -f "$BENCH/scripts/batch_$system.sql" >"$out" 2>&1 ||
					{ cat "$out"; return 1; }
				wal=$(wal_since "$a")
				txns=$(txns_of "$out")
				tps=$(tps_of "$out")
				record batch "c${clients}_batch_100" $system "$rep" msgs_per_s "$(awk -v t="$tps" 'BEGIN { print t * 100 }')"
				record batch "c${clients}_batch_100" $system "$rep" wal_per_msg "$(div "$wal" $((txns * 100)))"
				echo "   batch rep $rep, $clients client(s), $system: $(awk -v t="$tps" 'BEGIN { print t * 100 }') messages/s"
			done
		done
	done
}

# Drain a backlog of $BACKLOG messages with 100 per batch; variant is one of
# c1 (one consumer), c2 and c4 (two and four competing consumers of one
# group), fanout4
# (four groups, one consumer each), held_c1 (c1 while a snapshot is held).
drain()
{
	local variant=$1 system=$2 rep=$3
	local clients groups script per_client out a wal txns tps left consumed elapsed rate
	case $variant in
	c1 | fresh_c1 | held_c1) clients=1 groups=1 ;;
	c2) clients=2 groups=1 ;;
	c4) clients=4 groups=1 ;;
	fanout4) clients=4 groups=4 ;;
	esac
	reset_systems "$groups"
	wait_worker
	[ "$variant" = held_c1 ] && start_holder
	fill "$system" "$BACKLOG"
	checkpoint
	if [ "$groups" -gt 1 ]; then
		per_client=$((BACKLOG / 100))
	else
		per_client=$((BACKLOG / 100 / clients))
	fi
	local fanout=0
	[ "$variant" = fanout4 ] && fanout=1
	out=$WORK/drain.out
	a=$(lsn)
	pgb -c "$clients" -j "$clients" -t "$per_client" -D fanout=$fanout \
		-f "$BENCH/scripts/consume_$system.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
	wal=$(wal_since "$a")
	txns=$(txns_of "$out")
	tps=$(tps_of "$out")
	left=$(remaining "$system" "$groups")
	consumed=$((BACKLOG * groups - left))
	elapsed=$(div "$txns" "$tps")
	rate=$(div "$consumed" "$elapsed")
	record consume "$variant" $system "$rep" msgs_per_s "$rate"
	record consume "$variant" $system "$rep" wal_per_msg "$(div "$wal" "$consumed")"
	record consume "$variant" $system "$rep" left_over "$left"
	if [ "$variant" = held_c1 ]; then
		record consume "$variant" $system "$rep" dead_tuples "$(dead_tuples $system)"
		stop_holder
	fi
	echo "   consume $variant rep $rep, $system: $rate messages/s, $(div "$wal" "$consumed") WAL bytes/message, $left left over"
}

scenario_consume()
{
	local rep variant system systems
	for rep in $(seq 1 "$REPS"); do
		for variant in c1 c2 c4 fanout4; do
			case $variant in
			c1) systems="outbox pgq txm" ;;
			c2 | c4) systems="outbox txm" ;;	# PgQ has no competing consumers within a group
			fanout4) systems="pgq txm" ;;	# the outbox has one group
			esac
			for system in $(in_turn "$rep" $systems); do
				drain $variant $system "$rep"
			done
		done
	done
}

scenario_held()
{
	local rep system
	for rep in $(seq 1 "$REPS"); do
		for system in $(in_turn "$rep" outbox pgq txm); do
			# the same drain without the snapshot right before: the ratio of
			# the pair does not depend on how the machine drifted since the
			# consume scenario
			drain fresh_c1 $system "$rep"
			drain held_c1 $system "$rep"
		done
	done
}

# 4. latency: commit -> a consumer blocked in tx_receive(..., wait => ...),
# and what a consumer waiting for another topic costs producers.
# A message carries the time of its tx_send and the pgbench client that
# sent it; pgbench's transaction log (-l) gives the time each of that
# client's COMMITs returned, its n-th transaction having sent its n-th
# message.  commit -> consumer runs from that return to tx_receive's;
# send -> consumer from the tx_send, so it includes the producer's commit
# (its WAL flush).
scenario_latency()
{
	local rep rate clients consumer out logs
	for rep in $(seq 1 "$REPS"); do
		for rate in $LATENCY_RATES; do
			reset_systems 1
			wait_worker
			sql "SELECT tx_create_topic('latency'); SELECT tx_subscribe('latency', 'lat')" >/dev/null
			clients=$(( rate >= 2000 ? 4 : 1 ))
			psql_run -d bench -q -c "CALL txm_latency_consumer('lat', $LATENCY_SECS + 1.5, $rate, $rep)" &
			consumer=$!
			BG_PIDS=("$consumer")
			sleep 0.5
			out=$WORK/latency.out
			logs=$WORK/latency_log
			as_user rm -rf "$logs"
			as_user mkdir "$logs"
			pgb -c "$clients" -j "$clients" -R "$rate" -T "$LATENCY_SECS" -l --log-prefix="$logs/tx" \
				-f "$BENCH/scripts/latency_producer.sql" >"$out" 2>&1 ||
				{ cat "$out"; return 1; }
			wait "$consumer"
			BG_PIDS=()
			# log lines: client, transaction (from 1), latency, script, epoch s, us
			cat "$logs"/tx.* | awk -v r="$rate" -v p="$rep" \
				'{ printf "%s\t%s\t%s\t%s\t%s.%06d\n", r, p, $1, $2, $5, $6 }' |
				psql_in -c "COPY latency_commits FROM STDIN"
			# tens of thousands of rows a side: a hash join, not a nested loop
			sql "ANALYZE latency_samples, latency_commits"
			local row n p50 p99 max sp50 sp99 smax
			row=$(sql "WITH s AS (SELECT client, sent, got,
			                             row_number() OVER (PARTITION BY client ORDER BY sent) AS txn
			                        FROM latency_samples WHERE rate = $rate AND rep = $rep),
			                j AS (SELECT (s.got - c.done) * 1000 AS ms, (s.got - s.sent) * 1000 AS send_ms
			                        FROM s JOIN latency_commits c USING (client, txn)
			                       WHERE c.rate = $rate AND c.rep = $rep)
			           SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
			                  percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms),
			                  percentile_cont(0.5) WITHIN GROUP (ORDER BY send_ms),
			                  percentile_cont(0.99) WITHIN GROUP (ORDER BY send_ms), max(send_ms)
			             FROM j")
			IFS='|' read -r n p50 p99 max sp50 sp99 smax <<<"$row"
			[ "$n" -gt 0 ] || { echo "no latency samples" >&2; return 1; }
			record latency "rate_$rate" txm "$rep" p50_ms "$p50"
			record latency "rate_$rate" txm "$rep" p99_ms "$p99"
			record latency "rate_$rate" txm "$rep" max_ms "$max"
			record latency "rate_$rate" txm "$rep" send_p50_ms "$sp50"
			record latency "rate_$rate" txm "$rep" send_p99_ms "$sp99"
			record latency "rate_$rate" txm "$rep" send_max_ms "$smax"
			record latency "rate_$rate" txm "$rep" achieved_per_s "$(div "$n" "$LATENCY_SECS")"
			printf '   latency rep %s, %s msg/s: %s messages, commit -> consumer p50 %.2f ms, p99 %.2f ms, max %.2f ms; send -> consumer p50 %.2f ms, p99 %.2f ms\n' \
				"$rep" "$rate" "$n" "$p50" "$p99" "$max" "$sp50" "$sp99"
		done
		latency_elsewhere "$rep"
	done
}

# What waiting costs the others: 8 producers flat out into one topic, with
# no consumer waiting (0), one waiting for another topic (1), and one
# waiting for this topic whose tag filter matches none of its messages (2):
# TPS, ticks/s, WAL.
latency_elsewhere()
{
	local rep=$1 waiting out a k txns ticks waiter group who
	for waiting in $(in_turn "$rep" 0 1 2); do
		reset_systems 1
		wait_worker
		sql "SELECT tx_create_topic('quiet'); SELECT tx_subscribe('quiet', 'quiet');
		     SELECT tx_subscribe('bench', 'picky', tags => '{none-such}')" >/dev/null
		waiter=
		group=$([ "$waiting" = 1 ] && echo quiet || echo picky)
		if [ "$waiting" != 0 ]; then
			psql_run -d bench -q -c "DO \$\$ DECLARE
				deadline timestamptz := clock_timestamp() + interval '$((PRODUCE_SECS + 2)) s';
			BEGIN
				WHILE clock_timestamp() < deadline LOOP
					PERFORM count(*) FROM tx_receive('$group', 10, wait => '1 s');
					COMMIT;
				END LOOP;
			END \$\$" &
			waiter=$!
			BG_PIDS=("$waiter")
			sleep 0.5
		fi
		out=$WORK/elsewhere.out
		a=$(lsn)
		k=$(sql "SELECT coalesce(max(tick_id), 0) FROM tx_message.ticks")
		pgb -c 8 -j 8 -T "$PRODUCE_SECS" -f "$BENCH/scripts/produce_txm.sql" >"$out" 2>&1 ||
			{ cat "$out"; return 1; }
		ticks=$(( $(sql "SELECT coalesce(max(tick_id), 0) FROM tx_message.ticks") - k ))
		txns=$(txns_of "$out")
		record latency "elsewhere_$waiting" txm "$rep" tps "$(tps_of "$out")"
		record latency "elsewhere_$waiting" txm "$rep" ticks_per_s "$(div "$ticks" "$PRODUCE_SECS")"
		record latency "elsewhere_$waiting" txm "$rep" wal_per_txn "$(div "$(wal_since "$a")" "$txns")"
		if [ -n "$waiter" ]; then
			wait "$waiter"
			BG_PIDS=()
		fi
		case $waiting in
		0) who="nobody" ;;
		1) who="a consumer of another topic" ;;
		*) who="a consumer whose tag filter matches nothing" ;;
		esac
		echo "   latency rep $rep, 8 producers, waiting: $who: $(tps_of "$out") TPS, $(div "$ticks" "$PRODUCE_SECS") ticks/s"
	done
}

# Per-transaction latency (receive 100 + ack) with n messages waiting.
backlog_probe()
{
	local system=$1 n=$2 rep=$3 rounds txns round logdir
	if [ "$n" -le 10000 ]; then
		rounds=$BACKLOG_ROUNDS txns=$((n / 200))		# never take more than half the backlog
	else
		rounds=1 txns=200
	fi
	[ "$txns" -ge 1 ] || txns=1
	reset_systems 1
	wait_worker
	fill "$system" "$n" 10000
	checkpoint
	# what a waiting message takes on disk, indexes and side tables included
	record backlog "n_$n" $system "$rep" bytes_per_msg "$(div "$(total_size $system)" "$n")"
	logdir=$WORK/backlog_log
	as_user rm -rf "$logdir"
	as_user mkdir -p "$logdir"
	for round in $(seq 1 "$rounds"); do
		if [ "$round" -gt 1 ]; then fill "$system" $((txns * 100)) 10000; fi
		(cd "$logdir" && pgb -c 1 -t "$txns" -l --log-prefix="r$round" \
			-f "$BENCH/scripts/consume_$system.sql" >"$WORK/backlog.out" 2>&1) ||
			{ cat "$WORK/backlog.out"; return 1; }
	done
	# log lines: client, transaction number, latency in microseconds, ...;
	# the first transaction of each connection (cold caches) is left out
	local stats
	stats=$(cat "$logdir"/r* | awk '$2 > 0 { print $3 / 1000 }' | sort -n |
		awk '{ v[NR] = $1; s += $1 } END { printf "%s %s %s\n", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)], s / NR }')
	read -r p50 p99 avg <<<"$stats"
	record backlog "n_$n" $system "$rep" p50_ms "$p50"
	record backlog "n_$n" $system "$rep" p99_ms "$p99"
	record backlog "n_$n" $system "$rep" avg_ms "$avg"
	echo "   backlog rep $rep, $n waiting, $system: receive+ack p50 $p50 ms, p99 $p99 ms"
}

scenario_backlog()
{
	local rep n system reps=$REPS
	# the large backlogs take minutes to fill: one repetition of those
	for n in $BACKLOG_SIZES; do
		[ "$n" -gt 1000000 ] && reps=1
		for rep in $(seq 1 "$reps"); do
			for system in outbox txm; do
				backlog_probe $system "$n" "$rep"
			done
		done
	done
}

# 5. steady state: produce + consume at 80 % of the sustainable rate.
scenario_steady()
{
	local system rate out_p out_c produced consumed t0 now elapsed a
	for system in txm outbox; do
		# autocommit consumers, as in the runs before the consume scenario
		# moved to the loop in one transaction (bench/RESULTS.md, run 11)
		local consume=consume_txm_auto.sql
		[ "$system" = outbox ] && consume=consume_outbox_cte.sql
		out_p=$WORK/steady_p.out
		out_c=$WORK/steady_c.out
		rate=200
		if [ "$CALIBRATE_SECS" -gt 0 ]; then
			# sustainable rate: 4 producers flat out against one consumer for a while
			reset_systems 1
			wait_worker
			pgb -c 1 -T "$CALIBRATE_SECS" -f "$BENCH/scripts/$consume" >"$out_c" 2>&1 &
			BG_PIDS=($!)
			pgb -c 4 -j 4 -T "$CALIBRATE_SECS" -f "$BENCH/scripts/produce_$system.sql" >"$out_p" 2>&1
			wait "${BG_PIDS[0]}" || { cat "$out_c"; return 1; }
			BG_PIDS=()
			rate=$(awk -v p="$(tps_of "$out_p")" -v c="$(tps_of "$out_c")" 'BEGIN { r = c * 100; if (p < r) r = p; printf "%d\n", r * 0.8 }')
			[ "$rate" -gt 0 ] || rate=100
		fi
		reset_systems 1
		wait_worker
		sql "SELECT tx_alter_topic('bench', retention => '30 s')" >/dev/null
		checkpoint
		echo "   steady $system: $rate messages/s for $STEADY_SECS s"
		# the consumer polls at 1.25 x the batches the producers make
		# (for the outbox, see consume_outbox_cte.sql); a batch that hangs fails the run
		PGOPTIONS_RUN="-c statement_timeout=60s" pgb -c 1 -R "$(awk -v r="$rate" 'BEGIN { printf "%d\n", r / 100 * 1.25 + 1 }')" -T $((STEADY_SECS + 2)) \
			-f "$BENCH/scripts/$consume" >"$out_c" 2>&1 &
		BG_PIDS=($!)
		pgb -c 4 -j 4 -R "$rate" -T "$STEADY_SECS" -f "$BENCH/scripts/produce_$system.sql" >"$out_p" 2>&1 &
		BG_PIDS+=($!)
		t0=$(date +%s)
		a=$(lsn)
		local last_lsn=$a last_msgs=0 msgs wal
		while :; do
			sleep "$SAMPLE_SECS"
			now=$(date +%s)
			elapsed=$((now - t0))
			[ "$elapsed" -le "$STEADY_SECS" ] || break
			msgs=$(sql "SELECT pg_sequence_last_value('orders_id_seq')")
			msgs=${msgs:-0}
			wal=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$last_lsn')")
			last_lsn=$(lsn)
			record steady "t_$elapsed" $system 1 size_bytes "$(total_size $system)"
			record steady "t_$elapsed" $system 1 dead_tuples "$(dead_tuples $system)"
			record steady "t_$elapsed" $system 1 wal_per_msg "$(div "$wal" $((msgs - last_msgs)))"
			last_msgs=$msgs
		done
		for pid in "${BG_PIDS[@]}"; do wait "$pid" || { cat "$out_p" "$out_c"; return 1; }; done
		BG_PIDS=()
		record steady rate $system 1 msgs_per_s "$rate"
	done
}

# 7. in-database handlers: a trivial handler draining a backlog of
# HANDLER_MSGS messages: one handler group with the default executors (two
# run handlers), the same group with handler_executors => 2, then (issue
# 15, target 8) two handler groups of HANDLER_MSGS / 2 each with 1 and 2
# executors running handlers (tx_message.executors 2 and 3), and with 2
# and handler_executors => 2, also in batches of 1 000.
scenario_handler()
{
	local rep ex
	for rep in $(seq 1 "$REPS"); do
		handler_drain "$rep" noop 1 3
		handler_drain "$rep" wide_1 1 3 2
		for ex in 2 3; do
			sql "ALTER SYSTEM SET tx_message.executors = $ex" >/dev/null
			sql "SELECT pg_reload_conf()" >/dev/null
			handler_drain "$rep" "executors_$((ex - 1))" 2 "$ex"
		done
		handler_drain "$rep" wide_2 2 3 2
		# the flush once per 1 000 messages instead of 100: one executor,
		# then two
		sql "ALTER SYSTEM SET tx_message.handler_batch_size = 1000" >/dev/null
		sql "ALTER SYSTEM SET tx_message.executors = 2" >/dev/null
		sql "SELECT pg_reload_conf()" >/dev/null
		handler_drain "$rep" executors_1_batch_1000 2 2
		sql "ALTER SYSTEM SET tx_message.executors = 3" >/dev/null
		sql "SELECT pg_reload_conf()" >/dev/null
		handler_drain "$rep" wide_2_batch_1000 2 3 2
		sql "ALTER SYSTEM RESET tx_message.handler_batch_size" >/dev/null
		# what bounds the scaling: each batch's commit waits for its WAL
		# flush; the same one and two executors with synchronous_commit off
		sql "ALTER SYSTEM SET synchronous_commit = off" >/dev/null
		for ex in 2 3; do
			sql "ALTER SYSTEM SET tx_message.executors = $ex" >/dev/null
			sql "SELECT pg_reload_conf()" >/dev/null
			handler_drain "$rep" "executors_$((ex - 1))_sync_off" 2 "$ex"
		done
		handler_drain "$rep" wide_2_sync_off 2 3 2
		sql "ALTER SYSTEM RESET synchronous_commit" >/dev/null
		sql "ALTER SYSTEM RESET tx_message.executors" >/dev/null
		sql "SELECT pg_reload_conf()" >/dev/null
	done
}

# CPU ticks used so far by the database's handler executors.
executor_cpu() { pids_cpu $(sql "SELECT array_to_string(executor_pids, ' ') FROM tx_worker_status() WHERE database = 'bench'"); }

# One handler drain: $3 handler groups (handled1..) subscribed from the
# earliest message to a backlog of HANDLER_MSGS / $3 on topic "bench", once
# the executors of tx_message.executors = $4 run, each group's batches in
# up to $5 of them at once (handler_executors, 1 if not given); handled
# messages/s recorded as variant $2, with the cores the machine kept busy
# meanwhile and the messages per CPU-second of the executors.  One session
# subscribes and watches the worker's counter
# (bench_handler_drain in setup.sql): a psql per look would take a good
# share of a core from the executors.
handler_drain()
{
	local rep=$1 variant=$2 groups=$3 executors=$4 wide=${5:-1} i n rate secs m0 m1 e0 e1 busy
	reset_systems 0
	wait_worker
	# a handler subscription elsewhere keeps every handler executor running
	# (tx_message.executors - 1 of them), so that none starts during the drain
	psql_in <<-EOF
		CREATE FUNCTION bench_noop(m tx_message.message) RETURNS void LANGUAGE plpgsql AS 'BEGIN END';
		SELECT tx_create_topic('elsewhere');
		SELECT tx_subscribe('elsewhere', 'warm', handler => 'bench_noop(tx_message.message)',
							handler_executors => 8);
	EOF
	sql "CALL fill_txm('bench', $((HANDLER_MSGS / groups)), 10000, '$PAYLOAD')" >/dev/null
	wait_ticked $((HANDLER_MSGS / groups))
	for i in $(seq 1 100); do
		[ "$(sql "SELECT cardinality(executor_pids) >= greatest($executors - 1, 1) FROM tx_worker_status() WHERE database = 'bench'")" = t ] && break
		sleep 0.1
	done
	m0=$(machine_cpu)
	e0=$(executor_cpu)
	read -r n secs <<<"$(sql "CALL bench_handler_drain($groups, $HANDLER_MSGS, $wide, NULL, NULL)" | tr '|' ' ')"
	e1=$(executor_cpu)
	m1=$(machine_cpu)
	rate=$(div "$n" "$secs")
	busy=$(cores_busy "$m0" "$m1")
	record handler "$variant" txm "$rep" msgs_per_s "$rate"
	record handler "$variant" txm "$rep" cores_busy "$busy"
	record handler "$variant" txm "$rep" msgs_per_executor_cpu_s "$(div "$n" "$(div $((e1 - e0)) "$(getconf CLK_TCK)")")"
	echo "   handler rep $rep, $variant: $groups handler group(s), $n messages in $secs s, $rate messages/s;" \
		"machine busy $busy of $(nproc) cores, executors $(div $((e1 - e0)) "$(getconf CLK_TCK)") CPU s"
}

# No busy polling: CPU used by the idle launcher and worker, in ms per second.
scenario_idle()
{
	local pids before after
	reset_systems 1
	wait_worker
	sleep 2
	pids=$(relay_pids)
	before=$(pids_cpu $pids)
	sleep "$IDLE_SECS"
	after=$(pids_cpu $pids)
	record idle workers txm 1 cpu_ms_per_s "$(awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$IDLE_SECS" 'BEGIN { printf "%.2f\n", d * 1000 / hz / s }')"
	echo "   idle: $((after - before)) CPU ticks in $IDLE_SECS s for processes $pids"
}

# hold: a steady load (300 messages/s, a consumer at 1.25 x) while a
# repeatable-read snapshot is held for the middle phase: live rows and file
# sizes of the side tables over time.  HOLD_PHASES: seconds before, during
# and after the hold.
scenario_hold()
{
	local before during after total t0 now elapsed rel rows bytes
	read -r before during after <<<"$HOLD_PHASES"
	total=$((before + during + after))
	reset_systems 1
	wait_worker
	sql "SELECT tx_alter_topic('bench', retention => '30 s')" >/dev/null
	checkpoint
	echo "   hold: 300 messages/s for $total s, a snapshot held from $before s to $((before + during)) s"
	PGOPTIONS_RUN="-c statement_timeout=60s" pgb -c 1 -R 4 -T $((total + 2)) \
		-f "$BENCH/scripts/consume_txm_auto.sql" >"$WORK/hold_c.out" 2>&1 &
	BG_PIDS=($!)
	pgb -c 4 -j 4 -R 300 -T "$total" -f "$BENCH/scripts/produce_txm.sql" >"$WORK/hold_p.out" 2>&1 &
	BG_PIDS+=($!)
	t0=$(date +%s)
	while :; do
		sleep "$HOLD_SAMPLE_SECS"
		now=$(date +%s)
		elapsed=$((now - t0))
		[ "$elapsed" -le "$total" ] || break
		if [ "$elapsed" -ge "$before" ] && [ -z "$HOLDER_PID" ] && [ "$elapsed" -lt $((before + during)) ]; then
			start_holder
		elif [ "$elapsed" -ge $((before + during)) ] && [ -n "$HOLDER_PID" ]; then
			stop_holder
		fi
		for rel in leases slices ticks retries_data; do
			read -r rows bytes <<<"$(sql "SELECT count(*), pg_total_relation_size('tx_message.$rel') FROM tx_message.$rel" | tr '|' ' ')"
			record hold "t_$elapsed" txm 1 "${rel}_rows" "$rows"
			record hold "t_$elapsed" txm 1 "${rel}_bytes" "$bytes"
		done
	done
	[ -z "$HOLDER_PID" ] || stop_holder
	for pid in "${BG_PIDS[@]}"; do wait "$pid" || { cat "$WORK/hold_p.out" "$WORK/hold_c.out"; return 1; }; done
	BG_PIDS=()
	record hold phases txm 1 before_s "$before"
	record hold phases txm 1 during_s "$during"
}

# soak: the load of t/007_faults.pl (t/load_fixture.sql) in a database of
# its own: 8 producers (tx_send, tx_send_batch, half messages with
# check-backs) and 4 consumers (2 acking in the receiving transaction, 2
# acking later), and a handler, for SOAK_SECS; then the backlog drains and
# the effects are counted against the committed business rows.
scenario_soak()
{
	local t0 counts kind lost phantom dup effects dead produced unexpected
	sql "DROP DATABASE IF EXISTS soak" >/dev/null
	sql "CREATE DATABASE soak" >/dev/null
	psql_run -d soak -q -f "$WORK/src/t/load_fixture.sql" >/dev/null
	as_user rm -f "$WORK"/soak_stop_*
	BG_PIDS=()
	# a loop per producer or consumer: one CALL per connection until its
	# stop file exists (the producers stop first, the consumers after the drain)
	soak_prod() { as_user bash -c 'while [ ! -e "$1" ]; do "$2" -XAtq -v ON_ERROR_STOP=1 -d "$3" -c "$4" >/dev/null 2>>"$5" || sleep 0.2; done' \
		soak "$WORK/soak_stop_producers" "$BINDIR/psql" "host=$PGHOST port=$PGPORT user=postgres dbname=soak application_name=$1" \
		"$2" "$WORK/soak_$1.err" </dev/null & BG_PIDS+=($!); }
	soak_cons() { as_user bash -c 'while [ ! -e "$1" ]; do "$2" -XAtq -v ON_ERROR_STOP=1 -d "$3" -c "$4" >/dev/null 2>>"$5" || sleep 0.2; done' \
		soak "$WORK/soak_stop_consumers" "$BINDIR/psql" "host=$PGHOST port=$PGPORT user=postgres dbname=soak application_name=$1" \
		"$2" "$WORK/soak_$1.err" </dev/null & CONS_PIDS+=($!); }
	CONS_PIDS=()
	for i in 1 2 3; do soak_prod "single$i" "CALL produce('single', 1)"; done
	for i in 1 2 3; do soak_prod "batch$i" "CALL produce('batch', 1)"; done
	for i in 1 2; do soak_prod "half$i" "CALL produce('half', 1)"; done
	for i in 1 2; do soak_cons "pull$i" "CALL consume_pull(1)"; done
	for i in 1 2; do soak_cons "ext$i" "CALL consume_ext(1)"; done
	echo "   soak: 8 producers, 4 consumers and a handler for $SOAK_SECS s"
	sleep "$SOAK_SECS"
	as_user touch "$WORK/soak_stop_producers"
	for pid in "${BG_PIDS[@]}"; do wait "$pid" || true; done
	BG_PIDS=()
	t0=$SECONDS
	while [ $((SECONDS - t0)) -lt 300 ]; do
		[ "$(psql_run -d soak -Atq -c "SELECT sum(lost) FROM effect_counts")" = 0 ] && break
		sleep 1
	done
	sleep 2
	as_user touch "$WORK/soak_stop_consumers"
	for pid in "${CONS_PIDS[@]}"; do wait "$pid" || true; done
	CONS_PIDS=()
	produced=$(psql_run -d soak -Atq -c "SELECT count(*) FROM produced")
	record soak all txm 1 produced "$produced"
	record soak all txm 1 drain_s $((SECONDS - t0))
	while IFS='|' read -r kind lost phantom dup effects dead; do
		record soak "$kind" txm 1 lost "$lost"
		record soak "$kind" txm 1 phantom "$phantom"
		record soak "$kind" txm 1 dup "$dup"
		record soak "$kind" txm 1 effects "$effects"
		record soak "$kind" txm 1 dead "$dead"
		echo "   soak $kind: effects $effects, lost $lost, phantom $phantom, duplicate $dup, dead letters $dead"
	done < <(psql_run -d soak -Atq -c "SELECT * FROM effect_counts ORDER BY 1")
	unexpected=$(cat "$WORK"/soak_*.err 2>/dev/null | grep -c . || true)
	record soak all txm 1 error_lines "$unexpected"
	echo "   soak: $produced committed business rows, drained in $((SECONDS - t0)) s, $unexpected error lines"
	[ "$unexpected" -eq 0 ] || { head -n 20 "$WORK"/soak_*.err; return 1; }
}

# stats: what one SELECT * FROM tx_stats() costs with STATS_BACKLOG messages
# waiting for each of 100 groups (some of them partly consumed, some
# leased, retried and dead-lettered), as a monitoring scraper would run it.
scenario_stats()
{
	local i out=$WORK/stats.out
	reset_systems 100
	wait_worker
	fill txm "$STATS_BACKLOG" 1000
	for i in $(seq 0 9); do
		sql "SELECT count(tx_ack('g$i', msg_id)) FROM tx_receive('g$i', 1000)" >/dev/null
		sql "SELECT count(*) FROM tx_receive('g$i', 100)" >/dev/null
		sql "SELECT count(tx_nack('g$i', msg_id, 'bench')) FROM tx_receive('g$i', 10)" >/dev/null
	done
	echo 'SELECT * FROM tx_stats();' | as_user tee "$WORK/stats.sql" >/dev/null
	pgb -c 1 -t 20 -f "$WORK/stats.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
	record stats "n_$STATS_BACKLOG" txm 1 ms "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")"
	echo "   stats: $(sed -n 's/^latency average = //p' "$out") per SELECT * FROM tx_stats() (100 groups, $STATS_BACKLOG messages waiting)"
	# tx_find has no index to use: it scans what is retained since `since`
	echo "SELECT count(*) FROM tx_find('bench', 'no-such-key', now() - interval '1 day');" | as_user tee "$WORK/find.sql" >/dev/null
	pgb -c 1 -t 3 -f "$WORK/find.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
	record find "n_$STATS_BACKLOG" txm 1 ms "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")"
	echo "   find: $(sed -n 's/^latency average = //p' "$out") per tx_find over $STATS_BACKLOG retained messages"
}

# parity: what the features of 1.1 cost where they touch a hot path.
#  - produce with a dedup key (a new key per message) against tx_send
#    without one and the outbox, 8 clients, in one run;
#  - draining BACKLOG messages with a header filter that half of them match
#    ('$.region == "eu" && $.amount > 100'), against the same drain without
#    a filter: messages of the backlog per second, filtered ones included.
scenario_parity()
{
	local rep system out variant group batches
	for rep in $(seq 1 "$PRODUCE_REPS"); do
		for system in $(in_turn "$rep" outbox txm txm_dedup); do
			reset_systems 1
			wait_worker
			checkpoint
			out=$WORK/parity.out
			pgb -c 8 -j 8 -T "$PRODUCE_SECS" -f "$BENCH/scripts/produce_$system.sql" >"$out" 2>&1 ||
				{ cat "$out"; return 1; }
			record parity produce_c8 $system "$rep" tps "$(tps_of "$out")"
			echo "   parity produce rep $rep, 8 clients, $system: $(tps_of "$out") TPS"
		done
	done
	for rep in $(seq 1 "$REPS"); do
		for variant in $(in_turn "$rep" plain filtered); do
			reset_systems 0
			psql_in <<-EOF
				SELECT tx_subscribe('bench', 'gp');
				SELECT tx_subscribe('bench', 'gf', filter => '\$.region == "eu" && \$.amount > 100');
			EOF
			wait_worker
			sql "CALL fill_txm_headers('bench', $BACKLOG, 100, '$PAYLOAD')"
			wait_ticked "$BACKLOG"
			checkpoint
			# batches of 100: the filtered group wants half of the backlog
			group=gp batches=$((BACKLOG / 100))
			[ "$variant" = filtered ] && group=gf batches=$((BACKLOG / 200))
			out=$WORK/parity.out
			pgb -c 1 -j 1 -t "$batches" -D group=$group \
				-f "$BENCH/scripts/consume_txm_group.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
			local left
			left=$(sql "SELECT count(*) FROM tx_receive('$group', 100000)")
			local elapsed rate
			elapsed=$(div "$(txns_of "$out")" "$(tps_of "$out")")
			rate=$(div "$BACKLOG" "$elapsed")
			record parity "drain_$variant" txm "$rep" msgs_per_s "$rate"
			record parity "drain_$variant" txm "$rep" left_over "$left"
			echo "   parity drain rep $rep, $variant: $rate backlog messages/s ($left left over)"
		done
	done
}

# console: page load times of the web console (console/) with
# CONSOLE_BACKLOG messages waiting for each of 100 groups, 100 dead letters
# and 100 half messages: the server's answer to each page, as a browser's
# request for its HTML, 5 times each (median and worst).
scenario_console()
{
	local port=$((PGPORT + 7)) line page ms worst bytes id
	command -v node >/dev/null || { echo "   console: no Node.js, skipped"; return 0; }
	reset_systems 100
	wait_worker
	fill txm "$CONSOLE_BACKLOG" 1000
	sql "SELECT tx_subscribe('bench', 'g0', max_retries => 0)" >/dev/null
	sql "SELECT count(tx_nack('g0', msg_id, 'bench')) FROM tx_receive('g0', 100)" >/dev/null
	sql "SELECT count(tx_send_half('bench', '{\"half\": true}')) FROM generate_series(1, 100)" >/dev/null
	id=$(sql "SELECT max(msg_id) FROM tx_message.dead_letters")
	# the console lets in only roles whose password the server checks
	sql "DROP ROLE IF EXISTS console_bench; CREATE ROLE console_bench SUPERUSER LOGIN PASSWORD 'console-bench'" >/dev/null
	as_user bash -c "{ echo 'local all console_bench scram-sha-256'; cat '$WORK/data/pg_hba.conf'; } >'$WORK/hba.new' &&
		mv '$WORK/hba.new' '$WORK/data/pg_hba.conf'"
	sql "SELECT pg_reload_conf()" >/dev/null
	as_user mkdir -p "$WORK/console"
	as_user cp -r "$WORK/src/console/." "$WORK/console/"
	as_user bash -c "cd '$WORK/console' && rm -rf node_modules && npm ci --omit=dev --no-audit --no-fund --silent" >/dev/null 2>&1 ||
		{ echo "   console: npm ci failed" >&2; return 1; }
	# the pid of node itself (as_user's would not pass a signal on): exec in a shell that wrote its own
	as_user bash -c 'echo $$ >"$1"; exec node "$2/console/server.mjs" --db "$3" --port "$4"' _ \
		"$WORK/console.pid" "$WORK" "postgres:///bench?host=$PGHOST&port=$PGPORT" "$port" >"$WORK/console.log" 2>&1 &
	sleep 2
	CONSOLE_PID=$(cat "$WORK/console.pid")
	as_user env CONSOLE_URL="http://127.0.0.1:$port/" LOAD_USER=console_bench LOAD_PASSWORD=console-bench ROUNDS=5 \
		PAGES="/ /topic?name=bench /group?name=g0 /dead-letters /half /message?id=$id" \
		node "$WORK/console/test/loadtime.mjs" >"$WORK/console_load.out" 2>&1 ||
		{ cat "$WORK/console_load.out" "$WORK/console.log"; kill "$CONSOLE_PID"; return 1; }
	kill "$CONSOLE_PID"
	CONSOLE_PID=
	while read -r page ms worst bytes; do
		record console "${page%%\?*}" txm 1 ms "$ms"
		record console "${page%%\?*}" txm 1 worst_ms "$worst"
		echo "   console $page: $ms ms (worst $worst ms, $bytes bytes), $CONSOLE_BACKLOG messages waiting for each of 100 groups"
	done <"$WORK/console_load.out"
}

# loops: the consumer loops side by side, 1 and 2 consumers draining
# LOOP_BACKLOG messages of one group (several seconds a drain: c2 / c1 of
# drains of a second or two moved by a third between repetitions).  The
# outbox in one transaction (the consume scenario's) and as one autocommit
# DELETE; tx_message's loop of the README (receive, ack and commit in one
# transaction: the consume scenario's), the
# same in two round trips (BEGIN sent with the receive, the ack with COMMIT),
# the same with the id array on every row, receive and ack as two autocommit
# statements, and both in one CTE statement.  Rows go to the client,
# tx_message's ids on the last row only (but in ids_every_row).  The
# outbox's and the README's loop again with synchronous_commit = off
# (_async): what waiting for the commit's WAL flush costs each.  Each
# repetition also times a round trip that does nothing (SELECT 1), the cost
# that the loops differ by.
scenario_loops()
{
	local rep loop clients system script mode sync per_client out tps txns consumed left rate m0 m1
	for rep in $(seq 1 "$REPS"); do
		out=$WORK/loops.out
		pgb -c 1 -T "$PRODUCE_SECS" -f "$BENCH/scripts/roundtrip.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
		record loops roundtrip none "$rep" ms "$(div 1000 "$(tps_of "$out")")"
		echo "   loops rep $rep: a round trip takes $(div 1000 "$(tps_of "$out")") ms"
		for clients in 1 2; do
			for loop in $(in_turn "$rep" $LOOPS); do
				system=txm mode=prepared sync=on
				case $loop in
				outbox_tx) system=outbox script=consume_outbox.sql ;;
				outbox_auto) system=outbox script=consume_outbox_auto.sql ;;
				outbox_tx_async) system=outbox script=consume_outbox.sql sync=off ;;
				txm_tx) script=consume_txm.sql ;;
				txm_tx_async) script=consume_txm.sql sync=off ;;
				txm_tx_ordered) script=consume_txm.sql ;;
				txm_tx2) script=loop_txm_tx2.sql mode=simple ;;
				txm_auto) script=consume_txm_auto.sql ;;
				*) script=loop_$loop.sql ;;
				esac
				reset_systems 1
				wait_worker
				if [ "$loop" = txm_tx_ordered ]; then
					# an ordered group, 1 000 keys in turn
					sql "SELECT tx_subscribe('bench', 'g0', ordered => true)" >/dev/null
					sql "CALL fill_txm_keys('bench', $LOOP_BACKLOG, 100, '$PAYLOAD', 1000)"
					wait_ticked "$LOOP_BACKLOG"
				else
					fill "$system" "$LOOP_BACKLOG"
				fi
				checkpoint
				per_client=$((LOOP_BACKLOG / 100 / clients))
				m0=$(machine_cpu)
				PGOPTIONS_RUN="-c synchronous_commit=$sync" \
					pgb -M "$mode" -c "$clients" -j "$clients" -t "$per_client" -f "$BENCH/scripts/$script" >"$out" 2>&1 ||
					{ cat "$out"; return 1; }
				m1=$(machine_cpu)
				txns=$(txns_of "$out")
				tps=$(tps_of "$out")
				left=$(remaining "$system" 1)
				consumed=$((LOOP_BACKLOG - left))
				rate=$(div "$consumed" "$(div "$txns" "$tps")")
				record loops "${loop}_c$clients" "$system" "$rep" msgs_per_s "$rate"
				# what the machine had left: pgbench, the backends and the rest
				record loops "${loop}_c$clients" "$system" "$rep" cores_busy "$(cores_busy "$m0" "$m1")"
				echo "   loops rep $rep, $loop, $clients consumer(s): $rate messages/s ($left left over)," \
					"machine busy $(cores_busy "$m0" "$m1") of $(nproc) cores"
			done
		done
	done
}

# The worker's (and launcher's) CPU in ms per second over IDLE_SECS, and the
# private memory of the database worker in kB, as "cpu rss".
worker_idle()
{
	local pids worker before after
	pids=$(relay_pids)
	worker=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'tx_message worker' AND datname = 'bench'")
	before=$(pids_cpu $pids)
	sleep "$IDLE_SECS"
	after=$(pids_cpu $pids)
	echo "$(awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$IDLE_SECS" 'BEGIN { printf "%.2f\n", d * 1000 / hz / s }')" \
		"$(awk '/^RssAnon:/ { print $2 }' "/proc/$worker/status")"
}

# Wait until topic $1 has $2 positions in its stream.
wait_ticked_topic()
{
	local topic=$1 want=$2 i
	for i in $(seq 1 6000); do
		[ "$(sql "SELECT coalesce(sum(cardinality(tx_message._slice_positions(s.positions, s.packed))), 0) >= $want FROM tx_message.slices s
		           JOIN tx_message.topics t USING (topic_id) WHERE t.topic = '$topic'")" = t ] && return 0
		sleep 0.05
	done
	echo "messages were not made deliverable in time" >&2
	return 1
}

# A point in a produce run: the time, the WAL position and the orders
# committed so far (each produce transaction commits one).
window_mark()
{
	echo "$(date +%s.%N) $(sql "SELECT pg_current_wal_lsn() || ' ' || count(*) FROM orders")" >"$1"
}

# TPS and WAL bytes per transaction between two window_mark files.
window_figures()
{
	local t0 l0 n0 t1 l1 n1
	read -r t0 l0 n0 <"$1"
	read -r t1 l1 n1 <"$2"
	echo "$(div $((n1 - n0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")" \
		"$(div "$(sql "SELECT pg_wal_lsn_diff('$l1', '$l0')")" $((n1 - n0)))"
}

# topics (issue 15, target 4): n topics t0.. with one group g<i> each, for
# n = 1 and TOPICS.  Per n: the idle worker's CPU and memory; 8 producers
# sending to a topic picked at random (TPS and WAL per transaction, in the
# first PRODUCE_SECS and in the next); then
# group g0 drains DRAIN_MSGS messages of t0 while the other topics keep what
# they were sent (messages/s).
scenario_topics()
{
	local rep n out wal tps wal2 tps2 mark_pid cpu rss base rate left
	for rep in $(seq 1 "$REPS"); do
		for n in $(in_turn "$rep" 1 "$TOPICS"); do
			psql_in <<-EOF
				TRUNCATE orders RESTART IDENTITY;
				SET client_min_messages = warning;
				DROP EXTENSION IF EXISTS tx_message CASCADE;
				CREATE EXTENSION tx_message;
				SELECT count(tx_create_topic('t' || i)) FROM generate_series(0, $n - 1) i;
				SELECT count(tx_subscribe('t' || i, 'g' || i)) FROM generate_series(0, $n - 1) i;
			EOF
			wait_worker
			sleep 2
			read -r cpu rss <<<"$(worker_idle)"
			record topics "idle_$n" txm "$rep" cpu_ms_per_s "$cpu"
			record topics "idle_$n" txm "$rep" worker_rss_kb "$rss"
			checkpoint
			# One pgbench run of two windows of PRODUCE_SECS: the first is
			# what a new worker and new sessions do (every topic is new to
			# them), the second the steady state.  Each window's figures come
			# from the orders committed in it, counted at its ends.
			out=$WORK/topics_p.out
			window_mark "$WORK/topics_w0"
			{ sleep "$PRODUCE_SECS"; window_mark "$WORK/topics_w1"; } &
			mark_pid=$!
			pgb -c 8 -j 8 -T $((2 * PRODUCE_SECS)) -D ntopics="$n" -f "$BENCH/scripts/produce_txm_topics.sql" >"$out" 2>&1 ||
				{ kill "$mark_pid" 2>/dev/null; cat "$out"; return 1; }
			wait "$mark_pid"
			window_mark "$WORK/topics_w2"
			read -r tps wal <<<"$(window_figures "$WORK/topics_w0" "$WORK/topics_w1")"
			record topics "produce_$n" txm "$rep" tps "$tps"
			record topics "produce_$n" txm "$rep" wal_per_txn "$wal"
			read -r tps2 wal2 <<<"$(window_figures "$WORK/topics_w1" "$WORK/topics_w2")"
			record topics "produce_warm_$n" txm "$rep" tps "$tps2"
			record topics "produce_warm_$n" txm "$rep" wal_per_txn "$wal2"
			out=$WORK/topics.out
			# g0 first takes what the producers sent to t0
			while [ "$(sql "SELECT count(*) FROM tx_receive('g0', 100000)")" -gt 0 ]; do :; done
			base=$(sql "SELECT coalesce(sum(cardinality(tx_message._slice_positions(s.positions, s.packed))), 0) FROM tx_message.slices s
			            JOIN tx_message.topics t USING (topic_id) WHERE t.topic = 't0'")
			sql "CALL fill_txm('t0', $DRAIN_MSGS, 100, '$PAYLOAD')"
			wait_ticked_topic t0 $((base + DRAIN_MSGS))
			checkpoint
			pgb -c 1 -t $((DRAIN_MSGS / 100)) -D group=g0 -f "$BENCH/scripts/consume_txm_group.sql" >"$out" 2>&1 ||
				{ cat "$out"; return 1; }
			left=$(sql "SELECT count(*) FROM tx_receive('g0', 100000)")
			rate=$(div $((DRAIN_MSGS - left)) "$(div "$(txns_of "$out")" "$(tps_of "$out")")")
			record topics "drain_$n" txm "$rep" msgs_per_s "$rate"
			echo "   topics rep $rep, $n topic(s): idle worker $cpu ms/s CPU, $rss kB private;" \
				"$tps TPS, $wal WAL bytes/txn, then $tps2 TPS, $wal2 WAL bytes/txn; g0 drains $rate messages/s ($left left over)"
		done
	done
}

# groups (issue 15, target 5): one topic with n groups, n = 4 and NGROUPS.
# Per n: WAL per produced message (8 producers), then 4 consumers drain
# GROUP_DELIVERIES deliveries in all (GROUP_DELIVERIES / n messages), each
# serving n / 4 groups in turn, one batch per transaction (deliveries/s),
# and the idle worker's CPU.
scenario_groups()
{
	local rep n out a wal txns msgs per_client rate left cpu rss base
	for rep in $(seq 1 "$REPS"); do
		for n in $(in_turn "$rep" 4 "$NGROUPS"); do
			reset_systems "$n"
			wait_worker
			sleep 2
			read -r cpu rss <<<"$(worker_idle)"
			record groups "idle_$n" txm "$rep" cpu_ms_per_s "$cpu"
			record groups "idle_$n" txm "$rep" worker_rss_kb "$rss"
			checkpoint
			out=$WORK/groups.out
			a=$(lsn)
			pgb -c 8 -j 8 -T "$PRODUCE_SECS" -f "$BENCH/scripts/produce_txm.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
			wal=$(wal_since "$a")
			txns=$(txns_of "$out")
			record groups "produce_$n" txm "$rep" tps "$(tps_of "$out")"
			record groups "produce_$n" txm "$rep" wal_per_txn "$(div "$wal" "$txns")"
			# the groups skip what the producers sent
			base=$(sql "SELECT coalesce(sum(cardinality(tx_message._slice_positions(positions, packed))), 0) FROM tx_message.slices")
			wait_ticked_topic bench "$base"
			sql "SELECT tx_seek('g' || i, 'bench', 'now') FROM generate_series(0, $n - 1) i" >/dev/null
			msgs=$((GROUP_DELIVERIES / n))
			sql "CALL fill_txm('bench', $msgs, 100, '$PAYLOAD')"
			wait_ticked_topic bench $((base + msgs))
			checkpoint
			per_client=$((msgs / 100 * n / 4))
			pgb -c 4 -j 4 -t "$per_client" -D ngroups="$n" -D nclients=4 -D k=0 \
				-f "$BENCH/scripts/consume_txm_groups.sql" >"$out" 2>&1 || { cat "$out"; return 1; }
			left=$(remaining txm "$n")
			rate=$(div $((msgs * n - left)) "$(div "$(txns_of "$out")" "$(tps_of "$out")")")
			record groups "drain_$n" txm "$rep" deliveries_per_s "$rate"
			echo "   groups rep $rep, $n groups: idle worker $cpu ms/s CPU, $rss kB private; $(div "$wal" "$txns") WAL bytes/txn;" \
				"$rate deliveries/s ($left left over)"
		done
	done
}

# databases (issue 15, target 6): DATABASES databases db_1.. that each have
# the extension, a topic with a handler subscription writing to a table, and
# a pull group.  Workers leave after 2 s without work here (the default is
# a minute), so that the run sees databases whose worker left.
#  - served: one message is sent in each; how many databases had it handled
#    within 10 s, how long until all had, and how long after its send a
#    handler ran (p50, in a database without a worker: worker and executor
#    start included);
#  - idle CPU: once every worker has left, the CPU of the whole cluster
#    (the postmaster, its children, and the children it reaped meanwhile),
#    in ms per second over IDLE_SECS, and again with autovacuum off (its
#    visit to each database every autovacuum_naptime is PostgreSQL's own
#    idle cost, whatever the extensions);
#  - wait latency: in up to 20 databases whose worker had left, a consumer
#    waits in tx_receive(wait => ...) and a message is sent 0.3 s later:
#    commit -> consumer, p50 / p99 / max in ms.
cluster_cpu_ticks()
{
	local pm
	pm=$(head -n 1 "$WORK/data/postmaster.pid")
	# the postmaster's own and its reaped children's, and the living children's
	echo $(( $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat") + $(pids_cpu $(pgrep -P "$pm")) ))
}

scenario_databases()
{
	local i served all_s t0 now cpu cpu_noav cpu_plain k lat rows n p50 p99 pmax
	for i in $(seq 1 "$DATABASES"); do
		as_user "$BINDIR/createdb" "db_$i"
		as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres \
			"$BINDIR/psql" -X -v ON_ERROR_STOP=1 -d "db_$i" -q >/dev/null <<-EOF
			CREATE EXTENSION tx_message;
			CREATE TABLE handled (at timestamptz NOT NULL DEFAULT clock_timestamp(), sent_at timestamptz);
			CREATE FUNCTION note(m tx_message.message) RETURNS void LANGUAGE sql
				AS 'INSERT INTO handled (sent_at) VALUES (m.sent_at)';
			SELECT tx_create_topic('t');
			SELECT tx_subscribe('t', 'h', handler => 'note(tx_message.message)');
			SELECT tx_create_topic('w');
			SELECT tx_subscribe('w', 'g');
		EOF
	done
	sql "ALTER SYSTEM SET tx_message.worker_idle_timeout = '2s'" >/dev/null
	sql "SELECT pg_reload_conf()" >/dev/null
	wait_no_workers() {
		for k in $(seq 1 600); do
			[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('tx_message worker', 'tx_message executor')")" = 0 ] && return 0
			sleep 0.1
		done
		return 1
	}
	wait_no_workers || echo "   databases: workers still running after 60 s"
	for i in $(seq 1 "$DATABASES"); do
		psql_run -d "db_$i" -Atq -c "SELECT tx_send('t', '{}')" >/dev/null
	done
	# tx_worker_status() counts each database's handled messages
	t0=$(date +%s.%N)
	served=0 all_s=NaN
	for k in $(seq 1 600); do
		n=$(psql_run -d db_1 -Atq -c "SELECT count(*) FROM tx_worker_status() WHERE database::text LIKE 'db\_%' AND handled > 0")
		now=$(date +%s.%N)
		[ "$(awk -v a="$now" -v b="$t0" 'BEGIN { print (a - b <= 10) }')" = 1 ] && served=$n
		if [ "$n" = "$DATABASES" ]; then all_s=$(awk -v a="$now" -v b="$t0" 'BEGIN { printf "%.1f\n", a - b }'); break; fi
		sleep 0.1
	done
	rows=""
	for i in $(seq 1 "$DATABASES"); do
		rows="$rows $(psql_run -d "db_$i" -Atq -c "SELECT min(extract(epoch FROM at - sent_at) * 1000)::numeric(10,1) FROM handled")"
	done
	record databases "n_$DATABASES" txm 1 served "$served"
	record databases "n_$DATABASES" txm 1 served_all_s "$all_s"
	record databases "n_$DATABASES" txm 1 handler_p50_ms "$(echo $rows | tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "NaN" }')"

	wait_no_workers || echo "   databases: workers still running after 60 s"
	idle_cpu() {
		local before after
		before=$(cluster_cpu_ticks)
		sleep "$IDLE_SECS"
		after=$(cluster_cpu_ticks)
		awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$IDLE_SECS" 'BEGIN { printf "%.2f\n", d * 1000 / hz / s }'
	}
	cpu=$(idle_cpu)
	record databases "n_$DATABASES" txm 1 idle_cpu_ms_per_s "$cpu"
	# what autovacuum's visits (one per database and autovacuum_naptime) take of it
	sql "ALTER SYSTEM SET autovacuum = off" >/dev/null
	sql "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	cpu_noav=$(idle_cpu)
	record databases "n_$DATABASES" txm 1 idle_cpu_noav_ms_per_s "$cpu_noav"
	sql "ALTER SYSTEM RESET autovacuum" >/dev/null
	sql "SELECT pg_reload_conf()" >/dev/null

	lat=""
	for i in $(seq 1 "$(( DATABASES < 20 ? DATABASES : 20 ))"); do
		wait_no_workers >/dev/null || echo "   databases: workers still running after 60 s"
		psql_run -d "db_$i" -Atq -c "SELECT round(extract(epoch FROM clock_timestamp() - (payload->>'at')::timestamptz) * 1000, 2)
			FROM tx_receive('g', 1, wait => '10 s')" > "$WORK/wait_$i.out" &
		k=$!
		sleep 0.3
		psql_run -d "db_$i" -Atq -c "SELECT tx_send('w', jsonb_build_object('at', clock_timestamp()))" >/dev/null
		wait "$k"
		lat="$lat $(cat "$WORK/wait_$i.out")"
	done
	read -r n p50 p99 pmax <<<"$(echo $lat | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (!NR) print "0 NaN NaN NaN"; else print NR, v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)], v[NR] }')"
	record databases "n_$DATABASES" txm 1 wait_p50_ms "$p50"
	record databases "n_$DATABASES" txm 1 wait_p99_ms "$p99"
	record databases "n_$DATABASES" txm 1 wait_max_ms "$pmax"
	# the same databases without the extension: what autovacuum's visits
	# cost a cluster of that many databases whatever is installed (while
	# workers still leave after 2 s)
	wait_no_workers || echo "   databases: workers still running after 60 s"
	for i in $(seq 1 "$DATABASES"); do
		psql_run -d "db_$i" -Atq -c "DROP EXTENSION tx_message CASCADE" >/dev/null 2>&1 ||
			echo "   databases: could not drop the extension in db_$i"
	done
	sleep 1
	cpu_plain=$(idle_cpu)
	record databases "n_$DATABASES" txm 1 idle_cpu_plain_ms_per_s "$cpu_plain"
	sql "ALTER SYSTEM RESET tx_message.worker_idle_timeout" >/dev/null
	sql "SELECT pg_reload_conf()" >/dev/null
	echo "   databases: $served of $DATABASES served within 10 s, all in $all_s s; the idle cluster used $cpu ms of CPU per second ($cpu_noav without autovacuum, $cpu_plain without the extension);" \
		"commit -> waiting consumer in a database without a worker: p50 $p50 p99 $p99 max $pmax ms ($n)"
	for i in $(seq 1 "$DATABASES"); do
		as_user "$BINDIR/dropdb" --force "db_$i"
	done
}

#----------------------------------------------------------------------

for s in $SCENARIOS; do
	case $s in
	produce | batch | consume | held | latency | backlog | steady | hold | handler | idle | soak | stats | parity | console | loops | topics | groups | databases) ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
	echo "== $s"
	started=$SECONDS
	"scenario_$s"
	echo "   ($((SECONDS - started)) s)"
done

echo "== report"
psql_run -d bench -q \
	-c "CREATE TABLE results (scenario text, variant text, system text, rep int, metric text, value float8,
	                          ord integer GENERATED ALWAYS AS IDENTITY)" \
	-c "\\copy results (scenario, variant, system, rep, metric, value) FROM '$RESULTS' WITH (FORMAT csv)"
{
	echo "# tx_message benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Mode \`$MODE\`, $REPS repetition(s); $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) memory;"
	echo "$($BINDIR/postgres --version); settings: ${SERVER_SETTINGS[*]}."
	echo
	psql_run -d bench -Atq -f "$BENCH/report.sql"
} >"$WORK/report.md"
mkdir -p "$OUT"
cp "$WORK/report.md" "$OUT/report.md"
cp "$RESULTS" "$OUT/results.csv"
cat "$WORK/report.md"
echo "== wrote $OUT/report.md and $OUT/results.csv"
as_user "$BINDIR/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null
