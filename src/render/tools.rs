//! Rendering through kustomize and helm without wrapper scripts: per staging, octostage writes
//! an overlay (`kustomization.yaml` referring to the base, with the namespace, images and
//! patches rendered from the template context) or a values file into a temporary directory and
//! runs `kubectl kustomize` or `helm template` on it, under the same limits as any render
//! command. Files may come from the config repository or the application repository's export.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

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
    match crate::yaml_budget::check(text) {
        Ok(()) | Err(crate::yaml_budget::BudgetError::Syntax(_)) => {}
        Err(e) => {
            return Err(RenderError::Object {
                source_name: what.to_string(),
                object: "(patch)".into(),
                message: e.to_string(),
            })
        }
    }
    let doc: serde_json::Value = serde_yaml::from_str(text).map_err(|e| RenderError::Object {
        source_name: what.to_string(),
        object: "(patch)".into(),
        message: format!("is not YAML once rendered: {e}"),
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
        confined(root, limits)?;
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

/// `path` with `.` and `..` resolved by name (nothing on disk is followed).
fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// A kustomization from the application repository is written by whoever pushes: every entry
/// that names a file or root ([`named_paths`]: resources, generators, transformers, validators,
/// patches, generator files, ...) of every kustomization in the export must be a path inside
/// the export that exists there. A directory elsewhere on the host (another
/// environment's export, the config repository) or a remote URL (which kubectl would fetch,
/// with the host's git credentials) is refused. kubectl itself keeps files to their root.
fn confined(root: &Path, limits: &super::Limits) -> Result<(), RenderError> {
    let refuse = |file: &Path, field: &str, entry: &str, why: &str| {
        RenderError::Command {
        program: "kustomize".into(),
        message: format!(
            "{} names {:?} in `{field}`, {why}; a kustomization from the application repository may only name paths inside the exported paths (add the path to `app_paths`)",
            file.strip_prefix(root).unwrap_or(file).display(),
            crate::text::printable(&entry.chars().take(200).collect::<String>()),
        ),
        stderr: String::new(),
    }
    };
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
                continue;
            }
            let name = e.file_name();
            if !matches!(
                name.to_str(),
                Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
            ) {
                continue;
            }
            // Its size first: a branch's file is read into this process only when small.
            if e.metadata().map_or(0, |m| m.len()) > MAX_KUSTOMIZATION as u64 {
                return Err(RenderError::Command {
                    program: "kustomize".into(),
                    message: format!(
                        "{} is more than {MAX_KUSTOMIZATION} bytes; a kustomization is a few hundred",
                        p.strip_prefix(root).unwrap_or(&p).display()
                    ),
                    stderr: String::new(),
                });
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            // kubectl's YAML library follows merge keys (`<<:`), anchors and tags, which the
            // parse below does not: a path hidden in a merge would pass unseen. Refused.
            if let Err(why) = plain_yaml(&text) {
                return Err(RenderError::Command {
                    program: "kustomize".into(),
                    message: format!(
                        "{} uses {why}, which octostage does not follow; write the kustomization plainly",
                        p.strip_prefix(root).unwrap_or(&p).display()
                    ),
                    stderr: String::new(),
                });
            }
            // A file of the branch: parsed in a child under the render limits.
            let shown = format!(
                "{} from the application repository",
                p.strip_prefix(root).unwrap_or(&p).display()
            );
            let mut budget = crate::yaml_budget::Budget::default();
            // What octostage cannot read is refused, not left to kubectl: kubectl reads some
            // YAML serde_yaml refuses (a key given twice: kubectl takes the last), and would
            // follow what this check never saw.
            let doc = match super::sandbox::parse_yaml(&shown, &text, &mut budget, limits) {
                Ok(docs) => docs.into_iter().next().unwrap_or_default(),
                Err(RenderError::Yaml { message, .. }) => {
                    return Err(RenderError::Command {
                        program: "kustomize".into(),
                        message: format!(
                            "{} cannot be checked: {message}; fix the kustomization (a key written twice, say)",
                            p.strip_prefix(root).unwrap_or(&p).display()
                        ),
                        stderr: String::new(),
                    })
                }
                Err(e) => return Err(e),
            };
            for (field, entry) in named_paths(&doc) {
                let inline = entry.contains('\n');
                if entry.contains("://") || entry.starts_with("git@") {
                    return Err(refuse(&p, &field, &entry, "a remote location"));
                }
                // An inline plugin configuration (YAML in a string) names no file.
                if inline {
                    continue;
                }
                let target = normalized(&dir.join(&entry));
                if !target.starts_with(root) || !target.exists() {
                    return Err(refuse(
                        &p,
                        &field,
                        &entry,
                        "which is not inside the exported paths",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Most bytes of a kustomization checked (a real one is a few hundred).
const MAX_KUSTOMIZATION: usize = 1 << 20;

/// Whether `text` is YAML written plainly: no anchor, alias, tag or merge key (the YAML
/// features where what octostage reads and what kubectl applies can differ); else which.
pub(crate) fn plain_yaml(text: &str) -> Result<(), String> {
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;
    if text.len() > MAX_KUSTOMIZATION {
        return Err(format!("more than {} bytes", MAX_KUSTOMIZATION));
    }
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| format!("YAML it cannot read ({e})"))?;
        let at = mark.line();
        let (anchor, tag) = match &event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => return Err(format!("an alias (`*name`) at line {at}")),
            Event::Scalar(v, TScalarStyle::Plain, ..) if v == "<<" => {
                return Err(format!("a merge key (`<<:`) at line {at}"))
            }
            Event::Scalar(_, _, anchor, tag)
            | Event::MappingStart(anchor, tag)
            | Event::SequenceStart(anchor, tag) => (*anchor, tag.is_some()),
            _ => continue,
        };
        if anchor > 0 {
            return Err(format!("an anchor (`&name`) at line {at}"));
        }
        if tag {
            return Err(format!("a tag (`!name`) at line {at}"));
        }
    }
}

/// Every entry of a kustomization that names a file, a directory or a remote root: (field,
/// entry). kustomize reads each of them (or fetches it, or runs it as a plugin).
fn named_paths(doc: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut push = |field: &str, v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str) {
            out.push((field.to_string(), s.to_string()));
        }
    };
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    for key in [
        "resources",
        "bases",
        "components",
        "generators",
        "transformers",
        "validators",
        "configurations",
        "crds",
        "patchesStrategicMerge",
    ] {
        for e in list(doc.get(key)) {
            push(key, Some(&e));
        }
    }
    push(
        "openapi.path",
        doc.get("openapi").and_then(|o| o.get("path")),
    );
    push(
        "helmGlobals.chartHome",
        doc.get("helmGlobals").and_then(|o| o.get("chartHome")),
    );
    for key in ["replacements", "patches", "patchesJson6902"] {
        for e in list(doc.get(key)) {
            push(&format!("{key}[].path"), e.get("path"));
        }
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        for g in list(doc.get(key)) {
            for f in list(g.get("files")) {
                // `key=path` or `path`.
                let path = f.as_str().map(|f| f.split_once('=').map_or(f, |(_, p)| p));
                push(&format!("{key}[].files"), path.map(Value::from).as_ref());
            }
            for e in list(g.get("envs")) {
                push(&format!("{key}[].envs"), Some(&e));
            }
            push(&format!("{key}[].env"), g.get("env"));
        }
    }
    for h in list(doc.get("helmCharts")) {
        push("helmCharts[].repo", h.get("repo"));
    }
    out
}

/// `to` relative to the directory `from` (both absolute).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (
        from.canonicalize().unwrap_or_else(|_| from.to_path_buf()),
        to.canonicalize().unwrap_or_else(|_| to.to_path_buf()),
    );
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for c in to.components().skip(common) {
        out.push(c);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kustomization_must_be_plain_yaml() {
        assert!(plain_yaml("resources: [cm.yaml]\npatches:\n  - path: p.yaml\n").is_ok());
        assert!(plain_yaml("data:\n  a: \"<<\"\n").is_ok());
        for (text, why) in [
            ("<<: {resources: [../../x]}\n", "merge key"),
            ("a: &x [../x]\nresources: *x\n", "anchor"),
            ("resources: !!seq [../x]\n", "tag"),
            ("resources: !custom [../x]\n", "tag"),
        ] {
            let e = plain_yaml(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
