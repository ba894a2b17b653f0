#!/usr/bin/env bash
# Local Kubernetes control plane for tests, CI and the README's cluster quickstart, on loopback,
# no container runtime needed: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# simulated nodes (kwok) whose pods are bound, run and become Ready, a simulated volume
# provisioner, and the Gateway API CRDs.
#
#   scripts/control-plane.sh build   build the binaries once per version (cached outside the checkout)
#   scripts/control-plane.sh up      start everything; prints the kubeconfig path
#   scripts/control-plane.sh down    stop what `up` started
#   scripts/control-plane.sh env     print `export KUBECONFIG=...` and PATH for a running plane
#   scripts/control-plane.sh bin     print the folder of the binaries (kubectl among them)
#
# OCTOSTAGE_K8S_VERSION picks the Kubernetes minor: 1.37 (default, the newest supported), 1.36
# or 1.35 (the oldest supported). kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl are built with Go from the k8s.io/kubernetes module (a small build module that requires
# it and points each k8s.io staging module at the matching v0.x.y release); etcd from
# go.etcd.io/etcd/server/v3 and kwok from sigs.k8s.io/kwok, all through the Go module proxy.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${OCTOSTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octostage}
MINOR=${OCTOSTAGE_K8S_VERSION:-1.37}
case "$MINOR" in
  1.35 | 1.35.*) K8S=v1.35.4 ;;
  1.36 | 1.36.*) K8S=v1.36.3 ;;
  1.37 | 1.37.*) K8S=v1.37.2 ;;
  *) echo "control-plane: OCTOSTAGE_K8S_VERSION=$MINOR is not supported (1.35, 1.36 or 1.37)" >&2; exit 2 ;;
esac
ETCD=v3.6.16
KWOK=v0.8.0
GATEWAY_API=v1.6.3
BIN=$CACHE/k8s-$K8S/bin
TOOLS=$CACHE/tools
RUN=${OCTOSTAGE_PLANE_DIR:-$CACHE/plane}
ETCD_PORT=${OCTOSTAGE_ETCD_PORT:-23790}
API_PORT=${OCTOSTAGE_API_PORT:-26443}
NODES=${OCTOSTAGE_PLANE_NODES:-2}
# Go builds use only what this machine's Go has; the module proxy is the one configured.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { echo "control-plane: $*" >&2; }

apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# The k8s.io/kubernetes module points every staging module at ./staging/src/k8s.io/<name>
# v0.0.0; a module that requires it must replace each with the release of the same minor.
build_kubernetes() {
  local staging=${K8S/v1./v0.} dir=$CACHE/build/k8s-$K8S
  mkdir -p "$dir" "$BIN"
  cd "$dir"
  local mod; mod=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  {
    printf 'module octostage.local/k8s-build\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n'
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$K8S"
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\t\1 => \1 '"$staging"'#p' "$mod"
    printf ')\n'
  } >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' >tools.go
  go mod tidy >&2
  local major=${K8S#v}; major=${major%%.*}
  local minor=${K8S#v*.}; minor=${minor%%.*}
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  log "building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $K8S (about 10 minutes on 2 cores, once)"
  go build -trimpath -ldflags "$ld" -o "$dir/out/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
  mv "$dir"/out/* "$BIN/"
}

build_tools() {
  mkdir -p "$TOOLS/bin"
  if [ ! -x "$TOOLS/etcd-$ETCD" ]; then
    # etcd's server module points its sibling modules at local folders: require them here.
    log "building etcd $ETCD"
    local dir=$CACHE/build/etcd-$ETCD
    mkdir -p "$dir" && cd "$dir"
    printf 'module octostage.local/etcd-build\n\ngo 1.26.0\n\nrequire (\n' >go.mod
    printf '\tgo.etcd.io/etcd/%s %s\n' server/v3 "$ETCD" api/v3 "$ETCD" client/v3 "$ETCD" client/pkg/v3 "$ETCD" pkg/v3 "$ETCD" >>go.mod
    printf ')\n' >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    go mod tidy >&2
    go build -trimpath -ldflags "-s -w" -o "$TOOLS/etcd-$ETCD" go.etcd.io/etcd/server/v3 >&2
  fi
  if [ ! -x "$TOOLS/kwok-$KWOK" ]; then
    log "building kwok $KWOK"
    GOBIN=$TOOLS/gobin go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK" >&2
    mv "$TOOLS/gobin/kwok" "$TOOLS/kwok-$KWOK"
  fi
  if [ ! -f "$TOOLS/gateway-api-$GATEWAY_API.yaml" ]; then
    local crds f out=$TOOLS/gateway-api-$GATEWAY_API.yaml.tmp
    crds=$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    : >"$out"
    for f in "$crds"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
      case "$f" in *vap_*) continue ;; esac
      { echo "---"; cat "$f"; } >>"$out"
    done
    mv "$out" "$TOOLS/gateway-api-$GATEWAY_API.yaml"
  fi
}

build() {
  apt_install openssl curl
  command -v go >/dev/null || { log "Go is needed to build the control plane (go.dev or Debian's golang-go >= 1.26)"; exit 1; }
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/kube-scheduler" ] && [ -x "$BIN/kubectl" ]; then
    log "binaries present: $BIN ($K8S)"
  else
    build_kubernetes
    log "built into $BIN"
  fi
  build_tools
}

kc() { "$BIN/kubectl" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }

wait_ready() {
  local i
  for i in $(seq 1 240); do
    if kc get --raw /readyz >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null || break
    sleep 0.5
  done
  log "kube-apiserver did not become ready; last log lines:"; tail -n 30 "$RUN/apiserver.log" >&2
  return 1
}

start() { # name command... : runs it in its own session, logs and pid in $RUN
  local name=$1; shift
  setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/$name.pid"
}

certificates() {
  # A CA and a serving certificate for 127.0.0.1, so clients verify the server.
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=octostage-local-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >san.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
    -days 3650 -extfile san.ext 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  local token; token=$(openssl rand -hex 16)
  echo "$token,octostage-admin,octostage-admin,system:masters" >tokens.csv
  cat >admin.kubeconfig <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $RUN/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
  chmod 600 admin.kubeconfig tokens.csv sa.key ca.key apiserver.key
}

# Simulated nodes: kwok keeps them Ready (with leases) and plays their kubelets.
nodes() {
  local i
  for i in $(seq 0 $((NODES - 1))); do
    kc apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: sim-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: sim-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "2000"}
  capacity: {cpu: "64", memory: 256Gi, pods: "2000"}
NODE
  done
}

up() {
  if [ -f "$RUN/apiserver.pid" ] && kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null \
    && [ "$(cat "$RUN/version" 2>/dev/null)" = "$K8S" ]; then
    wait_ready && { echo "$RUN/admin.kubeconfig"; return 0; }
  fi
  down >/dev/null 2>&1 || true
  rm -rf "$RUN" && mkdir -p "$RUN/certs" "$RUN/etcd"
  cd "$RUN"
  echo "$K8S" >version
  certificates
  start etcd "$TOOLS/etcd-$ETCD" --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync
  start apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$RUN/certs" --tls-cert-file=apiserver.crt --tls-private-key-file=apiserver.key \
    --client-ca-file=ca.crt --service-account-key-file=sa.pub --service-account-signing-key-file=sa.key \
    --service-account-issuer=https://kubernetes.default.svc --token-auth-file=tokens.csv \
    --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none
  wait_ready
  start controller-manager "$BIN/kube-controller-manager" --kubeconfig=admin.kubeconfig \
    --authentication-kubeconfig=admin.kubeconfig --authorization-kubeconfig=admin.kubeconfig \
    --leader-elect=false --service-account-private-key-file=sa.key --use-service-account-credentials=false \
    --root-ca-file="$RUN/ca.crt" --bind-address=127.0.0.1 --secure-port=0
  start scheduler "$BIN/kube-scheduler" --kubeconfig=admin.kubeconfig \
    --authentication-kubeconfig=admin.kubeconfig --authorization-kubeconfig=admin.kubeconfig \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=0
  start kwok "$TOOLS/kwok-$KWOK" --kubeconfig=admin.kubeconfig --config="$HERE/plane/kwok.yaml" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake --node-lease-duration-seconds=40 \
    --server-address=""
  start volumes "$HERE/plane/volumes.sh" "$BIN/kubectl" "$RUN/admin.kubeconfig"
  kc apply --server-side -f "$TOOLS/gateway-api-$GATEWAY_API.yaml" -f "$HERE/plane/storage.yaml" >/dev/null
  nodes
  kc wait --for=condition=Ready node --all --timeout=60s >/dev/null
  log "up: Kubernetes $K8S, KUBECONFIG=$RUN/admin.kubeconfig, kubectl in $BIN"
  echo "$RUN/admin.kubeconfig"
}

down() {
  local p
  for p in volumes kwok scheduler controller-manager apiserver etcd; do
    if [ -f "$RUN/$p.pid" ]; then
      kill -- "-$(cat "$RUN/$p.pid")" 2>/dev/null || kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$RUN/$p.pid")" 2>/dev/null || break; sleep 0.1; done
      kill -9 -- "-$(cat "$RUN/$p.pid")" 2>/dev/null || kill -9 "$(cat "$RUN/$p.pid")" 2>/dev/null || true
      rm -f "$RUN/$p.pid"
    fi
  done
  log "down"
}

mkdir -p "$CACHE"
case "${1:-}" in
  build) exec 9>"$CACHE/.build.lock"; flock 9; build ;;
  up) exec 9>"$CACHE/.up.lock"; flock 9; (exec 8>"$CACHE/.build.lock"; flock 8; build); up ;;
  down) down ;;
  env) echo "export KUBECONFIG=$RUN/admin.kubeconfig PATH=$BIN:\$PATH" ;;
  bin) echo "$BIN" ;;
  *) echo "usage: $0 build|up|down|env|bin" >&2; exit 2 ;;
esac
