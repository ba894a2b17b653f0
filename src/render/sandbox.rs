//! Memory limits for renders that read untrusted files.
//!
//! Time and output are bounded by [`super::command`], but a file from a branch can also make a
//! renderer allocate without end: a YAML alias bomb of a kilobyte takes kubectl to gigabytes, a
//! template macro that doubles a string 31 times takes minijinja to gigabytes. Neither program
//! can bound that itself, so every render process runs under an `RLIMIT_DATA` set before it
//! starts: the octostage binary re-executes itself (`octostage internal-limit-memory`), sets
//! the limit on itself, and `exec`s the program, which keeps it. The crate forbids `unsafe`,
//! so the limit cannot be set between `fork` and `exec` in the parent; this costs one extra
//! `exec` per render.
//!
//! `RLIMIT_DATA` (the data segment and every private writable mapping, Linux 4.7 and later)
//! rather than `RLIMIT_AS`: Go programs reserve far more address space than they use, and
//! kubectl does not start under an address-space limit of 512 MiB while it renders in 64 MiB of
//! data. Each process a render starts inherits the limit (each its own).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The octostage executable that runs render processes under a limit; unset, renders run
/// without one (a library used without the binary, its unit tests).
static EXECUTABLE: OnceLock<PathBuf> = OnceLock::new();

/// The octostage executable render children run, once [`enable`]d.
pub(super) fn executable() -> Option<&'static PathBuf> {
    EXECUTABLE.get()
}

/// The network a render process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// This host's.
    #[default]
    Host,
    /// None: a network namespace of its own, no interface up (not even loopback).
    None,
}

/// What renders of branch files get (`--render-network`).
static BRANCH_NETWORK: OnceLock<Network> = OnceLock::new();

/// The network of a render that reads files of the application repository.
pub(crate) fn branch_network() -> Network {
    BRANCH_NETWORK.get().copied().unwrap_or(Network::Host)
}

/// Render processes run under a memory limit from now on, started through `exe` (the running
/// octostage binary), and those that read branch files on `branch`. `/proc/self/exe` is the
/// binary this process runs even when the file was replaced by an upgrade since, so the child
/// always speaks this version's request format.
pub fn enable(branch: Network) {
    let _ = BRANCH_NETWORK.set(branch);
    let exe = Path::new("/proc/self/exe");
    let exe = if exe.exists() {
        exe.to_path_buf()
    } else {
        match std::env::current_exe() {
            Ok(p) => p,
            Err(_) => return,
        }
    };
    let _ = EXECUTABLE.set(exe);
}

/// Whether renders run under a memory limit.
pub fn enabled() -> bool {
    EXECUTABLE.get().is_some()
}

/// `argv` started under a limit of `bytes`, on `network`: through the octostage binary when
/// enabled.
pub(crate) fn wrap(argv: &[String], bytes: u64, network: Network) -> Vec<String> {
    let Some(exe) = EXECUTABLE.get() else {
        return argv.to_vec();
    };
    let mut out = vec![
        exe.display().to_string(),
        "internal-limit-memory".into(),
        bytes.to_string(),
    ];
    if network == Network::None {
        out.push("--no-network".into());
    }
    out.push("--".into());
    out.extend(argv.iter().cloned());
    out
}

/// Errors of the limited process itself (before the program runs).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel refused the limit.
    #[error("cannot set the memory limit of {bytes} bytes: {source}")]
    Limit {
        /// The limit.
        bytes: u64,
        /// Why.
        source: nix::Error,
    },
    /// Nothing to run.
    #[error("no program to run under the memory limit")]
    NoProgram,
    /// The kernel gave no network namespace.
    #[error("cannot cut the render off the network: the kernel refused a network namespace ({source}); octostage needs CAP_SYS_ADMIN or unprivileged user namespaces (a container's seccomp profile may forbid them) to render files of a branch without network, or `--render-network host` to let such renders use this host's network")]
    Network {
        /// Why.
        source: nix::Error,
    },
    /// The program could not be started.
    #[error("cannot start `{program}`: {source}")]
    Exec {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The templates request was unreadable.
    #[error("templates request: {0}")]
    Request(String),
}

/// Limit this process's data to `bytes` (soft and hard: the program cannot raise it again).
pub fn limit_own_memory(bytes: u64) -> Result<(), SandboxError> {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_DATA, bytes, bytes)
        .map_err(|source| SandboxError::Limit { bytes, source })
}

/// Leave the network: a network namespace of this process's own, where no interface is up.
/// As root (CAP_SYS_ADMIN) directly; otherwise inside a user namespace of its own, where this
/// process keeps its user and group ids (mapped to themselves) and gains nothing outside.
/// The process must still be single-threaded (a user namespace requires it): it is, between
/// `main` and `exec`.
pub fn leave_network() -> Result<(), SandboxError> {
    use nix::sched::{unshare, CloneFlags};
    if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
        return Ok(());
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(|source| SandboxError::Network { source })?;
    let map = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| SandboxError::Network {
            source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EPERM)),
        })
    };
    map("/proc/self/setgroups", "deny".into())?;
    map("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    map("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// `octostage internal-limit-memory BYTES [--no-network] -- PROGRAM ARGS...`: limit (and
/// leave the network), then become the program. Returns only on failure.
pub fn exec_limited(bytes: u64, no_network: bool, argv: &[OsString]) -> SandboxError {
    use std::os::unix::process::CommandExt;
    if let Err(e) = limit_own_memory(bytes) {
        return e;
    }
    if no_network {
        if let Err(e) = leave_network() {
            return e;
        }
    }
    let Some((program, args)) = argv.split_first() else {
        return SandboxError::NoProgram;
    };
    let source = std::process::Command::new(program).args(args).exec();
    SandboxError::Exec {
        program: program.to_string_lossy().into_owned(),
        source,
    }
}
