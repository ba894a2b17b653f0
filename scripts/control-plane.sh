#!/usr/bin/env bash
# Local Kubernetes control plane for tests, CI and the README's cluster quickstart:
# etcd + kube-apiserver + kube-controller-manager on loopback, no container runtime needed.
#
#   scripts/control-plane.sh build   build/locate the binaries (cached outside the checkout)
#   scripts/control-plane.sh up      start everything; prints the kubeconfig path
#   scripts/control-plane.sh down    stop what `up` started
#   scripts/control-plane.sh env     print `export KUBECONFIG=...` for a running plane
#
# Binaries: found on PATH, else in $OCTOSTAGE_CACHE/k8s-bin, else built once from Debian's
# `kubernetes` source package (v1.20.2) with Debian's Go. etcd comes from Debian's `etcd-server`.
set -euo pipefail

CACHE=${OCTOSTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octostage}
BIN=$CACHE/k8s-bin
RUN=${OCTOSTAGE_PLANE_DIR:-$CACHE/plane}
ETCD_PORT=${OCTOSTAGE_ETCD_PORT:-23790}
API_PORT=${OCTOSTAGE_API_PORT:-26443}

log() { echo "control-plane: $*" >&2; }

apt_updated=
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

find_bin() { # name -> path or empty
  if [ -x "$BIN/$1" ]; then echo "$BIN/$1"; elif command -v "$1" >/dev/null 2>&1; then command -v "$1"; fi
}

build() {
  apt_install etcd-server openssl curl
  if [ -n "$(find_bin kube-apiserver)" ] && [ -n "$(find_bin kube-controller-manager)" ]; then
    log "binaries present: $(find_bin kube-apiserver)"
    return 0
  fi
  apt_install golang-go jq rsync make dpkg-dev
  if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm main"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/octostage-src.sources
    apt-get update -qq >&2
  fi
  local work=$CACHE/k8s-src
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  log "downloading Debian's kubernetes source package"
  apt-get source --download-only kubernetes >&2
  local orig; orig=$(ls kubernetes_*.orig.tar.* | head -n1)
  mkdir src && tar -xf "$orig" -C src --strip-components=1
  cd src
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  log "building kube-apiserver and kube-controller-manager (about 4-8 minutes on 2 cores)"
  local gohome; gohome=$(mktemp -d)
  env HOME="$gohome" GOPATH="$PWD/.go" CGO_ENABLED=0 GOFLAGS=-mod=vendor \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
  mkdir -p "$BIN"
  cp _output/local/bin/linux/amd64/kube-apiserver _output/local/bin/linux/amd64/kube-controller-manager "$BIN/"
  cd / && rm -rf "$work" "$gohome"
  log "built into $BIN"
}

wait_ready() {
  local kc=$RUN/admin.kubeconfig i
  for i in $(seq 1 120); do
    if kubectl --kubeconfig "$kc" get --raw /readyz >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "kube-apiserver did not become ready; last log lines:"; tail -n 30 "$RUN/apiserver.log" >&2
  return 1
}

up() {
  build
  if [ -f "$RUN/apiserver.pid" ] && kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null; then
    wait_ready && { echo "$RUN/admin.kubeconfig"; return 0; }
  fi
  down >/dev/null 2>&1 || true
  rm -rf "$RUN" && mkdir -p "$RUN/certs" "$RUN/etcd"
  cd "$RUN"
  # A CA and a serving certificate for 127.0.0.1, so clients verify the server.
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=octostage-local-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > san.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
    -days 3650 -extfile san.ext 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  local token; token=$(openssl rand -hex 16)
  echo "$token,octostage-admin,octostage-admin,system:masters" > tokens.csv
  cat > admin.kubeconfig <<KC
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
  setsid "$(find_bin etcd)" --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync >etcd.log 2>&1 </dev/null 9>&- &
  echo $! > etcd.pid
  setsid "$(find_bin kube-apiserver)" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$RUN/certs" --tls-cert-file=apiserver.crt --tls-private-key-file=apiserver.key \
    --client-ca-file=ca.crt --service-account-key-file=sa.pub --service-account-signing-key-file=sa.key \
    --service-account-issuer=https://kubernetes.default.svc --token-auth-file=tokens.csv \
    --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 >apiserver.log 2>&1 </dev/null 9>&- &
  echo $! > apiserver.pid
  wait_ready
  setsid "$(find_bin kube-controller-manager)" --kubeconfig=admin.kubeconfig \
    --authentication-kubeconfig=admin.kubeconfig --authorization-kubeconfig=admin.kubeconfig \
    --leader-elect=false --service-account-private-key-file=sa.key \
    --root-ca-file="$RUN/ca.crt" --bind-address=127.0.0.1 --secure-port=0 --port=0 \
    --controllers='*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-cloud-node-lifecycle,-ttl,-bootstrapsigner,-tokencleaner' \
    >controller-manager.log 2>&1 </dev/null 9>&- &
  echo $! > controller-manager.pid
  log "up: KUBECONFIG=$RUN/admin.kubeconfig"
  echo "$RUN/admin.kubeconfig"
}

down() {
  local p
  for p in controller-manager apiserver etcd; do
    if [ -f "$RUN/$p.pid" ]; then
      kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$RUN/$p.pid")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$RUN/$p.pid")" 2>/dev/null || true
      rm -f "$RUN/$p.pid"
    fi
  done
  log "down"
}

mkdir -p "$CACHE"
case "${1:-}" in
  build) exec 9>"$CACHE/.build.lock"; flock 9; build ;;
  up) exec 9>"$CACHE/.up.lock"; flock 9; up ;;
  down) down ;;
  env) echo "export KUBECONFIG=$RUN/admin.kubeconfig" ;;
  *) echo "usage: $0 build|up|down|env" >&2; exit 2 ;;
esac
