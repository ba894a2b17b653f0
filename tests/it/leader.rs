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
        .map(|v| metric(&d.addr, "octostage_kube_requests_total", &[("verb", v)]))
        .sum()
}

fn replica(s: &Setup, id: &str, port: u16) -> Daemon {
    let mut args = s.args(&["run", "--interval", "2s", "--identity", id]);
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
    metric(&d.addr, "octostage_leader", &[]) == 1.0
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
    assert_eq!(api["leadership"]["leader"], "replica-a", "{api}");
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
