#!/usr/bin/env python3
"""The fault table: octostage against faults of its sources, its cluster and itself.

Runs the real binary (target/debug/octostage, built when missing) against a control plane of
its own (scripts/control-plane.sh on other ports, so killing its API server or etcd disturbs
nothing else), real git repositories and a dir target, and injects one fault per row:

  kube-apiserver killed and restarted mid-pass; etcd restarted mid-pass; the application
  repository unreachable for 3 passes; the config broken between passes; a hanging and a
  flooding render command; a second instance with the same and with another configuration;
  SIGKILL of octostage mid-pass on the kube and on the dir target; a namespace stuck
  terminating; 256 anonymous clients each holding an unfinished 1 MiB webhook body; one
  client address holding every public connection; a leader paused (SIGSTOP) past its lease
  mid-pass while a second replica takes over, then resumed.

For every row it prints what octostage did, how long it took to converge after the fault was
healed, how many stagings and objects that should have survived were lost (by UID: a staging
deleted and recreated counts as lost), and whether anything outside octostage's ownership was
touched (a foreign namespace, its ConfigMap, and a hand-made ConfigMap inside a staging).
Exit status 1 when any row lost something, touched something, or did not converge.

Usage: scripts/fault-table.py [--branches N] [--markdown]   (default 20 branches)
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "debug", "octostage")
INSTANCE = "fault"
ENV = "app"


class Plane:
    """A control plane of the fault table's own."""

    def __init__(self, work):
        self.env = dict(os.environ)
        self.env.update(
            OCTOSTAGE_PLANE_DIR=os.path.join(work, "plane"),
            OCTOSTAGE_ETCD_PORT="24790",
            OCTOSTAGE_API_PORT="27443",
        )
        self.dir = self.env["OCTOSTAGE_PLANE_DIR"]
        out = subprocess.run(
            [os.path.join(ROOT, "scripts/control-plane.sh"), "up"],
            env=self.env, capture_output=True, text=True, check=True,
        )
        self.kubeconfig = out.stdout.strip()
        self.wait_controllers()

    def wait_controllers(self):
        """Until the controller manager deletes namespaces: deletions must be able to finish."""
        k = ["kubectl", "--kubeconfig", self.kubeconfig]
        subprocess.run(k + ["create", "namespace", "fault-probe"], capture_output=True)
        subprocess.run(k + ["delete", "namespace", "fault-probe", "--wait=false"], capture_output=True)
        for _ in range(600):
            if subprocess.run(k + ["get", "namespace", "fault-probe"], capture_output=True).returncode != 0:
                return
            time.sleep(0.1)
        raise RuntimeError("the controller manager does not delete namespaces")

    def down(self):
        subprocess.run([os.path.join(ROOT, "scripts/control-plane.sh"), "down"],
                       env=self.env, capture_output=True)

    def pid(self, name):
        with open(os.path.join(self.dir, f"{name}.pid")) as f:
            return int(f.read().strip())

    def kill(self, name):
        """SIGKILL a component; returns how to start it again."""
        pid = self.pid(name)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not alive(pid):
                break
            time.sleep(0.05)
        return argv

    def start(self, name, argv):
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(self.dir, f"{name}.pid"), "w") as f:
            f.write(str(p.pid))
        self.wait_ready()

    def wait_ready(self):
        for _ in range(240):
            r = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "get", "--raw", "/readyz"],
                               capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.25)
        raise RuntimeError("the API server did not become ready again")


class Daemon:
    """`octostage run` in the background: its addresses, and its log lines as they come."""

    def __init__(self, table, identity, interval="1h", extra=(), env=None):
        argv = [BIN, "run", "--log", "info", "--interval", interval, "--identity", identity,
                "--listen", "127.0.0.1:0", "--probe-listen", "127.0.0.1:0", *extra,
                "--config", table.cfg, "--cache-dir", table.cache,
                "--target", f"kube:{table.kc}", "--instance", INSTANCE]
        e = {k: v for k, v in os.environ.items() if not k.startswith("OCTOSTAGE_")}
        e.update(POD_NAMESPACE="default", OCTOSTAGE_GITHUB_SECRET=HOOK_SECRET, **(env or {}))
        self.p = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.addr = self.probes = None
        for line in self.p.stdout:
            if line.startswith("octostage run: probes on http://"):
                self.probes = line.split("http://")[1].strip()
            if line.startswith("octostage run: serving on http://"):
                self.addr = line.split("http://")[1].strip()
                break
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(60, lambda: http_get(self.probes, "/readyz")[0] == 200, "never ready")

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line)

    def wait(self, secs, done, what):
        end = time.time() + secs
        while not done():
            if time.time() > end:
                raise RuntimeError(f"octostage {what}:\n" + "".join(self.lines[-20:]))
            time.sleep(0.05)

    def metric(self, name):
        status, body = http_get(self.probes, "/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def rss_mib(self):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def http_get(addr, path, timeout=5):
    """(status, body) of GET, or (0, b"") when the connection fails."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ")[1]), body
    except (IndexError, ValueError):
        return 0, b""


HOOK_SECRET = "fault-table-hook-secret"


class Table:
    def __init__(self, work, plane, branches):
        self.work, self.plane = work, plane
        self.kc = plane.kubeconfig
        self.repo = os.path.join(work, "app")
        self.cfg = os.path.join(work, "cfg")
        self.cache = os.path.join(work, "cache")
        self.rows = []
        self.only, self.repeat = None, 1
        git("init", "-q", "-b", "main", self.repo)
        commit(self.repo, "main")
        for i in range(1, branches):
            commit(self.repo, f"feature/f{i}")
        self.branches = branches
        os.makedirs(os.path.join(self.cfg, "t"))
        self.write_templates("one")
        self.write_config()

    # --- setup -----------------------------------------------------------------------------
    def write_templates(self, note):
        with open(os.path.join(self.cfg, "t", "app.yaml"), "w") as f:
            f.write(TEMPLATES.replace("NOTE", note))

    def write_config(self, extra=""):
        with open(os.path.join(self.cfg, "environments.yaml"), "w") as f:
            f.write(f"version: 1\nenvironments:\n  {ENV}:\n    repository: {self.repo}\n"
                    f"    templates: t\n    always: [main]\n{extra}")

    def kubectl(self, *args, check=True):
        r = subprocess.run(["kubectl", "--kubeconfig", self.kc, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {args}: {r.stderr}")
        return r.stdout

    def octostage(self, *args, target=None, instance=INSTANCE, cfg=None, timeout=180):
        target = target or f"kube:{self.kc}"
        argv = [BIN, *args, "--config", cfg or self.cfg, "--cache-dir", self.cache,
                "--target", target, "--instance", instance]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def spawn(self, *args, target=None):
        """A pass in the background, logging each write, returned once it has written `writes`
        times (or ended): a fault injected then lands mid-pass."""
        target = target or f"kube:{self.kc}"
        p = subprocess.Popen([BIN, "--log", "info", *args, "--config", self.cfg, "--cache-dir", self.cache,
                              "--target", target, "--instance", INSTANCE],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p

    @staticmethod
    def until_writes(p, n):
        """Read the pass's log until its n-th write (target dir: its n-th converged staging)."""
        seen = []
        for line in p.stderr:
            seen.append(line)
            if sum(1 for l in seen if "write: " in l or "converged" in l) >= n:
                return "".join(seen)
        return "".join(seen)

    # --- what the cluster holds ------------------------------------------------------------
    def stagings(self):
        items = json.loads(self.kubectl("get", "ns", "-l", f"octostage.dev/instance={INSTANCE}", "-o", "json"))["items"]
        return {i["metadata"]["name"]: i["metadata"]["uid"] for i in items
                if not i["metadata"].get("deletionTimestamp")}

    def objects(self):
        items = json.loads(self.kubectl("get", "configmaps,deployments,services", "-A", "-l",
                                        f"octostage.dev/instance={INSTANCE}", "-o", "json"))["items"]
        return {(i["metadata"]["namespace"], i["kind"], i["metadata"]["name"]): i["metadata"]["uid"] for i in items}

    def foreign(self):
        """resourceVersions of what is not octostage's."""
        out = {}
        for args in (["get", "ns", "fault-foreign"], ["-n", "fault-foreign", "get", "cm", "precious"],
                     ["-n", f"{ENV}-main", "get", "cm", "hand-made"]):
            o = json.loads(self.kubectl(*args, "-o", "json"))
            out[" ".join(args)] = o["metadata"]["resourceVersion"]
        return out

    def expected(self):
        return {f"{ENV}-main"} | {f"{ENV}-feature-f{i}" for i in range(1, self.branches)}

    # --- one row ---------------------------------------------------------------------------
    def converge(self, healed_at, target=None, limit=120):
        """Passes until one writes nothing and every staging is there; seconds since healing."""
        r = None
        while time.time() - healed_at < limit:
            r = self.octostage("run", "--once", target=target)
            if r.returncode == 0 and "\n0 writes" in "\n" + r.stderr:
                if target or self.expected() <= set(self.stagings()):
                    return time.time() - healed_at
            time.sleep(0.2)
        if r is not None:
            print(f"  not converged; the last pass said:\n{r.stdout}{r.stderr}", file=sys.stderr)
        return None

    def row(self, fault, inject, target=None, expect_lost=()):
        if self.only and self.only not in fault:
            return
        for _ in range(self.repeat):
            self.row_once(fault, inject, target, expect_lost)

    def row_once(self, fault, inject, target, expect_lost):
        before_ns, before_obj, before_foreign = self.stagings(), self.objects(), self.foreign()
        result = inject()
        behaviour, healed_at = result[0], result[1]
        # A third element: objects that held wrong (stale) content, counted as lost; a fourth:
        # a bound that did not hold, which fails the row as never converged.
        stale = result[2] if len(result) > 2 else 0
        held = result[3] if len(result) > 3 else True
        took = self.converge(healed_at, target=target) if held else None
        after_ns, after_obj = self.stagings(), self.objects()
        lost_ns = [n for n, uid in before_ns.items() if after_ns.get(n) != uid and n not in expect_lost]
        lost_obj = [k for k, uid in before_obj.items()
                    if after_obj.get(k) != uid and k[0] not in expect_lost and k in expected_objects(after_ns)]
        touched = [k for k, v in before_foreign.items() if self.foreign().get(k) != v]
        self.rows.append((fault, behaviour, took, len(lost_ns), len(lost_obj) + stale, len(touched)))
        if lost_ns or lost_obj or touched:
            print(f"  {fault}: lost {lost_ns} {lost_obj} touched {touched}", file=sys.stderr)

    def print(self, markdown=False):
        head = ("fault", "behaviour", "converged after healing", "stagings lost", "objects lost", "foreign touched")
        rows = [head] + [(f, b, "never" if t is None else f"{t:.1f} s", str(s), str(o), str(x))
                         for f, b, t, s, o, x in self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for i, r in enumerate(rows):
            if markdown:
                print("| " + " | ".join(r) + " |")
                if i == 0:
                    print("|" + "---|" * len(head))
            else:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return all(t is not None and s == 0 and o == 0 and x == 0 for _, _, t, s, o, x in self.rows)


def expected_objects(namespaces):
    """Objects that should survive: every rendered object of a staging that still exists."""
    return {(ns, kind, name) for ns in namespaces for kind, name in
            (("ConfigMap", "settings"), ("Deployment", "web"), ("Service", "web"))}


TEMPLATES = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  branch: {{ branch.name | tojson }}
  note: NOTE
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


def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def commit(repo, branch):
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.com")
    tree = subprocess.run(["git", "mktree"], cwd=repo, input="", capture_output=True, text=True, env=env).stdout.strip()
    parent = subprocess.run(["git", "rev-parse", "-q", "--verify", "refs/heads/main"], cwd=repo,
                            capture_output=True, text=True).stdout.strip()
    args = ["git", "commit-tree", tree, "-m", f"work on {branch} {time.time()}"] + (["-p", parent] if parent else [])
    sha = subprocess.run(args, cwd=repo, capture_output=True, text=True, env=env, check=True).stdout.strip()
    git("update-ref", f"refs/heads/{branch}", sha, cwd=repo)


def summary(r):
    lines = [l for l in r.stdout.splitlines() if "stagings:" in l]
    s = lines[-1] if lines else (r.stderr.strip().splitlines() or ["?"])[-1]
    return f"exit {r.returncode}, {s}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--branches", type=int, default=20)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--only", metavar="TEXT", help="run only the rows whose fault contains TEXT")
    ap.add_argument("--repeat", type=int, default=1, help="run the selected rows this many times")
    opts = ap.parse_args()
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--locked", "-q"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="octostage-faults-")
    plane = Plane(work)
    try:
        t = Table(work, plane, opts.branches)
        t.only, t.repeat = opts.only, opts.repeat
        ok = run_rows(t, opts.markdown)
    finally:
        plane.down()
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


def run_rows(t, markdown):
    # The starting point: every staging there, and things that are not octostage's around.
    t.kubectl("create", "namespace", "fault-foreign")
    t.kubectl("-n", "fault-foreign", "create", "configmap", "precious", "--from-literal=a=b")
    r = t.octostage("run", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    t.kubectl("-n", f"{ENV}-main", "create", "configmap", "hand-made", "--from-literal=a=b")
    note = iter(range(100))

    def change():
        t.write_templates(f"n{next(note)}")

    def kill_mid_pass(component, wait=2.0):
        def inject():
            change()
            p = t.spawn("run", "--once")
            early = t.until_writes(p, 1)
            argv = t.plane.kill(component)
            time.sleep(wait)
            t.plane.start(component, argv)
            if not alive(t.plane.pid("controller-manager")):
                raise RuntimeError("the controller manager died with the API server")
            out, err = p.communicate(timeout=180)
            r = subprocess.CompletedProcess(p.args, p.returncode, out, early + err)
            return summary(r), time.time()
        return inject
    t.row("kube-apiserver killed and restarted mid-pass", kill_mid_pass("apiserver"))
    t.row("etcd killed and restarted mid-pass", kill_mid_pass("etcd"))

    def unreachable():
        hidden = t.repo + ".away"
        os.rename(t.repo, hidden)
        codes = [t.octostage("run", "--once").returncode for _ in range(3)]
        os.rename(hidden, t.repo)
        return f"3 passes exit {codes}, stagings kept", time.time()
    t.row("application repository unreachable for 3 passes", unreachable)

    def broken_config():
        path = os.path.join(t.cfg, "environments.yaml")
        good = open(path).read()
        open(path, "w").write("version: 1\nenvironments: [\n")
        r = t.octostage("run", "--once")
        open(path, "w").write(good)
        return f"exit {r.returncode}, nothing written", time.time()
    t.row("config broken between passes", broken_config)

    def bad_command(script, timeout):
        def inject():
            with open(os.path.join(t.cfg, "render.sh"), "w") as f:
                f.write(script)
            t.write_config(f"    overrides:\n      feature/f1:\n        command: [sh, render.sh]\n"
                           f"        render_timeout: {timeout}\n")
            start = time.time()
            r = t.octostage("run", "--once")
            took = time.time() - start
            t.write_config()
            return f"{summary(r)} in {took:.1f} s", time.time()
        return inject
    t.row("a hanging render command (render_timeout 3s)", bad_command("sleep 300 &\nsleep 300\n", "3s"))
    t.row("a flooding render command", bad_command("yes 'a: b'\n", "60s"))

    def second_instance(same):
        def inject():
            cfg = t.cfg
            if not same:
                cfg = os.path.join(t.work, "cfg-other")
                shutil.copytree(t.cfg, cfg, dirs_exist_ok=True)
                text = open(os.path.join(cfg, "environments.yaml")).read().replace(f"  {ENV}:", "  other:")
                open(os.path.join(cfg, "environments.yaml"), "w").write(text)
            r = t.octostage("run", "--once", instance="second", cfg=cfg)
            t.kubectl("delete", "ns", "-l", "octostage.dev/instance=second", "--wait=false", check=False)
            return summary(r), time.time()
        return inject
    t.row("a second instance with the same configuration", second_instance(True))
    t.row("a second instance with another configuration", second_instance(False))

    def sigkill(target):
        def inject():
            change()
            p = t.spawn("run", "--once", target=target)
            log = t.until_writes(p, 3)
            p.kill()
            p.wait()
            what = "writes" if target is None else "stagings written"
            done = log.count("write: ") if target is None else log.count("converged")
            return f"SIGKILL after {done} {what} of a 20-staging update", time.time()
        return inject
    t.row("SIGKILL of octostage mid-pass (kube target)", sigkill(None))
    dir_target = f"dir:{os.path.join(t.work, 'out')}"
    t.octostage("run", "--once", target=dir_target)
    t.row("SIGKILL of octostage mid-pass (dir target)", sigkill(dir_target), target=dir_target)

    stuck = f"{ENV}-feature-f2"

    def terminating():
        t.kubectl("-n", stuck, "create", "configmap", "held", "--from-literal=a=b")
        t.kubectl("-n", stuck, "patch", "configmap", "held", "--type=merge", "-p",
                  '{"metadata":{"finalizers":["example.com/hold"]}}')
        git("update-ref", "-d", "refs/heads/feature/f2", cwd=t.repo)
        t.octostage("run", "--once")
        commit(t.repo, "feature/f2")
        r = t.octostage("run", "--once")
        others = t.octostage("run", "--once")
        t.kubectl("-n", stuck, "patch", "configmap", "held", "--type=merge", "-p",
                  '{"metadata":{"finalizers":null}}')
        for _ in range(200):
            if stuck not in t.kubectl("get", "ns", "-o", "name"):
                break
            time.sleep(0.1)
        said = "still being deleted" in r.stdout
        return f"{summary(r)}; said it waits: {said}; next pass {summary(others)}", time.time()
    t.row("a namespace stuck terminating", terminating, expect_lost=(stuck,))

    def unfinished_bodies():
        d = Daemon(t, "flood", extra=("--max-connections-per-client", "256"))
        try:
            base = d.rss_mib()
            host, port = d.addr.rsplit(":", 1)
            length = (1 << 20) - 1
            held = []

            def one():
                try:
                    c = socket.create_connection((host, int(port)), timeout=5)
                    c.sendall((f"POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\n"
                               f"x-hub-signature-256: sha256={'0' * 64}\r\ncontent-length: {length}\r\n\r\n").encode())
                    try:
                        c.sendall(b"{" * (length - 1))
                    except OSError:
                        pass
                    held.append(c)
                except OSError:
                    pass
            threads = [threading.Thread(target=one) for _ in range(256)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            time.sleep(0.5)
            during = d.rss_mib()
            start = time.time()
            ok = http_get(d.probes, "/healthz")[0] == 200
            probe_ms = (time.time() - start) * 1000
            for c in held:
                c.close()
            time.sleep(3)
            after = d.rss_mib()
        finally:
            d.stop()
        bound = during - base < 32 and ok
        return (f"{len(held)} held: resident +{during - base:.0f} MiB, +{after - base:.0f} MiB after they "
                f"closed; /healthz {probe_ms:.0f} ms"), time.time(), 0, bound
    t.row("256 anonymous clients each hold an unfinished 1 MiB webhook body", unfinished_bodies)

    def one_client_every_slot():
        d = Daemon(t, "hog")
        try:
            host, port = d.addr.rsplit(":", 1)
            hog = []
            for _ in range(300):
                try:
                    c = socket.create_connection((host, int(port)), timeout=5)
                    c.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n")
                    hog.append(c)
                except OSError:
                    break
            time.sleep(0.3)
            took = []
            for path in ("/healthz", "/readyz"):
                start = time.time()
                status = http_get(d.probes, path)[0]
                took.append((path, status, (time.time() - start) * 1000))
            for c in hog:
                c.close()
        finally:
            d.stop()
        bound = all(status == 200 and ms < 1000 for _, status, ms in took)
        said = ", ".join(f"{p} {s} in {ms:.0f} ms" for p, s, ms in took)
        return f"{len(hog)} connections from one address; probes: {said}", time.time(), 0, bound
    t.row("one client address holds every public connection", one_client_every_slot)

    def paused_leader():
        notes = lambda: [i["data"].get("note") for i in json.loads(t.kubectl(
            "get", "cm", "-A", "-l", f"octostage.dev/instance={INSTANCE}", "-o", "json"))["items"]
            if i["metadata"]["name"] == "settings"]
        a = Daemon(t, "replica-a")
        b = None
        try:
            a.wait(30, lambda: a.metric("octostage_leader") == 1, "replica a never led")
            b = Daemon(t, "replica-b", interval="2s")
            mark = len(a.lines)
            change()
            a.wait(30, lambda: any("write: " in l for l in a.lines[mark:]), "replica a never wrote")
            a.p.send_signal(signal.SIGSTOP)
            paused = time.time()
            newest = f"n{next(note)}"
            t.write_templates(newest)
            b.wait(90, lambda: b.metric("octostage_leader") == 1, "replica b never took over")
            took_over = time.time() - paused
            b.wait(60, lambda: notes() and all(n == newest for n in notes()), "replica b never wrote")
            time.sleep(1.1)
            a.p.send_signal(signal.SIGCONT)
            time.sleep(0.3)
            stale = sum(1 for n in notes() if n != newest)
            a.wait(30, lambda: any("no longer leading" in l for l in a.lines), "replica a never stepped down")
            time.sleep(2)
            stale = max(stale, sum(1 for n in notes() if n != newest))
            refused = int(a.metric("octostage_writes_refused_total"))
        finally:
            a.stop()
            if b:
                b.stop()
            t.kubectl("-n", "default", "delete", "lease", f"octostage-{INSTANCE}", "--ignore-not-found", check=False)
        return (f"SIGSTOP mid-pass; the other replica led {took_over:.0f} s later; after SIGCONT the old "
                f"leader refused {refused} writes, {stale} stale objects"), time.time(), stale
    t.row("a leader paused past its lease mid-pass, then resumed", paused_leader)
    return t.print(markdown)


if __name__ == "__main__":
    main()
