#!/usr/bin/env bash
# Builds Jaeger v1.76.0 (pinned in internal/testenv/testjaeger/build/go.mod) for Mandate's tests.
#
# Usage: internal/testenv/testjaeger/build/build.sh [OUT]      (default OUT: <repo>/bin/jaeger)
#
# Jaeger v1.76 is the OpenTelemetry-collector-based "v2" binary (cmd/jaeger).
# The build is pure Go (CGO_ENABLED=0), ~2300 packages, a 121 MB binary. Cold on
# 2 cores it took 26.5 min wall (12.5 min user CPU) while other builds and
# benchmarks loaded the machine (load ~11); FACTS.md reports ~9 min on an idle
# one. The module download (`go get -tool`) took a further ~2 min the first time.
# It is skipped when OUT already exists and is newer than go.sum and go.mod.
# internal/testenv/testjaeger finds the binary at <repo>/bin/jaeger or $MANDATE_JAEGER_BIN.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
# shellcheck source=../../testproc/buildtool.sh
source "$repo/internal/testenv/testproc/buildtool.sh"
out=$(buildtool_out "$repo/bin/jaeger" "${1:-}")

buildtool_skip_if_current jaeger "$out" internal/testenv/testjaeger/build/go.sum "$here/go.sum" "$here/go.mod"

buildtool_begin jaeger "$out" github.com/jaegertracing/jaeger/cmd/jaeger "$here"
CGO_ENABLED=0 go build -trimpath -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger
buildtool_finish
"$out" version 2>/dev/null | head -n 5 || true
