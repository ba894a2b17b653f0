//! Renders are bounded (finding 4 of the hostile review: they were not). A background child holding
//! stdout hung a pass past `render_timeout`; output was unbounded (300 MB of stdout took 1.2 GB
//! of memory); templates ran forever. Each case runs the real binary and measures it.

use std::time::{Duration, Instant};

use crate::util::*;

/// The largest resident size of any child this test process waited for, in MiB.
fn children_max_rss_mib() -> i64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    u.max_rss() / 1024
}

fn command_env(d: &DirRun, script: &str, timeout: &str) {
    std::fs::write(d.cfg.join("render.sh"), script).unwrap();
    d.config(
        &format!("    command: [\"sh\", \"render.sh\"]\n    render_timeout: {timeout}\n"),
        "",
    );
}

fn alive(pid_file: &std::path::Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_background_child_holding_stdout_does_not_hold_the_pass_and_does_not_survive() {
    let d = DirRun::new(&days_ago(1));
    let pid = d.tmp.path().join("bg.pid");
    command_env(
        &d,
        &format!(
            "sleep 120 & echo $! > {}\necho 'apiVersion: v1'; echo 'kind: ConfigMap'; echo 'metadata: {{name: bg}}'\n",
            pid.display()
        ),
        "5s",
    );
    let start = Instant::now();
    d.run_ok(&["run", "--once"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(d.out.join("app-main/configmap-bg.yaml").is_file());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(&pid), "the background child outlived the render");
}

#[test]
fn the_timeout_bounds_the_whole_render() {
    let d = DirRun::new(&days_ago(1));
    let pid = d.tmp.path().join("bg.pid");
    command_env(
        &d,
        &format!(
            "sleep 120 & echo $! > {}\necho 'kind: A'; sleep 120\n",
            pid.display()
        ),
        "2s",
    );
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(
        texts(&r).0.contains("did not finish within 2s"),
        "{:?}",
        texts(&r)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(&pid));
}

#[test]
fn output_floods_are_cut_at_the_limit_in_bounded_memory_and_time() {
    let d = DirRun::new(&days_ago(1));
    // 300 MB of stdout.
    command_env(&d, "yes 'a: b' | head -c 300000000\n", "60s");
    let start = Instant::now();
    let (r, mut peak) = d.run_peak_mib(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r).0.contains("produced more than 33554432 bytes"),
        "{:?}",
        texts(&r)
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    // 1 GB of stderr: only its tail is kept.
    command_env(
        &d,
        "head -c 1000000000 /dev/zero | tr '\\0' e >&2; echo last words >&2; exit 3\n",
        "60s",
    );
    let (r, p) = d.run_peak_mib(&["run", "--once"]);
    peak = peak.max(p);
    assert_eq!(r.status.code(), Some(1));
    assert!(texts(&r).0.contains("exit status: 3"), "{:?}", texts(&r).0);
    // A configurable limit.
    command_env(&d, "yes 'a: b' | head -c 3000000\n", "60s");
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml")).unwrap()
        + "    render_output_limit: 1MiB\n";
    std::fs::write(d.cfg.join("environments.yaml"), text).unwrap();
    let r = d.run(&["run", "--once"]);
    assert!(
        texts(&r).0.contains("produced more than 1048576 bytes"),
        "{:?}",
        texts(&r)
    );
    // Measured per process: the memory-limit tests of this binary run render processes up to
    // 256 MiB beside it, which a figure for all children would hold.
    assert!(peak < 200, "octostage reached {peak} MiB");
}

#[test]
fn a_runaway_template_loop_is_stopped() {
    let d = DirRun::new(&days_ago(1));
    d.template(
        "cm.yaml",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    );
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r)
            .0
            .contains("instructions (a loop too large or endless) and was stopped"),
        "{:?}",
        texts(&r)
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// An application repository whose `main` holds templates in `deploy/k8s` and a kustomize
/// base in `deploy/base`, each one ConfigMap.
fn branch_manifests() -> DirRun {
    let d = DirRun::new(&days_ago(1));
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata: {a: b}\n";
    crate::app_manifests::commit_files(
        &d.repo,
        "main",
        &[
            ("deploy/k8s/cm.yaml", Some(cm)),
            (
                "deploy/base/kustomization.yaml",
                Some("resources: [cm.yaml]\n"),
            ),
            ("deploy/base/cm.yaml", Some(cm)),
        ],
        "Manifests",
    );
    d
}

/// One environment `app` rendered by `render`, under a memory limit of 256 MiB.
fn limited_env(d: &DirRun, render: &str) {
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    render_memory_limit: 256MiB\n    render_timeout: 60s\n{render}",
            d.repo.path.display()
        ),
    )
    .unwrap();
}

/// A YAML alias bomb of a kilobyte: nine levels of nine references, billions of nodes once
/// expanded. kubectl took 10 GB within its timeout before renders ran under a memory limit.
fn alias_bomb() -> String {
    let mut s = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        s += &format!("  a{i}: &a{i} [{refs}]\n");
    }
    s
}

#[test]
fn files_from_a_branch_cannot_make_a_render_take_unbounded_memory() {
    use crate::app_manifests::commit_files;
    let d = branch_manifests();
    // A template that doubles a string forty times: a few hundred instructions, so the fuel
    // limit never sees it; 16 TiB if nothing stopped it.
    let doubling = "{% set ns = namespace(s='0123456789abcdef') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  n: \"{{ ns.s | length }}\"\n";
    commit_files(
        &d.repo,
        "attack/doubling",
        &[("deploy/k8s/big.yaml", Some(doubling))],
        "Doubling",
    );
    commit_files(
        &d.repo,
        "attack/aliases",
        &[("deploy/base/cm.yaml", Some(&alias_bomb()))],
        "Aliases",
    );
    // Lists nested a million deep through a namespace: dropping or printing them takes more
    // stack than a thread has.
    let deep = "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% for j in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}{% endfor %}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n";
    commit_files(
        &d.repo,
        "attack/deep",
        &[("deploy/k8s/deep.yaml", Some(deep))],
        "Deep",
    );
    let env = |render: &str| limited_env(&d, render);

    env("    templates: {from: app, path: deploy/k8s}\n");
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("templates \"deploy/k8s\" ran out of memory")
            && stdout.contains("at most 256MiB (`render_memory_limit`)"),
        "{stdout}\n{stderr}"
    );
    assert!(d.out.join("app-main/configmap-web.yaml").is_file());
    assert!(!d.out.join("app-attack-doubling").exists());
    assert!(
        stdout.contains(
            "deploy/k8s:?: the template process overflowed its stack: a value is nested too deep"
        ),
        "{stdout}\n{stderr}"
    );
    assert!(!d.out.join("app-attack-deep").exists());
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );

    env("    kustomize: {from: app, path: deploy/base}\n");
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("render command `kubectl` ran out of memory")
            && stdout.contains("it said:")
            // Go's runtime words it as "runtime: out of memory" or "out of memory allocating
            // heap arena metadata", depending on where the allocation failed.
            && stderr.contains("fatal error:")
            && stderr.contains("out of memory"),
        "{stdout}\n{stderr}"
    );
    assert!(d.out.join("app-main/configmap-web.yaml").is_file());
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    // No process of this test got far past the limit (the kubectl binary's own pages included).
    let rss = children_max_rss_mib();
    assert!(rss < 400, "a render process reached {rss} MiB");
}

#[test]
fn a_render_command_and_what_it_starts_run_under_the_memory_limit() {
    let d = DirRun::new(&days_ago(1));
    command_env(
        &d,
        "limit=$(sh -c \"awk '/Max data size/ {print \\$4}' /proc/self/limits\")\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: limits}\\ndata: {data: \"%s\"}\\n' \"$limit\"\n",
        "10s",
    );
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml")).unwrap()
        + "    render_memory_limit: 300MiB\n";
    std::fs::write(d.cfg.join("environments.yaml"), text).unwrap();
    d.run_ok(&["run", "--once"]);
    let cm = std::fs::read_to_string(d.out.join("app-main/configmap-limits.yaml")).unwrap();
    assert!(cm.contains(&format!("data: \"{}\"", 300u64 << 20)), "{cm}");
    // Out of range is a validation error naming the setting.
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml"))
        .unwrap()
        .replace("300MiB", "1MiB");
    std::fs::write(d.cfg.join("environments.yaml"), text).unwrap();
    let v = d.validate();
    assert!(!v.status.success());
    assert!(
        texts(&v)
            .0
            .contains("render_memory_limit must be at least 128MiB")
            || texts(&v)
                .1
                .contains("render_memory_limit must be at least 128MiB"),
        "{:?}",
        texts(&v)
    );
}

/// Found by attacking the memory limit: what a render prints is parsed in octostage's own
/// process, where no process limit applies. A 50 KB file with one anchored list used ten
/// thousand times took octostage to 7 GB and an abort; 200 KB of nested brackets took 80 s of
/// CPU past `render_timeout` and SIGTERM; a kustomization.yaml bomb was parsed by octostage's
/// own check before kubectl ran. YAML from a render is walked first, in constant memory, and
/// refused past 250,000 nodes for the whole staging or 100 levels.
#[test]
fn yaml_built_to_expand_is_refused_before_octostage_parses_it() {
    use crate::app_manifests::commit_files;
    let d = branch_manifests();
    let items = vec!["1"; 10_000].join(",");
    let uses = vec!["*a"; 10_000].join(",");
    let flat = format!(
        "{{% raw %}}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\nx: &a [{items}]\ny: [{uses}]\n{{% endraw %}}\n"
    );
    commit_files(
        &d.repo,
        "attack/flat",
        &[("deploy/k8s/bomb.yaml", Some(&flat))],
        "Flat",
    );
    // A 10 KB string used 200,000 times (2 MB, 2 GB copied: octostage aborted at 4.4 GB),
    // and a redefined anchor, which serde_yaml resolved to a later node (a 1,000-item list).
    // serde-saphyr resolves it to its latest definition, `s`: 10,000 one-byte strings, inside
    // the budget, so that staging is written.
    let scalar = format!(
        "{{% raw %}}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scalar\ndata:\n  a: &a \"{}\"\nitems: [{}]\n{{% endraw %}}\n",
        "x".repeat(10_000),
        vec!["*a"; 200_000].join(",")
    );
    commit_files(
        &d.repo,
        "attack/scalar",
        &[("deploy/k8s/s.yaml", Some(&scalar))],
        "Scalar",
    );
    let redefined = format!(
        "{{% raw %}}apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\nx1: &a s\nx2: &b s\nx3: &a s\nbig: &c [{}]\nitems: [{}]\n{{% endraw %}}\n",
        vec!["1"; 1000].join(","),
        vec!["*a"; 10_000].join(",")
    );
    commit_files(
        &d.repo,
        "attack/redefined",
        &[("deploy/k8s/r.yaml", Some(&redefined))],
        "Redefined",
    );
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\nx: {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    commit_files(
        &d.repo,
        "attack/deep",
        &[("deploy/k8s/deep.yaml", Some(&deep))],
        "Deep",
    );
    // Three files under the budget each, over it together: the budget is the staging's.
    let part = |i: usize| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: part-{i}\nx: [{}]\n",
            vec!["1"; 100_000].join(",")
        )
    };
    let (p0, p1, p2) = (part(0), part(1), part(2));
    commit_files(
        &d.repo,
        "attack/parts",
        &[
            ("deploy/k8s/p0.yaml", Some(&p0)),
            ("deploy/k8s/p1.yaml", Some(&p1)),
            ("deploy/k8s/p2.yaml", Some(&p2)),
        ],
        "Parts",
    );
    commit_files(
        &d.repo,
        "attack/kustomization",
        &[(
            "deploy/base/kustomization.yaml",
            Some(&format!(
                "resources: [cm.yaml]\nx: &a [{items}]\ny: [{uses}]\n"
            )),
        )],
        "Kustomization",
    );
    let env = |render: &str| limited_env(&d, render);

    env("    templates: {from: app, path: deploy/k8s}\n");
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = |branch: &str| {
        stdout
            .lines()
            .find(|l| l.contains(branch))
            .unwrap_or_else(|| panic!("{branch}: {stdout}"))
            .to_string()
    };
    assert!(
        line("attack/flat").contains("expands to more than 250000 YAML nodes"),
        "{stdout}"
    );
    assert!(line("attack/parts").contains("more than"), "{stdout}");
    assert!(
        line("attack/scalar").contains("expands to more than"),
        "{stdout}"
    );
    assert!(line("attack/redefined").contains("new branch"), "{stdout}");
    assert!(line("attack/deep").contains("brackets"), "{stdout}");
    assert!(d.out.join("app-main/configmap-web.yaml").is_file());
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );

    env("    kustomize: {from: app, path: deploy/base}\n");
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        // Refused before it is parsed: a kustomization must be plain YAML, and an alias bomb
        // is made of anchors and aliases.
        stdout.lines().any(|l| l.contains("attack/kustomization")
            && l.contains("uses an anchor (`&name`)")
            && l.contains("write the kustomization plainly")),
        "{stdout}"
    );
    let rss = children_max_rss_mib();
    assert!(rss < 400, "a process of this test reached {rss} MiB");
}

/// Found by attacking the YAML budget a second time: counting before parsing missed two ways
/// to make serde_yaml slow. Brackets closed inside quoted strings hid 80,000 levels of real
/// nesting (17 s, quadratic: a 1 MB file would take minutes), and a number of 1 MB aliased
/// 20,000 times was charged nothing but read again at every use (62 s). These were parsed in a
/// child under `render_timeout`; serde-saphyr bounds them while it reads (nesting, the bytes
/// aliases replay), so they are refused at once, in octostage's own process.
#[test]
fn yaml_that_was_slow_to_parse_is_refused_at_once() {
    use crate::app_manifests::commit_files;
    let d = branch_manifests();
    let mut deep =
        String::from("{% raw %}apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nx: ");
    for _ in 0..700 {
        deep += &"[".repeat(120);
        deep += &format!("\"{}\",", "]".repeat(120));
    }
    deep += "\n{% endraw %}\n";
    commit_files(
        &d.repo,
        "attack/hidden-depth",
        &[("deploy/k8s/d.yaml", Some(&deep))],
        "Deep",
    );
    let number = format!(
        "{{% raw %}}apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\nx: &a 0x{}1\nitems: [{}1]\n{{% endraw %}}\n",
        "0".repeat(1 << 20),
        "*a,".repeat(20_000)
    );
    commit_files(
        &d.repo,
        "attack/number",
        &[("deploy/k8s/n.yaml", Some(&number))],
        "Number",
    );
    limited_env(&d, "    templates: {from: app, path: deploy/k8s}\n");
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml"))
        .unwrap()
        .replace("render_timeout: 60s", "render_timeout: 3s");
    std::fs::write(d.cfg.join("environments.yaml"), text).unwrap();
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    for (b, why) in [
        ("attack/hidden-depth", "nests more than 128 levels"),
        ("attack/number", "expands to more than"),
    ] {
        let line = stdout.lines().find(|l| l.contains(b)).unwrap_or_default();
        assert!(
            line.contains("FAILED") && line.contains(why),
            "{b}: {stdout}"
        );
    }
    assert!(!stdout.contains("did not finish within"), "{stdout}");
    assert!(d.out.join("app-main/configmap-web.yaml").is_file());
    // Far from the minutes they took, and from the 3 s `render_timeout` (generous: the CI
    // machine is shared).
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// Found reviewing the change: the parse of a render's output got a `render_timeout` of its
/// own after the command had used its own, so a render could take twice `render_timeout`.
/// The parse now runs in octostage's process, bounded by the YAML budget rather than by time:
/// what took a minute to parse is refused at once, right after the command.
#[test]
fn render_timeout_bounds_the_command_and_the_parse_of_its_output_together() {
    use crate::app_manifests::commit_files;
    let d = branch_manifests();
    // Slow to parse for serde_yaml (a 1 MB number read again at each of 20,000 aliases: a
    // minute).
    let number = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\nx: &a 0x{}1\nitems: [{}1]\n",
        "0".repeat(1 << 20),
        "*a,".repeat(20_000)
    );
    commit_files(
        &d.repo,
        "main",
        &[("deploy/n.yaml", Some(&number))],
        "Number",
    );
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    render_timeout: 6s\n    app_paths: [deploy]\n    command: [\"sh\", \"-c\", \"sleep 4; cat \\\"$OCTOSTAGE_APP_DIR/deploy/n.yaml\\\"\"]\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("is refused: it expands to more than"),
        "{stdout}"
    );
    // 4 s of command and a parse refused at once; separate limits would allow 4 + 6.
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
}
