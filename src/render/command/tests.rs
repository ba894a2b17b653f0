//! Tests of `command`.

use super::*;

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn limits(secs: u64) -> Limits {
    Limits {
        timeout: Duration::from_secs(secs),
        max_output: 1 << 20,
        memory: None,
        deadline: None,
        cancel: None,
        network: Default::default(),
    }
}

/// Whether the process is running (a zombie waiting for init to reap it is not).
fn alive(pid_file: &Path) -> bool {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn output_and_an_explicit_environment() {
    std::env::set_var("OCTOSTAGE_TEST_SECRET_TOKEN", "s3cr3t");
    let out = run(
        &sh("echo \"x: $GREETING ${OCTOSTAGE_TEST_SECRET_TOKEN:-unset} ${PATH:+path}\""),
        Path::new("/"),
        &["PATH"],
        &[("GREETING".into(), "hi".into())],
        &limits(10),
    )
    .unwrap();
    assert_eq!(out, "x: hi unset path\n");
}

#[test]
fn failure_shows_the_start_and_the_end_of_stderr() {
    let e = run(
        &sh("echo 'fatal: why' >&2; head -c 100000 /dev/zero | tr '\\0' a >&2; echo 'chart not found' >&2; exit 3"),
        Path::new("/"),
        &["PATH"],
        &[],
        &limits(10),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("exit status: 3")
            && msg.contains("fatal: why")
            && msg.contains("[...]")
            && msg.contains("chart not found"),
        "{msg}"
    );
    assert!(msg.len() < STDERR_HEAD + STDERR_TAIL + 500, "{}", msg.len());
}

#[test]
fn a_background_child_holding_stdout_is_killed_when_the_program_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let start = Instant::now();
    let out = run(
        &sh(&format!(
            "sleep 120 & echo $! > {}; echo 'kind: A'",
            pid.display()
        )),
        Path::new("/"),
        &["PATH"],
        &[],
        &limits(20),
    )
    .unwrap();
    assert_eq!(out, "kind: A\n");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(&pid), "the background child outlived the render");
}

#[test]
fn the_timeout_bounds_the_whole_run_and_stops_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let start = Instant::now();
    let e = run(
        &sh(&format!("sleep 30 & echo $! > {}; sleep 30", pid.display())),
        Path::new("/"),
        &["PATH"],
        &[],
        &Limits {
            timeout: Duration::from_millis(500),
            deadline: None,
            max_output: 1 << 20,
            memory: None,
            cancel: None,
            network: Default::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::Timeout { .. }), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(&pid));
}

#[test]
fn a_child_that_left_the_group_is_named_not_claimed_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("left");
    let e = run(
        // The fifo makes the shell wait until the child has left the group: without it the
        // shell can exit (and its group be stopped) before `setsid` runs, and nothing is left.
        &sh(&format!(
            "mkfifo {f}; setsid sh -c 'echo > {f}; exec sleep 5' & read _ < {f}; echo 'kind: A'",
            f = fifo.display()
        )),
        Path::new("/"),
        &["PATH"],
        &[],
        &Limits {
            timeout: Duration::from_millis(800),
            max_output: 1 << 20,
            memory: None,
            deadline: None,
            cancel: None,
            network: Default::default(),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside its process group"), "{e}");
}

#[test]
fn output_past_the_limit_fails_at_once() {
    let start = Instant::now();
    let e = run(
        &sh("yes 'kind: A'"),
        Path::new("/"),
        &["PATH"],
        &[],
        &limits(30),
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::OutputLimit { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn out_of_memory_is_read_from_what_the_program_says_and_shown() {
    use std::os::unix::process::ExitStatusExt;
    let failed = std::process::ExitStatus::from_raw(1 << 8);
    assert_eq!(
        out_of_memory(
            &failed,
            "goroutine 1\nfatal error: runtime: cannot allocate memory\n"
        ),
        Some("goroutine 1\nfatal error: runtime: cannot allocate memory".into())
    );
    assert!(out_of_memory(&failed, "Out of memory!").is_some());
    assert!(out_of_memory(&failed, "sort: memory exhausted").is_some());
    assert!(out_of_memory(&failed, "chart not found").is_none());
    assert!(out_of_memory(&std::process::ExitStatus::from_raw(0), "out of memory").is_none());
    // Words a file put there are shown with the conclusion, so a reader can tell.
    let e = run(
        &sh("echo 'error: mapping key \"out of memory\" already defined' >&2; exit 1"),
        Path::new("/"),
        &["PATH"],
        &[],
        &Limits {
            memory: Some(1 << 30),
            ..limits(10)
        },
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("it said:\nerror: mapping key \"out of memory\" already defined"),
        "{e}"
    );
}

#[test]
fn missing_program_is_named() {
    let e = run(
        &["no-such-program-octostage".into()],
        Path::new("/"),
        &["PATH"],
        &[],
        &limits(1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no-such-program-octostage"));
}
