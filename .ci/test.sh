#!/usr/bin/env bash
# Mandate's full test run: installs every tool the tests need under .tools/
# (gitignored; reused by later runs), then vet, gofmt, go test -race, fuzz.
#
# Usage (from anywhere):  bash .ci/test.sh
#
# Needs Go 1.26, Node 20 + npm, a C compiler (cgo for -race and Hydra's
# sqlite; installed with apt-get when missing) and network access to the
# Go module proxy and the npm registry on the first run.
#
# Tools, and the environment variables the tests read (internal/testenv/nodetools):
#   .tools/node22/bin/node          Node 22 (npm package node@22)  MANDATE_NODE22_BIN (the dir)
#   .tools/npm/...                  @modelcontextprotocol/inspector@2.12.0   MANDATE_INSPECTOR
#                                   @modelcontextprotocol/conformance@0.1.16 MANDATE_CONFORMANCE
#                                   @modelcontextprotocol/sdk@1.32.2 (its package dir)  MANDATE_TS_SDK
#                                   puppeteer-core@25.16.0 (its package dir)  MANDATE_PUPPETEER
#   /usr/bin/chromium               Debian package chromium (apt-get)        MANDATE_CHROMIUM
#   .tools/bin/everything-server    go-sdk v1.8.0 conformance/everything-server  MANDATE_EVERYTHING_SERVER
#   bin/hydra                       Ory Hydra v2.3.0                         MANDATE_HYDRA_BIN
#   bin/jaeger                      Jaeger v1.76.0 (OTLP in, query API)      MANDATE_JAEGER_BIN
#   .tools/bin/helm                 helm (chart tests)                       MANDATE_HELM_BIN
#   PostgreSQL 15 (apt-get postgresql when missing): a throwaway cluster for
#   this run, started by .ci/postgres.sh as user mandate-pg when run as root,
#   on 127.0.0.1, removed on exit      MANDATE_POSTGRES_DSN (storage contract suite)
# MANDATE_E2E=1 makes tests that need a missing tool fail instead of skip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"

INSPECTOR_VERSION=2.12.0
CONFORMANCE_VERSION=0.1.16
TS_SDK_VERSION=1.32.2
SERVER_EVERYTHING_VERSION=2026.8.31
NODE_MAJOR=22
GO_SDK_VERSION=v1.8.0

# ---------------------------------------------------------------- timing
declare -a PHASES=()
T0=$(date +%s)
phase_start=0
phase_name=""
phase() { # phase NAME: starts timing a phase (ends the previous one)
	phase_end
	phase_name="$1"
	phase_start=$(date +%s)
	echo
	echo "==> $phase_name"
}
phase_end() {
	if [[ -n "$phase_name" ]]; then
		local d=$(($(date +%s) - phase_start))
		PHASES+=("$(printf '%5ds  %s' "$d" "$phase_name")")
		echo "<== $phase_name: ${d}s"
		phase_name=""
	fi
}
summary() {
	local rc=$?
	phase_end
	declare -F pg_stop >/dev/null && pg_stop
	echo
	echo "==> timings"
	local p
	for p in "${PHASES[@]}"; do echo "$p"; done
	printf '%5ds  total\n' "$(($(date +%s) - T0))"
	if [[ $rc -eq 0 ]]; then echo "PASS: bash .ci/test.sh"; else echo "FAIL: bash .ci/test.sh (exit $rc)"; fi
}
trap summary EXIT

die() {
	echo "test.sh: $*" >&2
	exit 1
}

# shellcheck source=postgres.sh
source .ci/postgres.sh

# ---------------------------------------------------------------- C compiler
phase "C compiler (cgo: -race, hydra's sqlite)"
if ! command -v gcc >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
	echo "no C compiler; installing gcc with apt-get"
	SUDO=""
	[[ $(id -u) -ne 0 ]] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gcc libc6-dev
fi
go version
go env CC CGO_ENABLED

# ---------------------------------------------------------------- Node 22
phase "Node $NODE_MAJOR (npm install node@$NODE_MAJOR into .tools/node22)"
NODE22_BIN="$TOOLS/node22/bin"
node22_ok() { [[ -x "$NODE22_BIN/node" ]] && [[ "$("$NODE22_BIN/node" --version 2>/dev/null)" == v$NODE_MAJOR.* ]]; }
if node22_ok; then
	echo "reusing $("$NODE22_BIN/node" --version) at $NODE22_BIN"
else
	rm -rf "$TOOLS/node22"
	npm install --prefix "$TOOLS/node22" --no-audit --no-fund --no-save "node@$NODE_MAJOR"
	real="node_modules/node/bin/node" # relative to .tools/node22
	if [[ ! -x "$TOOLS/node22/$real" ]]; then
		# The node package fetches its binary in a preinstall script; if
		# scripts did not run, install the platform package directly.
		case "$(uname -m)" in
		x86_64) arch=x64 ;;
		aarch64 | arm64) arch=arm64 ;;
		*) die "unsupported architecture $(uname -m)" ;;
		esac
		pkg="node-$(uname -s | tr '[:upper:]' '[:lower:]')-$arch"
		echo "node@$NODE_MAJOR did not provide a binary; installing $pkg@$NODE_MAJOR"
		npm install --prefix "$TOOLS/node22" --no-audit --no-fund --no-save "$pkg@$NODE_MAJOR"
		real="node_modules/$pkg/bin/node"
	fi
	[[ -x "$TOOLS/node22/$real" ]] || die "Node $NODE_MAJOR binary not found after npm install"
	mkdir -p "$NODE22_BIN"
	ln -sf "../$real" "$NODE22_BIN/node" # relative: .tools may move
	# npm and npx are JavaScript: with this dir first on PATH they run on Node 22.
	for t in npm npx; do
		if p=$(command -v "$t"); then ln -sf "$(readlink -f "$p")" "$NODE22_BIN/$t"; fi
	done
	node22_ok || die "$NODE22_BIN/node is not Node $NODE_MAJOR.x"
fi
export PATH="$NODE22_BIN:$PATH"
v=$(node --version)
[[ "$v" == v$NODE_MAJOR.* ]] || die "node on PATH is $v, want v$NODE_MAJOR.x"
echo "node $v ($(command -v node)), npm $(npm --version)"

# ---------------------------------------------------------------- npm tools
phase "npm tools (inspector@$INSPECTOR_VERSION, conformance@$CONFORMANCE_VERSION into .tools/npm)"
NPM_MODULES="$TOOLS/npm/node_modules/@modelcontextprotocol"
pkg_version() { # pkg_version DIR: the version in DIR/package.json, or ""
	[[ -f "$1/package.json" ]] || return 0
	node -e 'process.stdout.write(require(process.argv[1]).version)' "$1/package.json"
}
# Versions and every transitive dependency are locked in .ci/npm
# (package.json + package-lock.json with integrity hashes); npm ci installs
# exactly that tree. Regenerate the lock after changing a version:
#   (cd .ci/npm && npm install --package-lock-only)   # with Node 22 on PATH
for v in "$INSPECTOR_VERSION" "$CONFORMANCE_VERSION" "$SERVER_EVERYTHING_VERSION" "$TS_SDK_VERSION"; do
	grep -q "\"$v\"" .ci/npm/package.json || die ".ci/npm/package.json does not pin $v: update it and its lock"
done
if cmp -s .ci/npm/package-lock.json "$TOOLS/npm/.installed-lock.json" && [[ -d "$NPM_MODULES/inspector" ]]; then
	echo "reusing .tools/npm (installed from the same .ci/npm/package-lock.json)"
else
	# Node 22 is first on PATH, so npm runs on Node 22: on Node 20 it would
	# resolve inspector 0.15.0, which has no --header.
	rm -rf "$TOOLS/npm"
	mkdir -p "$TOOLS/npm"
	cp .ci/npm/package.json .ci/npm/package-lock.json "$TOOLS/npm/"
	npm ci --prefix "$TOOLS/npm" --no-audit --no-fund
	cp .ci/npm/package-lock.json "$TOOLS/npm/.installed-lock.json"
fi
MANDATE_INSPECTOR="$NPM_MODULES/inspector/clients/launcher/build/index.js"
MANDATE_CONFORMANCE="$NPM_MODULES/conformance/dist/index.js"
MANDATE_SERVER_EVERYTHING="$NPM_MODULES/server-everything/dist/index.js"
MANDATE_TS_SDK="$NPM_MODULES/sdk"
[[ -f "$MANDATE_SERVER_EVERYTHING" ]] || die "server-everything not found at $MANDATE_SERVER_EVERYTHING"
[[ -f "$MANDATE_INSPECTOR" ]] || die "inspector CLI not found at $MANDATE_INSPECTOR"
[[ -f "$MANDATE_CONFORMANCE" ]] || die "conformance CLI not found at $MANDATE_CONFORMANCE"
iv=$(pkg_version "$NPM_MODULES/inspector")
[[ "$iv" == 2.* ]] || die "inspector is $iv, want 2.x (npm ran on the wrong Node?)"
iv=$(node "$MANDATE_INSPECTOR" --version)
[[ "$iv" == 2.* ]] || die "mcp-inspector --version printed $iv, want 2.x"
node "$MANDATE_INSPECTOR" --cli --help | grep -q -- '--header' || die "mcp-inspector --cli has no --header option"
cv=$(node "$MANDATE_CONFORMANCE" --version)
[[ "$cv" == "$CONFORMANCE_VERSION" ]] || die "conformance --version printed $cv, want $CONFORMANCE_VERSION"
sv=$(pkg_version "$MANDATE_TS_SDK")
[[ "$sv" == "$TS_SDK_VERSION" ]] || die "@modelcontextprotocol/sdk is ${sv:-missing} at $MANDATE_TS_SDK, want $TS_SDK_VERSION"
echo "mcp-inspector $iv, conformance $cv, typescript sdk $sv"

MANDATE_PUPPETEER="$TOOLS/npm/node_modules/puppeteer-core"
pv=$(pkg_version "$MANDATE_PUPPETEER")
[[ "$pv" == 25.* ]] || die "puppeteer-core is ${pv:-missing} at $MANDATE_PUPPETEER, want 25.x"

# ---------------------------------------------------------------- Chromium
# Headless Chromium for the sign-in e2e test, from Debian (puppeteer-core
# never downloads a browser).
phase "Chromium (Debian package chromium)"
if ! command -v chromium >/dev/null 2>&1; then
	echo "no chromium; installing it with apt-get"
	SUDO=""
	[[ $(id -u) -ne 0 ]] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
fi
MANDATE_CHROMIUM=$(command -v chromium)
"$MANDATE_CHROMIUM" --version

# ---------------------------------------------------------------- Go modules
phase "go mod download"
go mod download

# ---------------------------------------------------------------- everything-server
phase "go-sdk $GO_SDK_VERSION conformance everything-server (.tools/bin/everything-server)"
ES_PKG=github.com/modelcontextprotocol/go-sdk/conformance/everything-server
MANDATE_EVERYTHING_SERVER="$TOOLS/bin/everything-server"
if ! go build -o "$MANDATE_EVERYTHING_SERVER" "$ES_PKG" 2>"$TOOLS/everything-server.log"; then
	# Our go.sum may lack a module only the server needs: build it in a
	# module of its own instead of touching ours.
	cat "$TOOLS/everything-server.log"
	echo "building $ES_PKG in its own module"
	mod="$TOOLS/everything-server-mod"
	rm -rf "$mod"
	mkdir -p "$mod"
	(
		cd "$mod"
		go mod init mandate.local/everything-server >/dev/null
		go get "$ES_PKG@$GO_SDK_VERSION"
		go build -o "$MANDATE_EVERYTHING_SERVER" "$ES_PKG"
	)
fi
[[ -x "$MANDATE_EVERYTHING_SERVER" ]] || die "everything-server not built"

# ---------------------------------------------------------------- Hydra
phase "Ory Hydra (bin/hydra)"
MANDATE_HYDRA_BIN="$ROOT/bin/hydra"
hydra_build=""
for f in internal/testenv/testhydra/build/build.sh; do
	if [[ -f "$f" ]]; then
		hydra_build="$f"
		break
	fi
done
if [[ -n "$hydra_build" ]]; then
	bash "$hydra_build" "$MANDATE_HYDRA_BIN"
	[[ -x "$MANDATE_HYDRA_BIN" ]] || die "$hydra_build did not produce $MANDATE_HYDRA_BIN"
else
	die "no Hydra build script at internal/testenv/testhydra/build/build.sh"
fi

# ---------------------------------------------------------------- Jaeger
phase "Jaeger v1.76.0 (bin/jaeger)"
MANDATE_JAEGER_BIN="$ROOT/bin/jaeger"
jaeger_build="internal/testenv/testjaeger/build/build.sh"
[[ -f "$jaeger_build" ]] || die "no Jaeger build script at $jaeger_build"
bash "$jaeger_build" "$MANDATE_JAEGER_BIN"
[[ -x "$MANDATE_JAEGER_BIN" ]] || die "$jaeger_build did not produce $MANDATE_JAEGER_BIN"
export MANDATE_JAEGER_BIN
echo "MANDATE_JAEGER_BIN=$MANDATE_JAEGER_BIN"

# ---------------------------------------------------------------- helm
phase "helm (.tools/bin/helm)"
bash deploy/tools/build-helm.sh "$TOOLS/bin/helm"
export MANDATE_HELM_BIN="$TOOLS/bin/helm"

# ---------------------------------------------------------------- PostgreSQL
phase "PostgreSQL $PG_VERSION (throwaway cluster for this run)"
pg_start
echo "MANDATE_POSTGRES_DSN=$MANDATE_POSTGRES_DSN"

export MANDATE_NODE22_BIN="$NODE22_BIN"
export MANDATE_INSPECTOR MANDATE_CONFORMANCE MANDATE_EVERYTHING_SERVER MANDATE_HYDRA_BIN MANDATE_SERVER_EVERYTHING MANDATE_TS_SDK
export MANDATE_PUPPETEER MANDATE_CHROMIUM
export MANDATE_E2E=1
echo
echo "MANDATE_NODE22_BIN=$MANDATE_NODE22_BIN"
echo "MANDATE_INSPECTOR=$MANDATE_INSPECTOR"
echo "MANDATE_CONFORMANCE=$MANDATE_CONFORMANCE"
echo "MANDATE_TS_SDK=$MANDATE_TS_SDK"
echo "MANDATE_PUPPETEER=$MANDATE_PUPPETEER"
echo "MANDATE_CHROMIUM=$MANDATE_CHROMIUM"
echo "MANDATE_EVERYTHING_SERVER=$MANDATE_EVERYTHING_SERVER"
echo "MANDATE_HYDRA_BIN=$MANDATE_HYDRA_BIN"
echo "MANDATE_E2E=$MANDATE_E2E"

# ---------------------------------------------------------------- static checks
phase "go vet ./..."
go vet ./...

phase "gofmt"
unformatted=$(find . \( -path ./.tools -o -path ./.git -o -path ./bin -o -name testdata \) -prune -o -name '*.go' -print0 |
	xargs -0 -r gofmt -l)
if [[ -n "$unformatted" ]]; then
	echo "gofmt -l lists:" >&2
	echo "$unformatted" >&2
	die "run gofmt -w on the files above"
fi

# ---------------------------------------------------------------- tests
phase "go test -race ./..."
go test -race -count=1 -timeout 45m ./...

# ---------------------------------------------------------------- fuzzing
# Fuzz targets: every `func FuzzXxx` in the module's test files, found
# here so that a new target cannot be forgotten; each runs for FUZZTIME
# after the unit tests (seed corpora under the package's testdata/fuzz/
# already run as part of go test above).
FUZZTIME="${MANDATE_FUZZTIME:-10s}"
FUZZ_TARGETS=()
while IFS= read -r f; do
	for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		FUZZ_TARGETS+=("./$(dirname "$f") $name")
	done
done < <(git ls-files -- '*_test.go' | grep -v '/build/' | xargs grep -l '^func Fuzz' | sort)
[[ ${#FUZZ_TARGETS[@]} -ge 19 ]] || die "found only ${#FUZZ_TARGETS[@]} fuzz targets"
run_fuzz() {
	local line pkg name
	for line in "${FUZZ_TARGETS[@]}"; do
		read -r pkg name <<<"$line"
		echo "--- fuzz $pkg $name ($FUZZTIME)"
		local out rc=0
		out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1) || rc=$?
		echo "$out"
		if [[ $rc -ne 0 ]]; then
			# Go's fuzz coordinator sometimes fails with "context deadline
			# exceeded" when a worker is mid-input at the end of -fuzztime,
			# without finding anything (no crasher written under testdata/).
			# Retry that case once; any real finding fails the run.
			local found
			found=$(git status --porcelain -- "$pkg/testdata" 2>/dev/null | grep -c . || true)
			if grep -q "context deadline exceeded" <<<"$out" && ! grep -q "Failing input written" <<<"$out" && [[ "$found" == 0 ]]; then
				echo "--- fuzz $pkg $name: coordinator deadline without a finding; retrying once"
				go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
			else
				return $rc
			fi
		fi
	done
}
phase "fuzz (${#FUZZ_TARGETS[@]} targets, $FUZZTIME each)"
run_fuzz
