#!/usr/bin/env bash
# The Debian package (debian/, pg_buildext): build postgresql-15-tx-message
# with dpkg-buildpackage from the tree copied into WORK/src, install the
# .deb over the source install, play the demo against the installed files,
# then remove the package and install from source again, as before.  Prints
# one "ok" or "not ok" line per check.  Installs debhelper and
# postgresql-server-dev-all if they are missing.
#
#   bash scripts/check_package.sh WORK
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e
WORK=$1
status=0
check() { if [ "$2" = 0 ]; then echo "ok - $1"; else echo "not ok - $1"; status=1; fi; }

ensure_deps debhelper postgresql-server-dev-all
pkg=$WORK/pkg
rm -rf "$pkg"
mkdir -p "$pkg"
cp -a "$WORK/src" "$pkg/tx-message"
chown -R "$(stat -c %U "$WORK")" "$pkg"
( cd "$pkg/tx-message" && as_user dpkg-buildpackage -us -uc -b ) >"$pkg/build.log" 2>&1
check "dpkg-buildpackage -us -uc -b builds postgresql-15-tx-message" $?
deb=$(ls "$pkg"/postgresql-15-tx-message_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { tail -n 30 "$pkg/build.log"; exit 1; }
files=$(dpkg-deb -c "$deb")
for f in lib/tx_message.so extension/tx_message.control extension/tx_message--1.0.sql \
	extension/tx_message--1.0--1.1.sql doc/postgresql-15-tx-message/copyright; do
	grep -q "/$f\$" <<<"$files"
	check "the package holds $f" $?
done
as_root env DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$pkg/install.log" 2>&1
check "the package installs" $?
DEMO_INSTALLED=1 bash "$REPO/scripts/demo.sh" >"$pkg/demo.log" 2>&1
rc=$?
check "the demo runs against the installed package" $rc
[ $rc = 0 ] || tail -n 30 "$pkg/demo.log"
as_root env DEBIAN_FRONTEND=noninteractive dpkg -r postgresql-15-tx-message >>"$pkg/install.log" 2>&1
check "the package removes cleanly" $?
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
	as_root make -s -C "$WORK/src" PG_CONFIG="$PG_CONFIG" install >>"$pkg/install.log" 2>&1
	check "the source install is back" $?
fi
exit $status
