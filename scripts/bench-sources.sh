#!/usr/bin/env bash
# Listing an application repository with a long history: octostage's branch listing against
# git's own clone --mirror and fetch, over git:// on loopback (a real transport, no disk
# shortcut). Usage: scripts/bench-sources.sh [BRANCHES] [COMMITS]   (default 10000 100000)
# Builds nothing: BIN (default target/release/octostage) is measured as it is. The repository is
# generated once by scripts/gen-long-repo.py and cached in ~/.cache/octostage/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
BRANCHES=${1:-10000}
COMMITS=${2:-100000}
BIN=$(realpath "${BIN:-target/release/octostage}")
# Past --fetch-timeout a listing is abandoned: the bench wants the time it takes, not a cut-off.
FETCH_TIMEOUT=${FETCH_TIMEOUT:-30m}
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release, or set BIN)" >&2; exit 1; }

cached=~/.cache/octostage/bench/long-$BRANCHES-$COMMITS.git
python3 scripts/gen-long-repo.py "$cached" --branches "$BRANCHES" --commits "$COMMITS"

work=$(mktemp -d)
daemon=
trap '[[ -z $daemon ]] || kill "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
# The origin receives new commits; a local bare clone hard-links the cached objects (immutable),
# so it costs nothing and the cached repository is never written.
mkdir "$work/srv"
git clone --quiet --bare "$cached" "$work/srv/origin.git"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# git-daemon itself: killing a `git daemon` wrapper would leave the daemon running.
"$(git --exec-path)/git-daemon" --reuseaddr --base-path="$work/srv" --export-all --listen=127.0.0.1 --port="$port" \
  "$work/srv" 2>"$work/daemon.log" &
daemon=$!
url=git://127.0.0.1:$port/origin.git
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
git ls-remote "$url" HEAD >/dev/null

now() { date +%s.%N; }
# timed CMD...: runs CMD, sets T to its wall time in seconds, returns its exit status.
timed() {
  local t0 rc=0
  t0=$(now)
  "$@" || rc=$?
  T=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  return $rc
}
bytes() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# What git printed as received ("Receiving objects: 100% (N/N), 12.3 MiB"), from --progress.
# Small fetches unpack with delayed progress and print nothing: shown as "-".
received() {
  local r
  r=$(tr '\r' '\n' <"$1" | grep -E '(Receiving|Unpacking) objects: 100%' | tail -1 | sed -E 's/.*\), ([^|,]+[^|, ]).*/\1/')
  echo "received ${r:--}"
}

# advance: one new commit on each of 10 branches of the origin, as 10 pushes would leave it.
# fast-import continues each branch from its tip (`from ...^0`).
advances=0
advance() {
  advances=$((advances + 1))
  local i b t
  t=$(date +%s)
  for i in $(seq 0 9); do
    b=$(printf 'feature/%05d' $(((i * BRANCHES / 10 + advances) % BRANCHES)))
    printf 'commit refs/heads/%s\ncommitter Bench <bench@example.com> %s +0000\ndata 16\nbench advance %02d\n' "$b" "$t" "$advances"
    printf 'from refs/heads/%s^0\nM 100644 inline bench/advance-%s.txt\ndata 3\n%02d\n\n' "$b" "$i" "$advances"
  done | git -C "$work/srv/origin.git" fast-import --quiet
}

rows=()
row() { rows+=("$(printf '%-34s %8s %11s %8s  %s' "$@")"); }

# a. Refs only: the floor of any listing.
timed git ls-remote "$url" >"$work/refs"
row "git ls-remote" "$T" - - "$(grep -c refs/heads/ "$work/refs") branches"

# b-d. git's own mirror: cold clone, fetch with nothing new, fetch after 10 pushes.
mirror=$work/mirror.git
timed git clone --mirror --progress "$url" "$mirror" 2>"$work/clone.err"
git_cold=$T git_cold_b=$(bytes "$mirror")
row "git clone --mirror, cold" "$T" "$(mib "$git_cold_b")" - "$(received "$work/clone.err")"
fetch() { git -C "$mirror" fetch --progress --prune origin '+refs/heads/*:refs/heads/*' 2>"$work/fetch.err"; }
timed fetch
git_warm=$T
b=$(bytes "$mirror")
# Growth here is FETCH_HEAD, which git rewrites with every ref on each fetch.
row "git fetch, warm, unchanged" "$T" "$(mib "$b")" "+$(mib $((b - git_cold_b)))" "$(received "$work/fetch.err")"
advance
timed fetch
git_adv=$T
b=$(bytes "$mirror")
row "git fetch, warm, +10 commits" "$T" "$(mib "$b")" "+$(mib $((b - git_cold_b)))" "$(received "$work/fetch.err")"

# e-f. octostage: one environment on the origin, every feature branch; ttl never so no branch
# is dropped as stale, and max_stagings keeps rendering out of the measurement.
cfg=$work/config
mkdir -p "$cfg/templates"
cat >"$cfg/environments.yaml" <<EOF
version: 1
environments:
  bench:
    repository: $url
    branches:
      include: ["feature/**"]
    ttl: never
    max_stagings: 20
    templates: templates
EOF
cat >"$cfg/templates/configmap.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: bench
data:
  COMMIT: "{{ commit.sha }}"
EOF
"$BIN" validate --config "$cfg" >/dev/null
cache=$work/octostage-cache
plan() { # plan NAME: a fresh process each time, as each `octostage plan` is
  if ! timed "$BIN" --log info plan --target none --config "$cfg" --cache-dir "$cache" \
    --fetch-timeout "$FETCH_TIMEOUT" --format json >"$work/$1.json" 2>"$work/$1.log"; then
    echo "octostage plan ($1) failed:" >&2; cat "$work/$1.log" >&2; exit 1
  fi
  # A failed listing exits 1 today; the JSON and the log are checked too, should that change.
  if grep -q ERROR "$work/$1.log" || grep -q '"failed_sources": \[$' "$work/$1.json"; then
    echo "octostage plan ($1) reported errors:" >&2; cat "$work/$1.log" >&2; exit 1
  fi
  echo "octostage $1:" && grep -i fetch "$work/$1.log" | sed 's/^/    /' || true
}
# What the plan would do, e.g. "create 20, noop 9980": the listing reached the planner.
actions() {
  python3 -c 'import collections, json, sys
c = collections.Counter(s["action"] for s in json.load(open(sys.argv[1]))["stagings"])
print(", ".join(f"{a} {n}" for a, n in sorted(c.items())))' "$1"
}
plan cold
oc_cold=$T oc_cold_b=$(bytes "$cache")
row "octostage plan, cold" "$T" "$(mib "$oc_cold_b")" - "$(actions "$work/cold.json")"
plan warm
oc_warm=$T
b=$(bytes "$cache")
row "octostage plan, warm, unchanged" "$T" "$(mib "$b")" "+$(mib $((b - oc_cold_b)))" "$(actions "$work/warm.json")"
advance
plan warm+10
oc_adv=$T
b=$(bytes "$cache")
row "octostage plan, warm, +10 commits" "$T" "$(mib "$b")" "+$(mib $((b - oc_cold_b)))" "$(actions "$work/warm+10.json")"

echo
echo "$BRANCHES branches, $COMMITS commits; origin $(du -sh "$cached" | cut -f1) at $url; $(nproc) cores"
printf '%-34s %8s %11s %8s  %s\n' step "wall (s)" "cache (MiB)" "growth" notes
printf '%s\n' "${rows[@]}"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo
echo "octostage cold vs clone --mirror cold: time $(ratio "$oc_cold" "$git_cold"), disk $(ratio "$oc_cold_b" "$git_cold_b")"
echo "octostage warm vs git fetch warm: unchanged $(ratio "$oc_warm" "$git_warm"), +10 commits $(ratio "$oc_adv" "$git_adv")"
