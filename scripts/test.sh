#!/usr/bin/env bash
# The full test suite, as README.md gives it and .ci/run calls it. Installs what the tests need
# (git, python3, chromium, docker-registry, htpasswd, apache2, openssh-server, podman, runc,
# debootstrap, the Rust components, cargo-nextest; kubectl and the control plane built from Go
# modules by scripts/control-plane.sh; helm v4 with `go install`), builds the container image
# (scripts/image.sh), checks formatting and lints, starts the local Kubernetes control plane
# (OCTOSTAGE_K8S_VERSION, default 1.37) unless OCTOSTAGE_TEST_KUBECONFIG names a cluster, runs
# every test (the fuzz corpus included), then the cluster tests again on the oldest supported
# Kubernetes (1.35), then the fault table (on a control plane of its own), fuzzes each target
# briefly when a nightly toolchain is installed, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The dashboard is tested in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# `wait_for` is tested against a real registry on loopback (CNCF distribution) with htpasswd.
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# A private config repository is tested over HTTPS (git-http-backend behind Apache with basic
# authentication) and over SSH (OpenSSH's server with a throwaway host key), on loopback.
command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || need_apt+=(apache2)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The image is built with podman (runc, cgroupfs) on a base made by debootstrap.
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
command -v mdbook >/dev/null 2>&1 || cargo install --locked mdbook

# kubectl of the control plane's version comes first on PATH (kustomize included); helm v4 is
# built from its module once.
echo "== kubectl, the control plane and helm"
scripts/control-plane.sh build
PATH=$(scripts/control-plane.sh bin):$PATH
HELM=v4.3.2
tools=${OCTOSTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octostage}/tools
if [ ! -x "$tools/helm-$HELM" ]; then
  GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tools/gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM" "helm.sh/helm/v4/cmd/helm@$HELM"
  mv "$tools/gobin/helm" "$tools/helm-$HELM"
fi
mkdir -p "$tools/bin" && ln -sfn "../helm-$HELM" "$tools/bin/helm"
PATH=$tools/bin:$PATH
export PATH
kubectl version --client | sed -n 1p
helm version --short

echo "== the container image (scripts/image.sh: octostage, kubectl, helm on a Debian base)"
scripts/image.sh build octostage:dev

echo "== the book (docs/, mdbook)"
mdbook build docs

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

own_cluster=${OCTOSTAGE_TEST_KUBECONFIG:-}
if [ -z "$own_cluster" ]; then
  echo "== local control plane"
  trap 'scripts/control-plane.sh down' EXIT
  OCTOSTAGE_TEST_KUBECONFIG=$(scripts/control-plane.sh up)
  export OCTOSTAGE_TEST_KUBECONFIG
fi

echo "== tests"
cargo nextest run --locked --no-fail-fast

echo "== JSON API against its OpenAPI document (schemathesis, 60 s)"
scripts/api-fuzz.sh 60

# The oldest supported Kubernetes: every test that talks to a cluster, on a plane of its own
# (other ports, other folder), with the kubectl of that version. Not when the tests were given
# a cluster of their own, or with OCTOSTAGE_SKIP_OLDEST=1.
if [ -z "$own_cluster" ] && [ "${OCTOSTAGE_SKIP_OLDEST:-}" != 1 ]; then
  echo "== cluster tests on the oldest supported Kubernetes (1.35)"
  oldest=(env OCTOSTAGE_K8S_VERSION=1.35 OCTOSTAGE_ETCD_PORT=25790 OCTOSTAGE_API_PORT=28443
    OCTOSTAGE_PLANE_DIR="${OCTOSTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octostage}/plane-1.35")
  trap '"${oldest[@]}" scripts/control-plane.sh down; scripts/control-plane.sh down' EXIT
  kc_oldest=$("${oldest[@]}" scripts/control-plane.sh up)
  PATH=$("${oldest[@]}" scripts/control-plane.sh bin):$PATH OCTOSTAGE_TEST_KUBECONFIG=$kc_oldest \
    cargo nextest run --locked --no-fail-fast -E "$(cat tests/cluster-tests.filter)"
  "${oldest[@]}" scripts/control-plane.sh down
fi

echo "== fault table"
scripts/fault-table.py

# A nightly toolchain is never fetched here (`rustc +nightly` would make rustup download one).
if rustup toolchain list 2>/dev/null | grep -q "^nightly"; then
  echo "== fuzz (10 s per target)"
  scripts/fuzz.sh 10
fi
