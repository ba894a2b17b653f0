# syntax=docker/dockerfile:1
# octostage's container image, built by scripts/image.sh from binaries built outside it:
# octostage (cargo build --release), and kubectl and helm at the versions the tests use (render
# commands such as `kubectl kustomize` and `helm template` run inside this image).
#
#   scripts/image.sh build [NAME:TAG]
#
# BASE: where nothing can be pulled, scripts/image.sh makes one from Debian's packages
# (debootstrap, then `podman import`); elsewhere any Debian 12 image works, e.g.
#   scripts/image.sh build --base docker.io/library/debian:bookworm-slim
# The binaries need glibc 2.36 and OpenSSL 3 (libssl3), and git over https needs CA
# certificates: both are installed below when the base lacks them.
#
# It runs as 65532:65532 and writes nothing to its root filesystem: mount /tmp and
# /var/cache/octostage (deploy/deployment.yaml mounts emptyDirs there).
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz on port 8081.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}
# hadolint ignore=DL3008
RUN if [ ! -e /etc/ssl/certs/ca-certificates.crt ] || [ ! -e /usr/lib/x86_64-linux-gnu/libssl.so.3 ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && mkdir -p /var/cache/octostage && chown 65532:65532 /var/cache/octostage
COPY --chmod=0755 octostage kubectl helm /usr/local/bin/
USER 65532:65532
ENV HOME=/tmp \
    OCTOSTAGE_CACHE=/var/cache/octostage \
    MIMALLOC_ARENA_EAGER_COMMIT=0
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/octostage"]
CMD ["run"]
