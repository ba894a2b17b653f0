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
//!
//! Templates from the application repository are rendered the same way: in a child process
//! (`octostage internal-render-templates`), under the limit, the request on its stdin and the
//! result as JSON on its stdout. So is the YAML every render prints (`octostage
//! internal-parse-yaml`): serde_yaml spends time quadratic in the nesting of flow collections
//! and re-reads an aliased scalar at every use, and no count made before parsing bounds every
//! way to make it slow; in a child, the render's time and memory limits bound it, and octostage
//! reads back JSON, which costs it linear time and no aliases.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{Context, RenderError};

/// The octostage executable that runs render processes under a limit; unset, renders run
/// without one (a library used without the binary, its unit tests).
static EXECUTABLE: OnceLock<PathBuf> = OnceLock::new();

/// Most bytes of a templates request read from stdin: the context is values, links and
/// commit data, far below this.
const MAX_REQUEST: u64 = 16 << 20;
/// Most bytes of YAML a parsing child reads: more than any `render_output_limit` lets through.
const MAX_YAML: u64 = 4 << 30;

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

/// Longest a child may take to parse one render's YAML (at most `render_timeout`): 32 MiB of
/// manifests parse in about two seconds.
const PARSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// What a YAML child answers.
#[derive(Debug, Serialize, Deserialize)]
enum YamlAnswer {
    /// The documents, and what is left of the budget.
    Parsed {
        docs: Vec<serde_json::Value>,
        left: crate::yaml_budget::Budget,
    },
    /// Why not: the YAML's own error.
    Failed(String),
    /// Why not: the budget's.
    OverBudget(String),
}

/// `octostage internal-parse-yaml NODES TEXT`: parse the YAML on stdin within a budget of
/// NODES nodes and TEXT bytes and print the documents as JSON.
pub fn serve_yaml(
    nodes: u64,
    text: u64,
    stdin: impl Read,
    stdout: impl std::io::Write,
) -> Result<(), SandboxError> {
    let input = read_bounded(stdin, MAX_YAML)?;
    let input = String::from_utf8_lossy(&input);
    let mut left = crate::yaml_budget::Budget { nodes, text };
    let answer = match super::objects::parse_documents_within("", &input, &mut left) {
        Ok(docs) => YamlAnswer::Parsed { docs, left },
        Err(RenderError::Yaml { message, .. }) => YamlAnswer::Failed(message),
        Err(RenderError::YamlBudget { message, .. }) => YamlAnswer::OverBudget(message),
        Err(e) => YamlAnswer::Failed(e.to_string()),
    };
    write_answer(stdout, &answer)
}

/// The documents of `text` (printed by a render: `source_name`), within what is `left` of the
/// staging's budget, parsed in a child under `limits` (at most [`PARSE_TIMEOUT`]); in this
/// process when limits are not enabled.
pub(crate) fn parse_yaml(
    source_name: &str,
    text: &str,
    left: &mut crate::yaml_budget::Budget,
    limits: &super::Limits,
) -> Result<Vec<serde_json::Value>, RenderError> {
    let Some(exe) = EXECUTABLE.get() else {
        return super::objects::parse_documents_within(source_name, text, left);
    };
    let argv = vec![
        exe.display().to_string(),
        "internal-parse-yaml".into(),
        left.nodes.to_string(),
        left.text.to_string(),
    ];
    // The documents hold at most the budget's text, each byte escaped in at most six, and its
    // nodes, each a few bytes of JSON.
    let child_limits = super::Limits {
        timeout: limits.timeout.min(PARSE_TIMEOUT),
        max_output: left
            .text
            .saturating_mul(6)
            .saturating_add(left.nodes.saturating_mul(64))
            .saturating_add(1 << 20),
        ..limits.clone()
    };
    let what = format!("parsing the YAML of {source_name}");
    let out = super::command::run_with_input(
        &argv,
        Path::new("/"),
        &[],
        &[],
        text.as_bytes(),
        &child_limits,
    )
    .map_err(|e| renamed(e, &what))?;
    match serde_json::from_str(&out) {
        Ok(YamlAnswer::Parsed { docs, left: l }) => {
            *left = l;
            Ok(docs)
        }
        Ok(YamlAnswer::Failed(message)) => Err(RenderError::Yaml {
            source_name: source_name.to_string(),
            message,
        }),
        Ok(YamlAnswer::OverBudget(message)) => Err(RenderError::YamlBudget {
            source_name: source_name.to_string(),
            message,
        }),
        Err(e) => Err(RenderError::Yaml {
            source_name: source_name.to_string(),
            message: format!("the parsing process answered something unreadable: {e}"),
        }),
    }
}

/// An error of a child named for what it did, not for the octostage binary it runs.
fn renamed(e: RenderError, what: &str) -> RenderError {
    match e {
        RenderError::MemoryLimit { limit, said, .. } => RenderError::MemoryLimit {
            program: what.to_string(),
            limit,
            said,
        },
        RenderError::Timeout { after, .. } => RenderError::Timeout {
            program: what.to_string(),
            after,
        },
        RenderError::Command {
            message, stderr, ..
        } => RenderError::Command {
            program: format!("octostage ({what})"),
            message,
            stderr,
        },
        other => other,
    }
}

/// What a child renders: the templates under `path` of the exported application files at
/// `root`, with `context`, at most `output_limit` bytes in all.
#[derive(Debug, Serialize, Deserialize)]
pub struct TemplatesRequest {
    /// The export's root (the application repository's top).
    pub root: PathBuf,
    /// The templates directory inside it.
    pub path: String,
    /// The staging's context.
    pub context: Context,
    /// Most bytes of output.
    pub output_limit: u64,
}

/// What the child answers.
#[derive(Debug, Serialize, Deserialize)]
enum TemplatesAnswer {
    /// (file, output) of each template.
    Rendered(Vec<(String, String)>),
    /// A template error, with its position.
    Failed {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// More output than the limit.
    TooLarge { source_name: String, limit: u64 },
    /// Any other render error, as text.
    Other(String),
}

/// `octostage internal-render-templates`: read a [`TemplatesRequest`] from stdin, render, and
/// print the answer as JSON. The limit was set by the `internal-limit-memory` it runs under.
pub fn serve_templates(stdin: impl Read, stdout: impl std::io::Write) -> Result<(), SandboxError> {
    let text = read_bounded(stdin, MAX_REQUEST)?;
    let request: TemplatesRequest =
        serde_json::from_slice(&text).map_err(|e| SandboxError::Request(e.to_string()))?;
    let answer = match super::app_templates(
        &request.root,
        &request.path,
        &request.context,
        request.output_limit,
    ) {
        Ok(files) => TemplatesAnswer::Rendered(files),
        Err(RenderError::Template {
            file,
            line,
            column,
            message,
        }) => TemplatesAnswer::Failed {
            file,
            line,
            column,
            message,
        },
        Err(RenderError::OutputLimit { source_name, limit }) => {
            TemplatesAnswer::TooLarge { source_name, limit }
        }
        Err(e) => TemplatesAnswer::Other(e.to_string()),
    };
    write_answer(stdout, &answer)
}

/// At most `max` bytes of a child's stdin.
fn read_bounded(stdin: impl Read, max: u64) -> Result<Vec<u8>, SandboxError> {
    let mut out = Vec::new();
    stdin
        .take(max)
        .read_to_end(&mut out)
        .map_err(|e| SandboxError::Request(e.to_string()))?;
    Ok(out)
}

/// A child's answer, as JSON on its stdout.
fn write_answer(
    mut stdout: impl std::io::Write,
    answer: &impl Serialize,
) -> Result<(), SandboxError> {
    serde_json::to_writer(&mut stdout, answer).map_err(|e| SandboxError::Request(e.to_string()))?;
    stdout
        .flush()
        .map_err(|e| SandboxError::Request(e.to_string()))
}

/// Render the templates of `request` in a child process under `limits` (the memory limit
/// included); in this process when limits are not enabled.
pub(crate) fn render_templates(
    request: &TemplatesRequest,
    limits: &super::Limits,
) -> Result<Vec<(String, String)>, RenderError> {
    let Some(exe) = EXECUTABLE.get() else {
        return super::app_templates(
            &request.root,
            &request.path,
            &request.context,
            request.output_limit,
        );
    };
    let input = serde_json::to_vec(request).map_err(|e| RenderError::Export {
        message: format!("cannot write the templates request: {e}"),
    })?;
    let argv = vec![
        exe.display().to_string(),
        "internal-render-templates".into(),
    ];
    // JSON escapes at most six bytes for one (a control character), and the answer holds
    // the file names too.
    let child_limits = super::Limits {
        max_output: request
            .output_limit
            .saturating_mul(6)
            .saturating_add(1 << 20),
        ..limits.clone()
    };
    let out = super::command::run_with_input(&argv, &request.root, &[], &[], &input, &child_limits)
        .map_err(|e| match e {
            // Rust aborts a thread that runs out of stack; only values nested a great many
            // levels deep (lists built inside lists in a loop) take a template that far.
            RenderError::Command { stderr, .. } if stderr.contains("has overflowed its stack") => {
                RenderError::Template {
                    file: request.path.clone(),
                    line: 0,
                    column: 0,
                    message: "the template process overflowed its stack: a value is nested too deep (lists built inside lists in a loop, through a `namespace()`); nest less".into(),
                }
            }
            e => renamed(e, &format!("templates {:?}", request.path)),
        })?;
    match serde_json::from_str(&out) {
        Ok(TemplatesAnswer::Rendered(files)) => Ok(files),
        Ok(TemplatesAnswer::Failed {
            file,
            line,
            column,
            message,
        }) => Err(RenderError::Template {
            file,
            line,
            column,
            message,
        }),
        Ok(TemplatesAnswer::TooLarge { source_name, limit }) => {
            Err(RenderError::OutputLimit { source_name, limit })
        }
        Ok(TemplatesAnswer::Other(message)) => Err(RenderError::Template {
            file: request.path.clone(),
            line: 0,
            column: 0,
            message,
        }),
        Err(e) => Err(RenderError::Template {
            file: request.path.clone(),
            line: 0,
            column: 0,
            message: format!("the template process answered something unreadable: {e}"),
        }),
    }
}
