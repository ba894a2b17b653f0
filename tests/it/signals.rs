//! Finding 9 of the hostile review: SIGTERM during the first pass killed `run` at once (the
//! handler came after the first pass), and with the kube target it panicked. Now SIGTERM or
//! SIGINT at any moment lets the stagings in flight finish (a render command in flight is
//! stopped), skips the rest, and exits 0. The kube case is in `ownership`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A config whose stagings each take about a second to render.
pub fn slow_render(d: &DirRun, branches: usize) {
    for i in 1..branches {
        d.repo.commit(&format!("feature/s{i}"), "w", &days_ago(1));
    }
    std::fs::write(
        d.cfg.join("render.sh"),
        "sleep 1\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: slow\\n'\n",
    )
    .unwrap();
    d.config("    command: [\"sh\", \"render.sh\"]\n", "");
}

pub fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Wait at most `limit` for the child; its exit code and output.
pub fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String, String) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let (o, e) = texts(&out);
            return (out.status.code(), o, e);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("no exit within {limit:?}: {:?}", texts(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_during_the_first_pass_stops_cleanly_and_the_next_run_finishes_the_job() {
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let d = DirRun::new(&days_ago(1));
        slow_render(&d, 6);
        let mut args = d.args(&["run", "--interval", "1h", "--concurrency", "1"]);
        args.extend(["--log".into(), "info".into()]);
        let child = spawn(&args);
        std::thread::sleep(Duration::from_millis(1500));
        let sent = Instant::now();
        signal(&child, sig);
        let (code, _, err) = finish(child, Duration::from_secs(10));
        assert_eq!(code, Some(0), "{sig}: {err}");
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "{sig}: {:?}",
            sent.elapsed()
        );
        assert!(!err.contains("panicked"), "{err}");
        let made = if d.out.exists() { d.stagings() } else { 0 };
        assert!(
            made < 6,
            "{sig}: the pass was not stopped ({made} stagings)"
        );
        d.run_ok(&["run", "--once"]);
        assert_eq!(d.stagings(), 6);
    }
}

#[test]
fn sigterm_during_run_once_exits_0() {
    let d = DirRun::new(&days_ago(1));
    slow_render(&d, 4);
    let child = spawn(&d.args(&["run", "--once", "--concurrency", "1"]));
    std::thread::sleep(Duration::from_millis(1200));
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, _, err) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("left for the next pass"), "{err}");
}
