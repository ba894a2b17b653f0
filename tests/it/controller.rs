//! The controller as `octostage run`: requests that arrive during a pass coalesce into one
//! more pass, SIGHUP asks for a pass, and a deadline of the plan (an expiry) wakes it long
//! before the interval.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::signals::{finish, signal, slow_render};
use crate::util::*;

/// `octostage run` with `cmd` on `d`, logging passes to stderr.
fn run_daemon(d: &DirRun, cmd: &[&str]) -> std::process::Child {
    let mut args = d.args(cmd);
    args.extend(["--log".into(), "octostage=info".into()]);
    Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `done`, failing with `what` once `secs` have passed since `start`.
fn wait_until(start: Instant, secs: u64, what: &str, done: impl Fn() -> bool) {
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(secs), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn passes(log: &str) -> usize {
    log.matches("pass finished").count()
}

#[test]
fn requests_during_a_pass_coalesce_into_one_more_pass() {
    let d = DirRun::new(&days_ago(1));
    slow_render(&d, 3);
    let child = run_daemon(&d, &["run", "--interval", "1h", "--concurrency", "1"]);
    // The first pass takes about three seconds; during it, ten changes and five SIGHUPs.
    std::thread::sleep(Duration::from_millis(700));
    for i in 0..10 {
        std::fs::write(d.cfg.join(format!("note-{i}.txt")), "x").unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..5 {
        signal(&child, nix::sys::signal::Signal::SIGHUP);
    }
    // Both passes are done well before this; the interval is an hour.
    std::thread::sleep(Duration::from_secs(9));
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, _, log) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        passes(&log),
        2,
        "the start-up pass and one coalesced pass:\n{log}"
    );
    assert!(log.contains("requests coalesced into one pass"), "{log}");
}

#[test]
fn sighup_asks_for_a_pass_at_once() {
    let d = DirRun::new(&days_ago(1));
    let child = run_daemon(&d, &["run", "--interval", "1h"]);
    std::thread::sleep(Duration::from_millis(1500));
    d.repo.commit("feature/late", "w", &days_ago(0));
    signal(&child, nix::sys::signal::Signal::SIGHUP);
    let start = Instant::now();
    wait_until(start, 10, "no pass after SIGHUP", || {
        d.out.join("app-feature-late").is_dir()
    });
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, _, log) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(log.contains("trigger=manual"), "{log}");
}

#[test]
fn an_expiry_wakes_the_controller_before_the_interval() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/brief", "w", &days_ago(0));
    d.config(
        "    overrides:\n      feature/brief:\n        ttl: 3s\n",
        "",
    );
    let child = run_daemon(&d, &["run", "--interval", "1h"]);
    let staging = d.out.join("app-feature-brief");
    let start = Instant::now();
    // The folder appears a moment before its status file: wait for the file, else the next
    // wait could see "no status file" before the staging was even written.
    wait_until(start, 10, "never created", || {
        staging.join("octostage-status.yaml").exists()
    });
    wait_until(start, 15, "not deleted at its deadline", || {
        !staging.join("octostage-status.yaml").exists()
    });
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, _, log) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(log.contains("trigger=deadline"), "{log}");
    assert!(d.out.join("app-main").is_dir());
}
