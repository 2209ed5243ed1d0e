#!/usr/bin/env bash
# Build and install tx_message, start a throwaway cluster that preloads it,
# play examples/demo.sql, and stop the cluster again.
#
#   bash scripts/demo.sh
#   DEMO_INSTALLED=1 bash scripts/demo.sh   # against what is installed (a package)

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

trap 'status=$?; if [ $status -ne 0 ] && [ -f "${WORK:-/nonexistent}/server.log" ]; then echo "---- server log"; tail -n 40 "$WORK/server.log"; fi; cleanup_workdir; exit $status' EXIT

ensure_deps
make_workdir tx_message-demo
if [ "${DEMO_INSTALLED:-0}" != 1 ]; then
	build_and_install
fi
echo "== starting a throwaway cluster in $WORK"
start_cluster
psql_run -d postgres -q -f "$WORK/src/examples/order_points.sql"
as_user "$BINDIR/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null
echo "== done; the cluster was stopped and $WORK is removed"
