//! Render commands: a program that prints multi-document YAML, run with a time limit.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use super::RenderError;

/// Most of stderr kept for an error message; the tail is where programs explain themselves.
const STDERR_TAIL: usize = 4096;

/// Run `argv` in `cwd` with extra environment `vars`; its stdout on success.
pub fn run(
    argv: &[String],
    cwd: &Path,
    vars: &[(String, String)],
    timeout: Duration,
) -> Result<String, RenderError> {
    let program = argv.first().cloned().unwrap_or_default();
    let fail = |message: String, stderr: String| RenderError::Command {
        program: program.clone(),
        message,
        stderr,
    };
    let mut child = Command::new(&program)
        .args(&argv[1..])
        .current_dir(cwd)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout stops the shell and everything it started.
        .process_group(0)
        .spawn()
        .map_err(|e| {
            fail(
                format!("cannot start it in {}: {e}", cwd.display()),
                String::new(),
            )
        })?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Err(RenderError::Timeout {
                program,
                after: timeout,
            });
        }
        Err(e) => return Err(fail(format!("waiting for it failed: {e}"), String::new())),
    };
    let stdout = out_reader
        .join()
        .expect("reader thread")
        .map_err(|e| fail(format!("reading its output failed: {e}"), String::new()))?;
    let stderr = err_reader.join().expect("reader thread");
    let stderr = String::from_utf8_lossy(&stderr);
    let tail = stderr
        .get(stderr.len().saturating_sub(STDERR_TAIL)..)
        .unwrap_or(&stderr)
        .trim()
        .to_string();
    if !status.success() {
        return Err(fail(format!("exited with {status}"), tail));
    }
    String::from_utf8(stdout).map_err(|_| fail("printed output that is not UTF-8".into(), tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn output_and_environment() {
        let out = run(
            &sh("echo \"x: $GREETING\""),
            Path::new("/"),
            &[("GREETING".into(), "hi".into())],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out, "x: hi\n");
    }

    #[test]
    fn failure_shows_stderr() {
        let e = run(
            &sh("echo 'chart not found' >&2; exit 3"),
            Path::new("/"),
            &[],
            Duration::from_secs(10),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("exit status: 3") && msg.contains("chart not found"),
            "{msg}"
        );
    }

    #[test]
    fn timeout_stops_the_whole_group() {
        let start = std::time::Instant::now();
        let e = run(
            &sh("sleep 30 & sleep 30"),
            Path::new("/"),
            &[],
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(e, RenderError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_program_is_named() {
        let e = run(
            &["no-such-program-octostage".into()],
            Path::new("/"),
            &[],
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no-such-program-octostage"));
    }
}
