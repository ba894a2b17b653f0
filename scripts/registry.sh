#!/usr/bin/env bash
# Run a throwaway OCI/Docker registry (CNCF distribution 2.8.2, Debian's `docker-registry`)
# on loopback, in the foreground, so a test can spawn it and kill it.
#
#   scripts/registry.sh DIR PORT [HTPASSWD_FILE]
#
#   DIR            scratch dir; gets DIR/config.yml and DIR/data (blob/manifest storage)
#   PORT           listens on 127.0.0.1:PORT, plain HTTP (no TLS)
#   HTPASSWD_FILE  optional; enables basic auth (realm "octostage-test"). The file must use
#                  bcrypt hashes:  htpasswd -Bbn USER PASS > FILE   (apache2-utils)
#
# Ready when `GET http://127.0.0.1:PORT/v2/` answers 200 (401 with auth); that takes ~35-65 ms.
# The registry is exec'd, so the spawned pid *is* the registry: SIGTERM exits it in ~2 ms.
# If PORT is taken it exits 1 at once ("bind: address already in use" on stderr).
# Logs (level warn) go to stderr: one line per 4xx response, so tests may want to discard them.
# Binary: $OCTOSTAGE_REGISTRY_BIN, else `docker-registry` on PATH (apt-get install docker-registry,
# version 2.8.2 on Debian 12; without an init system the package does not start its own service).
# Basic auth over plain HTTP is accepted by 2.8.2: no TLS needed, no warning.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 DIR PORT [htpasswd-file]" >&2
  exit 2
fi

dir=$1
port=$2
htpasswd=${3:-}

case $port in
  '' | *[!0-9]*) echo "registry.sh: PORT must be a number, got '$port'" >&2; exit 2 ;;
esac

bin=${OCTOSTAGE_REGISTRY_BIN:-$(command -v docker-registry || command -v registry || true)}
if [ -z "$bin" ]; then
  echo "registry.sh: docker-registry not found; apt-get install -y docker-registry" >&2
  exit 127
fi

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)

if [ -n "$htpasswd" ]; then
  [ -r "$htpasswd" ] || { echo "registry.sh: cannot read htpasswd file '$htpasswd'" >&2; exit 2; }
  htpasswd=$(cd "$(dirname "$htpasswd")" && pwd)/$(basename "$htpasswd")
fi

{
  cat <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  # fixed secret: silences the "No HTTP secret provided" warning; only signs upload state
  secret: octostage-test-secret
EOF
  if [ -n "$htpasswd" ]; then
    cat <<EOF
auth:
  htpasswd:
    realm: octostage-test
    path: $htpasswd
EOF
  fi
} >"$dir/config.yml"

exec "$bin" serve "$dir/config.yml"
