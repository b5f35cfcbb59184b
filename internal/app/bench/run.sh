#!/usr/bin/env bash
# Mandate benchmark: direct vs a do-nothing reverse proxy vs Mandate, interleaved.
#
#   internal/app/bench/run.sh [options]
#     -d DUR      measurement window per run      (default 5s)
#     -w DUR      warm-up per run, not measured   (default 2s)
#     -r N        rounds per scenario             (default 3; order ABC, CBA, ABC, ...)
#     -s LIST     echo session counts             (default "1 8 64"; e.g. "1 8 64 256")
#     -o DIR      output directory                (default a new /tmp/mandate-bench.XXXX)
#     -g REF      build mandate from git REF (git archive) instead of the working tree;
#                 internal/app/bench is taken from the working tree either way
#     -P          skip the CPU profile of mandate
#     -p DUR      profile duration                (default 10s)
#     -n NICE     run every benchmark process under `nice -n NICE` (default 0; a negative
#                 value needs root and shields the measurement from other work on the machine)
#     -t RATIO    trace sampling of the mandate targets: parent-based trace-ID ratio with a
#                 discarding exporter (default 0.1); "none" = telemetry.traces none
#     -A REF      add a target mandate-base: Mandate all-on built from git REF, run
#                 interleaved with the others (before/after in one run)
#     -B          add a 4th target, mandate-bare (auth + token exchange only: no policy
#                 rules, audit records discarded, no traces, no metrics)
#     -x LIST     extra scenario groups (default "cold fanout idle"; "" for none):
#                 cold    cold-4: each op a new user's first call (initialize + tools/call)
#                 fanout  list5-8 / list5new-4 / list5cold-4: tools/list with Mandate in
#                         front of 5 echo upstreams (direct and rproxy: one echoserver)
#                 idle    idle-N: N idle sessions, memory per session (direct and mandate)
#     -I N        idle sessions (default 10000)
#     -C N        cold users minted before the runs (default 3000 per round)
#     -L          send tools/list with params {} instead of none (loadgen -list-params-object)
#     -O          turn Mandate's authorization server on in the mandate targets' configuration
#                 (SQLite storage in the output directory, a generated encryption key file,
#                 access_token_ttl 1h; mandate-base too when its revision has one) and add
#                 a target mandate-oauth: the same Mandate process driven with tokens its
#                 authorization server issued (benchsignin signs every user of tokens.txt in:
#                 dynamic registration, login_hint, consent, code), interleaved with the others
#                 (not in cold-4 or the fan-out group); the token endpoint's latency goes into
#                 the summary. Mandate's tokens live 1 h: keep such a run under an hour.
#     -R N        -O: refresh_token grants measured by benchsignin (default 200)
#
# It builds echoserver, rproxy, loadgen, benchidp, benchsignin, benchsummary and mandateprof
# (`mandate serve` plus bench hooks: injected trace sampler, discarded audit,
# a debug listener for Go memory; see its doc); starts the IdP
# (internal/app/devidp), the echo upstream, the reverse proxy and Mandate (auth,
# token exchange with cached credentials, CEL policy, file audit, sampled
# traces, Prometheus metrics) on loopback; runs every scenario against the
# targets interleaved; prints the summary; then profiles Mandate under
# 64-session echo load. Everything it starts is stopped on exit.
set -euo pipefail

DUR=5s WARM=2s ROUNDS=3 SESSIONS="1 8 64" OUT="" REF="" PROFILE=1 PDUR=10s NICE=0
SAMPLE=0.1 BARE=0 BASEREF="" EXTRA="cold fanout idle" IDLE=10000 COLD="" LISTOBJ=() OAUTH=0 REFRESHES=200
while getopts "d:w:r:s:o:g:Pp:n:t:A:Bx:I:C:LOR:h" opt; do
  case $opt in
    d) DUR=$OPTARG ;; w) WARM=$OPTARG ;; r) ROUNDS=$OPTARG ;; s) SESSIONS=$OPTARG ;;
    o) OUT=$OPTARG ;; g) REF=$OPTARG ;; P) PROFILE=0 ;; p) PDUR=$OPTARG ;; n) NICE=$OPTARG ;;
    t) SAMPLE=$OPTARG ;; A) BASEREF=$OPTARG ;; B) BARE=1 ;; x) EXTRA=$OPTARG ;; I) IDLE=$OPTARG ;; C) COLD=$OPTARG ;; L) LISTOBJ=(-list-params-object) ;;
    O) OAUTH=1 ;; R) REFRESHES=$OPTARG ;;
    *) sed -n '2,45p' "$0"; exit 2 ;;
  esac
done
has() { [[ " $EXTRA " == *" $1 "* ]]; }
COLD=${COLD:-$((3000 * ROUNDS))}
has cold || has fanout || COLD=0
TRACEARGS=(-trace-sample "$SAMPLE"); TRACEDESC="traces sampled (parent-based ratio $SAMPLE, spans batched and discarded)"
if [[ $SAMPLE == none ]]; then TRACEARGS=(); TRACEDESC="traces none"; fi
# Idle sessions hold connections on every hop: raise the open-files limit.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/mandate-bench.XXXXXX)}
mkdir -p "$OUT/bin" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
BASE=${BENCH_PORT_BASE:-19100}
P_ECHO=$((BASE+1)) P_RPROXY=$((BASE+2)) P_MANDATE=$((BASE+3)) P_BARE=$((BASE+4)) P_FAN=$((BASE+5))
P_MIDLE=$((BASE+6)) P_BASEREV=$((BASE+7)) P_IDP=$((BASE+10)) P_FANECHO=$((BASE+20)) P_EIDLE=$((BASE+26)) P_EIDLE2=$((BASE+27))
P_DEBUG=$((BASE+30))
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
  rm -rf "$SRC/internal/app/bench"; mkdir -p "$SRC/internal/app"; cp -r "$ROOT/internal/app/bench" "$SRC/internal/app/bench"
  # Revisions before internal/ was regrouped keep the dev IdP at internal/devidp.
  [[ -d $SRC/internal/app/devidp ]] || cp -r "$ROOT/internal/app/devidp" "$SRC/internal/app/devidp"
fi
REV=$(git -C "$ROOT" rev-parse --short "${REF:-HEAD}")
DIRTY=""
if [[ -z $REF ]] && [[ -n $(git -C "$ROOT" status --porcelain -- gateway upstreams policy internal cmd 2>/dev/null | grep -v internal/app/bench || true) ]]; then
  DIRTY=" + uncommitted changes in the working tree"
fi
log "building from $SRC (mandate $REV$DIRTY) into $OUT/bin"
(cd "$SRC" && go build -o "$OUT/bin/" ./internal/app/bench/cmd/... && go build -o "$OUT/bin/mandate" ./cmd/mandate)
B=$OUT/bin
N=(nice -n "$NICE")
if [[ -n $BASEREF ]]; then
  BSRC=$OUT/src-base
  rm -rf "$BSRC"; mkdir -p "$BSRC" "$OUT/bin-base"
  git -C "$ROOT" archive "$BASEREF" | tar -x -C "$BSRC"
  rm -rf "$BSRC/internal/app/bench"; mkdir -p "$BSRC/internal/app"; cp -r "$ROOT/internal/app/bench" "$BSRC/internal/app/bench"
  [[ -d $BSRC/internal/app/devidp ]] || cp -r "$ROOT/internal/app/devidp" "$BSRC/internal/app/devidp"
  log "building the base revision $(git -C "$ROOT" rev-parse --short "$BASEREF") into $OUT/bin-base"
  (cd "$BSRC" && go build -o "$OUT/bin-base/" ./internal/app/bench/cmd/mandateprof && go build -o "$OUT/bin-base/mandate" ./cmd/mandate)
fi

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
# -O: Mandate's authorization server signs users in at the IdP as client
# "mandate" (the token-exchange client) with this redirect URI.
SIGNIN=()
(( OAUTH )) && SIGNIN=(-signin-redirect-uri "http://127.0.0.1:$P_MANDATE/oauth/callback")
"${N[@]}" "$B/benchidp" -addr 127.0.0.1:$P_IDP -audience "$MCP_URL" -users "$MAXS" \
  -tokens "$OUT/tokens.txt" -usernames "$OUT/usernames.txt" -issuer-file "$OUT/issuer.txt" "${SIGNIN[@]}" \
  -cold-users "$COLD" -cold-tokens "$OUT/cold-tokens.txt" >"$OUT/logs/idp.log" 2>&1 &
PIDS+=($!)
"${N[@]}" "$B/echoserver" -addr 127.0.0.1:$P_ECHO >"$OUT/logs/echoserver.log" 2>&1 &
ECHO_PID=$!; PIDS+=($ECHO_PID)
"${N[@]}" "$B/rproxy" -addr 127.0.0.1:$P_RPROXY -target http://127.0.0.1:$P_ECHO >"$OUT/logs/rproxy.log" 2>&1 &
RPROXY_PID=$!; PIDS+=($RPROXY_PID)
(( COLD > 0 )) && log "minting $COLD cold users' tokens"
for _ in $(seq 1 3000); do grep -q '^ready' "$OUT/logs/idp.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$OUT/logs/idp.log" || { log "benchidp did not start:"; cat "$OUT/logs/idp.log" >&2; exit 1; }
ISSUER=$(cat "$OUT/issuer.txt")

# mandate_config NAME PORT all|bare UPSTREAM_PORT... writes $OUT/NAME.yaml.
# The gateway's client secret at the bench IdP: configurations refer to it
# (a secret is never written in a configuration file).
export MANDATE_BENCH_CLIENT_SECRET=mandate-secret
# idle-N opens N sessions over the few bench users: no caps in the way
# (revisions before the caps existed refuse the keys).
CAPS=$'  session:\n    max_per_user: 1000000\n    max_total: 1000000'
caps_for() { grep -q max_per_user "$1/gateway/config.go" && printf '%s' "$CAPS"; return 0; }
SESSIONCAPS=$(caps_for "$SRC")
# -O: the authorization server section for revisions that have one (an
# older base revision runs without it: the "before").
if (( OAUTH )); then
  head -c 32 /dev/urandom | base64 >"$OUT/storage.key"; chmod 600 "$OUT/storage.key"
fi
as_for() { (( OAUTH )) && grep -q '"authorization_server"' "$1/gateway/config.go" && echo 1; return 0; }
ASON=$(as_for "$SRC")
(( OAUTH )) && [[ -z $ASON ]] && { log "-O: this revision has no authorization server"; exit 1; }
mandate_config() {
  local name=$1 port=$2 kind=$3; shift 3
  {
    cat <<YAML
server:
  listen: 127.0.0.1:$port
  public_url: http://127.0.0.1:$port
$SESSIONCAPS
identity:
  issuer: $ISSUER
  audience: $MCP_URL
upstreams:
YAML
    local i=0 prefix=never
    (( $# > 1 )) && prefix=always
    for up in "$@"; do
      i=$((i+1))
      local uname=echo; (( $# > 1 )) && uname=echo$i
      cat <<YAML
  - name: $uname
    kind: mcp
    url: http://127.0.0.1:$up/mcp
    prefix: $prefix
    credentials:
      flow: token_exchange
      token_url: $ISSUER/oauth/token
      client_id: mandate
      client_secret: \${MANDATE_BENCH_CLIENT_SECRET}
      audience: https://$uname.internal
YAML
    done
    if [[ $kind == all ]]; then
      cat <<YAML
policy:
  default: allow
  rules:
    - name: no-contractors
      effect: deny
      when: '"contractor" in user.groups'
audit:
  sink: file
  path: $OUT/$name.audit.jsonl
telemetry:
  traces: none   # sampled traces are injected by mandateprof -trace-sample
  metrics: prometheus
YAML
    else
      cat <<YAML
policy:
  default: allow
audit:
  sink: stdout   # mandateprof -audit-discard: records go to io.Discard
telemetry:
  traces: none
  metrics: none
YAML
    fi
    if [[ -n $ASON ]]; then
      cat <<YAML
authorization_server:
  enabled: true
  access_token_ttl: 1h
  idp:
    client_id: mandate
    client_secret: \${MANDATE_BENCH_CLIENT_SECRET}
storage:
  path: $OUT/$name.db
  encryption_keys:
    - id: bench
      key_file: $OUT/storage.key
YAML
    fi
  } >"$OUT/$name.yaml"
  "$B/mandate" validate --config "$OUT/$name.yaml" >&2
}
# start_mandate NAME PORT DEBUGPORT extra-args... (sets STARTED_PID)
start_mandate() {
  local name=$1 port=$2 dport=$3; shift 3
  "${N[@]}" "$B/mandateprof" -config "$OUT/$name.yaml" -debug-addr 127.0.0.1:$dport "$@" \
    >"$OUT/logs/$name.log" 2>&1 &
  STARTED_PID=$!; PIDS+=($STARTED_PID)
  wait_http "http://127.0.0.1:$port/readyz"
}
# start_echo NAME PORT [DEBUGPORT] (sets STARTED_PID)
start_echo() {
  local dbg=()
  [[ -n ${3:-} ]] && dbg=(-debug-addr 127.0.0.1:$3)
  "${N[@]}" "$B/echoserver" -addr 127.0.0.1:$2 "${dbg[@]}" >"$OUT/logs/$1.log" 2>&1 &
  STARTED_PID=$!; PIDS+=($STARTED_PID)
  wait_port "$2"
}

wait_port $P_ECHO; wait_port $P_RPROXY
mandate_config mandate $P_MANDATE all $P_ECHO
start_mandate mandate $P_MANDATE $P_DEBUG "${TRACEARGS[@]}"; MANDATE_PID=$STARTED_PID
declare -A URL=([direct]=http://127.0.0.1:$P_ECHO/mcp [rproxy]=http://127.0.0.1:$P_RPROXY/mcp [mandate]=$MCP_URL)
declare -A PID=([rproxy]=$RPROXY_PID [mandate]=$MANDATE_PID)
declare -A TOK=() # target → token file (default tokens.txt)
TARGETS="direct rproxy mandate"
if (( OAUTH )); then
  # Every user of tokens.txt signs in at Mandate (the same process); the
  # token endpoint is measured on the way.
  log "signing $((MAXS + 1)) users in at Mandate's authorization server"
  if ! TELINE=$("${N[@]}" "$B/benchsignin" -issuer "http://127.0.0.1:$P_MANDATE" -usernames "$OUT/usernames.txt" \
       -tokens "$OUT/mandate-tokens.txt" -refreshes "$REFRESHES" -label token-endpoint/mandate 2>>"$OUT/logs/benchsignin.log"); then
    log "benchsignin failed:"; cat "$OUT/logs/benchsignin.log" >&2; exit 1
  fi
  URL[mandate-oauth]=$MCP_URL; PID[mandate-oauth]=$MANDATE_PID; TOK[mandate-oauth]=$OUT/mandate-tokens.txt
  TARGETS+=" mandate-oauth"
fi
if (( BARE )); then
  mandate_config mandate-bare $P_BARE bare $P_ECHO
  start_mandate mandate-bare $P_BARE $((P_DEBUG+1)) -audit-discard
  URL[mandate-bare]=http://127.0.0.1:$P_BARE/mcp; PID[mandate-bare]=$STARTED_PID
  TARGETS+=" mandate-bare"
fi
if [[ -n $BASEREF ]]; then
  # The same all-on configuration, validated and served by the base build.
  SAVED_B=$B SAVED_CAPS=$SESSIONCAPS SAVED_AS=$ASON
  B=$OUT/bin-base SESSIONCAPS=$(caps_for "$BSRC") ASON=$(as_for "$BSRC")
  BASEAS=$ASON
  mandate_config mandate-base $P_BASEREV all $P_ECHO
  start_mandate mandate-base $P_BASEREV $((P_DEBUG+3)) "${TRACEARGS[@]}"
  B=$SAVED_B SESSIONCAPS=$SAVED_CAPS ASON=$SAVED_AS
  URL[mandate-base]=http://127.0.0.1:$P_BASEREV/mcp; PID[mandate-base]=$STARTED_PID
  TARGETS+=" mandate-base"
fi
FAN_PIDS=""
if has fanout; then
  fanports=()
  for i in 1 2 3 4 5; do
    start_echo echo-fan$i $((P_FANECHO+i)); FAN_PIDS+=${FAN_PIDS:++}$STARTED_PID
    fanports+=($((P_FANECHO+i)))
  done
  mandate_config mandate-fan $P_FAN all "${fanports[@]}"
  start_mandate mandate-fan $P_FAN $((P_DEBUG+2)) "${TRACEARGS[@]}"; FAN_PID=$STARTED_PID
fi

# ---- header --------------------------------------------------------------------
{
  echo "# Mandate benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mandate:  $REV$DIRTY"
  echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(uname -sr)"
  echo "go:       $(go version | cut -d' ' -f3-)"
  echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the runs"
  echo "settings: duration $DUR, warm-up $WARM, rounds $ROUNDS, echo sessions: $SESSIONS, nice $NICE, extra: ${EXTRA:-none}"
  echo "targets:  direct (echoserver), rproxy (httputil.ReverseProxy), mandate (auth + token exchange + CEL policy + file audit + $TRACEDESC + Prometheus)"
  [[ -n $BASEREF ]] && echo "          mandate-base (the same all-on configuration, built from $(git -C "$ROOT" rev-parse --short "$BASEREF")$( (( OAUTH )) && { [[ -n ${BASEAS:-} ]] && echo ", authorization server on" || echo ", which has no authorization server"; }))"
  (( OAUTH )) && echo "          authorization server on in the mandate targets (SQLite, access_token_ttl 1h); mandate-oauth = the mandate process called with Mandate-issued tokens"
  (( BARE )) && echo "          mandate-bare (auth + token exchange; policy default allow without rules, audit to io.Discard, traces none, metrics none)"
  echo "command:  internal/app/bench/run.sh $*"
} | tee "$OUT/header.txt"

# ---- scenarios -------------------------------------------------------------------
# name|loadgen arguments
# name|group|loadgen arguments; group "fan" runs mandate-fan (5 upstreams) as
# the mandate target and has no mandate-bare.
SCEN=()
for s in $SESSIONS; do SCEN+=("echo-$s|main|-scenario calls -sessions $s -tool echo"); done
SCEN+=("sleep10ms-8|main|-scenario calls -sessions 8 -tool sleep10ms")
SCEN+=("setup-4|main|-scenario setup -sessions 4")
has cold && SCEN+=("cold-4|main|-scenario cold -sessions 4 -tool echo -fresh-tokens")
if has fanout; then
  SCEN+=("list5-8|fan|-scenario list -sessions 8")
  SCEN+=("list5new-4|fan|-scenario setup -sessions 4")
  SCEN+=("list5cold-4|fan|-scenario setup -sessions 4 -fresh-tokens")
fi
COLD_OFF=0

RES=$OUT/results.jsonl
: >"$RES"
if (( OAUTH )); then
  echo "$TELINE" >>"$RES"
  echo "$TELINE" | python3 -c '
import json,sys
r=json.load(sys.stdin)
for k,n in (("token_code","authorization_code"),("token_refresh","refresh_token"),("signin","whole sign-in")):
  s=r[k]; print("token endpoint %-18s %4d  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %6.2f ms" % (n, s["count"], s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"]))'
fi
show_run() { # a loadgen JSON line → one line of text
  python3 -c '
import json,sys
r=json.load(sys.stdin)
c=r.get("cpu",{})
extra=""
if r.get("tools"): extra+="  tools %d" % r["tools"]
if r.get("tokens_used"): extra+="  fresh tokens %d" % r["tokens_used"]
for n,m in sorted(r.get("idle",{}).items()):
  extra+="  %s RSS %.1f→%.1f MiB %.1f KiB/session (released %.1f) heap %.1f KiB/session goroutines %d→%d" % (n, m["rss_before_kib"]/1024, m["rss_after_kib"]/1024,
    m["rss_per_session_kib"], m.get("rss_released_per_session_kib",0), m.get("heap_per_session_kib",0), m.get("goroutines_before",0), m.get("goroutines_after",0))
print("%-28s %8.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d wrong %d  proxy %s µs/op  upstream %.0f µs/op%s  load %s" % (
  r["label"], r["calls_per_s"], r["p50_us"]/1000, r["p99_us"]/1000, r["errors"], r["wrong"],
  ("%.0f" % c["proxy"]["us_per_op"]) if "proxy" in c else "-", c.get("upstream",{}).get("us_per_op",0), extra, r["loadavg"]))
if r.get("first_error"): print("    first error: " + r["first_error"])'
}
run_one() { # scenario group target round args...
  local sc=$1 g=$2 t=$3 r=$4; shift 4
  local url=${URL[$t]} pid=${PID[$t]:-} up=$ECHO_PID
  if [[ $g == fan && $t == mandate ]]; then url=http://127.0.0.1:$P_FAN/mcp pid=$FAN_PID up=$FAN_PIDS; fi
  local pidargs=(-pid upstream=$up) tokargs=(-token-file "${TOK[$t]:-$OUT/tokens.txt}") fresh=0
  [[ -n $pid ]] && pidargs+=(-pid proxy=$pid)
  if [[ " $* " == *" -fresh-tokens "* ]]; then
    fresh=1 tokargs=(-token-file "$OUT/cold-tokens.txt")
    # Only Mandate looks at tokens: it gets users it has never seen; the
    # others reuse the pool from the start.
    if [[ $t == mandate* ]]; then tokargs+=(-token-offset "$COLD_OFF"); else tokargs+=(-token-wrap); fi
  fi
  local line
  if ! line=$("${N[@]}" "$B/loadgen" -url "$url" -duration "$DUR" -warmup "$WARM" \
       "${tokargs[@]}" "${pidargs[@]}" "${LISTOBJ[@]}" -label "$sc/$t/$r" -json "$@" 2>>"$OUT/logs/loadgen.log"); then
    log "loadgen failed for $sc/$t/$r (see $OUT/logs/loadgen.log): $line"
    [[ -n $line ]] || return 0
  fi
  if (( fresh )) && [[ $t == mandate* ]]; then
    COLD_OFF=$(( COLD_OFF + $(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("tokens_used",0))') ))
  fi
  echo "$line" >>"$RES"
  echo "$line" | show_run
  sleep 0.5
}

# Prime every Mandate with every user of tokens.txt (token exchange, JWKS,
# per-user catalog) so that the first round of a scenario does not pay what
# the cold scenarios measure; not recorded.
prime() { # url tokenfile args...
  local u=$1 tf=$2; shift 2
  "${N[@]}" "$B/loadgen" -url "$u" -sessions "$((MAXS + 1))" -duration 1s -warmup 0s \
    -token-file "$tf" "${LISTOBJ[@]}" "$@" >>"$OUT/logs/prime.log" 2>&1 ||
    log "priming $u failed (see $OUT/logs/prime.log)"
}
for t in $TARGETS; do [[ $t == mandate* ]] && prime "${URL[$t]}" "${TOK[$t]:-$OUT/tokens.txt}" -scenario calls -tool echo; done
has fanout && prime "http://127.0.0.1:$P_FAN/mcp" "$OUT/tokens.txt" -scenario list

for entry in "${SCEN[@]}"; do
  IFS='|' read -r sc g args <<<"$entry"
  ts=$TARGETS
  [[ $g == fan ]] && ts="direct rproxy mandate"
  # A new user's first call needs a new user: no sign-ins for those.
  [[ " $args " == *" -fresh-tokens "* ]] && ts=${ts/ mandate-oauth/}
  for r in $(seq 1 "$ROUNDS"); do
    order=$ts
    (( r % 2 )) || order=$(printf '%s\n' $ts | tac | xargs)
    for t in $order; do
      # shellcheck disable=SC2086
      run_one "$sc" "$g" "$t" "$r" $args
    done
  done
done
(( COLD > 0 )) && echo "new users used by the mandate targets: $COLD_OFF of $COLD minted"

# ---- idle sessions ---------------------------------------------------------------
# Fresh processes (an echoserver for direct; a Mandate with the same all-on
# configuration and its own fresh echoserver) so that nothing else lives in
# them; memory is read before and after IDLE sessions are opened and held.
if has idle; then
  start_echo echo-idle $P_EIDLE $((P_DEBUG+6)); EIDLE_PID=$STARTED_PID
  start_echo echo-idle2 $P_EIDLE2 $((P_DEBUG+8)); EIDLE2_PID=$STARTED_PID
  idle_one() { # target url pidargs...
    local t=$1 u=$2; shift 2
    local line
    if ! line=$("${N[@]}" "$B/loadgen" -scenario idle -url "$u" -sessions "$IDLE" -hold 5s -connect-parallel 64 \
         -token-file "$OUT/tokens.txt" -label "idle-$IDLE/$t/1" -json "$@" 2>>"$OUT/logs/loadgen.log"); then
      log "loadgen failed for idle-$IDLE/$t (see $OUT/logs/loadgen.log): $line"
      [[ -n $line ]] || return 0
    fi
    echo "$line" >>"$RES"
    echo "$line" | show_run
  }
  idle_one direct http://127.0.0.1:$P_EIDLE/mcp -pid server=$EIDLE_PID -memstats server=http://127.0.0.1:$((P_DEBUG+6))/memstats
  kill "$EIDLE_PID" 2>/dev/null || true
  mandate_config mandate-idle $P_MIDLE all $P_EIDLE2
  start_mandate mandate-idle $P_MIDLE $((P_DEBUG+7)) "${TRACEARGS[@]}"; MIDLE_PID=$STARTED_PID
  idle_one mandate http://127.0.0.1:$P_MIDLE/mcp -pid server=$MIDLE_PID -memstats server=http://127.0.0.1:$((P_DEBUG+7))/memstats \
    -pid upstream=$EIDLE2_PID -memstats upstream=http://127.0.0.1:$((P_DEBUG+8))/memstats
  kill "$MIDLE_PID" "$EIDLE2_PID" 2>/dev/null || true
fi

echo
"$B/benchsummary" "$RES" | tee "$OUT/summary.md"
if [[ $SAMPLE != none ]]; then
  echo
  echo "Spans sampled and ended (then discarded) by the traced mandate over the whole run: $(curl -fsS http://127.0.0.1:$P_DEBUG/spans || echo '(mandate not running)')"
fi

# Credential cache: lookups by outcome over the whole run (hit = cached token,
# ok = token exchanged at the IdP), from Mandate's Prometheus metrics.
echo
echo "Mandate credential lookups over the whole run (from /metrics):"
{ curl -fsS "http://127.0.0.1:$P_MANDATE/metrics" || echo "  (mandate not running)"; } | grep '^mandate_credentials_lookups\|not running' | tee "$OUT/credential-metrics.txt" |
  awk '{ n=$NF; if ($0 ~ /outcome="hit"/) h+=n; else o+=n; print "  " $0 } END { if (h+o>0) printf "  hit rate %.4f%% (%d hits, %d other)\n", 100*h/(h+o), h, o }'

# ---- profile ---------------------------------------------------------------------
if (( PROFILE )); then
  echo
  echo "## CPU profile of mandate, echo at 64 sessions, $PDUR"
  kill "$MANDATE_PID"; wait "$MANDATE_PID" 2>/dev/null || true
  # Profile from 5 s after start (sessions opened, exchanges done, warm) for PDUR;
  # the load runs from start until 1 s after the profile window.
  "${N[@]}" "$B/mandateprof" -config "$OUT/mandate.yaml" "${TRACEARGS[@]}" -cpuprofile "$OUT/mandate.cpu.pprof" -delay 5s \
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
