# Shared by the cluster benches: the local control plane, N stagings of the example shop
# environment served by git-daemon on loopback, and helpers. Sourced with N and BIN set.
# Leaves: KC, work, args (octostage's arguments), k, now, calc, cpu_ticks, daemon and gitd
# (killed on exit with the bench's namespaces).
KC=${OCTOSTAGE_TEST_KUBECONFIG:-$(scripts/control-plane.sh up)}
# As the image and the chart run octostage (mimalloc commits its arenas as it uses them).
export MIMALLOC_ARENA_EAGER_COMMIT=${MIMALLOC_ARENA_EAGER_COMMIT-0}
work=$(mktemp -d)
daemon=
gitd=
cleanup() {
  [[ -z $daemon ]] || kill "$daemon" 2>/dev/null || true
  [[ -z $gitd ]] || kill "$gitd" 2>/dev/null || true
  k delete namespaces -l octostage.dev/instance=bench --wait=false >/dev/null 2>&1 || true
  k get ns -o name | grep -E '^namespace/(kb|kp|cc|ca)-' | xargs -r kubectl --kubeconfig "$KC" delete --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
k() { kubectl --kubeconfig "$KC" "$@"; }
# Requests the API server served for the resources octostage reads and writes (watches
# excluded: they are long-lived). The control plane's own controllers barely touch these.
served() {
  k get --raw /metrics | python3 -c '
import re, sys
kinds = {"namespaces", "configmaps", "secrets", "services", "deployments", "statefulsets", "ingresses", "httproutes"}
total = 0
for line in sys.stdin:
    if line.startswith("apiserver_request_total{"):
        labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line.split("}")[0]))
        if labels.get("resource") in kinds and labels.get("verb") != "WATCH":
            total += float(line.rsplit(" ", 1)[1])
print(int(total))'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The shop application repository: main, N-3 feature branches, tag v1.4.0 (the static rc);
# with the two static stagings that makes N stagings.
git init -q -b main "$work/shop"
{
  echo "commit refs/heads/main"; echo "mark :1"; echo "committer Dev <dev@example.com> $(date +%s) +0000"
  echo "data 4"; echo "main"; echo
  echo "reset refs/tags/v1.4.0"; echo "from :1"; echo
  for i in $(seq 1 $((N - 3))); do
    echo "commit refs/heads/feature/b$i"; echo "committer Dev <dev@example.com> $(date +%s) +0000"
    echo "data 4"; echo "work"; echo "from :1"; echo "M 644 inline f.txt"; echo "data $(( ${#i} + 1 ))"; echo "$i"; echo
  done
} | git -C "$work/shop" fast-import --quiet
# fast-import leaves a loose file per ref; a served repository keeps its refs packed.
git -C "$work/shop" pack-refs --all
# The example configuration with the shop environment only and room for N stagings.
mkdir -p "$work/cfg" && cp -r example-repo/. "$work/cfg/"
python3 - "$work/cfg/environments.yaml" "$N" <<'PY'
import sys
p, n = sys.argv[1], sys.argv[2]
s = open(p).read().split("\n  # A documentation site")[0] + "\n"
open(p, "w").write(s.replace("max_stagings: 25", f"max_stagings: {n}"))
PY
# Served by git-daemon on loopback, as a remote repository is (a local path would be copied with
# its history through libgit2's local transport).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --base-path="$work" --listen=127.0.0.1 --port="$port" "$work" 2>/dev/null &
gitd=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
args=(--config "$work/cfg" --repository "shop=git://127.0.0.1:$port/shop" --cache-dir "$work/cache" --instance bench)
# A bench before may still be deleting its namespaces: a create into one would be a conflict.
k delete namespaces -l octostage.dev/instance=bench --wait=true --timeout=600s >/dev/null 2>&1 || true
"$BIN" plan --target none "${args[@]}" --format json > /dev/null   # warm the branch cache
