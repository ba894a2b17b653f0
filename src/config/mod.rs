//! `environments.yaml`: the file format ([`raw`]), where its values stand ([`crate::yaml::Positions`]), its
//! JSON Schema ([`schema`]), validation ([`validate`]) and the validated model ([`model`]).
//!
//! Loading runs in stages and gathers every problem of a file before it gives up:
//! YAML syntax, then the JSON Schema (types, unknown keys), then semantic checks (durations,
//! cron, globs, time zones, templates). Each problem names `file:line:column`.

pub mod endpoint;
mod files;
mod inputs;
pub mod model;
pub mod notify;
pub mod raw;
mod raw_forge;
mod raw_render;
mod render_spec;
mod salvage;
pub mod schema;
pub mod untrusted;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::yaml::Pos;
use crate::yaml::Positions;
pub use files::{DiskFiles, Files, FilesError, MemFiles};
pub use inputs::{load_for_pass, ReadSet};
pub use model::*;

use crate::consts;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File, relative to the config repository.
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.pos, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read and is wrong; every problem found is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let mut s = format!(
        "{} problem{} in the configuration:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}

/// Options of a load that do not come from the file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Commit of the config repository, when known.
    pub commit: Option<String>,
    /// Repository URLs that replace the file's, by environment (a local mirror, a test fixture).
    pub repository_overrides: Vec<(String, String)>,
}

/// Load and validate `environments.yaml` from the config repository at `root`.
pub fn load(root: &Path, opts: &LoadOptions) -> Result<Config, ConfigError> {
    parse(
        &config_text(root)?,
        consts::CONFIG_FILE,
        root,
        &DiskFiles(root),
        opts,
    )
}

/// The text of `environments.yaml` at `root`: only a regular file inside the repository.
fn config_text(root: &Path) -> Result<String, ConfigError> {
    let path = root.join(consts::CONFIG_FILE);
    if path.is_symlink() {
        let real = root
            .canonicalize()
            .and_then(|r| Ok((r, path.canonicalize()?)));
        if !real.is_ok_and(|(r, p)| p.starts_with(r)) {
            return Err(ConfigError::Invalid(vec![Problem {
                file: consts::CONFIG_FILE.into(),
                pos: Pos { line: 1, column: 1 },
                message: "is a symbolic link that leads outside the config repository (or nowhere); octostage reads only files inside it".into(),
            }]));
        }
    }
    if path.exists() && !path.is_file() {
        return Err(ConfigError::Invalid(vec![Problem {
            file: consts::CONFIG_FILE.into(),
            pos: Pos { line: 1, column: 1 },
            message: "is not a regular file".into(),
        }]));
    }
    std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })
}

/// Validate the text of `environments.yaml` (named `file` in messages). Pure but for `files`.
pub fn parse(
    text: &str,
    file: &str,
    root: &Path,
    files: &dyn Files,
    opts: &LoadOptions,
) -> Result<Config, ConfigError> {
    let problem = |pos: Pos, message: String| Problem {
        file: file.to_string(),
        pos,
        message,
    };
    let text = crate::text::strip_bom(text);
    let value = match crate::yaml::document(text) {
        Ok(v) => v,
        Err(e) if e.is_budget() => {
            return Err(ConfigError::Invalid(vec![problem(
                Pos { line: 1, column: 1 },
                format!("YAML: {e}"),
            )]))
        }
        Err(e) => {
            return Err(ConfigError::Invalid(vec![problem(
                e.pos().unwrap_or_default(),
                format!("YAML syntax: {e}"),
            )]));
        }
    };
    let positions = Positions::index(text);
    validate_value(value, &positions, file, root, files, opts, &[])
}

/// Validate the parsed file `value`, except what stands on lines in `skip` (the parts of
/// environments left out).
pub(crate) fn validate_value(
    value: serde_json::Value,
    positions: &Positions,
    file: &str,
    root: &Path,
    files: &dyn Files,
    opts: &LoadOptions,
    skip: &[std::ops::Range<usize>],
) -> Result<Config, ConfigError> {
    let problem = |pos: Pos, message: String| Problem {
        file: file.to_string(),
        pos,
        message,
    };
    let mut problems = schema::check(&value, positions, file);
    for d in positions
        .duplicates()
        .iter()
        .filter(|d| !skip.iter().any(|r| r.contains(&d.again.line)))
    {
        problems.push(problem(
            d.again,
            format!(
                "duplicate key `{}` (first given at line {}); YAML would silently keep only the last one: remove one",
                d.key, d.first.line
            ),
        ));
    }
    let raw: raw::RawFile = match serde_json::from_value(value) {
        Ok(raw) => raw,
        Err(e) => {
            if problems.is_empty() {
                problems.push(problem(Pos { line: 1, column: 1 }, e.to_string()));
            }
            return Err(ConfigError::Invalid(problems));
        }
    };
    let mut v = validate::Validator::new(file, positions, files, root);
    let config = v.config(&raw, opts);
    problems.extend(v.into_problems());
    problems.sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.message.cmp(&b.message)));
    problems.dedup();
    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(ConfigError::Invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: MemFiles) -> Result<Config, ConfigError> {
        let text = "version: 1\nenvironments:\n  app:\n    repository: /repo\n    templates: t\n";
        parse(
            text,
            "environments.yaml",
            Path::new("/cfg"),
            &files,
            &LoadOptions::default(),
        )
    }

    fn problems(r: Result<Config, ConfigError>) -> Vec<Problem> {
        match r {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn templates_come_from_their_directory_only() {
        let files = MemFiles::new([
            ("t/a.yaml", "kind: A"),
            ("t/sub/b.j2", "kind: B"),
            ("t/README.md", "x"),
            ("u/c.yaml", "x"),
        ]);
        assert_eq!(files.template_files("t").unwrap().len(), 2);
        assert!(load(files).is_ok());
    }

    #[test]
    fn a_missing_directory_and_a_broken_template_are_reported_where_they_are() {
        let p = problems(load(MemFiles::new([("other/a.yaml", "x")])));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].file.as_str(), p[0].pos.line),
            ("environments.yaml", 5)
        );
        assert!(
            p[0].message.contains("\"t\" does not exist"),
            "{}",
            p[0].message
        );
        for (spec, expect) in [
            ("command: []", "command is empty"),
            ("templates: t\n    command: [helm]", "both set"),
        ] {
            let text =
                format!("version: 1\nenvironments:\n  app:\n    repository: /repo\n    {spec}\n");
            let files = MemFiles::new([("t/a.yaml", "kind: A")]);
            let p = problems(parse(
                &text,
                "environments.yaml",
                Path::new("/cfg"),
                &files,
                &LoadOptions::default(),
            ));
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(p[0].message.contains(expect), "{p:?}");
        }
        let p = problems(load(MemFiles::new([(
            "t/a.yaml",
            "kind: A\nname: {{ staging\n",
        )])));
        assert_eq!(
            (p[0].file.as_str(), p[0].pos.line),
            ("t/a.yaml", 2),
            "{p:?}"
        );
    }

    /// One environment `app` of `repository` with templates `t` and the settings `lines`.
    fn app_env(repository: &str, lines: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "version: 1\nenvironments:\n  app:\n    repository: {repository}\n    templates: t\n{lines}"
        );
        parse(
            &text,
            "environments.yaml",
            Path::new("/cfg"),
            &MemFiles::new([("t/a.yaml", "kind: A")]),
            &LoadOptions::default(),
        )
    }

    #[test]
    fn copy_entries_name_one_object_each_in_namespace_slash_name() {
        let parse_copy = |copy: &str| app_env("/repo", &format!("    copy: {copy}\n"));
        let c = parse_copy("[{secret: platform/wildcard-tls}, {config_map: ci/ca, as: ca-bundle}]")
            .unwrap();
        let copy = &c.environments[0].settings.copy;
        assert_eq!(copy[0].source(), "Secret platform/wildcard-tls");
        assert_eq!(copy[1].as_name, "ca-bundle");
        for (bad, why) in [
            ("[{secret: wildcard-tls}]", "namespace/name"),
            ("[{secret: Platform/x}]", "namespace/name"),
            ("[{secret: a/b, config_map: a/c}]", "exactly one"),
            ("[{}]", "exactly one"),
            ("[{secret: a/b, as: \"../x\"}]", "DNS subdomain"),
            ("[{secret: a/b}, {secret: c/b}]", "already copied"),
        ] {
            let p = problems(parse_copy(bad));
            assert!(p.iter().any(|p| p.message.contains(why)), "{bad}: {p:?}");
        }
    }

    #[test]
    fn forge_tokens_go_over_https_and_registries_are_written_out() {
        let load = |extra: &str| app_env("https://github.com/acme/shop.git", extra);
        let status = |api: &str| {
            format!("    notify:\n      commit_status: {{provider: gitea, api_url: \"{api}\", token_env: T}}\n")
        };
        assert!(load(&status("https://gitea.example.com/api/v1")).is_ok());
        assert!(load(&status("http://127.0.0.1:3000/api/v1")).is_ok());
        for bad in [
            "http://gitea.example.com/api/v1",
            "http://127.0.0.1@evil.example/api",
        ] {
            let p = problems(load(&status(bad)));
            assert!(
                p.iter()
                    .any(|p| p.message.contains("plain http") || p.message.contains("credentials")),
                "{bad}: {p:?}"
            );
        }
        let pulls = "    branches:\n      from: pull_requests\n      pull_requests: {provider: github, api_url: \"http://api.example.com\", token_env: T}\n";
        assert!(problems(load(pulls))
            .iter()
            .any(|p| p.message.contains("plain http")));
        let wait = |image: &str| format!("    wait_for: {{image: \"{image}\"}}\n");
        assert!(load(&wait("registry.example.com/shop/web:{{ commit.sha }}")).is_ok());
        for bad in [
            "{{ branch.name }}/web:1",
            "web:{{ commit.sha }}",
            "reg{{ branch.slug }}.example.com/web:1",
        ] {
            let p = problems(load(&wait(bad)));
            assert!(
                p.iter()
                    .any(|p| p.message.contains("registry host written out")),
                "{bad}: {p:?}"
            );
        }
    }
}
