//! A kustomization from the application repository stays inside its export: every path it
//! names must be a file or directory there, and nothing is fetched.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::RenderError;

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
pub(super) fn confined(root: &Path, limits: &super::Limits) -> Result<(), RenderError> {
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
            let doc = read_kustomization(root, &p, e.metadata().map_or(0, |m| m.len()), limits)?;
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
fn read_kustomization(
    root: &Path,
    p: &Path,
    size: u64,
    limits: &super::Limits,
) -> Result<Value, RenderError> {
    // Its size first: a branch's file is read into this process only when small.
    if size > MAX_KUSTOMIZATION as u64 {
        return Err(RenderError::Command {
            program: "kustomize".into(),
            message: format!(
                "{} is more than {MAX_KUSTOMIZATION} bytes; a kustomization is a few hundred",
                p.strip_prefix(root).unwrap_or(p).display()
            ),
            stderr: String::new(),
        });
    }
    let text = std::fs::read_to_string(p).unwrap_or_default();
    // kubectl's YAML library follows merge keys (`<<:`), anchors and tags, which the
    // parse below does not: a path hidden in a merge would pass unseen. Refused.
    if let Err(why) = plain_yaml(&text) {
        return Err(RenderError::Command {
            program: "kustomize".into(),
            message: format!(
                "{} uses {why}, which octostage does not follow; write the kustomization plainly",
                p.strip_prefix(root).unwrap_or(p).display()
            ),
            stderr: String::new(),
        });
    }
    // A file of the branch: parsed in a child under the render limits.
    let shown = format!(
        "{} from the application repository",
        p.strip_prefix(root).unwrap_or(p).display()
    );
    let mut budget = crate::yaml_budget::Budget::default();
    // What octostage cannot read is refused, not left to kubectl: kubectl reads some
    // YAML serde_yaml refuses (a key given twice: kubectl takes the last), and would
    // follow what this check never saw.
    match super::isolated::parse_yaml(&shown, &text, &mut budget, limits) {
        Ok(docs) => Ok(docs.into_iter().next().unwrap_or_default()),
        Err(RenderError::Yaml { message, .. }) => Err(RenderError::Command {
            program: "kustomize".into(),
            message: format!(
                "{} cannot be checked: {message}; fix the kustomization (a key written twice, say)",
                p.strip_prefix(root).unwrap_or(p).display()
            ),
            stderr: String::new(),
        }),
        Err(e) => Err(e),
    }
}

/// Most bytes of a kustomization checked (a real one is a few hundred).
const MAX_KUSTOMIZATION: usize = 1 << 20;

/// What a kustomization uses that is not plain YAML; reads after "uses".
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotPlain {
    #[error("more than {MAX_KUSTOMIZATION} bytes")]
    Large,
    #[error("YAML it cannot read ({0})")]
    Unreadable(yaml_rust2::ScanError),
    #[error("an alias (`*name`) at line {0}")]
    Alias(usize),
    #[error("a merge key (`<<:`) at line {0}")]
    Merge(usize),
    #[error("an anchor (`&name`) at line {0}")]
    Anchor(usize),
    #[error("a tag (`!name`) at line {0}")]
    Tag(usize),
}

/// Whether `text` is YAML written plainly: no anchor, alias, tag or merge key (the YAML
/// features where what octostage reads and what kubectl applies can differ); else which.
pub(crate) fn plain_yaml(text: &str) -> Result<(), NotPlain> {
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;
    if text.len() > MAX_KUSTOMIZATION {
        return Err(NotPlain::Large);
    }
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(NotPlain::Unreadable)?;
        let at = mark.line();
        let (anchor, tag) = match &event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => return Err(NotPlain::Alias(at)),
            Event::Scalar(v, TScalarStyle::Plain, ..) if v == "<<" => {
                return Err(NotPlain::Merge(at))
            }
            Event::Scalar(_, _, anchor, tag)
            | Event::MappingStart(anchor, tag)
            | Event::SequenceStart(anchor, tag) => (*anchor, tag.is_some()),
            _ => continue,
        };
        if anchor > 0 {
            return Err(NotPlain::Anchor(at));
        }
        if tag {
            return Err(NotPlain::Tag(at));
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
            let e = plain_yaml(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
