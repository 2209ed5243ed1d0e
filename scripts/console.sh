#!/usr/bin/env bash
# Start the tx_message web console (console/), installing its npm packages
# the first time.  Arguments go to console/server.mjs:
#
#   bash scripts/console.sh --db 'postgres://HOST:PORT/DBNAME'
#   bash scripts/console.sh --db 'postgres:///DBNAME?host=/var/run/postgresql' --port 8432
#
# It listens on 127.0.0.1:8432 unless told otherwise (--listen, --port);
# operators log in with a PostgreSQL role and its password.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../console" && pwd)"
command -v node >/dev/null || { echo "console.sh: Node.js 18 or later is needed (apt-get install nodejs npm)" >&2; exit 1; }
if [ ! -d "$dir/node_modules/pg" ]; then
	echo "== installing the console's packages (npm ci)" >&2
	(cd "$dir" && npm ci --omit=dev --no-audit --no-fund --silent)
fi
exec node "$dir/server.mjs" "$@"
