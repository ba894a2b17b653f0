//! Rendering: a staging's template context, its objects from a templates directory or a render
//! command, and the ownership labels every object gets.
//!
//! Every render is bounded: templates by fuel and the output limit, commands by a timeout over
//! the whole run and the same output limit.

mod command;
mod context;
mod explain;
mod fingerprint;
mod guard;
pub mod isolated;
mod kustomization;
mod objects;
pub mod sandbox;
pub mod sleep;
mod tools;

use std::time::Duration;

pub use crate::templating::{is_template, shell_quote, TemplateSet};
pub use command::Limits;
pub use context::{BranchContext, CommitContext, Context};
pub use fingerprint::fingerprint;
pub use objects::{collect_object, object_id, own, parse_documents, wave, Object};

use crate::config::{Config, Render, Settings};
use crate::consts;

/// How to fit a long value into a label.
fn fits(reason: &crate::naming::LabelError) -> &'static str {
    match reason {
        crate::naming::LabelError::Long(_) => "; `| dns_label` fits a value into 63 characters with a hash suffix, such as {{ (\"prefix-\" ~ staging) | dns_label }}",
        _ => "",
    }
}

/// Why a staging could not be rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// A template failed.
    #[error("{file}:{}: {message}", position(*line, *column))]
    Template {
        /// Template file, or the file that holds the inline template.
        file: String,
        /// Line in it (0 when unknown).
        line: usize,
        /// Column in it (0 when unknown).
        column: usize,
        /// What went wrong.
        message: String,
    },
    /// The namespace template gave something that is not a DNS label.
    #[error("namespace {value:?} (from template {template:?}) is not a valid DNS-1123 label: it {reason}{}", fits(reason))]
    Namespace {
        /// The template.
        template: String,
        /// What it rendered to.
        value: String,
        /// What is wrong.
        reason: crate::naming::LabelError,
    },
    /// Rendered output is not valid YAML.
    #[error("{source_name} produced invalid YAML: {message}")]
    Yaml {
        /// Template file or command.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A rendered object breaks a rule.
    #[error("{source_name}, object {object}: {message}")]
    Object {
        /// Template file or command.
        source_name: String,
        /// `Kind/name` or the document number.
        object: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A render command failed.
    #[error("render command `{program}` {message}{}", if stderr.is_empty() { String::new() } else { format!("; its stderr ends:\n{stderr}") })]
    Command {
        /// The program.
        program: String,
        /// What happened.
        message: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// A render command ran too long.
    #[error("{program} did not finish within {} (reading its output included) and was stopped with its whole process group (raise `render_timeout`)", humantime::format_duration(*after))]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        after: Duration,
    },
    /// The files of the application repository a render reads could not be exported.
    #[error("application repository files: {message}")]
    Export {
        /// What went wrong (no secret: URLs are redacted by the source).
        message: String,
    },
    /// Octostage is shutting down: the render command was stopped.
    #[error("rendering was stopped: octostage is shutting down")]
    Cancelled,
    /// YAML refused while it was parsed: it would cost too much (see `crate::yaml`).
    #[error("{source_name} is refused: {message}")]
    YamlBudget {
        /// Template file, command or file.
        source_name: String,
        /// Which bound, and what to do.
        message: String,
    },
    /// A render process reached its memory limit.
    #[error("{program} ran out of memory: each render process may take at most {} (`render_memory_limit`); a file it reads may be built to expand without end (a YAML alias bomb, a template that doubles a string), or the render needs a higher `render_memory_limit`{}", crate::text::bytes(*limit), if said.is_empty() { String::new() } else { format!("; it said:\n{said}") })]
    MemoryLimit {
        /// The program, or the templates.
        program: String,
        /// The limit, bytes.
        limit: u64,
        /// The first line of its stderr that speaks of memory, with the line before it: what
        /// the conclusion rests on (a program may print those words for another reason).
        said: String,
    },
    /// Rendering produced more than the limit.
    #[error("{source_name} produced more than {limit} bytes and was stopped (raise `render_output_limit`)")]
    OutputLimit {
        /// Template file or command.
        source_name: String,
        /// The limit, bytes.
        limit: u64,
    },
}

impl RenderError {
    /// A stable name of the kind of error, for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            RenderError::Template { .. } => "template",
            RenderError::Namespace { .. } => "namespace",
            RenderError::Yaml { .. } => "yaml",
            RenderError::Object { .. } => "object",
            RenderError::Command { .. } => "command",
            RenderError::Timeout { .. } => "timeout",
            RenderError::OutputLimit { .. } => "output-limit",
            RenderError::MemoryLimit { .. } => "memory-limit",
            RenderError::YamlBudget { .. } => "yaml-budget",
            RenderError::Cancelled => "cancelled",
            RenderError::Export { .. } => "export",
        }
    }
}

fn position(line: usize, column: usize) -> String {
    match (line, column) {
        (0, _) => "?".into(),
        (l, 0) => l.to_string(),
        (l, c) => format!("{l}:{c}"),
    }
}

/// The error of the inline template `text` (a namespace, value, link or argument; `what` names
/// it when the configuration did not say where it is written), at its real position.
pub(crate) fn inline_error(
    templates: &TemplateSet,
    text: &str,
    what: &str,
    e: &minijinja::Error,
    ctx: &Context,
) -> RenderError {
    let message = explain::message(
        e,
        Some(text),
        &serde_json::to_value(ctx).unwrap_or_default(),
    );
    let (line_in, col_in) = explain::line_column(e, Some(text));
    match templates.origin(text) {
        Some(o) => RenderError::Template {
            file: o.file.clone(),
            line: o.line + line_in.max(1) - 1,
            column: match (line_in, col_in) {
                (_, 0) => o.column,
                (0 | 1, c) => o.column + c - 1,
                (_, c) => c,
            },
            message,
        },
        None => RenderError::Template {
            file: format!("{} ({what})", consts::CONFIG_FILE),
            line: line_in,
            column: col_in,
            message,
        },
    }
}

/// The error of template file `name`.
fn file_error(
    templates: &TemplateSet,
    name: &str,
    e: &minijinja::Error,
    ctx: &Context,
) -> RenderError {
    let source = templates.source(name);
    let message = explain::message(
        e,
        source.as_deref(),
        &serde_json::to_value(ctx).unwrap_or_default(),
    );
    let (line, column) = explain::line_column(e, source.as_deref());
    RenderError::Template {
        file: e.name().unwrap_or(name).to_string(),
        line,
        column,
        message,
    }
}

/// Render a staging's objects: run its templates or command, parse the YAML, check every object
/// and add the ownership labels. Objects come back sorted by kind and name.
pub fn render(
    config: &Config,
    settings: &Settings,
    ctx: &Context,
    app_dir: Option<&std::path::Path>,
    cancel: Option<tokio_util::sync::CancellationToken>,
) -> Result<Vec<Object>, RenderError> {
    let limit = settings.render_output_limit;
    // One deadline for the whole render: its processes, the parse of what they print and
    // the checks of a kustomization's files share `render_timeout`.
    let limits = limits(settings, cancel);
    let outputs = match &settings.render {
        Render::Templates(dir) => render_templates(&config.templates, dir, ctx, limit)?,
        Render::AppTemplates(path) => {
            let root = tools::locate(config, crate::config::Origin::App, path, app_dir)?;
            let top = root
                .ancestors()
                .nth(std::path::Path::new(path).components().count())
                .unwrap_or(&root);
            let request = isolated::TemplatesRequest {
                root: top.to_path_buf(),
                path: path.clone(),
                context: ctx.clone(),
                output_limit: limit,
            };
            isolated::render_templates(&request, &limits)?
        }
        Render::Command(args) => {
            let argv = command_args(&config.templates, args, ctx)?;
            let out = tools::run_tool(config, settings, &argv, ctx, app_dir, &limits)?;
            vec![(format!("command `{}`", argv.join(" ")), out)]
        }
        Render::Kustomize(k) => vec![tools::kustomize(
            config, settings, k, ctx, app_dir, &limits,
        )?],
        Render::Helm(h) => vec![tools::helm(config, settings, h, ctx, app_dir, &limits)?],
    };
    let untrusted = untrusted(ctx);
    let mut objects = Vec::new();
    // One budget for the staging: its outputs together build at most so many values.
    let mut nodes_left = crate::yaml::Budget::default();
    for (source_name, text) in outputs {
        let docs = objects::parse_documents_within(&source_name, &text, &mut nodes_left)?;
        guard::intact(&source_name, &text, &docs, &untrusted)?;
        for doc in docs {
            collect_object(&source_name, doc, &ctx.namespace, &mut objects)?;
        }
    }
    sleep::leave_replicas_to_autoscalers(&mut objects);
    let mut seen = std::collections::HashSet::new();
    for o in &mut objects {
        let id = object_id(o);
        // One object is its API group, kind and name: `Certificate/x` of two groups are two.
        let group = o
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .and_then(|v| v.rsplit_once('/'))
            .map_or("", |(g, _)| g)
            .to_string();
        if !seen.insert((group, id.clone())) {
            return Err(RenderError::Object {
                source_name: "rendered output".into(),
                object: id,
                message: "appears twice; each object may be rendered once".into(),
            });
        }
        objects::own(o, ctx);
    }
    objects.sort_by_key(object_id);
    Ok(objects)
}

/// The texts of a context whoever pushes chooses: (what, text).
pub(crate) fn untrusted(ctx: &Context) -> [(&'static str, &str); 3] {
    [
        ("the branch name", ctx.branch.name.as_str()),
        ("the commit subject", ctx.commit.subject.as_str()),
        ("the commit author", ctx.commit.author.as_str()),
    ]
}

/// How a staging's render is bounded, from now: all its processes share one deadline.
pub(crate) fn limits(
    settings: &Settings,
    cancel: Option<tokio_util::sync::CancellationToken>,
) -> Limits {
    Limits {
        timeout: settings.render_timeout,
        deadline: Some(std::time::Instant::now() + settings.render_timeout),
        max_output: settings.render_output_limit,
        memory: Some(settings.render_memory_limit),
        cancel,
        network: sandbox::Network::Host,
    }
}

/// The templates under `path` of the application files exported at `top`, rendered: files of
/// a branch, so [`sandbox`] runs this in a process under the memory limit.
pub(crate) fn app_templates(
    top: &std::path::Path,
    path: &str,
    ctx: &Context,
    limit: u64,
) -> Result<Vec<(String, String)>, RenderError> {
    use crate::config::Files;
    let files = crate::config::DiskFiles(top)
        .template_files(path)
        .map_err(|e| RenderError::Template {
            file: path.to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
    let mut set = TemplateSet::default();
    if let Some((file, line, message)) = set.add_dir(path, files).into_iter().next() {
        return Err(RenderError::Template {
            file,
            line,
            column: 0,
            message,
        });
    }
    render_templates(&set, path, ctx, limit)
}

/// Every file of a templates directory rendered: (file, output), at most `limit` bytes in all.
fn render_templates(
    templates: &TemplateSet,
    dir: &str,
    ctx: &Context,
    limit: u64,
) -> Result<Vec<(String, String)>, RenderError> {
    if !templates.has_dir(dir) {
        return Err(RenderError::Template {
            file: dir.to_string(),
            line: 0,
            column: 0,
            message: "templates directory was not loaded with the configuration".into(),
        });
    }
    let view = minijinja::Value::from_serialize(ctx);
    let mut total = 0u64;
    let mut out = Vec::new();
    for name in templates.files(dir) {
        let text = templates
            .render_file(name, &view, &ctx.namespace)
            .map_err(|e| file_error(templates, name, &e, ctx))?;
        total += text.len() as u64;
        if total > limit {
            return Err(RenderError::OutputLimit {
                source_name: format!("templates {dir:?} (at {name})"),
                limit,
            });
        }
        out.push((name.clone(), text));
    }
    Ok(out)
}

/// Export the files of the application repository the settings read (none: `None`), at the
/// staging's commit, from the mirror in `cache`.
pub fn export_app(
    cache: &crate::source::RepoCache,
    config: &Config,
    environment: &str,
    settings: &Settings,
    ctx: &Context,
) -> Result<Option<std::path::PathBuf>, RenderError> {
    let paths = settings.app_export();
    if paths.is_empty() {
        return Ok(None);
    }
    let env = config
        .environment(environment)
        .ok_or_else(|| RenderError::Export {
            message: format!("no environment {environment:?}"),
        })?;
    cache
        .export(&env.repository.url, &ctx.commit.sha, &paths)
        .map(Some)
        .map_err(|e| RenderError::Export {
            message: e.to_string(),
        })
}

/// The variables a render command gets: the context, and `OCTOSTAGE_APP_DIR` when the
/// application repository was exported for it.
fn command_vars(ctx: &Context, app_dir: Option<&std::path::Path>) -> Vec<(String, String)> {
    let mut vars = ctx.env_vars();
    if let Some(d) = app_dir {
        vars.push(("OCTOSTAGE_APP_DIR".into(), d.display().to_string()));
    }
    vars
}

/// The templates a kustomize overlay or a Helm chart takes from the configuration (images,
/// patches, values, release), rendered for `ctx` without running the tool, so that
/// `validate` finds a typo in them.
pub fn tool_inputs(config: &Config, settings: &Settings, ctx: &Context) -> Result<(), RenderError> {
    match &settings.render {
        Render::Kustomize(k) => {
            tools::overlay(config, k, std::path::Path::new("base"), ctx).map(|_| ())
        }
        Render::Helm(h) => tools::helm_inputs(config, h, ctx).map(|_| ()),
        _ => Ok(()),
    }
}

/// A render command's arguments, each rendered as a template.
pub fn command_args(
    templates: &TemplateSet,
    args: &[String],
    ctx: &Context,
) -> Result<Vec<String>, RenderError> {
    let view = minijinja::Value::from_serialize(ctx);
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            templates
                .render_str(a, &view)
                .map_err(|e| inline_error(templates, a, &format!("command argument {i}"), &e, ctx))
        })
        .collect()
}
