#!/usr/bin/env bash
# Converge N new stagings of the example shop environment (default 200) on the local control
# plane, then do it again with nothing changed; the baseline is the same pre-rendered manifests
# applied with `kubectl apply --server-side`, one kubectl call per staging, as CI scripts do.
# Prints wall time and API requests of each, and the ratios. Usage: scripts/bench-cluster.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
cargo build --release -q
BIN=$PWD/target/release/octostage
KC=${OCTOSTAGE_TEST_KUBECONFIG:-$(scripts/control-plane.sh up)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
k() { kubectl --kubeconfig "$KC" "$@"; }

# The shop application repository: main, N-3 feature branches, tag v1.4.0 (the static rc);
# with the two static stagings that makes N stagings.
git init -q -b main "$work/shop"
{
  echo "commit refs/heads/main"; echo "mark :1"; echo "committer Dev <dev@example.com> $(date +%s) +0000"
  echo "data 4"; echo "main"; echo
  echo "reset refs/tags/v1.4.0"; echo "from :1"; echo
  for i in $(seq 1 $((N - 3))); do
    echo "commit refs/heads/feature/b$i"; echo "committer Dev <dev@example.com> $(date +%s) +0000"
    echo "data 4"; echo "work"; echo "from :1"; echo "M 644 inline f.txt"; echo "data 3"; echo "$i"; echo
  done
} | git -C "$work/shop" fast-import --quiet
# The example configuration with the shop environment only and room for N stagings.
mkdir -p "$work/cfg" && cp -r example-repo/. "$work/cfg/"
python3 - "$work/cfg/environments.yaml" "$N" <<'PY'
import sys
p, n = sys.argv[1], sys.argv[2]
s = open(p).read().split("\n  # A documentation site")[0] + "\n"
open(p, "w").write(s.replace("max_stagings: 25", f"max_stagings: {n}"))
PY
args=(--config "$work/cfg" --repository "shop=$work/shop" --cache-dir "$work/cache" --instance bench)
k delete namespaces -l octostage.dev/instance=bench --wait=false >/dev/null 2>&1 || true
"$BIN" plan --target none "${args[@]}" --format json > /dev/null   # warm the branch cache

run_octostage() {
  local t0 t1 out
  t0=$(now); out=$("$BIN" run --once --target "kube:$KC" "${args[@]}" 2>&1 >/dev/null); t1=$(now)
  echo "$(calc "$t1 - $t0") $(echo "$out" | grep ' requests$' | cut -d' ' -f1) $(echo "$out" | grep ' writes$' | cut -d' ' -f1)"
}
read -r o_time o_req o_writes < <(run_octostage)
read -r o2_time o2_req o2_writes < <(run_octostage)
stagings=$(k get ns -l octostage.dev/instance=bench -o name | wc -l)
objects=$(k get configmaps,secrets,services,deployments,statefulsets,ingresses -A -l app.kubernetes.io/managed-by=octostage -o name | wc -l)

# Baseline: the identical manifests, rendered to files, applied one staging at a time.
"$BIN" run --once --target "dir:$work/rendered" "${args[@]}" > /dev/null 2>&1
for d in "$work"/rendered/*/; do
  name=$(basename "$d"); rm "$d/octostage-status.yaml"
  sed -i "s/^  namespace: $name\$/  namespace: kb-$name/" "$d"/*.yaml
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kb-%s\n' "$name" > "$d/00-namespace.yaml"
done
apply_all() {
  local t0 t1 req=0 n
  t0=$(now)
  for d in "$work"/rendered/*/; do
    n=$(k apply --server-side --field-manager=ci -f "$d" -v=6 2>&1 >/dev/null | grep -cE '(GET|POST|PATCH|PUT|DELETE) https://') || true
    req=$((req + n))
  done
  t1=$(now)
  echo "$(calc "$t1 - $t0") $req"
}
read -r b_time b_req < <(apply_all)
read -r b2_time b2_req < <(apply_all)

printf 'converge %s stagings (%s objects) on %s\n' "$stagings" "$objects" "$(k version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
printf '%-44s %9s %9s %9s\n' "" "wall (s)" requests writes
printf '%-44s %9.2f %9s %9s\n' "octostage run --once, new" "$o_time" "$o_req" "$o_writes"
printf '%-44s %9.2f %9s %9s\n' "kubectl apply --server-side per staging, new" "$b_time" "$b_req" "-"
printf '%-44s %9.2f %9s %9s\n' "octostage run --once, nothing changed" "$o2_time" "$o2_req" "$o2_writes"
printf '%-44s %9.2f %9s %9s\n' "kubectl apply --server-side, nothing changed" "$b2_time" "$b2_req" "-"
printf 'ratio kubectl/octostage: new %.1fx time, %.1fx requests; unchanged %.1fx time, %.1fx requests\n' \
  "$(calc "$b_time / $o_time")" "$(calc "$b_req / $o_req")" \
  "$(calc "$b2_time / $o2_time")" "$(calc "$b2_req / $o2_req")"
k delete namespaces -l octostage.dev/instance=bench --wait=false >/dev/null
k get ns -o name | grep '^namespace/kb-' | xargs -r kubectl --kubeconfig "$KC" delete --wait=false >/dev/null
