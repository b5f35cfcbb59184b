#!/usr/bin/env bash
# Builds Ory Hydra v2.3.0 (pinned in internal/testenv/testhydra/build/go.mod) for Mandate's tests.
#
# Usage: internal/testenv/testhydra/build/build.sh [OUT]      (default OUT: <repo>/bin/hydra)
#
# The build needs cgo (sqlite driver) and takes ~4 minutes cold on 2 cores.
# It is skipped when OUT already exists and is newer than go.sum and go.mod.
# internal/testenv/testhydra finds the binary at <repo>/bin/hydra or $MANDATE_HYDRA_BIN.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
# shellcheck source=../../testproc/buildtool.sh
source "$repo/internal/testenv/testproc/buildtool.sh"
out=$(buildtool_out "$repo/bin/hydra" "${1:-}")

buildtool_skip_if_current hydra "$out" internal/testenv/testhydra/build/go.sum "$here/go.sum" "$here/go.mod"

buildtool_begin hydra "$out" github.com/ory/hydra/v2 "$here"
CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension -o "$tmp" github.com/ory/hydra/v2
buildtool_finish
"$out" version || true
