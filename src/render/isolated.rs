//! Work on untrusted input done in a child process under the sandbox's limits.
//!
//! Templates from the application repository are rendered under the sandbox's memory limit: in a child process
//! (`octostage internal-render-templates`), under the limit, the request on its stdin and the
//! result as JSON on its stdout. So is the YAML every render prints (`octostage
//! internal-parse-yaml`): serde_yaml spends time quadratic in the nesting of flow collections
//! and re-reads an aliased scalar at every use, and no count made before parsing bounds every
//! way to make it slow; in a child, the render's time and memory limits bound it, and octostage
//! reads back JSON, which costs it linear time and no aliases.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sandbox::SandboxError;
use super::{Context, RenderError};

/// Most bytes of a templates request read from stdin: the context is values, links and
/// commit data, far below this.
const MAX_REQUEST: u64 = 16 << 20;
/// Most bytes of YAML a parsing child reads: more than any `render_output_limit` lets through.
const MAX_YAML: u64 = 4 << 30;

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
    let Some(exe) = super::sandbox::executable() else {
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
