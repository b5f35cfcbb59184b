#!/usr/bin/env bash
# Builds Ory Hydra v2.3.0 (pinned in internal/testhydra/build/go.mod) for Mandate's tests.
#
# Usage: internal/testhydra/build/build.sh [OUT]      (default OUT: <repo>/bin/hydra)
#
# The build needs cgo (sqlite driver) and takes ~4 minutes cold on 2 cores.
# It is skipped when OUT already exists and is newer than go.sum and go.mod.
# internal/testhydra finds the binary at <repo>/bin/hydra or $MANDATE_HYDRA_BIN.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$repo/bin/hydra}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

if [[ -x "$out" && "$out" -nt "$here/go.sum" && "$out" -nt "$here/go.mod" ]]; then
	echo "hydra: $out is up to date (newer than internal/testhydra/build/go.sum); skipping build"
	exit 0
fi

mkdir -p "$(dirname "$out")"
cd "$here"
start=$(date +%s)
echo "hydra: building github.com/ory/hydra/v2 -> $out"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension -o "$tmp" github.com/ory/hydra/v2
mv -f "$tmp" "$out"
echo "hydra: built $out in $(($(date +%s) - start))s"
"$out" version || true
