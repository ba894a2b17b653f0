#!/usr/bin/env bash
# octostage's container image.
#
#   scripts/image.sh build [--base IMAGE] [NAME:TAG]   (default octostage:dev)
#
# Builds octostage (cargo build --release), takes kubectl and helm at the versions the tests
# use (scripts/control-plane.sh builds kubectl from Go modules; helm comes from scripts/test.sh's
# tools folder, or `go install` here), and builds the Dockerfile with podman. Without --base,
# the base image is made here from Debian's packages (debootstrap --variant=minbase bookworm,
# then `podman import`), kept as localhost/octostage-base:bookworm: nothing is pulled.
#
# Podman runs on these machines with runc and the cgroupfs manager, and with lowered limits
# (raising a hard limit is refused): OCTOSTAGE_PODMAN overrides the podman command.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
[ "$cmd" = build ] || { echo "usage: scripts/image.sh build [--base IMAGE] [NAME:TAG]" >&2; exit 2; }
shift
base=""
if [ "${1:-}" = --base ]; then base=$2; shift 2; fi
tag=${1:-octostage:dev}
read -r -a podman <<<"${OCTOSTAGE_PODMAN:-podman --cgroup-manager cgroupfs --runtime runc}"
cache=${OCTOSTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octostage}
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

if [ -z "$base" ]; then
  base=localhost/octostage-base:bookworm
  if ! "${podman[@]}" image exists "$base"; then
    tarball=$cache/image/debian-bookworm-minbase.tar
    if [ ! -s "$tarball" ]; then
      echo "== a base image from Debian's packages (debootstrap)"
      root=$cache/image/rootfs
      rm -rf "$root" && mkdir -p "$root"
      debootstrap --variant=minbase --include=ca-certificates,libssl3 bookworm "$root" \
        "${OCTOSTAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$cache/image/debootstrap.log"
      rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
      tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
      rm -rf "$root"
    fi
    "${podman[@]}" import "$tarball" "$base" >/dev/null
  fi
fi

echo "== octostage, kubectl and helm"
cargo build --release --locked
scripts/control-plane.sh build >/dev/null
kubectl_bin=$(scripts/control-plane.sh bin)/kubectl
HELM=v4.3.2
helm_bin=$cache/tools/helm-$HELM
if [ ! -x "$helm_bin" ]; then
  GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$cache/tools/gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM" "helm.sh/helm/v4/cmd/helm@$HELM"
  mv "$cache/tools/gobin/helm" "$helm_bin"
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp Dockerfile "$ctx/"
cp target/release/octostage "$ctx/octostage"
cp "$kubectl_bin" "$ctx/kubectl"
cp "$helm_bin" "$ctx/helm"

echo "== $tag from $base"
"${podman[@]}" build "${limits[@]}" --build-arg "BASE=$base" -t "$tag" "$ctx"
