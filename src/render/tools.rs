//! Rendering through kustomize and helm without wrapper scripts: per staging, octostage writes
//! an overlay (`kustomization.yaml` referring to the base, with the namespace, images and
//! patches rendered from the template context) or a values file into a temporary directory and
//! runs `kubectl kustomize` or `helm template` on it, under the same limits as any render
//! command. Files may come from the config repository or the application repository's export.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::kustomization::{confined, relative};
use super::{command, inline_error, Context, RenderError};
use crate::config::{Config, Helm, Kustomize, Origin, Settings};
use crate::consts;

/// Where the files of `path` are: the config repository, or the export of the application
/// repository at the staging's commit.
pub fn locate(
    config: &Config,
    from: Origin,
    path: &str,
    app_dir: Option<&Path>,
) -> Result<PathBuf, RenderError> {
    let (root, repo) = match from {
        Origin::Config => (config.root.as_path(), "config"),
        Origin::App => (
            app_dir.ok_or_else(|| missing(path, "application"))?,
            "application",
        ),
    };
    let dir = root.join(path);
    if !dir.is_dir() {
        return Err(missing(path, repo));
    }
    Ok(dir)
}

fn missing(path: &str, repo: &str) -> RenderError {
    RenderError::Template {
        file: path.to_string(),
        line: 0,
        column: 0,
        message: format!(
            "directory {path:?} does not exist in the {repo} repository at this commit"
        ),
    }
}

fn render_str(
    config: &Config,
    text: &str,
    what: &str,
    ctx: &Context,
) -> Result<String, RenderError> {
    let view = minijinja::Value::from_serialize(ctx);
    config
        .templates
        .render_str(text, &view)
        .map_err(|e| inline_error(&config.templates, text, what, &e, ctx))
}

fn work_dir() -> Result<tempfile::TempDir, RenderError> {
    tempfile::Builder::new()
        .prefix("octostage-render-")
        .tempdir()
        .map_err(|e| RenderError::Command {
            program: "octostage".into(),
            message: format!("cannot create a temporary directory: {e}"),
            stderr: String::new(),
        })
}

fn write(path: &Path, text: &str) -> Result<(), RenderError> {
    std::fs::write(path, text).map_err(|e| RenderError::Command {
        program: "octostage".into(),
        message: format!("cannot write {}: {e}", path.display()),
        stderr: String::new(),
    })
}

/// The overlay's `kustomization.yaml` for `base` (JSON is YAML: nothing a value holds can
/// change its structure).
pub fn overlay(
    config: &Config,
    k: &Kustomize,
    base: &Path,
    ctx: &Context,
) -> Result<Value, RenderError> {
    let mut images = Vec::new();
    for (i, img) in k.images.iter().enumerate() {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), img.name.clone().into());
        for (key, v) in [
            ("newName", &img.new_name),
            ("newTag", &img.new_tag),
            ("digest", &img.digest),
        ] {
            if let Some(v) = v {
                o.insert(
                    key.into(),
                    render_str(config, v, &format!("kustomize image {i}"), ctx)?.into(),
                );
            }
        }
        images.push(Value::Object(o));
    }
    let mut patches = Vec::new();
    for (i, (patch, target)) in k.patches.iter().enumerate() {
        let what = format!("kustomize patch {i}");
        let text = render_str(config, patch, &what, ctx)?;
        intact_patch(&what, &text, ctx)?;
        let mut o = serde_json::Map::new();
        o.insert("patch".into(), text.into());
        if let Some(t) = target {
            o.insert("target".into(), Value::Object(t.clone()));
        }
        patches.push(Value::Object(o));
    }
    let mut out = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base.display().to_string()],
    });
    if k.namespace {
        out["namespace"] = ctx.namespace.clone().into();
    }
    if !images.is_empty() {
        out["images"] = images.into();
    }
    if !patches.is_empty() {
        out["patches"] = patches.into();
    }
    Ok(out)
}

/// A rendered patch is YAML kustomize reads as it is: a branch name or commit subject in it
/// must have stayed inside a string, as in every rendered manifest (see `guard`).
fn intact_patch(what: &str, text: &str, ctx: &Context) -> Result<(), RenderError> {
    let doc = crate::yaml::document(text).map_err(|e| RenderError::Object {
        source_name: what.to_string(),
        object: "(patch)".into(),
        message: if e.is_budget() {
            e.to_string()
        } else {
            format!("is not YAML once rendered: {e}")
        },
    })?;
    super::guard::intact(what, text, &[doc], &super::untrusted(ctx))
}

/// Run `program` with the render command environment and limits.
pub(super) fn run_tool(
    config: &Config,
    settings: &Settings,
    argv: &[String],
    ctx: &Context,
    app_dir: Option<&Path>,
    limits: &super::Limits,
) -> Result<String, RenderError> {
    let mut pass_env: Vec<&str> = consts::RENDER_ENV_DEFAULT.to_vec();
    pass_env.extend(settings.render_env.iter().map(String::as_str));
    // Files of a branch are read: whoever pushes chooses what they make the tool fetch.
    let limits = super::Limits {
        network: match app_dir {
            Some(_) => super::sandbox::branch_network(),
            None => super::sandbox::Network::Host,
        },
        ..limits.clone()
    };
    command::run(
        argv,
        &config.root,
        &pass_env,
        &super::command_vars(ctx, app_dir),
        &limits,
    )
}

/// `kubectl kustomize` over a generated overlay.
pub fn kustomize(
    config: &Config,
    settings: &Settings,
    k: &Kustomize,
    ctx: &Context,
    app_dir: Option<&Path>,
    limits: &super::Limits,
) -> Result<(String, String), RenderError> {
    let base = locate(config, k.from, &k.path, app_dir)?;
    if let (Origin::App, Some(root)) = (k.from, app_dir) {
        confined(root)?;
    }
    let work = work_dir()?;
    // kustomize takes no absolute root: the base is named relative to the overlay.
    let kustomization = overlay(config, k, &relative(work.path(), &base), ctx)?;
    write(
        &work.path().join("kustomization.yaml"),
        &kustomization.to_string(),
    )?;
    let argv = vec![
        "kubectl".to_string(),
        "kustomize".into(),
        work.path().display().to_string(),
    ];
    let out = run_tool(config, settings, &argv, ctx, app_dir, limits)?;
    Ok((format!("kustomize {:?}", k.path), out))
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(program);
            std::fs::metadata(&f).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// The chart's values and release name, rendered for `ctx`.
pub fn helm_inputs(
    config: &Config,
    h: &Helm,
    ctx: &Context,
) -> Result<(Value, String), RenderError> {
    let mut values = Value::Object(h.values.clone());
    super::context::render_values(
        &config.templates,
        &mut values,
        &minijinja::Value::from_serialize(ctx),
        ctx,
    )?;
    let release = match &h.release {
        Some(r) => render_str(config, r, "helm release", ctx)?,
        None => ctx.staging.clone(),
    };
    Ok((values, release))
}

/// `helm template` of the chart with the rendered values.
pub fn helm(
    config: &Config,
    settings: &Settings,
    h: &Helm,
    ctx: &Context,
    app_dir: Option<&Path>,
    limits: &super::Limits,
) -> Result<(String, String), RenderError> {
    if !on_path("helm") {
        return Err(RenderError::Command {
            program: "helm".into(),
            message: "is not installed (no `helm` on PATH): install helm 3 where octostage runs, or render with `kustomize` or `command`".into(),
            stderr: String::new(),
        });
    }
    let chart = locate(config, h.from, &h.chart, app_dir)?;
    let (values, release) = helm_inputs(config, h, ctx)?;
    let work = work_dir()?;
    let file = work.path().join("values.yaml");
    write(&file, &values.to_string())?;
    let argv: Vec<String> = [
        "helm",
        "template",
        &release,
        &chart.display().to_string(),
        "--namespace",
        &ctx.namespace,
        "--values",
        &file.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_tool(config, settings, &argv, ctx, app_dir, limits)?;
    Ok((format!("helm chart {:?}", h.chart), out))
}
