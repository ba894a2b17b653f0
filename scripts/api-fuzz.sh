#!/usr/bin/env bash
# Schemathesis (PyPI) against a running `octostage run`, for a bounded time: every answer of
# the JSON API must be one its OpenAPI document (GET /api/v1/openapi.json) describes, with that
# status, content type and schema; no 5xx; and every action refused without the token
# (`ignored_auth` sends each secured request again without it). Exit status 1 on any failure.
#
# Usage: scripts/api-fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
version=4.32.5
cache=${OCTOSTAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octostage}
venv=$cache/tools/schemathesis-$version
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi
bin=target/debug/octostage
[ -x "$bin" ] || cargo build --locked -q

work=$(mktemp -d)
daemon=
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
git init -q -b main "$work/app"
git -C "$work/app" -c user.name=ci -c user.email=ci@example.com commit -q --allow-empty -m main
git -C "$work/app" branch feature/a
mkdir -p "$work/cfg/t"
printf 'version: 1\nenvironments:\n  app:\n    repository: %s\n    templates: t\n    ttl: 7d\n    always: [main]\n' "$work/app" >"$work/cfg/environments.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  branch: {{ branch.name | tojson }}\n' >"$work/cfg/t/cm.yaml"
token=api-fuzz-$RANDOM$RANDOM
OCTOSTAGE_API_TOKEN=$token "$bin" run --config "$work/cfg" --target "dir:$work/out" \
  --cache-dir "$work/cache" --listen 127.0.0.1:0 --probe-listen 127.0.0.1:0 --interval 1h \
  >"$work/out.log" 2>"$work/err.log" &
daemon=$!
for _ in $(seq 100); do
  addr=$(sed -n 's|^octostage run: serving on http://||p' "$work/out.log")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/err.log"; exit 1; }
# Run from the scratch directory: schemathesis writes its cache (.schemathesis/) where it runs.
(cd "$work" && "$venv/bin/schemathesis" run "http://$addr/api/v1/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth \
  -H "Authorization: Bearer $token" --max-time "$secs" --workers 1 --no-color)
kill -0 "$daemon" || { echo "octostage exited during the run:"; tail -20 "$work/err.log"; exit 1; }
