# Shared helpers for scripts/demo.sh, scripts/test.sh and bench/run.sh.
# Sourced, not executed.
#
# Everything runs in a private temporary directory: a copy of the tree, the
# throwaway clusters, their sockets and logs.  As root (CI), servers and
# initdb run as the "postgres" OS user, because they refuse root; as another
# user, "sudo" is used only for apt-get and "make install".

set -euo pipefail
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
	RUNAS=(runuser -u postgres --)
	ASROOT=()
else
	RUNAS=()
	ASROOT=(sudo)
fi

as_user() { "${RUNAS[@]}" "$@"; }
as_root() { "${ASROOT[@]}" "$@"; }

# Install what a fresh Debian machine with PostgreSQL 15 lacks: the server
# headers (pg_config alone comes with the client), IPC::Run for the TAP
# tests, and the compilers.  Extra Debian packages may be passed.
ensure_deps()
{
	local missing=()
	[ -f "$($PG_CONFIG --includedir-server)/postgres.h" ] || missing+=(postgresql-server-dev-15)
	perl -MIPC::Run -e1 2>/dev/null || missing+=(libipc-run-perl)
	command -v make >/dev/null || missing+=(make)
	command -v gcc >/dev/null || missing+=(gcc)
	for pkg in "$@"; do
		dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "== installing ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >/dev/null
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" </dev/null >/dev/null
	fi
	BINDIR=$($PG_CONFIG --bindir)
	export BINDIR
}

# A private work directory holding a copy of the tree, owned by the user
# that runs the servers.
make_workdir()
{
	WORK=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$WORK"
	mkdir -p "$WORK/src" "$WORK/tmp"
	tar -C "$REPO" --exclude=.git --exclude='tmp_check*' --exclude=results \
		--exclude=output_iso --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude=node_modules \
		-cf - . | tar -C "$WORK/src" -xf -
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$WORK"
	fi
	export TMPDIR=$WORK/tmp
}

# Build (with WERROR=1, warnings fail the build) and install into the server.
build_and_install()
{
	local copt=()

	[ "${WERROR:-0}" = 1 ] && copt=(COPT=-Werror)
	echo "== building"
	as_user make -s -C "$WORK/src" PG_CONFIG="$PG_CONFIG" "${copt[@]}" >"$WORK/build.log" 2>&1 ||
		{ cat "$WORK/build.log"; return 1; }
	if grep -q 'warning:' "$WORK/build.log"; then
		grep 'warning:' "$WORK/build.log"
	fi
	if [ "${SKIP_INSTALL:-0}" != 1 ]; then
		echo "== installing the extension into $($PG_CONFIG --pkglibdir)"
		as_root make -s -C "$WORK/src" PG_CONFIG="$PG_CONFIG" install >>"$WORK/build.log" 2>&1 ||
			{ cat "$WORK/build.log"; return 1; }
	fi
}

# Stop every server whose data directory is under the work directory.  Only
# the PID in each postmaster.pid is signalled (pg_ctl does that).
stop_servers()
{
	[ -n "${WORK:-}" ] && [ -d "$WORK" ] || return 0
	find "$WORK" -name postmaster.pid 2>/dev/null | while read -r pidfile; do
		as_user "$BINDIR/pg_ctl" -D "$(dirname "$pidfile")" stop -m immediate >/dev/null 2>&1 || true
	done
}

cleanup_workdir()
{
	stop_servers
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ] && [ "${KEEP_WORKDIR:-0}" != 1 ]; then
		rm -rf "$WORK"
	fi
}

# A throwaway cluster in $WORK/data that preloads the extension, listening
# only on a socket in $WORK.  Extra postgresql.conf lines may be passed.
start_cluster()
{
	PGPORT=${PGPORT_DEMO:-54329}
	as_user "$BINDIR/initdb" -D "$WORK/data" -U postgres -A trust --no-sync >"$WORK/initdb.log" 2>&1 ||
		{ cat "$WORK/initdb.log"; return 1; }
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$WORK'"
		echo "port = $PGPORT"
		echo "shared_preload_libraries = 'tx_message'"
		echo "max_prepared_transactions = 10"
		for line in "$@"; do echo "$line"; done
	} | as_user tee -a "$WORK/data/postgresql.conf" >/dev/null
	as_user "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 start >/dev/null ||
		{ cat "$WORK/server.log"; return 1; }
	export PGHOST=$WORK PGPORT PGUSER=postgres
}

psql_run()
{
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres \
		"$BINDIR/psql" -X -v ON_ERROR_STOP=1 "$@" </dev/null
}
