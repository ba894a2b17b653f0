#!/usr/bin/env bash
# deploy/ (the kustomize base) from charts/octostage with its default values and the
# Namespace: one file per template, as `helm template` renders it. The chart is the one
# source; tests/it/deploy.rs checks that both give the same objects. Run after editing the
# chart: scripts/gen-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
helm template octostage charts/octostage --namespace octostage --set createNamespace=true |
  python3 -c '
import re, sys
docs, order = {}, []
for doc in re.split(r"^---\n", sys.stdin.read(), flags=re.M):
    m = re.match(r"# Source: octostage/templates/(\S+)\n", doc)
    if not m:
        continue
    name = m.group(1)
    if name not in docs:
        docs[name] = []
        order.append(name)
    docs[name].append(doc[m.end():].rstrip("\n") + "\n")
for name in order:
    with open("deploy/" + name, "w") as f:
        f.write("# Generated from charts/octostage/templates/%s by scripts/gen-deploy.sh: edit the chart.\n" % name)
        f.write("---\n".join(docs[name]))
print(" ".join(order))
'
