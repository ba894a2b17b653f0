//! Two replicas of one instance on the local control plane: exactly one writes (each
//! replica's own request metrics show it), the other serves what it sees and forwards actions;
//! killed, the leader is replaced within the lease duration plus a pass, and no staging is lost
//! or made twice.

use std::time::Instant;

use crate::cluster::{kubectl, Setup};
use crate::http::*;
use crate::util::*;

const TOKEN: &str = "leader-test-token";

/// Write requests a replica sent, by its own metrics.
fn writes(d: &Daemon) -> f64 {
    ["create", "update", "patch", "delete"]
        .iter()
        .map(|v| metric(&d.probes, "octostage_kube_requests_total", &[("verb", v)]))
        .sum()
}

fn replica(s: &Setup, id: &str, port: u16) -> Daemon {
    replica_with(s, id, port, &["--interval", "2s"])
}

/// A replica with `extra` arguments of `run`.
fn replica_with(s: &Setup, id: &str, port: u16, extra: &[&str]) -> Daemon {
    let mut cmd = vec!["run", "--identity", id];
    cmd.extend_from_slice(extra);
    let mut args = s.args(&cmd);
    args.extend([
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--advertise-url".into(),
        format!("http://127.0.0.1:{port}"),
    ]);
    Daemon::start(
        &args,
        &[("POD_NAMESPACE", "default"), ("OCTOSTAGE_API_TOKEN", TOKEN)],
    )
}

fn leading(d: &Daemon) -> bool {
    metric(&d.probes, "octostage_leader", &[]) == 1.0
}

#[test]
fn two_replicas_one_writes_and_the_other_takes_over_when_it_dies() {
    let s = Setup::new(2);
    let lease = format!("octostage-{}", s.env.name);
    let mut a = replica(&s, "replica-a", free_port());
    a.wait(20, "a never led", leading);
    let b = replica(&s, "replica-b", free_port());
    b.wait(20, "b never finished a pass", |d| {
        get(&d.addr, "/readyz").status == 200
    });
    let count = || s.env.active_namespaces().len();
    b.wait(30, "the stagings never appeared", |_| count() == 2);
    s.repo.commit("feature/f2", "w", &days_ago(0));
    b.wait(30, "the leader never made the new staging", |_| {
        count() == 3
    });
    // The follower sees it too, from its own watch cache, and would change nothing.
    b.wait(10, "the follower never saw it", |d| d.stagings().len() == 3);
    assert!(!leading(&b));
    assert!(writes(&a) > 0.0);
    assert_eq!(writes(&b), 0.0, "the follower wrote");
    let api = get(&b.addr, "/api/v1/stagings").json();
    let leader = api["leadership"]["leader"].as_str().unwrap_or_default();
    assert!(leader.starts_with("replica-a_"), "{api}");
    // An action on the follower is forwarded to the leader.
    let passes = a.passes();
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        &b.addr,
        "POST",
        "/api/v1/pass",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    a.wait(10, "the forwarded pass never ran on the leader", |a| {
        a.passes() > passes
    });
    // The leader dies without releasing the lease.
    a.kill();
    let killed = Instant::now();
    s.repo.commit("feature/f3", "w", &days_ago(0));
    b.wait(40, "the follower never took over", |_| count() == 4);
    let took = killed.elapsed();
    println!("takeover: the new staging appeared {took:?} after the leader was killed (lease 15s, interval 2s)");
    assert!(leading(&b));
    assert!(writes(&b) > 0.0);
    // Nothing lost, nothing twice: one namespace per staging, each staging once in the API.
    let mut names = b.stagings();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
    assert_eq!(count(), 4);
    kubectl(&s.kc, &["delete", "lease", &lease, "-n", "default"]);
}

#[test]
fn a_lease_octostage_did_not_create_is_never_taken() {
    let s = Setup::new(1);
    let lease = format!("octostage-{}", s.env.name);
    // Someone else's Lease of that name, abandoned long ago (1 s duration): were it
    // octostage's, it would be taken at once.
    let manifest = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {lease}\n  namespace: default\nspec:\n  holderIdentity: someone-else\n  leaseDurationSeconds: 1\n  renewTime: \"2020-01-01T00:00:00.000000Z\"\n"
    );
    let file = s._tmp.path().join("lease.yaml");
    std::fs::write(&file, manifest).unwrap();
    kubectl(&s.kc, &["apply", "-f", file.to_str().unwrap()]);
    let version = || {
        crate::cluster::json(&s.kc, &["get", "lease", &lease, "-n", "default"])["metadata"]
            ["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = version();
    let d = replica(&s, "replica-a", free_port());
    d.wait(20, "no pass", |d| get(&d.addr, "/readyz").status == 200);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(version(), before, "someone else's Lease was written");
    assert!(!leading(&d));
    assert_eq!(writes(&d), 0.0, "it wrote without the lease");
    assert!(s.env.namespaces().is_empty());
    let log = d.log.lock().unwrap().join("\n");
    assert!(
        log.contains("is not octostage's for this instance"),
        "{log}"
    );
    assert_eq!(
        log.matches("is not octostage's").count(),
        1,
        "said once: {log}"
    );
    // A one-off pass is refused at once, and says why.
    let started = Instant::now();
    let out = s.cmd(&["run", "--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not octostage's for this instance"),
        "{stderr}"
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "waited for a lease it may never take"
    );
    assert_eq!(version(), before, "someone else's Lease was written");
    assert!(s.env.namespaces().is_empty());
    kubectl(&s.kc, &["delete", "lease", &lease, "-n", "default"]);
}

#[test]
fn events_are_never_posted_into_a_namespace_octostage_did_not_create() {
    let s = Setup::new(1);
    let env = s.env.name.clone();
    let d = replica(&s, "replica-a", free_port());
    d.wait(30, "main never created", |_| {
        s.env.active_namespaces().len() == 1
    });
    // Someone else's namespace where the staging is about to move.
    let foreign = format!("{env}-main-v2");
    kubectl(&s.kc, &["create", "namespace", &foreign]);
    let file = s.cfg.join("environments.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "    templates: t\n",
        "    templates: t\n    namespace: \"{{ staging }}-v2\"\n",
    );
    std::fs::write(&file, text).unwrap();
    d.wait(30, "the move was never refused", |d| {
        get(&d.addr, &format!("/api/v1/stagings/{env}-main")).json()["state"] == "conflict"
    });
    // A pass or two later, still nothing of octostage's in someone else's namespace.
    let n = d.passes();
    let auth = format!("Bearer {TOKEN}");
    request(
        &d.addr,
        "POST",
        "/api/v1/pass",
        &[("authorization", &auth)],
        b"",
    );
    d.wait(10, "no pass", |d| d.passes() > n);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let events = crate::cluster::json(&s.kc, &["get", "events.v1.events.k8s.io", "-n", &foreign]);
    let ours: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reportingController"] == "octostage.dev/controller")
        .collect();
    assert!(
        ours.is_empty(),
        "posted into someone else's namespace: {ours:?}"
    );
    kubectl(&s.kc, &["delete", "namespace", &foreign, "--wait=false"]);
    let lease = format!("octostage-{env}");
    kubectl(&s.kc, &["delete", "lease", &lease, "-n", "default"]);
}

#[test]
fn two_replicas_given_one_identity_never_both_lead() {
    let s = Setup::new(1);
    let a = replica(&s, "same-name", free_port());
    a.wait(20, "a never led", leading);
    let b = replica(&s, "same-name", free_port());
    b.wait(20, "b never finished a pass", |d| {
        get(&d.addr, "/readyz").status == 200
    });
    // Several rounds of renewal: never two leaders, and the second never writes.
    for _ in 0..10 {
        assert!(!(leading(&a) && leading(&b)), "both lead");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(leading(&a));
    assert_eq!(writes(&b), 0.0, "the second wrote");
    let lease = format!("octostage-{}", s.env.name);
    kubectl(&s.kc, &["delete", "lease", &lease, "-n", "default"]);
}

/// Forty ConfigMaps per staging, each saying `note`: a pass over ten stagings takes seconds.
fn many(s: &Setup, note: &str) {
    std::fs::write(
        s.cfg.join("t").join("many.yaml"),
        format!("{{% for i in range(40) %}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many-{{{{ i }}}}\ndata:\n  note: {note:?}\n{{% endfor %}}\n"),
    )
    .unwrap();
}

/// Every ConfigMap `many-*` of this environment: (namespace, note).
fn notes(s: &Setup) -> Vec<(String, String)> {
    let sel = format!("octostage.dev/environment={}", s.env.name);
    let v = crate::cluster::json(&s.kc, &["get", "cm", "-A", "-l", &sel]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["metadata"]["name"].as_str().unwrap().starts_with("many-"))
        .map(|i| {
            (
                i["metadata"]["namespace"].as_str().unwrap().to_string(),
                i["data"]["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The latest time the API server recorded a write of any object of this environment
/// (managed fields), as Unix seconds.
fn last_write(s: &Setup) -> i64 {
    let sel = format!("octostage.dev/environment={}", s.env.name);
    let mut latest = 0;
    for args in [
        vec!["get", "ns", "-l", sel.as_str(), "--show-managed-fields"],
        vec![
            "get",
            "cm,deploy,svc",
            "-A",
            "-l",
            sel.as_str(),
            "--show-managed-fields",
        ],
    ] {
        let v = crate::cluster::json(&s.kc, &args);
        for item in v["items"].as_array().unwrap() {
            for m in item["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(t) = m["time"].as_str() {
                    let t = chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp();
                    latest = latest.max(t);
                }
            }
        }
    }
    latest
}

#[test]
fn a_leader_paused_past_its_lease_writes_nothing_when_it_resumes() {
    use crate::signals::signal;
    use nix::sys::signal::Signal;
    use std::time::Duration;
    let s = Setup::new(10);
    many(&s, "first");
    let lease = format!("octostage-{}", s.env.name);
    let start = |id: &str, interval: &str| {
        let extra = [
            "--interval",
            interval,
            "--concurrency",
            "1",
            "--log",
            "info",
        ];
        replica_with(&s, id, free_port(), &extra)
    };
    // A passes only when the configuration changes (it is watched), B every two seconds.
    let a = start("replica-a", "1h");
    a.wait(20, "a never led", leading);
    a.wait(60, "the stagings never appeared", |_| {
        notes(&s).len() == 400
    });
    let b = start("replica-b", "2s");
    b.wait(20, "b never finished a pass", |d| {
        get(&d.addr, "/readyz").status == 200
    });
    let f9 = format!("{}-feature-f9", s.env.name);
    let uid = |ns: &str| {
        crate::cluster::json(&s.kc, &["get", "ns", ns])["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A new note everywhere and one branch gone: A's pass has applies and a delete to do.
    let seen = a.log.lock().unwrap().len();
    s.repo.delete_branch("feature/f9");
    many(&s, "second");
    // Its first write of the new note: a smaller pass (the namespace of the deleted branch
    // noticed by the watch) may write first, and stopping after that one leaves nothing in
    // flight.
    a.wait(30, "a never started writing", |a| {
        a.log.lock().unwrap()[seen..]
            .iter()
            .any(|l| l.contains("write: ") && l.contains("ConfigMap/many-"))
    });
    signal(a.child.as_ref().unwrap(), Signal::SIGSTOP);
    let stopped = a.log.lock().unwrap().len();
    // While A sleeps, the branch comes back and the note changes again; B takes over.
    s.repo.commit("feature/f9", "back", &days_ago(0));
    many(&s, "third");
    b.wait(60, "b never took over", leading);
    b.wait(60, "b never wrote the third note everywhere", |_| {
        let n = notes(&s);
        n.len() == 400 && n.iter().all(|(_, note)| note == "third")
    });
    // B is done: no write for two of its intervals (a pass that finds nothing changed logs
    // nothing; its metrics count lease renewals).
    let quiet = std::cell::Cell::new((usize::MAX, Instant::now()));
    b.wait(30, "b kept writing", |b| {
        let log = b.log.lock().unwrap();
        let at = log.iter().rposition(|l| l.contains("write: ")).unwrap_or(0);
        if quiet.get().0 != at {
            quiet.set((at, Instant::now()));
        }
        quiet.get().1.elapsed() > Duration::from_secs(4)
    });
    let f9_uid = uid(&f9);
    std::thread::sleep(Duration::from_millis(1100));
    let resumed_at = chrono::Utc::now().timestamp();
    signal(a.child.as_ref().unwrap(), Signal::SIGCONT);
    a.wait(30, "a never noticed it lost the lease", |a| {
        a.log.lock().unwrap()[stopped..]
            .iter()
            .any(|l| l.contains("no longer leading") || l.contains("lease lapsed"))
    });
    std::thread::sleep(Duration::from_millis(300));
    // Before B's next pass could repair anything: what A wrote, if anything, is there now.
    let stale: Vec<(String, String)> = notes(&s)
        .into_iter()
        .filter(|(_, n)| n != "third")
        .collect();
    assert!(
        stale.is_empty(),
        "the old leader wrote stale content after it resumed: {stale:?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let after: Vec<String> = a.log.lock().unwrap()[stopped..].to_vec();
    let refused = metric(&a.probes, "octostage_writes_refused_total", &[]);
    println!(
        "the paused leader refused {refused} writes after it resumed; its log since:\n{}",
        after.join("\n")
    );
    assert!(
        last_write(&s) < resumed_at,
        "an object was written after the old leader resumed"
    );
    let n = notes(&s);
    assert!(
        n.len() == 400 && n.iter().all(|(_, note)| note == "third"),
        "stale content: {:?}",
        n.iter()
            .filter(|(_, note)| note != "third")
            .collect::<Vec<_>>()
    );
    let ns = crate::cluster::json(&s.kc, &["get", "ns", &f9]);
    assert_eq!(ns["metadata"]["uid"].as_str().unwrap(), f9_uid);
    assert!(
        ns["metadata"]["deletionTimestamp"].is_null(),
        "a stale delete went out"
    );
    assert!(
        refused >= 1.0,
        "the old leader had nothing in flight: the test proves nothing"
    );
    assert!(!leading(&a));
    drop(a);
    drop(b);
    kubectl(&s.kc, &["delete", "lease", &lease, "-n", "default"]);
}

/// The holder of this setup's lease, as stored.
fn holder(s: &Setup) -> Option<String> {
    let lease = format!("octostage-{}", s.env.name);
    let l = crate::cluster::json(&s.kc, &["get", "lease", &lease, "-n", "default"]);
    l["spec"]["holderIdentity"].as_str().map(str::to_string)
}

#[test]
fn a_one_off_pass_never_writes_beside_a_leading_replica() {
    let s = Setup::new(1);
    // An hour between passes: only the one-off pass could create a new branch's staging.
    let mut a = replica_with(&s, "daemon", free_port(), &["--interval", "1h"]);
    a.wait(20, "the daemon never led", leading);
    let count = || s.env.active_namespaces().len();
    a.wait(30, "the staging never appeared", |_| count() == 1);
    s.repo.commit("feature/f2", "w", &days_ago(0));
    let out = s.cmd(&["run", "--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is held by daemon_"), "{stderr}");
    assert_eq!(count(), 1, "the one-off pass wrote beside the leader");
    assert!(holder(&s).is_some_and(|h| h.starts_with("daemon_")));
    // Told to stop while it waits for the lease, it stops at once, having written nothing.
    let args = s.args(&["run", "--once"]);
    let waiting = std::process::Command::new(env!("CARGO_BIN_EXE_octostage"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let signalled = Instant::now();
    crate::signals::signal(&waiting, nix::sys::signal::Signal::SIGTERM);
    let (code, _, log) = crate::signals::finish(waiting, std::time::Duration::from_secs(10));
    assert!(
        signalled.elapsed().as_secs() < 4,
        "waited on after SIGTERM: {log}"
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("stopped while waiting for lease"), "{log}");
    assert_eq!(count(), 1, "the stopped pass wrote");
    // A stopping daemon releases the lease: the one-off pass takes it at once, writes, and
    // gives it back.
    assert_eq!(a.stop(), Some(0));
    let started = Instant::now();
    let (_, writes) = s.run();
    println!(
        "one-off pass after the daemon stopped: {:?}",
        started.elapsed()
    );
    assert!(writes > 0);
    assert_eq!(count(), 2);
    let h = holder(&s);
    assert!(
        h.as_deref().unwrap_or_default().is_empty(),
        "the one-off pass kept the lease: {h:?}"
    );
    let lease = format!("octostage-{}", s.env.name);
    kubectl(&s.kc, &["delete", "lease", &lease, "-n", "default"]);
}
