//! Work on untrusted input done in a child process under the sandbox's limits.
//!
//! Templates from the application repository are rendered under the sandbox's memory limit: in a child process
//! (`octostage internal-render-templates`), under the limit, the request on its stdin and the
//! result as JSON on its stdout. The YAML a render prints is parsed in octostage's own process:
//! [`crate::yaml`] bounds it while it reads (its module says how, and what was measured).

use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::sandbox::SandboxError;
use super::{Context, RenderError};

/// Most bytes of a templates request read from stdin: the context is values, links and
/// commit data, far below this.
const MAX_REQUEST: u64 = 16 << 20;

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
    let Some(exe) = super::sandbox::executable() else {
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
