#!/usr/bin/env bash
# A release tarball: tx_message-<version>.tar.gz of the committed tree (the
# version is META.json's), for PGXN or a package build.
#
#   bash scripts/dist.sh             # writes ./tx_message-<version>.tar.gz
#   bash scripts/dist.sh --out DIR   # writes it into DIR
#   make dist                        # the same
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$PWD
[ "${1:-}" = --out ] && OUT=$2
version=$(sed -n 's/^ *"version": "\([^"]*\)".*/\1/p' "$REPO/META.json" | head -n 1)
[ -n "$version" ] || { echo "no version in META.json" >&2; exit 1; }
mkdir -p "$OUT"
git -C "$REPO" archive --format=tar.gz --prefix="tx_message-$version/" \
	-o "$OUT/tx_message-$version.tar.gz" HEAD
echo "$OUT/tx_message-$version.tar.gz"
