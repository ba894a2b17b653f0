#!/usr/bin/env bash
# The cluster bench: N stagings of the example shop environment (default 1000) on the local
# control plane (or OCTOSTAGE_TEST_KUBECONFIG's cluster).
#
# The application repository is served by git-daemon on loopback.
# 1. Converge N new stagings with `octostage run --once`, against baselines measured in the same
#    run on the same rendered objects: the API server's own ceiling (examples/api_ceiling: one
#    create, or one server-side apply, per object, 16 in flight, no reads), and `kubectl apply --server-side` on
#    SAMPLE stagings (default 100), one staging at a time and 8 at a time. Objects/s and ratios.
# 2. Steady state: `octostage run` holding the N stagings, 5 passes asked for with SIGHUP while
#    nothing changes: requests per pass (octostage's count, and the API server's own
#    apiserver_request_total for the resources octostage touches), CPU per pass (utime+stime of
#    the process), resident memory.
# Usage: scripts/bench-cluster.sh [N] [SAMPLE]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
SAMPLE=${2:-100}
cargo build --release -q --bin octostage --example api_ceiling
BIN=$PWD/target/release/octostage
CEILING=$PWD/target/release/examples/api_ceiling
source scripts/bench-common.sh

# 1. Converge.
t0=$(now); "$BIN" run --once --target "kube:$KC" "${args[@]}" --log info 2> "$work/converge.log" >/dev/null; t1=$(now)
o_time=$(calc "$t1 - $t0")
o_req=$(grep -o 'requests=[0-9]*' "$work/converge.log" | tail -1 | cut -d= -f2)
stagings=$(k get ns -l octostage.dev/instance=bench -o name | wc -l)
objects=$(k get configmaps,secrets,services,deployments,statefulsets,ingresses,httproutes -A -l app.kubernetes.io/managed-by=octostage -o name | wc -l)
o_objects=$((objects + stagings))

# The identical objects, rendered into folders, for the baselines.
"$BIN" run --once --target "dir:$work/rendered" "${args[@]}" > /dev/null 2>&1
rm -f "$work"/rendered/*/octostage-status.yaml
read -r c_objects c_req c_time < <("$CEILING" "$KC" "$work/rendered" cc- 16 create)
read -r a_objects a_req a_time < <("$CEILING" "$KC" "$work/rendered" ca- 16 apply)

# kubectl on SAMPLE stagings, into namespaces of its own.
mkdir -p "$work/sample"
for d in $(ls -d "$work"/rendered/*/ | head -n "$SAMPLE"); do cp -r "$d" "$work/sample/"; done
kubectl_one() { # PREFIX DIR
  local name; name=$(basename "$2")
  local tmp; tmp=$(mktemp -d)
  cp "$2"/*.yaml "$tmp/"
  sed -i "s/^  namespace: $name\$/  namespace: $1$name/" "$tmp"/*.yaml
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s%s\n' "$1" "$name" > "$tmp/00-namespace.yaml"
  kubectl --kubeconfig "$KC" apply --server-side --field-manager=ci -f "$tmp" >/dev/null
  rm -rf "$tmp"
}
export -f kubectl_one; export KC
k_objects=$(( $(cat "$work"/sample/*/*.yaml | grep -c '^kind:') + SAMPLE ))
t0=$(now); for d in "$work"/sample/*/; do kubectl_one kb- "$d"; done; t1=$(now); ks_time=$(calc "$t1 - $t0")
t0=$(now); ls -d "$work"/sample/*/ | xargs -P 8 -I{} bash -c 'kubectl_one kp- {}'; t1=$(now); kp_time=$(calc "$t1 - $t0")

# 2. Steady state: the daemon with the N stagings, nothing changing.
"$BIN" run --target "kube:$KC" "${args[@]}" --interval 1h --log info 2> "$work/run.log" >/dev/null &
daemon=$!
passes() { grep -c 'pass finished' "$work/run.log" || true; }
wait_passes() { while [ "$(passes)" -lt "$1" ]; do sleep 0.2; done; }
wait_passes 1
sleep 2   # the watches' initial listings settle
# After the passes, what the rest of the control plane asks of the same resources over as long
# as the five passes took, idle.
t0=$(now)
cpu0=$(cpu_ticks "$daemon"); srv0=$(served); req_sum=0
for i in 1 2 3 4 5; do
  kill -HUP "$daemon"; wait_passes $((i + 1))
  r=$(grep 'pass finished' "$work/run.log" | tail -1 | grep -o 'requests=[0-9]*' | cut -d= -f2)
  req_sum=$((req_sum + r))
done
cpu1=$(cpu_ticks "$daemon"); srv1=$(served); t1=$(now)
sleep "$(calc "$t1 - $t0")"; idle1=$(served)
hz=$(getconf CLK_TCK)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status"); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
first_pass=$(grep 'pass finished' "$work/run.log" | head -1 | grep -o 'requests=[0-9]*' | cut -d= -f2)

printf '\n%s stagings, %s objects (namespaces included) on %s, %s cores\n' "$stagings" "$o_objects" \
  "$(k version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')" "$(nproc)"
printf '%-52s %9s %9s %10s %9s\n' "converge new stagings" objects "wall (s)" "objects/s" requests
printf '%-52s %9s %9.2f %10.1f %9s\n' "octostage run --once (concurrency 4)" "$o_objects" "$o_time" "$(calc "$o_objects / $o_time")" "$o_req"
printf '%-52s %9s %9.2f %10.1f %9s\n' "ceiling: one create per object, 16 in flight" "$c_objects" "$c_time" "$(calc "$c_objects / $c_time")" "$c_req"
printf '%-52s %9s %9.2f %10.1f %9s\n' "ceiling: one server-side apply per object, 16 in flight" "$a_objects" "$a_time" "$(calc "$a_objects / $a_time")" "$a_req"
printf '%-52s %9s %9.2f %10.1f %9s\n' "kubectl apply --server-side, one staging at a time" "$k_objects" "$ks_time" "$(calc "$k_objects / $ks_time")" "-"
printf '%-52s %9s %9.2f %10.1f %9s\n' "kubectl apply --server-side, 8 stagings at a time" "$k_objects" "$kp_time" "$(calc "$k_objects / $kp_time")" "-"
printf 'octostage objects/s: %.2fx the ceiling (the faster of create and apply), %.1fx kubectl serial, %.1fx kubectl x8\n' \
  "$(calc "($o_objects / $o_time) / max($c_objects / $c_time, $a_objects / $a_time)")" \
  "$(calc "($o_objects / $o_time) / ($k_objects / $ks_time)")" \
  "$(calc "($o_objects / $o_time) / ($k_objects / $kp_time)")"
printf '\nsteady state, octostage run holding %s stagings, 5 passes with nothing changed\n' "$stagings"
printf '  requests per pass (octostage count)         %s   (first pass of the daemon: %s)\n' "$(calc "$req_sum / 5")" "$first_pass"
printf '  requests per pass (API server, non-watch)   %s   (%s per pass-length while idle, from the control plane itself)\n' "$(calc "($srv1 - $srv0) / 5")" "$(calc "($idle1 - $srv1) / 5")"
printf '  CPU per pass (utime+stime)                  %s ms\n' "$(calc "round(($cpu1 - $cpu0) * 1000 / $hz / 5, 1)")"
printf '  resident memory                             %s MiB (peak %s MiB)\n' "$(calc "round($rss / 1024, 1)")" "$(calc "round($hwm / 1024, 1)")"
