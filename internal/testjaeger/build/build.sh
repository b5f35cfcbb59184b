#!/usr/bin/env bash
# Builds Jaeger v1.76.0 (pinned in internal/testjaeger/build/go.mod) for Mandate's tests.
#
# Usage: internal/testjaeger/build/build.sh [OUT]      (default OUT: <repo>/bin/jaeger)
#
# Jaeger v1.76 is the OpenTelemetry-collector-based "v2" binary (cmd/jaeger).
# The build is pure Go (CGO_ENABLED=0), ~2300 packages, a 121 MB binary. Cold on
# 2 cores it took 26.5 min wall (12.5 min user CPU) while other builds and
# benchmarks loaded the machine (load ~11); FACTS.md reports ~9 min on an idle
# one. The module download (`go get -tool`) took a further ~2 min the first time.
# It is skipped when OUT already exists and is newer than go.sum and go.mod.
# internal/testjaeger finds the binary at <repo>/bin/jaeger or $MANDATE_JAEGER_BIN.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$repo/bin/jaeger}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

if [[ -x "$out" && "$out" -nt "$here/go.sum" && "$out" -nt "$here/go.mod" ]]; then
	echo "jaeger: $out is up to date (newer than internal/testjaeger/build/go.sum); skipping build"
	exit 0
fi

mkdir -p "$(dirname "$out")"
cd "$here"
start=$(date +%s)
echo "jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger -> $out"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger
mv -f "$tmp" "$out"
echo "jaeger: built $out in $(($(date +%s) - start))s"
"$out" version 2>/dev/null | head -n 5 || true
