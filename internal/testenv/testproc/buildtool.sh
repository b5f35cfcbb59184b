# shellcheck shell=bash
# Shared steps of the scripts that build a pinned external tool for Mandate's
# tests, each from a Go module of its own (internal/testenv/testhydra/build/build.sh,
# internal/testenv/testjaeger/build/build.sh, deploy/tools/build-helm.sh). Source it
# from a bash script running under `set -euo pipefail`; it only defines
# functions:
#
#	out=$(buildtool_out "$repo/bin/prog" "${1:-}")
#	buildtool_skip_if_current prog "$out" "some/build/go.sum" "$here/go.sum" "$here/go.mod"
#	buildtool_begin prog "$out" example.com/prog "$here"
#	go build -o "$tmp" example.com/prog
#	buildtool_finish
#
# Only the tool itself and how it is built differ between the scripts.

# buildtool_out DEFAULT [OUT]: prints OUT, or DEFAULT when OUT is empty, as an
# absolute path (relative to the current directory).
buildtool_out() {
	local out="${2:-$1}"
	case "$out" in
	/*) ;;
	*) out="$PWD/$out" ;;
	esac
	printf '%s\n' "$out"
}

# buildtool_skip_if_current NAME OUT LABEL DEP...: when OUT is executable and
# newer than every DEP, says so (naming LABEL) and exits the script with 0.
buildtool_skip_if_current() {
	local name="$1" out="$2" label="$3" dep
	shift 3
	[[ -x "$out" ]] || return 0
	for dep in "$@"; do
		[[ "$out" -nt "$dep" ]] || return 0
	done
	echo "$name: $out is up to date (newer than $label); skipping build"
	exit 0
}

# buildtool_begin NAME OUT WHAT DIR: creates OUT's directory, changes to DIR,
# says what it builds, and sets tmp to the temporary file to build into (next
# to OUT, removed on exit unless buildtool_finish moved it into place).
buildtool_begin() {
	buildtool_name="$1"
	buildtool_dest="$2"
	mkdir -p "$(dirname "$buildtool_dest")"
	cd "$4"
	buildtool_start=$(date +%s)
	echo "$buildtool_name: building $3 -> $buildtool_dest"
	tmp="$buildtool_dest.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
}

# buildtool_finish: moves the built file into place and says how long it took.
buildtool_finish() {
	mv -f "$tmp" "$buildtool_dest"
	echo "$buildtool_name: built $buildtool_dest in $(($(date +%s) - buildtool_start))s"
}
