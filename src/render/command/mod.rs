//! Render commands: a program that prints multi-document YAML, run in its own process group
//! with an explicit environment, a time limit over the whole run (reading its output included),
//! and a cap on what it may print.
//!
//! With a memory limit, the program runs under it through [`super::sandbox`].
//!
//! Once the program exits, or the time is up, or it prints too much, its whole process group
//! is killed: a background child that keeps the output pipe open cannot hold a pass, and none
//! outlives the render.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::RenderError;

/// Most of stderr kept for an error message: its start (where a crashing program says why) and
/// its end (where most programs explain themselves).
const STDERR_HEAD: usize = 1024;
const STDERR_TAIL: usize = 4096;
/// How often the program is checked for having exited while its output is read.
const POLL: Duration = Duration::from_millis(20);

/// How a render command is bounded.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole run, from start to the last byte read.
    pub timeout: Duration,
    /// When the whole render this run is part of must be done (`None`: only `timeout`).
    pub deadline: Option<Instant>,
    /// Most bytes of stdout.
    pub max_output: u64,
    /// Most memory of each of its processes, bytes (when limits are enabled, see
    /// [`super::sandbox`]).
    pub memory: Option<u64>,
    /// Stop early (octostage is shutting down).
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Its network (with the memory limit: both are set by the octostage binary it starts
    /// through).
    pub network: super::sandbox::Network,
}

/// Kills the process group when dropped, unless the group was already dealt with: every way out
/// of [`run`] (an error, a panic) leaves no process behind.
struct Group {
    pgid: Pid,
    armed: bool,
}

impl Group {
    fn kill(&mut self) {
        if self.armed {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Event {
    Stdout(std::io::Result<Vec<u8>>),
    Overflow,
    Stderr(Vec<u8>),
}

/// Run `argv` in `cwd` with the variables of octostage named by `pass_env` (when set) and
/// `vars`; its stdout on success.
pub fn run(
    argv: &[String],
    cwd: &Path,
    pass_env: &[&str],
    vars: &[(String, String)],
    limits: &Limits,
) -> Result<String, RenderError> {
    run_with_input(argv, cwd, pass_env, vars, &[], limits)
}

/// [`run`], with `input` on the program's stdin (none: stdin is `/dev/null`).
pub fn run_with_input(
    argv: &[String],
    cwd: &Path,
    pass_env: &[&str],
    vars: &[(String, String)],
    input: &[u8],
    limits: &Limits,
) -> Result<String, RenderError> {
    let program = argv.first().cloned().unwrap_or_default();
    let argv = match limits.memory {
        Some(bytes) if !argv.is_empty() => super::sandbox::wrap(argv, bytes, limits.network),
        _ => argv.to_vec(),
    };
    let fail = |message: String, stderr: String| RenderError::Command {
        program: program.clone(),
        message,
        stderr,
    };
    let own = Instant::now() + limits.timeout;
    let deadline = limits.deadline.map_or(own, |d| d.min(own));
    let mut child = spawn(&argv, cwd, pass_env, vars, !input.is_empty()).map_err(|e| {
        fail(
            format!("cannot start it in {}: {e}", cwd.display()),
            String::new(),
        )
    })?;
    let mut group = Group {
        pgid: Pid::from_raw(child.id() as i32),
        armed: true,
    };
    feed(&mut child, input);
    let events = read_output(&mut child, limits.max_output);
    let (stdout, stderr) = collect(&mut child, &mut group, &events, deadline, limits, &program)?;
    let status = child
        .wait()
        .map_err(|e| fail(format!("waiting for it failed: {e}"), String::new()))?;
    group.armed = false;
    let tail = String::from_utf8_lossy(&stderr).trim().to_string();
    let stdout =
        stdout.map_err(|e| fail(format!("reading its output failed: {e}"), tail.clone()))?;
    if !status.success() {
        if let (Some(limit), Some(said)) = (limits.memory, out_of_memory(&status, &tail)) {
            return Err(RenderError::MemoryLimit {
                program: format!("render command `{program}`"),
                limit,
                said,
            });
        }
        return Err(fail(format!("exited with {status}"), tail));
    }
    String::from_utf8(stdout).map_err(|_| fail("printed output that is not UTF-8".into(), tail))
}

/// Start the program with only the environment given, in a process group of its own (so
/// everything it starts can be stopped at once).
fn spawn(
    argv: &[String],
    cwd: &Path,
    pass_env: &[&str],
    vars: &[(String, String)],
    input: bool,
) -> std::io::Result<Child> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the command is empty",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .stdin(if input { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for name in pass_env {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
}

/// Write `input` to the program's stdin on a thread of its own, then close it: a program that
/// does not read cannot stall the render (the write fails once its group is stopped).
fn feed(child: &mut Child, input: &[u8]) {
    use std::io::Write;
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
}

/// Whether a program that failed says it ran out of memory, the way Go, Rust, C, Python,
/// Perl, Java and shells do: the line that says so, with the line before it (a crash's first
/// line names what it was doing). Words alone prove little, so the error shows these lines.
fn out_of_memory(status: &std::process::ExitStatus, stderr: &str) -> Option<String> {
    const SAID: &[&str] = &[
        "out of memory",
        "cannot allocate",
        "memory allocation of",
        "memory exhausted",
        "memoryerror",
        "bad_alloc",
        "not enough space",
        // Go under RLIMIT_DATA, when reserving address space fails before any allocation.
        "cannot reserve arena",
        "cannot map pages in arena",
    ];
    if status.success() {
        return None;
    }
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines.iter().position(|l| {
        let l = l.to_lowercase();
        SAID.iter().any(|s| l.contains(s))
    })?;
    let said: Vec<String> = lines[at.saturating_sub(1)..=at]
        .iter()
        .map(|l| crate::text::printable(l.trim()).chars().take(300).collect())
        .collect();
    Some(said.join("\n"))
}

/// Read stdout (at most `max` bytes) and the tail of stderr on threads of their own, so a
/// program that fills one pipe while octostage waits on the other cannot stall.
fn read_output(child: &mut Child, max: u64) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        // Room for exactly the limit and one byte more: growing by doubling would hold the old
        // and the new buffer at once near the limit (three times the limit resident).
        let mut buf = Vec::with_capacity(
            usize::try_from(max)
                .unwrap_or(usize::MAX / 2)
                .saturating_add(1)
                .min(1 << 30),
        );
        let r = out.take(max + 1).read_to_end(&mut buf);
        let _ = out_tx.send(match r {
            Ok(_) if buf.len() as u64 > max => Event::Overflow,
            Ok(_) => Event::Stdout(Ok(buf)),
            Err(e) => Event::Stdout(Err(e)),
        });
    });
    std::thread::spawn(move || {
        let _ = tx.send(Event::Stderr(tail(err)));
    });
    rx
}

/// Wait for both outputs to end and the program to exit, within the deadline; stops the group
/// as soon as the program is done, and on every way out but success.
fn collect(
    child: &mut Child,
    group: &mut Group,
    events: &mpsc::Receiver<Event>,
    deadline: Instant,
    limits: &Limits,
    program: &str,
) -> Result<(std::io::Result<Vec<u8>>, Vec<u8>), RenderError> {
    let pid = group.pgid;
    let stop = |child: &mut Child, group: &mut Group| {
        group.kill();
        let status = child.wait();
        group.armed = false;
        status
    };
    let (mut stdout, mut stderr, mut exited) = (None, None, false);
    while stdout.is_none() || stderr.is_none() || !exited {
        if !exited && leader_exited(pid) {
            // The program is done (and not yet reaped, so its group id cannot be reused):
            // whatever it left running goes now.
            exited = true;
            group.kill();
        }
        let now = Instant::now();
        if limits.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            let _ = stop(child, group);
            return Err(RenderError::Cancelled);
        }
        if now >= deadline {
            let status = stop(child, group);
            return Err(if exited {
                left_the_group(program, status, limits.timeout)
            } else {
                RenderError::Timeout {
                    program: format!("render command `{program}`"),
                    after: limits.timeout,
                }
            });
        }
        match events.recv_timeout(POLL.min(deadline - now)) {
            Ok(Event::Stdout(r)) => stdout = Some(r),
            Ok(Event::Stderr(t)) => stderr = Some(t),
            Ok(Event::Overflow) => {
                let _ = stop(child, group);
                return Err(RenderError::OutputLimit {
                    source_name: format!("render command `{program}`"),
                    limit: limits.max_output,
                });
            }
            Err(_) => {}
        }
    }
    Ok((
        stdout.unwrap_or_else(|| Ok(Vec::new())),
        stderr.unwrap_or_default(),
    ))
}

/// The program exited, its group is gone, yet the output stayed open: a process that left the
/// group (setsid) holds it, and octostage cannot stop what left.
fn left_the_group(
    program: &str,
    status: std::io::Result<std::process::ExitStatus>,
    timeout: Duration,
) -> RenderError {
    RenderError::Command {
        program: program.to_string(),
        message: format!(
            "exited ({}), but a process it started outside its process group kept its output open past render_timeout ({}); that process was not stopped",
            status.map(|s| s.to_string()).unwrap_or_default(),
            humantime::format_duration(timeout)
        ),
        stderr: String::new(),
    }
}

/// Whether the process has exited, without reaping it.
fn leader_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
}

/// The first [`STDERR_HEAD`] and last [`STDERR_TAIL`] bytes of `r`, with a mark between
/// them when something was skipped, read to the end in constant memory: Go and Rust programs
/// say why they died first and dump their threads after.
fn tail(mut r: impl Read) -> Vec<u8> {
    let mut head: Vec<u8> = Vec::with_capacity(STDERR_HEAD);
    let mut keep: Vec<u8> = Vec::with_capacity(2 * STDERR_TAIL);
    let mut skipped = false;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut rest = &buf[..n];
                if head.len() < STDERR_HEAD {
                    let take = rest.len().min(STDERR_HEAD - head.len());
                    head.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
                keep.extend_from_slice(rest);
                if keep.len() > 2 * STDERR_TAIL {
                    keep.drain(..keep.len() - STDERR_TAIL);
                    skipped = true;
                }
            }
        }
    }
    if keep.len() > STDERR_TAIL {
        keep.drain(..keep.len() - STDERR_TAIL);
        skipped = true;
    }
    if skipped {
        head.extend_from_slice(b"\n[...]\n");
    }
    head.extend_from_slice(&keep);
    head
}

#[cfg(test)]
mod tests;
