#!/usr/bin/env bash
# The full test suite, as README.md gives it and .ci/run calls it. Installs what the tests need
# (git, kubectl, python3, chromium, docker-registry, htpasswd, the Rust components, cargo-nextest), checks formatting and lints,
# starts the local Kubernetes control plane (building its binaries once when none are cached)
# unless OCTOSTAGE_TEST_KUBECONFIG names a cluster, runs every test (the fuzz corpus included),
# then the fault table (on a control plane of its own), fuzzes each target briefly when a
# nightly toolchain is installed, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The dashboard is tested in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# `wait_for` is tested against a real registry on loopback (CNCF distribution) with htpasswd.
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

if [ -z "${OCTOSTAGE_TEST_KUBECONFIG:-}" ]; then
  echo "== local control plane"
  trap 'scripts/control-plane.sh down' EXIT
  OCTOSTAGE_TEST_KUBECONFIG=$(scripts/control-plane.sh up)
  export OCTOSTAGE_TEST_KUBECONFIG
fi

echo "== tests"
cargo nextest run --locked --no-fail-fast

echo "== fault table"
scripts/fault-table.py

# A nightly toolchain is never fetched here (`rustc +nightly` would make rustup download one).
if rustup toolchain list 2>/dev/null | grep -q "^nightly"; then
  echo "== fuzz (10 s per target)"
  scripts/fuzz.sh 10
fi
