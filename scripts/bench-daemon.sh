#!/usr/bin/env bash
# The daemon bench: what `octostage run --interval 2s` costs while it holds N stagings of the
# example shop (default 1000) on the local control plane (or OCTOSTAGE_TEST_KUBECONFIG's).
# 1. Converge from empty with `run --once` (objects/s; with CEILING=1 also the API server's
#    ceiling on the same objects in the same run, and the ratio).
# 2. The daemon, after it settled: CPU per 2 s (utime+stime) and resident memory over WINDOW
#    seconds (default 30) with nothing changing, then with another manager annotating 5 of its
#    Deployments a second (what restarts and autoscalers look like to a watch).
# 3. One push to one branch, announced by the generic webhook: push -> the staging's namespace
#    records the new commit, p50 and max over PUSHES (default 10) pushes.
# Usage: scripts/bench-daemon.sh [N]   env: WINDOW, PUSHES, CEILING=1, BASE_BIN=other builds (space-separated) to
# measure after it on the same stagings (a baseline in the same run), MALLOC (a label only)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
WINDOW=${WINDOW:-30}
PUSHES=${PUSHES:-10}
cargo build --release -q --bin octostage --example api_ceiling
BIN=$PWD/target/release/octostage
CEILING_BIN=$PWD/target/release/examples/api_ceiling
source scripts/bench-common.sh
manager=
trap 'kill $manager 2>/dev/null || true; cp "$work/run.log" "${TMPDIR:-/tmp}/bench-daemon-run.log" 2>/dev/null || true; cleanup' EXIT

# 1. Converge from empty.
t0=$(now); "$BIN" run --once --target "kube:$KC" "${args[@]}" --log info 2> "$work/converge.log" >/dev/null; t1=$(now)
o_time=$(calc "$t1 - $t0")
stagings=$(k get ns -l octostage.dev/instance=bench -o name | wc -l)
objects=$(k get configmaps,secrets,services,deployments,statefulsets,ingresses,httproutes -A -l app.kubernetes.io/managed-by=octostage -o name | wc -l)
o_objects=$((objects + stagings))
printf '\n%s stagings, %s objects (namespaces included), %s cores\n' "$stagings" "$o_objects" "$(nproc)"
printf 'converge from empty: %.1f s, %.1f objects/s\n' "$o_time" "$(calc "$o_objects / $o_time")"
if [[ ${CEILING:-0} == 1 ]]; then
  "$BIN" run --once --target "dir:$work/rendered" "${args[@]}" > /dev/null 2>&1
  rm -f "$work"/rendered/*/octostage-status.yaml
  read -r c_objects _ c_time < <("$CEILING_BIN" "$KC" "$work/rendered" cc- 16 create)
  printf 'API ceiling (one create per object, 16 in flight): %.1f objects/s; octostage %.2fx\n' \
    "$(calc "$c_objects / $c_time")" "$(calc "($o_objects / $o_time) / ($c_objects / $c_time)")"
fi

# The workloads start for minutes after the converge, and each one that becomes ready is a
# change the daemon must look at: wait (at most 5 min) until the Deployments not ready are the
# same for 20 s (some never are: the simulated nodes hold so many pods), so that both daemons
# are measured on a cluster that stands still but for the manager below.
last= same=0
for _ in $(seq 300); do
  unready=$(k get deployments -A -l octostage.dev/instance=bench -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}={.spec.replicas}/{.status.readyReplicas}{"\n"}{end}' \
    | awk -F'[=/]' '$3 != ($4 == "" ? 0 : $4)' | sort | md5sum)
  if [[ $unready == "$last" ]]; then same=$((same + 1)); else same=0; last=$unready; fi
  [[ $same -ge 20 ]] && break
  sleep 1
done
printf 'Deployments not ready before the daemons are measured: %s\n' \
  "$(k get deployments -A -l octostage.dev/instance=bench -o jsonpath='{range .items[*]}{.spec.replicas}/{.status.readyReplicas}{"\n"}{end}' | awk -F/ '$1 != ($2 == "" ? 0 : $2)' | wc -l)"

# 2. and 3. The daemon of this tree, then of a baseline binary when BASE_BIN names one (the
# same stagings, the same run).
measure() { # BINARY LABEL: the daemon of BINARY on the stagings converged above
secret=bench-$RANDOM$RANDOM
lport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OCTOSTAGE_WEBHOOK_TOKEN=$secret "$1" run --target "kube:$KC" "${args[@]}" --interval 2s \
  --listen "127.0.0.1:$lport" --probe-listen "127.0.0.1:$pport" --log info 2> "$work/run.log" >/dev/null &
daemon=$!
passes() { grep -c 'pass finished' "$work/run.log" || true; }
while [ "$(passes)" -lt 1 ]; do sleep 0.2; done
# A follower plans without writing: its figures are not the leader's.
for _ in $(seq 75); do grep -q "leading: this replica writes" "$work/run.log" && break; sleep 0.2; done
grep -q "leading: this replica writes" "$work/run.log" ||
  { echo "$2 did not lead: another process holds the lease octostage-bench" >&2; exit 1; }
sleep 20   # the watches' listings and the controllers' status updates settle
hz=$(getconf CLK_TCK)
cpu_cost() { # SECONDS -> "ms per 2 s" over that window
  local c0 c1; c0=$(cpu_ticks "$daemon"); sleep "$1"; c1=$(cpu_ticks "$daemon")
  calc "round(($c1 - $c0) * 1000 / $hz / ($1 / 2), 1)"
}
rss() { calc "round($(awk '/VmRSS/ {print $2}' "/proc/$daemon/status") / 1024, 1)"; }
p0=$(passes); idle=$(cpu_cost "$WINDOW"); idle_rss=$(rss); idle_passes=$(( $(passes) - p0 ))

# Another manager: 5 annotations a second on the bench's Deployments, straight to the API.
python3 scripts/bench-manager.py "$KC" > "$work/manager.log" 2>&1 &
manager=$!
sleep 5
p0=$(passes); busy=$(cpu_cost "$WINDOW"); busy_rss=$(rss); busy_passes=$(( $(passes) - p0 ))
kill $manager; wait $manager 2>/dev/null || true; manager=

# 3. Pushes announced by the webhook.
local lat=()
for i in $(seq 1 "$PUSHES"); do
  branch=feature/b$i
  sha=$(git -C "$work/shop" commit-tree -p "refs/heads/$branch" -m "bench push $i" "refs/heads/$branch^{tree}")
  git -C "$work/shop" update-ref "refs/heads/$branch" "$sha"
  t0=$(now)
  curl -fsS -o /dev/null -H "Authorization: Bearer $secret" -H 'content-type: application/json' \
    -d "{\"repository\": \"git://127.0.0.1:$port/shop\"}" "http://127.0.0.1:$lport/hooks/generic"
  python3 - "$KC" "$branch" "$sha" <<'PY'
import json, ssl, sys, time, urllib.request, re
kc = open(sys.argv[1]).read()
server = re.search(r"server: (\S+)", kc).group(1)
token = re.search(r"token: (\S+)", kc).group(1)
ctx = ssl.create_default_context(cafile=re.search(r"certificate-authority: (\S+)", kc).group(1))
branch, sha = sys.argv[2], sys.argv[3]
deadline = time.time() + 120
while time.time() < deadline:
    req = urllib.request.Request(server + "/api/v1/namespaces?labelSelector=octostage.dev/instance%3Dbench",
        headers={"Authorization": "Bearer " + token, "Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"})
    for ns in json.load(urllib.request.urlopen(req, context=ctx))["items"]:
        rec = ns["metadata"].get("annotations", {}).get("octostage.dev/record", "")
        if sha in rec:
            sys.exit(0)
    time.sleep(0.02)
sys.exit("the push was not applied within 120 s")
PY
  t1=$(now); lat+=("$(calc "$t1 - $t0")")
done
stats=$(python3 -c "import statistics,sys; v=sorted(map(float,sys.argv[1:])); print(f'{statistics.median(v):.2f} {max(v):.2f}')" "${lat[@]}")

kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
printf '\n%s: the daemon (--interval 2s) holding %s stagings%s\n' "$2" "$stagings" "${MALLOC:+, allocator $MALLOC}"
printf '  %-46s %8s ms   %6s MiB   %s passes in %s s\n' "idle: CPU per 2 s, resident" "$idle" "$idle_rss" "$idle_passes" "$WINDOW"
printf '  %-46s %8s ms   %6s MiB   %s passes in %s s\n' "5 Deployments/s changed by another manager" "$busy" "$busy_rss" "$busy_passes" "$WINDOW"
printf '  %-46s %s s p50, %s s max over %s pushes\n' "one push (webhook) -> staging records it" ${stats} "$PUSHES"

}
# This tree first: the first daemon meets the cluster least settled (pods still starting).
measure "$BIN" "this tree"
for base in ${BASE_BIN:-}; do measure "$base" "baseline ($base)"; done
