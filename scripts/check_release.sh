#!/usr/bin/env bash
# Checks of a release: the tarball of scripts/dist.sh holds what PGXN and a
# package build need, and the version is the same everywhere.  Prints one
# "ok" or "not ok" line per check.
#
#   bash scripts/check_release.sh REPO OUTDIR
set -uo pipefail
REPO=$1
OUT=$2
status=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; status=1; fi; }

tarball=$(bash "$REPO/scripts/dist.sh" --out "$OUT" 2>&1) || { echo "not ok - scripts/dist.sh: $tarball"; exit 1; }
list=$(tar -tzf "$tarball")
prefix=$(basename "$tarball" .tar.gz)
default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/tx_message.control")
meta=$(sed -n 's/^ *"version": "\([^"]*\)".*/\1/p' "$REPO/META.json" | head -n 1)
for f in LICENSE META.json CHANGELOG.md README.md Makefile tx_message.control tx_message--1.0.sql; do
	check "the tarball holds $f" 'grep -qx "$prefix/$f" <<<"$list"'
done
check "the tarball holds no build products" '! grep -qE "\.(o|so|bc)$" <<<"$list"'
check "META.json ($meta) is the control file's default version ($default)" '[ "${meta%.0}" = "$default" ] || [ "$meta" = "$default" ]'
check "CHANGELOG.md has a section for $default" 'grep -q "^## $default" "$REPO/CHANGELOG.md"'
check "a script reaches $default from 1.0" '[ "$default" = 1.0 ] || grep -qx "$prefix/tx_message--1.0--$default.sql" <<<"$list" || ls "$REPO"/tx_message--*--"$default".sql >/dev/null 2>&1'
check "tx_message--1.0.sql is the one tagged v1.0" 'git -C "$REPO" diff --quiet v1.0 -- tx_message--1.0.sql 2>/dev/null || ! git -C "$REPO" rev-parse -q --verify v1.0 >/dev/null'
exit $status
