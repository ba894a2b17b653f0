# syntax=docker/dockerfile:1
# octostage's container image: built on rust:1-bookworm, run as non-root (65532:65532) on
# debian:bookworm-slim, with a read-only root filesystem in mind (deploy/deployment.yaml mounts
# emptyDirs on /var/cache/octostage and /tmp).
#
#   docker build -t octostage .
#   docker run --rm octostage validate --config https://github.com/acme/staging-config.git
#
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (deploy/deployment.yaml).

# --- build -------------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
# libgit2 (https, ssh) links OpenSSL; the rust image usually has these, this makes sure.
# Unpinned on purpose: bookworm's security updates replace pinned versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What .dockerignore lets in: the manifest and lock file, the sources, the files src/ includes
# at compile time (example-repo/ for `octostage demo`), and the targets Cargo.toml declares.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY example-repo ./example-repo
COPY benches ./benches
COPY examples ./examples
COPY tests ./tests
# Cache mounts keep the registry and target/ between builds; the binary is copied out of
# target/release/ since the cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
 && install -D -m 0755 target/release/octostage /out/octostage

# --- optional tools for render commands ------------------------------------------------------
# Render commands (`kubectl kustomize`, `helm template`, ...) run inside this image, so the
# tools environments.yaml names must be in it. To add kubectl and helm, uncomment this stage
# and the two COPY lines in the runtime stage (remove one `# ` from each line; pin the
# versions you use):
#
# FROM debian:bookworm-slim AS tools
# ARG TARGETARCH=amd64
# ARG KUBECTL_VERSION=v1.32.4
# ARG HELM_VERSION=v3.16.3
# SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# # hadolint ignore=DL3008
# RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
#  && curl -fsSLo /kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl" \
#  && echo "$(curl -fsSL "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl.sha256")  /kubectl" | sha256sum -c - \
#  && curl -fsSL "https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz" \
#     | tar -xz -C / --strip-components=1 "linux-${TARGETARCH}/helm" \
#  && chmod 0755 /kubectl /helm

# --- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates for https (git over libgit2, the Kubernetes API, notifications); libssl3 is
# what the binary links; tini for PID 1. git itself is not needed: libgit2 is linked in.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /usr/sbin/nologin nonroot \
 && install -d -o 65532 -g 65532 -m 0750 /var/cache/octostage
# COPY --from=tools /kubectl /usr/local/bin/kubectl
# COPY --from=tools /helm /usr/local/bin/helm
COPY --from=build /out/octostage /usr/local/bin/octostage
# Defaults for a container: listen on every interface (127.0.0.1 is unreachable from outside
# the container), keep git mirrors in a directory of their own, keep the resident set small.
ENV OCTOSTAGE_LISTEN=0.0.0.0:8080 \
    OCTOSTAGE_CACHE=/var/cache/octostage \
    MIMALLOC_ARENA_EAGER_COMMIT=0
USER 65532:65532
EXPOSE 8080
# tini is PID 1: it reaps what a render command's children leave behind (octostage kills a
# timed-out command's process group, but orphans are re-parented to PID 1) and passes SIGTERM on.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/octostage"]
CMD ["run"]
