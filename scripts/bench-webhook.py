#!/usr/bin/env python3
"""Push to staging: how long from a new branch in the application repository to its staging's
namespace and objects in the cluster, with a GitHub push webhook and with polling alone.

Runs the real binary (target/release/octostage as it is; builds nothing) as `octostage run` on
the local control plane (scripts/control-plane.sh), against a fresh application repository (a
local git repository) and a directory config repository with one environment whose templates
make a ConfigMap, a Deployment and a Service. Two modes, each its own octostage instance,
repository and environment, one after the other:

  1. webhook: `run --interval 30s` with OCTOSTAGE_GITHUB_SECRET; each push is answered by a
     signed GitHub push webhook (POST /hooks/github, expected 202).
  2. polling: the same without a secret; each push waits for the interval. A push lands at a
     random moment of the 30 s cycle (a uniform random wait first), as a real one would, so the
     figures spread over 0-30 s plus a pass; pushes made right after a pass would all wait ~30 s.

A push is `git update-ref refs/heads/feature/bN` to a commit made just before (so the clock
measures the ref appearing, as a push makes it appear); t0 is taken right before it. The staging
counts as there when octostage's own API (GET /api/v1/stagings, every 10 ms) shows
`<env>-feature-bN` created by the last pass (action create, changes, no error): the controller
publishes a pass after it has written its objects. That is then confirmed once per push with
kubectl (untimed): the namespace, ConfigMap settings, Deployment web and Service web exist.
Between pushes the script waits for octostage to go quiet (no pass for 2 s): a new Deployment's
readiness changes start passes of their own ("target changed").

Read it as: latency = staging seen - t0, per push and as p50/p95/min/max per mode (p95 by linear
interpolation between ranks: with 5 polling pushes it is close to the max; the 10 ms poll is the
resolution). Each push also names the pass that created its staging: its trigger (webhook,
interval, target changed, ...) and how long it took, or "unattributed" when the next pass (the
new Deployment's readiness, a pass of ~1 ms) replaced it before the poll came; the triggers are
counted at the end. The ratio is polling p50 / webhook p50. Also one unsigned webhook, before the
pushes: it must get 401 and start no pass (octostage_passes_total unchanged 2 s later). The
script exits 1 when it does not, or when a signed push was not answered 202, or a staging never
showed up or was not in the cluster; never because of a time.

Usage: scripts/bench-webhook.py [--pushes 20] [--poll-pushes 5] [--binary PATH]
                                [--kubeconfig PATH] [--seed N]
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBECONFIG = os.path.expanduser("~/.cache/octostage/plane/admin.kubeconfig")
INTERVAL = "30s"
INTERVAL_S = 30.0
POLL_EVERY = 0.010
QUIET = 2.0

TEMPLATES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  branch: {{ branch.name | tojson }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: "registry.example.com/web:{{ commit.short_sha }}"
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
      protocol: TCP
"""


class Failed(Exception):
    """Something that makes the run wrong (not slow)."""


def git(repo, *args):
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
    )
    return subprocess.run(
        ["git", "-C", repo, *args], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def http(method, url, body=None, headers=None, timeout=10):
    """(status, body bytes); HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def pct(xs, p):
    """The p-th percentile, linear between closest ranks."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Octostage:
    """One `octostage run` with its environment, config and application repository."""

    def __init__(self, args, work, instance, secret):
        self.args = args
        self.instance = instance
        self.env_name = instance
        self.secret = secret
        self.dir = os.path.join(work, instance)
        self.app = os.path.join(self.dir, "app")
        self.cfg = os.path.join(self.dir, "cfg")
        self.log_path = os.path.join(self.dir, "octostage.log")
        self.proc = None
        self.base = None
        self.probes = None
        self.lines = []

    def prepare(self):
        os.makedirs(os.path.join(self.cfg, "t"))
        with open(os.path.join(self.cfg, "environments.yaml"), "w") as f:
            f.write(
                "version: 1\nenvironments:\n"
                f"  {self.env_name}:\n    repository: {self.app}\n    templates: t\n    ttl: 7d\n"
            )
        with open(os.path.join(self.cfg, "t", "app.yaml"), "w") as f:
            f.write(TEMPLATES)
        os.makedirs(self.app)
        git(self.app, "init", "-q", "-b", "main")
        git(self.app, "commit", "-q", "--allow-empty", "-m", "main")

    def command(self):
        return [
            self.args.binary, "run",
            "--config", self.cfg,
            "--target", f"kube:{self.args.kubeconfig}",
            "--instance", self.instance,
            "--listen", "127.0.0.1:0",
            "--probe-listen", "127.0.0.1:0",
            "--cache-dir", os.path.join(self.dir, "cache"),
            "--interval", INTERVAL,
        ]

    def shown(self):
        env = "POD_NAMESPACE=default"
        if self.secret:
            env += " OCTOSTAGE_GITHUB_SECRET=<secret>"
        return env + " " + " ".join(self.command())

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOSTAGE_")}
        env["POD_NAMESPACE"] = "default"
        if self.secret:
            env["OCTOSTAGE_GITHUB_SECRET"] = self.secret
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        served = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                p = re.match(r"octostage run: probes on (http://\S+)", line)
                if p:
                    self.probes = p.group(1)
                m = re.match(r"octostage run: serving on (http://\S+)", line)
                if m:
                    self.base = m.group(1)
                    served.set()
            served.set()

        threading.Thread(target=read, daemon=True).start()
        if not served.wait(30) or not self.base:
            raise Failed(f"{self.instance}: no `serving on` line; stdout {self.lines}\n{self.tail()}")

    def tail(self, n=30):
        try:
            with open(self.log_path) as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + l for l in lines[-n:])

    def alive(self):
        if self.proc.poll() is not None:
            raise Failed(f"{self.instance}: octostage exited with {self.proc.returncode}\n{self.tail()}")

    def get_json(self, path):
        status, body = http("GET", self.base + path)
        return status, (json.loads(body) if body.strip().startswith((b"{", b"[")) else body)

    def metric(self, name, **labels):
        status, body = http("GET", self.probes + "/metrics")
        if status != 200:
            raise Failed(f"/metrics answered {status}")
        total = 0.0
        for line in body.decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def passes(self):
        return self.metric("octostage_passes_total")

    def warm_up(self):
        """/readyz, a lead, and a first pass that created the main staging."""
        deadline = time.monotonic() + 90
        while True:
            self.alive()
            status, _ = http("GET", self.base + "/readyz")
            if status == 200:
                _, o = self.get_json("/api/v1/stagings")
                main = next((s for s in o["stagings"] if s["branch"] == "main"), None)
                if o["leadership"].get("leading") and main and main["state"] != "not-created":
                    return o
            if time.monotonic() > deadline:
                raise Failed(f"{self.instance}: not ready and leading after 90 s\n{self.tail()}")
            time.sleep(0.1)

    def settle(self, limit=20):
        """Wait until no pass has finished for QUIET seconds (at most `limit`)."""
        end = time.monotonic() + limit
        last, since = self.passes(), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.2)
            n = self.passes()
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= QUIET:
                return
        print(f"  (octostage still running passes after {limit} s of waiting for quiet)")

    def hook(self, body, signed=True):
        headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
        if signed:
            mac = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = "sha256=" + mac
        return http("POST", self.base + "/hooks/github", body=body, headers=headers)

    def push_body(self, branch):
        return json.dumps(
            {"ref": f"refs/heads/{branch}", "repository": {"clone_url": self.app}}
        ).encode()

    def wait_created(self, name, t0, timeout):
        """Poll the API until the last pass shows `name` created; (latency s, pass summary)."""
        reported = None
        while True:
            status, o = self.get_json("/api/v1/stagings")
            seen = time.monotonic()
            if status == 200:
                s = next((s for s in o["stagings"] if s["name"] == name), None)
                if s and s.get("error") and s["error"] != reported:
                    reported = s["error"]
                    print(f"  ! {name}: {s['state']}, action {s['action']}: {s['error']}")
                if s and s["state"] != "not-created" and not s.get("error"):
                    if s["action"] == "create" and s["changes"]:
                        return seen - t0, o["last_pass"]
                    # Another pass came within a poll: the staging's events tell.
                    _, d = self.get_json(f"/api/v1/stagings/{name}")
                    if any(e["action"] == "create" and e["changes"] and not e["error"]
                           for e in d.get("events", [])):
                        return seen - t0, None
            else:
                raise Failed(f"GET /api/v1/stagings answered {status}: {o}")
            if seen - t0 > timeout:
                raise Failed(f"{name} not created {timeout:.0f} s after its push\n{self.tail()}")
            self.alive()
            time.sleep(POLL_EVERY)

    def confirm(self, name):
        """The namespace and the three objects, by kubectl."""
        kc = ["kubectl", "--kubeconfig", self.args.kubeconfig]
        r = subprocess.run(
            kc + ["get", "namespace", name, "-o", "name"], capture_output=True, text=True
        )
        r2 = subprocess.run(
            kc + ["-n", name, "get", "configmap/settings", "deployment/web", "service/web",
                  "-o", "name"],
            capture_output=True, text=True,
        )
        got = (r.stdout + r2.stdout).split()
        want = [f"namespace/{name}", "configmap/settings", "deployment.apps/web", "service/web"]
        missing = [w for w in want if w not in got]
        if missing:
            raise Failed(f"{name}: the API said created but kubectl finds no {missing}: "
                         f"{(r.stderr + r2.stderr).strip()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"  ! {self.instance}: still running 20 s after SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        if self.proc and hasattr(self, "log"):
            self.log.close()


def new_branch_commit(repo, i):
    """A commit for feature/bN, not yet on any ref (the push is the ref appearing)."""
    tree = git(repo, "rev-parse", "main^{tree}")
    return git(repo, "commit-tree", tree, "-p", "main", "-m", f"b{i}")


def measure(o, n, first, mode, rng):
    results = []
    for i in range(first, first + n):
        branch = f"feature/b{i}"
        name = f"{o.env_name}-feature-b{i}"
        sha = new_branch_commit(o.app, i)
        o.settle()
        if mode == "polling":
            time.sleep(rng.uniform(0, INTERVAL_S))
        t0 = time.monotonic()
        git(o.app, "update-ref", f"refs/heads/{branch}", sha)
        hook_ms = None
        if mode == "webhook":
            status, body = o.hook(o.push_body(branch))
            hook_ms = (time.monotonic() - t0) * 1000
            if status != 202:
                raise Failed(f"signed push webhook for {branch} answered {status}: {body[:300]!r}\n{o.tail()}")
        lat, p = o.wait_created(name, t0, timeout=3 * INTERVAL_S)
        o.confirm(name)
        hook = f", webhook 202 at +{hook_ms:.0f} ms" if hook_ms is not None else ""
        if p:
            trigger = p["trigger"].split(" for ")[0]
            made = f"created by a pass for: {trigger}, took {p['took_ms']} ms"
        else:
            trigger = "unattributed"
            made = "created by a pass hidden by the next one within a poll"
        print(f"  {branch:<12} {lat * 1000:7.0f} ms   ({made}{hook})", flush=True)
        results.append((lat, trigger))
    return results


def summary(label, results):
    xs = [r[0] * 1000 for r in results]
    print(f"  {label:<8} n={len(xs):<3} p50 {pct(xs, 50):7.0f} ms   p95 {pct(xs, 95):7.0f} ms   "
          f"min {min(xs):7.0f} ms   max {max(xs):7.0f} ms")
    return pct(xs, 50)


def triggers(results):
    counts = {}
    for _, t in results:
        counts[t] = counts.get(t, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def unsigned_check(o):
    """An unsigned push: 401, and no pass. True when it holds."""
    o.settle()
    before = o.passes()
    refused = o.metric("octostage_webhook_deliveries_total", provider="github", result="unauthorized")
    status, body = o.hook(o.push_body("feature/unsigned"), signed=False)
    time.sleep(2)
    after = o.passes()
    refused_after = o.metric("octostage_webhook_deliveries_total", provider="github",
                             result="unauthorized")
    ok = status == 401 and after == before
    print(f"  POST /hooks/github without X-Hub-Signature-256: status {status} {body.decode(errors='replace').strip()}")
    print(f"  octostage_passes_total {before:.0f} -> {after:.0f} 2 s later "
          f"({'no pass ran' if after == before else 'A PASS RAN'}); "
          f"webhook_deliveries_total{{result=unauthorized}} {refused:.0f} -> {refused_after:.0f}")
    print(f"  unsigned check: {'ok' if ok else 'FAILED (want 401 and no pass)'}")
    return ok


def cleanup(args, work, stages):
    for o in stages:
        try:
            o.stop()
        except Exception as e:  # keep cleaning
            print(f"  ! stopping {o.instance}: {e}", file=sys.stderr)
    kc = ["kubectl", "--kubeconfig", args.kubeconfig]
    for o in stages:
        subprocess.run(kc + ["delete", "namespace", "-l", f"octostage.dev/instance={o.instance}",
                             "--wait=false"], capture_output=True)
        subprocess.run(kc + ["-n", "default", "delete", "lease", f"octostage-{o.instance}",
                             "--ignore-not-found"], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pushes", type=int, default=20, help="pushes with a webhook (default 20)")
    ap.add_argument("--poll-pushes", type=int, default=5, help="pushes by polling alone (default 5)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "octostage"))
    ap.add_argument("--kubeconfig", default=KUBECONFIG)
    ap.add_argument("--seed", type=int, default=None, help="of the polling pushes' random waits")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"no binary at {args.binary} (cargo build --release, or --binary)")
    if subprocess.run(["kubectl", "--kubeconfig", args.kubeconfig, "get", "ns"],
                      capture_output=True).returncode != 0:
        sys.exit(f"no cluster at {args.kubeconfig}: scripts/control-plane.sh up")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    # A SIGTERM to the script cleans up as Ctrl-C does.
    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)

    tag = secrets.token_hex(3)
    work = tempfile.mkdtemp(prefix="bench-webhook-")
    hooked = Octostage(args, work, f"bench{tag}w", secrets.token_hex(16))
    polled = Octostage(args, work, f"bench{tag}p", None)
    started = []
    ok = True
    print(f"octostage push-to-staging bench: {args.pushes} pushes with a webhook, "
          f"{args.poll_pushes} by polling; binary {args.binary}")
    print(f"  kubeconfig {args.kubeconfig}; interval {INTERVAL}; polling seed {seed}")
    try:
        for o in (hooked, polled):
            o.prepare()
        started.append(hooked)
        print(f"\nwebhook mode, instance {hooked.instance}:\n  $ {hooked.shown()}")
        hooked.start()
        print(f"  {hooked.lines[0] if hooked.lines else ''}; serving on {hooked.base}")
        hooked.warm_up()
        unsigned_ok = unsigned_check(hooked)
        ok = unsigned_ok and ok
        web = measure(hooked, args.pushes, 1, "webhook", rng)
        hooked.stop()

        started.append(polled)
        print(f"\npolling mode, instance {polled.instance}:\n  $ {polled.shown()}")
        polled.start()
        print(f"  {polled.lines[0] if polled.lines else ''}; serving on {polled.base}")
        polled.warm_up()
        poll = measure(polled, args.poll_pushes, 1, "polling", rng)
        polled.stop()

        print("\npush -> staging seen in octostage's API (objects confirmed by kubectl after):")
        w50 = summary("webhook", web)
        p50 = summary("polling", poll)
        print(f"  polling/webhook (p50): {p50 / w50:.1f}x")
        print(f"  passes that created them: webhook mode: {triggers(web)}; polling mode: {triggers(poll)}")
        print(f"  unsigned webhook: {'401, no pass' if unsigned_ok else 'FAILED'}")
    except Failed as e:
        ok = False
        print(f"\nFAILED: {e}")
    except KeyboardInterrupt:
        ok = False
        print("\ninterrupted; cleaning up")
    finally:
        cleanup(args, work, started)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
