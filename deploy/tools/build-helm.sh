#!/usr/bin/env bash
# Builds helm (pinned in deploy/tools/helm/go.mod, a module of its own so the
# main module's go vet/go test never compile it) for the deploy tests.
#
# Usage: deploy/tools/build-helm.sh [OUT]     (default OUT: <repo>/.tools/bin/helm)
#
# Skipped when OUT already exists and is newer than the pinning go.mod/go.sum.
# internal/testenv/deploytest finds the binary at $MANDATE_HELM_BIN or <repo>/.tools/bin/helm.
# First build: ~2-4 minutes on 2 cores, needs the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/helm"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../../internal/testenv/testproc/buildtool.sh
source "$repo/internal/testenv/testproc/buildtool.sh"
out=$(buildtool_out "$repo/.tools/bin/helm" "${1:-}")

# This script counts as an input too: the -X flags below shape the binary.
buildtool_skip_if_current helm "$out" deploy/tools/helm/go.sum "$mod/go.sum" "$mod/go.mod" "${BASH_SOURCE[0]}"

buildtool_begin helm "$out" helm.sh/helm/v3/cmd/helm "$mod"
# The same -X flags as helm's Makefile: its version, and the Kubernetes
# version `helm template`/`lint` assume (client-go's major+1 . minor, e.g.
# client-go v0.35 -> 1.35); without them helm assumes Kubernetes 1.20.
helm_ver=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
k8s_ver=$(go list -m -f '{{.Version}}' k8s.io/client-go) # v0.MINOR.PATCH
k8s_minor=$(echo "$k8s_ver" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_ver"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm
buildtool_finish
"$out" version --short
