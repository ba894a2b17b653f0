#!/usr/bin/env bash
# Resident memory of `octostage run --interval 2s` holding N stagings of the example shop
# (default 1000) on the local control plane: each build of BINS (default: this tree's) runs in
# turn on the same stagings, 30 s alone and then 60 s with another manager annotating 5 of its
# Deployments a second, and prints VmRSS, RssAnon (heap, stacks), RssFile (the binary's pages)
# and its threads at the end. A build may be a wrapper script that sets an allocator's
# environment. Run as deployed: MIMALLOC_ARENA_EAGER_COMMIT=0, as the image and the chart set.
# Usage: [BINS="build..."] scripts/bench-memory.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
if [[ -z ${BINS:-} ]]; then
  cargo build --release -q --bin octostage
  BINS=$PWD/target/release/octostage
fi
BIN=${BINS%% *}
source scripts/bench-common.sh
"$BIN" run --once --target "kube:$KC" "${args[@]}" --log info 2> "$work/converge.log" >/dev/null
printf '%s stagings converged\n' "$(k get ns -l octostage.dev/instance=bench -o name | wc -l)"
for b in $BINS; do
  "$b" run --target "kube:$KC" "${args[@]}" --interval 2s --listen 127.0.0.1:0 \
    --probe-listen 127.0.0.1:0 --log info 2> "$work/run.log" >/dev/null &
  daemon=$!
  sleep 30
  python3 scripts/bench-manager.py "$KC" & manager=$!
  sleep 60
  kill "$manager" || true
  # A follower plans without writing: what it holds is not what the leader holds.
  grep -q "leading: this replica writes" "$work/run.log" ||
    echo "$b did not lead (another process holds the lease octostage-bench): not measured" >&2
  awk -v b="$b" -v t="$(ls /proc/$daemon/task | wc -l)" '
    /^(VmRSS|RssAnon|RssFile):/ { v[$1] = sprintf("%.1f MiB", $2 / 1024) }
    END { printf "%s: resident %s (anonymous %s, file %s), %d threads\n", b, v["VmRSS:"], v["RssAnon:"], v["RssFile:"], t }
  ' "/proc/$daemon/status"
  kill -TERM "$daemon"; wait "$daemon" || true
  daemon=
done
