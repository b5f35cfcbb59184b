# Sourced by .ci/test.sh (bash). A throwaway PostgreSQL cluster for the
# storage contract suite (gateway/store):
#
#   pg_start   initdb + start a cluster in a temp dir, listening only on
#              127.0.0.1 (a free port) and on a unix socket in the temp dir,
#              trust auth, fsync off; creates database mandate_test and
#              exports MANDATE_POSTGRES_DSN=postgres://postgres@127.0.0.1:PORT/mandate_test?sslmode=disable
#   pg_stop    stops it and removes the temp dir (safe to call twice, or
#              when pg_start never ran)
#
# PostgreSQL refuses to run as root: as root, the cluster runs as the system
# user $PG_USER (created with useradd when missing). Binaries come from
# /usr/lib/postgresql/$PG_VERSION/bin (installed with apt-get when missing).
#
# By hand:  source .ci/postgres.sh && pg_start && echo "$MANDATE_POSTGRES_DSN"; ...; pg_stop

PG_VERSION="${PG_VERSION:-15}"
PG_USER="${PG_USER:-mandate-pg}"
PG_TMP=""
PG_BIN=""
PG_RUN=()

pg_find_bin() {
	local d
	for d in "/usr/lib/postgresql/$PG_VERSION/bin" /usr/lib/postgresql/*/bin; do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
			PG_BIN="$d"
			return 0
		fi
	done
	return 1
}

pg_start() {
	if ! pg_find_bin; then
		echo "no PostgreSQL binaries under /usr/lib/postgresql; installing postgresql with apt-get"
		local sudo=""
		[[ $(id -u) -ne 0 ]] && sudo="sudo"
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
		pg_find_bin || {
			echo "postgres.sh: apt-get install postgresql gave no /usr/lib/postgresql/*/bin/initdb" >&2
			return 1
		}
	fi
	[[ "$PG_BIN" == */"$PG_VERSION"/bin ]] || echo "warning: PostgreSQL $PG_VERSION not found; using $PG_BIN"

	PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mandate-pg.XXXXXX")
	PG_RUN=()
	if [[ $(id -u) -eq 0 ]]; then
		if ! id -u "$PG_USER" >/dev/null 2>&1; then
			useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
		fi
		chown "$PG_USER" "$PG_TMP"
		PG_RUN=(runuser -u "$PG_USER" --)
	fi
	chmod 700 "$PG_TMP"

	"${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1 || {
		cat "$PG_TMP/initdb.log" >&2
		return 1
	}
	# A free port: try random ones until the server starts on one (a port
	# taken meanwhile only costs a retry).
	local port="" try
	for try in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + RANDOM % 40000))
		if "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start >/dev/null; then
			break
		fi
		echo "postgres.sh: start on port $port failed (its log follows); trying another port" >&2
		tail -n 5 "$PG_TMP/server.log" >&2 || true
		port=""
	done
	if [[ -z "$port" ]]; then
		echo "postgres.sh: the server did not start; its log:" >&2
		cat "$PG_TMP/server.log" >&2
		return 1
	fi
	PG_PORT="$port"
	"${PG_RUN[@]}" "$PG_BIN/createdb" -h "$PG_TMP" -p "$port" -U postgres mandate_test
	export MANDATE_POSTGRES_DSN="postgres://postgres@127.0.0.1:$port/mandate_test?sslmode=disable"
	echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $PG_TMP/data)"
}

pg_stop() {
	[[ -n "$PG_TMP" ]] || return 0
	if [[ -f "$PG_TMP/data/postmaster.pid" ]]; then
		"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$PG_TMP"
	PG_TMP=""
}
