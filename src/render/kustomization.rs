//! A kustomization from the application repository stays inside its export: every path it
//! names must be a file or directory there, and nothing is fetched.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::RenderError;
use crate::yaml::MAX_PLAIN;

/// `path` with `.` and `..` resolved by name (nothing on disk is followed).
pub(super) fn normalized(path: &Path) -> PathBuf {
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
pub(super) fn confined(root: &Path) -> Result<(), RenderError> {
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
            let doc = read_kustomization(root, &p, e.metadata().map_or(0, |m| m.len()))?;
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

/// The kustomization at `p` (of `size` bytes) as a document, if it is small, plain YAML
/// that octostage can read itself.
fn read_kustomization(root: &Path, p: &Path, size: u64) -> Result<Value, RenderError> {
    // Its size first: a branch's file is read into this process only when small.
    if size > MAX_PLAIN as u64 {
        return Err(RenderError::Command {
            program: "kustomize".into(),
            message: format!(
                "{} is more than {MAX_PLAIN} bytes; a kustomization is a few hundred",
                p.strip_prefix(root).unwrap_or(p).display()
            ),
            stderr: String::new(),
        });
    }
    let text = std::fs::read_to_string(p).unwrap_or_default();
    // kubectl's YAML library follows merge keys (`<<:`), anchors and tags, which the
    // parse below does not: a path hidden in a merge would pass unseen. Refused.
    if let Err(why) = crate::yaml::plain(&text) {
        return Err(RenderError::Command {
            program: "kustomize".into(),
            message: format!(
                "{} uses {why}, which octostage does not follow; write the kustomization plainly",
                p.strip_prefix(root).unwrap_or(p).display()
            ),
            stderr: String::new(),
        });
    }
    // What octostage cannot read is refused, not left to kubectl: kubectl reads some YAML
    // octostage refuses (a key given twice: kubectl takes the last), and would follow what
    // this check never saw. Plain YAML of at most a megabyte: bounded in this process.
    match crate::yaml::documents(&text, &mut crate::yaml::Budget::default()) {
        Ok(docs) => Ok(docs.into_iter().next().unwrap_or_default()),
        Err(e) => Err(RenderError::Command {
            program: "kustomize".into(),
            message: format!(
                "{} cannot be checked: {e}; fix the kustomization (a key written twice, say)",
                p.strip_prefix(root).unwrap_or(p).display()
            ),
            stderr: String::new(),
        }),
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
pub(super) fn relative(from: &Path, to: &Path) -> PathBuf {
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
