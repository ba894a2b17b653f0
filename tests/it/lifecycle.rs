//! Lifecycle and cost control on the real binary, the local control plane and real git:
//! expiry puts a staging to sleep with its volume kept and deletes it after its retention; a
//! commit in between wakes it; every transition is notified once, across restarts; a template
//! change while asleep is applied asleep; `extend`, `wake --for` and `sleep`; caps.
//!
//! The control plane's simulated nodes run the pods: they become Ready after their readiness
//! probe's delay, and go away when a sleep scales their workloads to zero.

use std::time::{Duration, Instant};

use crate::cluster::{json, pods_ready, Setup};
use crate::util::*;
use crate::webhook::Receiver;

/// Wait until the Deployment `web` in `ns` reports `n` ready replicas.
fn ready_replicas(s: &Setup, ns: &str, n: i64) {
    let start = Instant::now();
    while json(&s.kc, &["get", "deployment", "web", "-n", ns])["status"]["readyReplicas"]
        .as_i64()
        .unwrap_or(0)
        != n
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "web in {ns} never had {n} ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A Deployment of two replicas with requests, a volume claim and a ConfigMap of data.
fn templates(s: &Setup, image_note: &str) {
    let t = s.cfg.join("t");
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("web.yaml"), format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: \"registry.example.com/web:{{{{ commit.short_sha }}}}\"\n          env: [{{name: NOTE, value: {image_note:?}}}]\n          resources: {{requests: {{cpu: 250m, memory: 128Mi}}}}\n          readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, initialDelaySeconds: 2}}\n")).unwrap();
    std::fs::write(t.join("data.yaml"), "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seed\ndata:\n  rows: \"42\"\n").unwrap();
}

fn config(s: &Setup, extra: &str) {
    std::fs::write(
        s.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {}:\n    repository: {}\n    templates: t\n    branches: {{include: [\"feature/**\"]}}\n{extra}",
            s.env.name,
            s.repo.path.display()
        ),
    )
    .unwrap();
}

fn deployment(s: &Setup, ns: &str) -> serde_json::Value {
    json(&s.kc, &["get", "deployment", "web", "-n", ns])
}

fn uid(s: &Setup, kind: &str, name: &str, ns: &str) -> String {
    json(&s.kc, &["get", kind, name, "-n", ns])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Run with the webhook's key in the environment.
fn run(s: &Setup) -> String {
    let out = octostage_env(
        &s.args(&["run", "--once"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
        &[("HOOK_KEY", "k3y")],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    stdout
}

#[test]
fn expiry_sleeps_keeping_data_a_commit_wakes_and_retention_deletes_each_transition_notified_once() {
    let rx = Receiver::start();
    let s = Setup::new(1);
    templates(&s, "one");
    // Retention is long while the staging must outlive it (woken by a commit), then short, so
    // that its end is waited for in seconds.
    let retention = |r: &str| {
        config(&s, &format!("    ttl: 7d\n    retention: {r}\n    notify:\n      webhooks: [{{url: {:?}, secret_env: HOOK_KEY}}]\n", rx.url));
    };
    retention("1h");
    s.repo.commit("feature/x", "work", &days_ago(0));
    let name = format!("{}-feature-x", s.env.name);
    let ns = name.clone();

    assert!(run(&s).contains("create"));
    assert_eq!(deployment(&s, &ns)["spec"]["replicas"], 2);
    let pvc = uid(&s, "pvc", "data", &ns);
    let seed = uid(&s, "configmap", "seed", &ns);
    pods_ready(&s.kc, &ns, 2);
    ready_replicas(&s, &ns, 2);
    run(&s);

    // Backdated past its ttl: expired, asleep, its volume claim and data kept.
    s.repo.commit("feature/x", "old work", &days_ago(30));
    let out = run(&s);
    assert!(
        out.contains("expire"),
        "{out}\n{}",
        s.repo.git(&["log", "--format=%h %cI", "feature/x"])
    );
    let d = deployment(&s, &ns);
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(
        d["metadata"]["annotations"]["octostage.dev/awake"],
        "replicas=2"
    );
    assert_eq!(
        (
            uid(&s, "pvc", "data", &ns),
            uid(&s, "configmap", "seed", &ns)
        ),
        (pvc.clone(), seed.clone())
    );
    // A restart in between sends nothing again (`run --once` waits for its deliveries).
    let sent = rx.events().len();
    run(&s);
    assert_eq!(rx.events().len(), sent);

    // A commit during retention wakes it, volume and data intact.
    s.repo.commit("feature/x", "more work", &days_ago(0));
    let out = run(&s);
    assert!(out.contains("active again"), "{out}");
    assert_eq!(deployment(&s, &ns)["spec"]["replicas"], 2);
    assert_eq!(
        (
            uid(&s, "pvc", "data", &ns),
            uid(&s, "configmap", "seed", &ns)
        ),
        (pvc, seed)
    );

    // Stale again; deleted once the retention has passed, not before.
    retention("20s");
    s.repo.commit("feature/x", "abandoned", &days_ago(30));
    run(&s);
    let mine = staging_status(&s, &name);
    assert_eq!(mine["state"], "expired");
    let delete_at: chrono::DateTime<chrono::Utc> =
        mine["delete_at"].as_str().unwrap().parse().unwrap();
    run(&s);
    assert_eq!(s.env.active_namespaces(), std::slice::from_ref(&ns));
    let wait = (delete_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_secs(1);
    std::thread::sleep(wait);
    assert!(run(&s).contains("delete"));
    assert!(s.env.active_namespaces().is_empty());
    run(&s);

    let want: Vec<String> = [
        "created", "healthy", "expired", "expiring", "waking", "expired", "expiring", "deleted",
    ]
    .iter()
    .map(|e| format!("{name} {e}"))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.events().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rx.events(), want);
    for ((headers, raw), body) in rx.requests() {
        let h = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let sig = octostage::signing::hmac_sha256(b"k3y", &[&raw]);
        assert_eq!(h("x-octostage-signature-256"), format!("sha256={sig}"));
        let text = raw;
        assert_eq!(h("x-octostage-event"), body["event"].as_str().unwrap());
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("octostage: {name} (feature/x) ")));
        // Nothing of the key or the secret path travels in the payload.
        let text = String::from_utf8(text).unwrap();
        assert!(
            !text.contains("k3y") && !text.contains("secret-path"),
            "{text}"
        );
    }
}

/// `octostage CMD STAGING ...` against this setup's target (no configuration).
fn steer(s: &Setup, cmd: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = cmd.to_vec();
    args.extend(["--instance", &s.env.name, "--target", &s.target]);
    octostage(&args)
}

fn staging_status(s: &Setup, name: &str) -> serde_json::Value {
    let status: serde_json::Value = serde_json::from_str(&octostage_ok(
        &[
            "status",
            "--format",
            "json",
            "--instance",
            &s.env.name,
            "--target",
            &s.target,
        ],
        0,
    ))
    .unwrap();
    status["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {status}"))
        .clone()
}

#[test]
fn asleep_a_template_change_is_applied_asleep_and_runs_after_waking_and_requests_are_bounded() {
    let s = Setup::new(1);
    templates(&s, "one");
    config(
        &s,
        "    ttl: 7d\n    max_extension: 3d\n    max_stagings: 3\n",
    );
    for i in 1..=5 {
        s.repo
            .commit(&format!("feature/b{i}"), "work", &days_ago(0));
    }
    // A cap of 3 with 5 qualifying branches: 3 exist, 2 are reported with the reason.
    let out = run(&s);
    assert_eq!(s.env.active_namespaces().len(), 3, "{out}");
    let plan = s.plan();
    let capped: Vec<&serde_json::Value> = plan["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["why"]["code"] == "not-created" && p["why"]["cause"]["code"] == "over-cap")
        .collect();
    assert_eq!(capped.len(), 2, "{plan}");
    assert!(capped
        .iter()
        .all(|p| p["reason"] == "not created: over max_stagings (3); least recently active"));

    let name = s.env.active_namespaces()[0].clone();
    let ns = name.clone();
    // Asleep by request; a template change meanwhile is applied with 0 replicas.
    let o = steer(&s, &["sleep", &name]);
    assert!(o.status.success(), "{:?}", texts(&o));
    assert!(run(&s).contains("put to sleep by `octostage sleep`"));
    assert_eq!(deployment(&s, &ns)["spec"]["replicas"], 0);
    assert_eq!(staging_status(&s, &name)["state"], "sleeping:manual");
    // Time asleep is counted in whole seconds, and the cost below must show some: on a fast
    // machine the rest of this stretch took less than one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    templates(&s, "two");
    std::fs::write(
        s.cfg.join("t/web.yaml"),
        std::fs::read_to_string(s.cfg.join("t/web.yaml"))
            .unwrap()
            .replace("replicas: 2", "replicas: 3"),
    )
    .unwrap();
    run(&s);
    let d = deployment(&s, &ns);
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(
        d["metadata"]["annotations"]["octostage.dev/awake"],
        "replicas=3"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "two"
    );
    // Woken for an hour: the new template runs; after the hour it would sleep again.
    let o = steer(&s, &["wake", &name, "--for", "1h"]);
    assert!(o.status.success(), "{:?}", texts(&o));
    assert!(run(&s).contains("woken by `octostage wake` until"));
    assert_eq!(deployment(&s, &ns)["spec"]["replicas"], 3);
    let st = staging_status(&s, &name);
    let until: chrono::DateTime<chrono::Utc> = st["sleeps_at"].as_str().unwrap().parse().unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!((until - in_an_hour).num_seconds().abs() < 60, "{st}");
    let later = (until + chrono::Duration::seconds(1)).to_rfc3339();
    let plan: serde_json::Value =
        serde_json::from_slice(&s.cmd(&["plan", "--format", "json", "--at", &later]).stdout)
            .unwrap();
    let p = plan["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name.as_str())
        .unwrap();
    assert_eq!(
        (p["action"].as_str(), p["state"].as_str()),
        (Some("sleep"), Some("sleeping:manual")),
        "{p}"
    );

    // extend: beyond max_extension refused, clearly; within, status shows the new expiry.
    let o = steer(
        &s,
        &["extend", &name, "5d", "--config", s.cfg.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        texts(&o)
            .1
            .contains("cannot be extended by 5d: its max_extension is 3d"),
        "{:?}",
        texts(&o)
    );
    let o = steer(
        &s,
        &["extend", &name, "3d", "--config", s.cfg.to_str().unwrap()],
    );
    assert!(o.status.success(), "{:?}", texts(&o));
    run(&s);
    let st = staging_status(&s, &name);
    let kept: chrono::DateTime<chrono::Utc> = st["requests"]["keep_until"]["until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (kept - (chrono::Utc::now() + chrono::Duration::days(3)))
            .num_seconds()
            .abs()
            < 60,
        "{st}"
    );
    // ttl 7d is later than three days from now: the expiry stays; a lower ttl shows the extension.
    config(
        &s,
        "    ttl: 1h\n    max_extension: 3d\n    max_stagings: 3\n",
    );
    run(&s);
    let st = staging_status(&s, &name);
    assert_eq!(
        st["expires_at"], st["requests"]["keep_until"]["until"],
        "{st}"
    );
    // A staging of another instance, or none, is refused by name.
    let o = steer(&s, &["sleep", "no-such-staging"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(texts(&o).1.contains("not in the target"), "{:?}", texts(&o));

    // The cost report: 3 replicas of 250m and 128Mi awake.
    let cost: serde_json::Value = serde_json::from_str(&octostage_ok(
        &[
            "status",
            "--cost",
            "--format",
            "json",
            "--instance",
            &s.env.name,
            "--target",
            &s.target,
        ],
        0,
    ))
    .unwrap();
    let c = &cost["stagings"][name.as_str()];
    assert_eq!(
        (c["cpu_cores"].as_f64(), c["memory_gib"].as_f64()),
        (Some(0.75), Some(0.375)),
        "{cost}"
    );
    assert!(c["hours_asleep"].as_f64().unwrap() > 0.0, "{cost}");
}

#[test]
fn requests_made_at_once_are_all_kept() {
    let s = Setup::new(1);
    templates(&s, "one");
    config(&s, "    ttl: 7d\n");
    s.repo.commit("feature/x", "work", &days_ago(0));
    run(&s);
    let name = format!("{}-feature-x", s.env.name);
    let cfg = s.cfg.to_str().unwrap().to_string();
    for round in 0..6 {
        let spawn = |args: Vec<String>| {
            std::process::Command::new(env!("CARGO_BIN_EXE_octostage"))
                .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
                .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
                .args(args)
                .args(["--instance", &s.env.name, "--target", &s.target])
                .output()
        };
        let (a, b) = std::thread::scope(|sc| {
            let a = sc.spawn(|| spawn(vec!["sleep".into(), name.clone()]));
            let days = format!("{}d", 1 + round % 3);
            let b = sc.spawn(|| {
                spawn(vec![
                    "extend".into(),
                    name.clone(),
                    days,
                    "--config".into(),
                    cfg.clone(),
                ])
            });
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        assert!(
            a.status.success() && b.status.success(),
            "{:?} {:?}",
            texts(&a),
            texts(&b)
        );
        let st = staging_status(&s, &name);
        assert!(
            st["requests"]["sleep"].is_string() && st["requests"]["keep_until"].is_object(),
            "round {round}: {st}"
        );
        // Clear the sleep for the next round.
        let o = steer(&s, &["wake", &name]);
        assert!(o.status.success());
    }
}
