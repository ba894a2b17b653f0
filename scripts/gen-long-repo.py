#!/usr/bin/env python3
"""Generate a deterministic bare repository with a long history, for benchmarking branch listing.

    scripts/gen-long-repo.py DEST [--branches 10000] [--commits 100000] [--seed 1]

`main` gets about 60% of the commits in one linear history; each branch `feature/NNNNN` forks
from a random commit of main and carries the rest, a few commits each. About 200 text files in a
few directories; each commit edits a few lines of 1-3 files, so the packed repository deltas
like a real one. Dates span two years before a fixed end, so the same arguments always give the
same commit ids.

The history is piped into `git fast-import` (one process, instead of git commands per commit),
then repacked. The repository is built next to DEST and renamed into place once complete with a
marker file in it, so an existing DEST with the marker is reused and an interrupted run leaves
nothing that looks finished.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import time

MARKER = "octostage-bench-complete"
END = 1793491200  # 2026-11-01T00:00:00Z: fixed, so commit ids never depend on today
SPAN = 2 * 365 * 86400

WORDS = """
the of and to in is for on that with as by at from this be are it an or was not which can all
will one has have more new when if each but into its only may other time than some these two
data file user cache branch commit request response server client error value config token
stage build deploy release image service network queue worker job task event stream buffer
table index query record schema field type state retry timeout limit budget thread lock signal
parse render template namespace cluster object label annotation owner record status health
check route handler session account order payment invoice cart product price stock shipping
email message notify report metric trace log span counter gauge alert window batch page
read write open close start stop create update delete list watch apply prune merge split sort
fast slow small large empty full first last next previous local remote shared private public
keep drop move copy load save send receive accept refuse allow deny enable disable wait run
because while before after during until unless although where whether every most least often
""".split()
FIRST = "Ada Alan Barbara Brian Carol Dennis Edsger Frances Grace Guido Hedy Ivan Joan Ken " \
    "Linus Margaret Niklaus Radia Rob Sophie Tim Yukihiro Anita Bjarne Donald Leslie".split()
LAST = "Lovelace Turing Liskov Kernighan Ritchie Dijkstra Allen Hopper Rossum Lamarr Sutherland " \
    "Clarke Thompson Torvalds Hamilton Wirth Perlman Pike Wilson Berners Matsumoto Borg Knuth".split()
VERBS = "Fix|Add|Remove|Refactor|Speed up|Document|Handle|Rename|Simplify|Test|Log|Cache|" \
    "Validate|Retry|Bound".split("|")
AREAS = "cache eviction|payment client|order export|login form|session store|search index|" \
    "image upload|invoice totals|email queue|rate limiter|health check|shipping rates|" \
    "config loader|metrics endpoint|cart merge|price rounding|stock sync|audit log".split("|")
DIRS = {"src": ".rs", "src/api": ".rs", "web": ".ts", "docs": ".md", "tests": ".py", "deploy": ".yaml"}


def line(rnd):
    indent = "    " * rnd.choice((0, 0, 1, 1, 2))
    return indent + " ".join(rnd.choices(WORDS, k=rnd.randint(4, 12))) + "\n"


def edit(rnd, lines):
    """Replace, insert or delete a few lines, keeping the file at a few KiB."""
    at = rnd.randrange(len(lines))
    n = rnd.randint(1, 4)
    op = rnd.random()
    if len(lines) < 40 or 0.5 <= op < 0.75 and len(lines) < 90:
        lines[at:at] = [line(rnd) for _ in range(n)]
    elif len(lines) > 90 or op >= 0.75:
        del lines[at:at + n]
    else:
        lines[at:at + n] = [line(rnd) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dest")
    ap.add_argument("--branches", type=int, default=10000)
    ap.add_argument("--commits", type=int, default=100000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    dest = os.path.abspath(a.dest)
    want = f"branches={a.branches} commits={a.commits} files={a.files} seed={a.seed}\n"
    if os.path.exists(os.path.join(dest, MARKER)):
        have = open(os.path.join(dest, MARKER)).read()
        if have != want:
            sys.exit(f"{dest} was generated with {have.strip()}, not {want.strip()}")
        print(f"reusing {dest} ({have.strip()})", file=sys.stderr)
        summary(dest)
        return
    if os.path.exists(dest):
        sys.exit(f"{dest} exists but has no {MARKER}: not a finished generated repository")

    started = time.monotonic()
    tmp = f"{dest}.tmp-{os.getpid()}"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", tmp], check=True)
    try:
        fi = subprocess.Popen(["git", "-C", tmp, "fast-import", "--quiet"],
                              stdin=subprocess.PIPE)
        write_history(fi.stdin, a)
        fi.stdin.close()
        if fi.wait() != 0:
            sys.exit("git fast-import failed")
        print(f"fast-import done in {time.monotonic() - started:.0f} s; repacking", file=sys.stderr)
        # fast-import deltas a blob only against the blob written just before it (another file),
        # and a plain repack reuses that pack as it is; -f searches deltas again, between
        # versions of one file, as a real server's pack has them (over 2x smaller, and clients
        # resolve deltas as they would). pack-refs: a server keeps its refs packed.
        subprocess.run(["git", "-C", tmp, "repack", "-adfq"], check=True)
        subprocess.run(["git", "-C", tmp, "pack-refs", "--all"], check=True)
        with open(os.path.join(tmp, MARKER), "w") as f:
            f.write(want)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"generated {dest} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    summary(dest)


def write_history(out, a):
    rnd = random.Random(a.seed)
    zones = (0, 60, 120, -300, -480, 330, 540)  # minutes east of UTC
    people = [(f"{f} {l}", f"{f.lower()}.{l.lower()}@example.com", rnd.choice(zones))
              for f in FIRST for l in rnd.sample(LAST, 2)]
    paths = []
    for i in range(a.files):
        d = rnd.choice(list(DIRS))
        paths.append(f"{d}/{rnd.choice(WORDS)}_{rnd.choice(WORDS)}_{i:03d}{DIRS[d]}")
    files = {p: [line(rnd) for _ in range(rnd.randint(40, 90))] for p in paths}

    n_feature = max(a.branches, min(a.commits * 2 // 5, a.commits - 1))
    n_main = max(1, a.commits - n_feature)
    # Every branch gets one commit, the rest are spread at random: "a few" each, some more.
    per_branch = [1] * a.branches
    for _ in range(n_feature - a.branches):
        per_branch[rnd.randrange(a.branches)] += 1
    forks = {}  # main commit index -> branch numbers forking there
    for b in range(a.branches):
        forks.setdefault(rnd.randrange(n_main), []).append(b)
    step = SPAN / n_main

    def commit(ref, when, frm, changes, mark=None):
        name, email, tz = rnd.choice(people)
        tz = f"{'-' if tz < 0 else '+'}{abs(tz) // 60:02d}{abs(tz) % 60:02d}"
        area = rnd.choice(AREAS)
        subject = f"{rnd.choice(VERBS)} {area}"
        if rnd.random() < 0.4:
            subject += f": {' '.join(rnd.choices(WORDS, k=rnd.randint(2, 6)))}"
        body = f"{subject}\n\n{line(rnd).strip()}\n" if rnd.random() < 0.5 else subject + "\n"
        msg = body.encode()
        head = [f"commit {ref}\n"]
        if mark:
            head.append(f"mark :{mark}\n")
        head.append(f"author {name} <{email}> {int(when)} {tz}\n")
        head.append(f"committer {name} <{email}> {int(when)} {tz}\n")
        head.append(f"data {len(msg)}\n")
        out.write("".join(head).encode() + msg)
        if frm:
            out.write(f"from {frm}\n".encode())
        for path, lines in changes:
            data = "".join(lines).encode()
            out.write(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        out.write(b"\n")

    def change(state):
        picked = rnd.sample(paths, rnd.randint(1, 3))
        for p in picked:
            edit(rnd, state[p])
        return [(p, state[p]) for p in picked]

    start = END - SPAN
    for i in range(n_main):
        when = start + i * step + rnd.random() * step
        # The first commit writes every file; later ones edit a few.
        changes = list(files.items()) if i == 0 else change(files)
        commit("refs/heads/main", when, None, changes, mark=i + 1)
        # Branches forking here are written at once, from a copy of the files at this commit,
        # so the generator never has to keep old versions.
        for b in forks.get(i, ()):
            own = BranchFiles(files)
            t = when
            frm = f":{i + 1}"
            for _ in range(per_branch[b]):
                t += rnd.uniform(600, 3 * 86400)
                commit(f"refs/heads/feature/{b:05d}", min(t, END), frm, change(own))
                frm = None  # later commits continue the branch
        if i % 10000 == 9999:
            print(f"  {i + 1}/{n_main} main commits written", file=sys.stderr)


class BranchFiles(dict):
    """A branch's files: main's version at the fork until the branch first edits one."""

    def __init__(self, main):
        super().__init__()
        self.main = main

    def __missing__(self, p):
        self[p] = list(self.main[p])
        return self[p]


def summary(dest):
    git = lambda *args: subprocess.run(["git", "-C", dest, *args], check=True, capture_output=True,
                                       text=True).stdout.strip()
    commits = git("rev-list", "--all", "--count")
    branches = len(git("for-each-ref", "--format=x", "refs/heads").split())
    size = subprocess.run(["du", "-sh", dest], check=True, capture_output=True,
                          text=True).stdout.split()[0]
    print(f"{dest}: {commits} commits, {branches} branches, {size}", flush=True)


if __name__ == "__main__":
    main()
