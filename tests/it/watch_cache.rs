//! The live view of `octostage run` on the real API server: once its watches have listed, a
//! pass that changes nothing sends no request at all, and what someone does by hand (an object
//! deleted, a namespace created in a staging's way) reaches the next pass through the watch,
//! without a listing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{json, kubectl, Setup};
use crate::ownership::{untouched, HandMade};
use crate::signals::{finish, signal};
use crate::util::*;

/// `octostage run` with a long interval: passes come only at start-up and on SIGHUP.
struct Running {
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

/// A `pass finished` line's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pass {
    writes: u64,
    requests: u64,
    failures: u64,
}

fn field(line: &str, name: &str) -> u64 {
    line.split(&format!(" {name}="))
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

impl Running {
    fn start(s: &Setup) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_octostage"))
            .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
            .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
            .args(["run", "--interval", "1h", "--log", "octostage=info"])
            .args(["--instance", &s.env.name, "--target", &s.target])
            .arg("--config")
            .arg(&s.cfg)
            .arg("--cache-dir")
            .arg(&s.cache)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (err, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child: Some(child),
            log,
        }
    }

    fn passes(&self) -> Vec<Pass> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("octostage::pass: pass finished"))
            .map(|l| Pass {
                writes: field(l, "writes"),
                requests: field(l, "requests"),
                failures: field(l, "failures"),
            })
            .collect()
    }

    fn wait_for_pass(&self, n: usize) -> Pass {
        let start = Instant::now();
        loop {
            if let Some(p) = self.passes().get(n - 1) {
                return *p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no pass {n}:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ask for one more pass and wait for it.
    fn pass(&self) -> Pass {
        let n = self.passes().len();
        signal(
            self.child.as_ref().unwrap(),
            nix::sys::signal::Signal::SIGHUP,
        );
        self.wait_for_pass(n + 1)
    }

    /// Passes until one sends no request (the watches have listed); at most ten.
    fn settle(&self) {
        for _ in 0..10 {
            let p = self.pass();
            if p.requests == 0 {
                assert_eq!(p.writes, 0);
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "every pass still sent requests:\n{}",
            self.log.lock().unwrap().join("\n")
        );
    }

    fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        signal(&child, nix::sys::signal::Signal::SIGTERM);
        let (code, _, _) = finish(child, Duration::from_secs(20));
        let log = self.log.lock().unwrap().join("\n");
        assert_eq!(code, Some(0), "{log}");
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_pass_that_changes_nothing_sends_no_request_and_a_hand_deleted_object_comes_back_without_a_listing(
) {
    let s = Setup::new(3);
    let r = Running::start(&s);
    let first = r.wait_for_pass(1);
    assert_eq!(first.writes, 3 * 5, "three stagings of four objects");
    r.settle();
    // Several more: still nothing.
    for _ in 0..3 {
        let p = r.pass();
        assert_eq!((p.requests, p.writes), (0, 0), "{p:?}");
    }
    let ns = format!("{}-main", s.env.name);
    kubectl(&s.kc, &["-n", &ns, "delete", "configmap", "settings"]);
    // The watch delivers the deletion in milliseconds; a pass may still come first. Every pass
    // sends only its writes: nothing is listed again.
    let start = Instant::now();
    loop {
        let p = r.pass();
        assert_eq!(p.requests, p.writes, "a pass listed: {p:?}");
        if p.writes == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never recreated");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cm = json(&s.kc, &["-n", &ns, "get", "configmap", "settings"]);
    assert_eq!(cm["data"]["branch"], "main");
    // And the write reached the cache: the next pass is quiet again.
    let p = r.pass();
    assert_eq!((p.requests, p.writes), (0, 0), "{p:?}");
    let log = r.stop();
    assert!(!log.contains("watch failed"), "{log}");
}

#[test]
fn a_namespace_made_by_hand_in_a_stagings_way_is_seen_without_a_listing_and_left_alone() {
    let s = Setup::new(1);
    let r = Running::start(&s);
    r.wait_for_pass(1);
    r.settle();
    let mut hand = HandMade::new(&s.kc);
    let z = format!("{}-feature-z", s.env.name);
    hand.namespace(&z);
    s.repo.commit("feature/z", "w", &days_ago(0));
    // Until the watch has delivered the namespace a pass would try to create it, and be
    // refused by the API server; once delivered, the plan refuses it with no request. The
    // namespace's own watch event may ask for a pass before the branch is listed: that pass
    // knows no staging for it and fails nothing. No pass writes anything.
    let start = Instant::now();
    loop {
        let p = r.pass();
        assert_eq!(p.writes, 0, "{p:?}");
        assert!(p.failures <= 1, "{p:?}");
        if p.failures == 1 && p.requests == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never seen: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    untouched(&s.kc, &z);
    let log = r.stop();
    // Told once, not at every pass.
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("staging refused by the plan"))
        .collect();
    assert_eq!(told.len(), 1, "{log}");
    assert!(
        told[0].contains("exists and octostage did not create it"),
        "{log}"
    );
}

/// A staging whose render inputs did not change is not rendered again; everything that can
/// change what it should hold still reaches it: a template, a new commit, a field changed by
/// hand (drift), an object added by hand with octostage's labels.
#[test]
fn skipping_unchanged_stagings_misses_no_template_commit_or_drift() {
    let s = Setup::new(2);
    let r = Running::start(&s);
    r.wait_for_pass(1);
    r.settle();
    let ns = format!("{}-main", s.env.name);
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never: {what}\n{}",
                r.log.lock().unwrap().join("\n")
            );
            r.pass();
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    crate::cluster::write_templates(&s.cfg, true, "second");
    until("the template change", &|| {
        json(&s.kc, &["-n", &ns, "get", "configmap", "settings"])["data"]["note"] == "second"
    });
    let sha = s.repo.commit("main", "next", &days_ago(0));
    until("the new commit", &|| {
        json(&s.kc, &["-n", &ns, "get", "deployment", "web"])["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(&sha[..7]))
    });
    r.settle();
    kubectl(
        &s.kc,
        &["-n", &ns, "set", "image", "deployment/web", "web=evil:1"],
    );
    until("the drift restored", &|| {
        json(&s.kc, &["-n", &ns, "get", "deployment", "web"])["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(&sha[..7]))
    });
    r.settle();
    r.stop();
}

/// What someone else does to one staging reaches a pass of its own through the watch: that
/// pass looks at that staging and not at the others (the plan stays whole; they are not
/// rendered, compared or written) and sends only its write.
#[test]
fn a_change_in_the_cluster_is_looked_at_alone_without_a_listing() {
    let s = Setup::new(3);
    let r = Running::start(&s);
    r.wait_for_pass(1);
    // Every staging healthy and recorded so, so that no readiness changes with the deletion.
    s.deployments_ready();
    r.settle();
    let seen = r.log.lock().unwrap().len();
    let ns = format!("{}-main", s.env.name);
    kubectl(&s.kc, &["-n", &ns, "delete", "configmap", "settings"]);
    // No SIGHUP and an interval of an hour: only the watch can ask for this pass.
    let start = Instant::now();
    let line = loop {
        let found = r.log.lock().unwrap()[seen..]
            .iter()
            .find(|l| l.contains("octostage::pass: pass finished") && field(l, "writes") == 1)
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never recreated:\n{}",
            r.log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(line.contains("trigger=target changed"), "{line}");
    // Not every staging: the one changed, and at most another whose workload's readiness
    // changed at the same time.
    assert!(field(&line, "looked_at") < 3, "{line}");
    assert_eq!(field(&line, "stagings"), 3, "{line}");
    assert_eq!(field(&line, "requests"), 1, "{line}");
    let cm = json(&s.kc, &["-n", &ns, "get", "configmap", "settings"]);
    assert_eq!(cm["data"]["branch"], "main");
    // Every pass the cluster asked for looked at fewer stagings than there are.
    for l in r.log.lock().unwrap()[seen..]
        .iter()
        .filter(|l| l.contains("trigger=target changed") && l.contains("pass finished"))
    {
        assert!(field(l, "looked_at") < 3, "{l}");
    }
    r.stop();
}
