#!/usr/bin/env bash
# Mandate benchmark: direct vs a do-nothing reverse proxy vs Mandate, interleaved.
#
#   internal/bench/run.sh [options]
#     -d DUR      measurement window per run      (default 5s)
#     -w DUR      warm-up per run, not measured   (default 2s)
#     -r N        rounds per scenario             (default 3; order ABC, CBA, ABC, ...)
#     -s LIST     echo session counts             (default "1 8 64"; e.g. "1 8 64 256")
#     -o DIR      output directory                (default a new /tmp/mandate-bench.XXXX)
#     -g REF      build mandate from git REF (git archive) instead of the working tree;
#                 internal/bench is taken from the working tree either way
#     -P          skip the CPU profile of mandate
#     -p DUR      profile duration                (default 10s)
#     -n NICE     run every benchmark process under `nice -n NICE` (default 0; a negative
#                 value needs root and shields the measurement from other work on the machine)
#
# It builds echoserver, rproxy, loadgen, benchidp, benchsummary, mandateprof and
# mandate; starts the IdP (internal/devidp), the echo upstream, the reverse proxy
# and Mandate (auth, token exchange with cached credentials, CEL policy, file
# audit, traces none, Prometheus metrics) on loopback; runs every scenario
# against the three targets interleaved; prints the summary; then profiles
# Mandate under 64-session echo load. Everything it starts is stopped on exit.
set -euo pipefail

DUR=5s WARM=2s ROUNDS=3 SESSIONS="1 8 64" OUT="" REF="" PROFILE=1 PDUR=10s NICE=0
while getopts "d:w:r:s:o:g:Pp:n:h" opt; do
  case $opt in
    d) DUR=$OPTARG ;; w) WARM=$OPTARG ;; r) ROUNDS=$OPTARG ;; s) SESSIONS=$OPTARG ;;
    o) OUT=$OPTARG ;; g) REF=$OPTARG ;; P) PROFILE=0 ;; p) PDUR=$OPTARG ;; n) NICE=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/mandate-bench.XXXXXX)}
mkdir -p "$OUT/bin" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
BASE=${BENCH_PORT_BASE:-19100}
P_ECHO=$((BASE+1)) P_RPROXY=$((BASE+2)) P_MANDATE=$((BASE+3)) P_IDP=$((BASE+10))
MAXS=$(printf '%s\n' $SESSIONS 8 | sort -n | tail -1)

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# ---- build -------------------------------------------------------------------
SRC=$ROOT
if [[ -n $REF ]]; then
  SRC=$OUT/src
  rm -rf "$SRC"; mkdir -p "$SRC"
  git -C "$ROOT" archive "$REF" | tar -x -C "$SRC"
  rm -rf "$SRC/internal/bench"; cp -r "$ROOT/internal/bench" "$SRC/internal/bench"
fi
REV=$(git -C "$ROOT" rev-parse --short "${REF:-HEAD}")
DIRTY=""
if [[ -z $REF ]] && [[ -n $(git -C "$ROOT" status --porcelain -- gateway upstreams policy internal cmd 2>/dev/null | grep -v internal/bench || true) ]]; then
  DIRTY=" + uncommitted changes in the working tree"
fi
log "building from $SRC (mandate $REV$DIRTY) into $OUT/bin"
(cd "$SRC" && go build -o "$OUT/bin/" ./internal/bench/cmd/... && go build -o "$OUT/bin/mandate" ./cmd/mandate)
B=$OUT/bin
N=(nice -n "$NICE")

# ---- start the parts ------------------------------------------------------------
wait_http() { # url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "timeout waiting for $1"; return 1
}
wait_port() { # port
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "timeout waiting for port $1"; return 1
}

MCP_URL=http://127.0.0.1:$P_MANDATE/mcp
"${N[@]}" "$B/benchidp" -addr 127.0.0.1:$P_IDP -audience "$MCP_URL" -users "$MAXS" \
  -tokens "$OUT/tokens.txt" -issuer-file "$OUT/issuer.txt" >"$OUT/logs/idp.log" 2>&1 &
PIDS+=($!)
"${N[@]}" "$B/echoserver" -addr 127.0.0.1:$P_ECHO >"$OUT/logs/echoserver.log" 2>&1 &
ECHO_PID=$!; PIDS+=($ECHO_PID)
"${N[@]}" "$B/rproxy" -addr 127.0.0.1:$P_RPROXY -target http://127.0.0.1:$P_ECHO >"$OUT/logs/rproxy.log" 2>&1 &
RPROXY_PID=$!; PIDS+=($RPROXY_PID)
for _ in $(seq 1 300); do grep -q '^ready' "$OUT/logs/idp.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$OUT/logs/idp.log" || { log "benchidp did not start:"; cat "$OUT/logs/idp.log" >&2; exit 1; }
ISSUER=$(cat "$OUT/issuer.txt")

cat >"$OUT/mandate.yaml" <<YAML
server:
  listen: 127.0.0.1:$P_MANDATE
  public_url: http://127.0.0.1:$P_MANDATE
identity:
  issuer: $ISSUER
upstreams:
  - name: echo
    kind: mcp
    url: http://127.0.0.1:$P_ECHO/mcp
    prefix: never
    credentials:
      flow: token_exchange
      token_url: $ISSUER/oauth/token
      client_id: mandate
      client_secret: mandate-secret
      audience: https://echo.internal
policy:
  default: allow
  rules:
    - name: no-contractors
      effect: deny
      when: '"contractor" in user.groups'
audit:
  sink: file
  path: $OUT/audit.jsonl
telemetry:
  traces: none
  metrics: prometheus
YAML
"$B/mandate" validate --config "$OUT/mandate.yaml" >&2
"${N[@]}" "$B/mandate" serve --config "$OUT/mandate.yaml" --log-level warn >"$OUT/logs/mandate.log" 2>&1 &
MANDATE_PID=$!; PIDS+=($MANDATE_PID)
wait_port $P_ECHO; wait_port $P_RPROXY; wait_http "http://127.0.0.1:$P_MANDATE/readyz"

declare -A URL=([direct]=http://127.0.0.1:$P_ECHO/mcp [rproxy]=http://127.0.0.1:$P_RPROXY/mcp [mandate]=$MCP_URL)
declare -A PID=([rproxy]=$RPROXY_PID [mandate]=$MANDATE_PID)

# ---- header --------------------------------------------------------------------
{
  echo "# Mandate benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mandate:  $REV$DIRTY"
  echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(uname -sr)"
  echo "go:       $(go version | cut -d' ' -f3-)"
  echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the runs"
  echo "settings: duration $DUR, warm-up $WARM, rounds $ROUNDS, echo sessions: $SESSIONS, nice $NICE"
  echo "command:  internal/bench/run.sh $*"
} | tee "$OUT/header.txt"

# ---- scenarios -------------------------------------------------------------------
# name|loadgen arguments
SCEN=()
for s in $SESSIONS; do SCEN+=("echo-$s|-scenario calls -sessions $s -tool echo"); done
SCEN+=("sleep10ms-8|-scenario calls -sessions 8 -tool sleep10ms")
SCEN+=("setup-4|-scenario setup -sessions 4")

RES=$OUT/results.jsonl
: >"$RES"
run_one() { # scenario target round args...
  local sc=$1 t=$2 r=$3; shift 3
  local pidargs=(-pid upstream=$ECHO_PID)
  [[ -n ${PID[$t]:-} ]] && pidargs+=(-pid proxy=${PID[$t]})
  local line
  if ! line=$("${N[@]}" "$B/loadgen" -url "${URL[$t]}" -duration "$DUR" -warmup "$WARM" \
       -token-file "$OUT/tokens.txt" "${pidargs[@]}" -label "$sc/$t/$r" -json "$@" 2>>"$OUT/logs/loadgen.log"); then
    log "loadgen failed for $sc/$t/$r (see $OUT/logs/loadgen.log): $line"
    [[ -n $line ]] || return 0
  fi
  echo "$line" >>"$RES"
  echo "$line" | python3 -c '
import json,sys
r=json.load(sys.stdin)
c=r.get("cpu",{})
print("%-22s %8.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d wrong %d  proxy %s µs/op  upstream %.0f µs/op  load %s" % (
  r["label"], r["calls_per_s"], r["p50_us"]/1000, r["p99_us"]/1000, r["errors"], r["wrong"],
  ("%.0f" % c["proxy"]["us_per_op"]) if "proxy" in c else "-", c.get("upstream",{}).get("us_per_op",0), r["loadavg"]))'
  sleep 0.5
}

for entry in "${SCEN[@]}"; do
  sc=${entry%%|*}; args=${entry#*|}
  for r in $(seq 1 "$ROUNDS"); do
    if (( r % 2 )); then order="direct rproxy mandate"; else order="mandate rproxy direct"; fi
    for t in $order; do
      # shellcheck disable=SC2086
      run_one "$sc" "$t" "$r" $args
    done
  done
done

echo
"$B/benchsummary" "$RES" | tee "$OUT/summary.md"

# Credential cache: lookups by outcome over the whole run (hit = cached token,
# ok = token exchanged at the IdP), from Mandate's Prometheus metrics.
echo
echo "Mandate credential lookups over the whole run (from /metrics):"
curl -fsS "http://127.0.0.1:$P_MANDATE/metrics" | grep '^mandate_credentials_lookups' | tee "$OUT/credential-metrics.txt" |
  awk '{ n=$NF; if ($0 ~ /outcome="hit"/) h+=n; else o+=n; print "  " $0 } END { if (h+o>0) printf "  hit rate %.4f%% (%d hits, %d other)\n", 100*h/(h+o), h, o }'

# ---- profile ---------------------------------------------------------------------
if (( PROFILE )); then
  echo
  echo "## CPU profile of mandate, echo at 64 sessions, $PDUR"
  kill "$MANDATE_PID"; wait "$MANDATE_PID" 2>/dev/null || true
  # Profile from 5 s after start (sessions opened, exchanges done, warm) for PDUR;
  # the load runs from start until 1 s after the profile window.
  "${N[@]}" "$B/mandateprof" -config "$OUT/mandate.yaml" -cpuprofile "$OUT/mandate.cpu.pprof" -delay 5s \
    -cpuprofile-duration "$PDUR" >"$OUT/logs/mandateprof.log" 2>&1 &
  PROF_PID=$!; PIDS+=($PROF_PID)
  wait_http "http://127.0.0.1:$P_MANDATE/readyz"
  pd=$(( ${PDUR%s} + 6 ))
  "${N[@]}" "$B/loadgen" -url "$MCP_URL" -sessions 64 -tool echo -warmup 0s -duration "${pd}s" \
    -token-file "$OUT/tokens.txt" -pid proxy=$PROF_PID -label "profile/mandate/1"
  for _ in $(seq 1 50); do grep -q wrote "$OUT/logs/mandateprof.log" && break; sleep 0.2; done
  SHOW='mandate-gw|modelcontextprotocol'
  table() { awk '/^ *flat  flat%/{p=1} p' | head -n "$1"; }
  echo; echo "### top 25 by cumulative time (all code)"
  go tool pprof -top -cum -nodecount=25 "$B/mandateprof" "$OUT/mandate.cpu.pprof" 2>/dev/null | sed -n '1,5p'; go tool pprof -top -cum -nodecount=25 "$B/mandateprof" "$OUT/mandate.cpu.pprof" 2>/dev/null | table 26
  echo; echo "### top 25 by flat time (all code)"
  go tool pprof -top -nodecount=25 "$B/mandateprof" "$OUT/mandate.cpu.pprof" 2>/dev/null | table 26
  echo; echo "### top 15 by cumulative time, mandate and go-sdk (incl. jsonrpc) functions only"
  go tool pprof -top -cum -show="$SHOW" -nodecount=15 "$B/mandateprof" "$OUT/mandate.cpu.pprof" 2>/dev/null | table 16
  echo; echo "### top 15 by flat time, mandate and go-sdk (incl. jsonrpc) functions only"
  go tool pprof -top -show="$SHOW" -nodecount=15 "$B/mandateprof" "$OUT/mandate.cpu.pprof" 2>/dev/null | table 16
fi
echo
echo "outputs: $OUT (results.jsonl, summary.md, mandate.cpu.pprof, logs/)"
