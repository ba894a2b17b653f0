//! `octostage run` as a service: a pass at start, a pass when a file of the config directory
//! changes (long before the interval), and a clean exit on SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn template(cfg: &Path, name: &str) {
    std::fs::write(
        cfg.join(format!("t/{name}.yaml")),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"),
    )
    .unwrap();
}

#[test]
fn a_config_change_triggers_a_pass_and_sigterm_stops_the_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(&tmp.path().join("app"), &days_ago(1));
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(cfg.join("t")).unwrap();
    template(&cfg, "first");
    std::fs::write(
        cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    templates: t\n",
            repo.path.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .args([
            "run",
            "--interval",
            "1h",
            "--config",
            cfg.to_str().unwrap(),
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
        ])
        .arg("--target")
        .arg(format!("dir:{}", out.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging = out.join("app-main");
    wait_for("the first pass", Duration::from_secs(20), || {
        staging.join("configmap-first.yaml").is_file()
    });
    template(&cfg, "second");
    wait_for(
        "a pass after the file change",
        Duration::from_secs(20),
        || staging.join("configmap-second.yaml").is_file(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
