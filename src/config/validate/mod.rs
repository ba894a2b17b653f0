//! Semantic checks that a schema cannot express, turning [`RawFile`] into [`Config`]. Every
//! problem is collected with its position; a value that fails is reported and skipped so the
//! rest of the file is still checked.

use std::path::Path;
use std::sync::Arc;

use super::model::*;
use super::raw::*;
use super::{Files, LoadOptions, Problem};
use crate::consts;
use crate::naming;
use crate::templating::TemplateSet;
use crate::yaml::{escape, Positions};

mod render;
mod settings;
mod values;

pub use values::{next_times, parse_cron, parse_size, CronError, FieldError, SizeError};
mod notify;
pub use notify::{check_url as check_webhook_url, repo_path};

/// Collects problems while validating one file.
pub struct Validator<'a> {
    file: &'a str,
    positions: &'a Positions,
    files: &'a dyn Files,
    root: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    templates: TemplateSet,
    /// Variables named by some `credentials.token_env`: never handed to render commands.
    token_envs: Vec<String>,
    /// Every string of every `values` and `links` of the file.
    all_value_strings: Vec<String>,
    safety: Safety,
}

impl<'a> Validator<'a> {
    /// A validator of `file` whose values stand at `positions`.
    pub fn new(
        file: &'a str,
        positions: &'a Positions,
        files: &'a dyn Files,
        root: &'a Path,
    ) -> Self {
        Validator {
            file,
            positions,
            files,
            root,
            problems: Vec::new(),
            warnings: Vec::new(),
            templates: TemplateSet::default(),
            token_envs: Vec::new(),
            all_value_strings: Vec::new(),
            safety: Safety::default(),
        }
    }

    /// The problems found.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    fn warn(&mut self, pointer: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.to_string(),
            pos: self.positions.value(pointer),
            message: message.into(),
        });
    }

    fn err(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            pos: self.positions.value(pointer),
            message: message.into(),
        });
    }

    fn key_err(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            pos: self.positions.key(pointer),
            message: message.into(),
        });
    }

    /// Validate the whole file. `None` when something was wrong (see the problems).
    pub fn config(&mut self, raw: &RawFile, opts: &LoadOptions) -> Option<Config> {
        if raw.version != consts::FORMAT_VERSION {
            self.err(
                "/version",
                format!(
                    "version {} is not supported; this octostage reads version {}",
                    raw.version,
                    consts::FORMAT_VERSION
                ),
            );
        }
        self.safety = self.safety(&raw.safety);
        self.token_envs = raw
            .environments
            .values()
            .filter_map(|e| match &e.repository {
                RawRepository::Full(f) => f.credentials.as_ref()?.token_env.clone(),
                RawRepository::Url(_) => None,
            })
            .collect();
        self.token_envs.extend(notify::secret_envs(raw));
        self.all_value_strings = all_value_strings(raw);
        // The built-in default namespace template is rendered for every staging: compile it once
        // like the file's own templates.
        self.template_str(consts::DEFAULT_NAMESPACE, "/defaults");
        let defaults = self.layer(&raw.defaults, "/defaults");
        if raw.environments.is_empty() {
            self.err(
                "/environments",
                "no environments: declare at least one under `environments`",
            );
        }
        for (name, _) in &opts.repository_overrides {
            if !raw.environments.contains_key(name) {
                self.err(
                    "/environments",
                    format!(
                        "--repository names environment {name:?}, which this file does not declare"
                    ),
                );
            }
        }
        let mut environments = Vec::new();
        for (name, env) in &raw.environments {
            if let Some(e) = self.environment(name, env, &defaults, opts) {
                environments.push(e);
            }
        }
        if !self.problems.is_empty() {
            return None;
        }
        Some(Config {
            root: self.root.to_path_buf(),
            commit: opts.commit.clone(),
            safety: std::mem::take(&mut self.safety),
            limits: Limits {
                max_stagings: raw.limits.max_stagings,
                max_awake: raw.limits.max_awake,
            },
            environments,
            templates: Arc::new(std::mem::take(&mut self.templates)),
            warnings: std::mem::take(&mut self.warnings),
            frozen: Vec::new(),
        })
    }

    /// The warnings found (valid files may have some).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    fn safety(&mut self, raw: &RawSafety) -> Safety {
        let mut safety = Safety::default();
        if let Some(n) = raw.max_deletions_per_pass {
            safety.max_deletions_per_pass = n;
        }
        if let Some(p) = raw.max_branch_loss_percent {
            if p > 100 {
                self.err(
                    "/safety/max_branch_loss_percent",
                    "a percentage must be between 0 and 100",
                );
            }
            safety.max_branch_loss_percent = p;
        }
        let mut patterns: Vec<String> = consts::PROTECTED_NAMESPACES
            .iter()
            .map(|p| p.to_string())
            .collect();
        patterns.extend(raw.protected_namespaces.iter().cloned());
        if let Some(g) = self.globs(&patterns, "/safety/protected_namespaces") {
            safety.protected_namespaces = g;
        }
        safety
    }

    fn environment(
        &mut self,
        name: &str,
        raw: &RawEnvironment,
        defaults: &Layer,
        opts: &LoadOptions,
    ) -> Option<Environment> {
        let ptr = format!("/environments/{}", escape(name));
        let before = self.problems.len();
        if let Err(e) = naming::check_label(name) {
            self.key_err(&ptr, format!("environment name {name:?}: {e}"));
        } else if name.len() > consts::MAX_ENVIRONMENT_NAME {
            self.key_err(&ptr, format!("environment name {name:?} is longer than {} characters, which leaves too little room for branch names in 63-character staging names", consts::MAX_ENVIRONMENT_NAME));
        }
        let override_url = opts
            .repository_overrides
            .iter()
            .find(|(e, _)| e == name)
            .map(|(_, u)| u.clone());
        let repository =
            self.repository(&raw.repository, &format!("{ptr}/repository"), override_url);
        let include = self.globs(&raw.branches.include, &format!("{ptr}/branches/include"));
        let exclude = self.globs(&raw.branches.exclude, &format!("{ptr}/branches/exclude"));
        let pull_requests = self.pull_requests(&raw.branches, &format!("{ptr}/branches"));
        let always = self.globs(&raw.always, &format!("{ptr}/always"));
        let base = self.layer(&raw.settings, &ptr).over(defaults);
        let settings = base.clone().resolve();
        if settings.is_none() {
            self.key_err(&ptr, format!("environment {name:?} has no render spec: set `templates` or `command` in it or in `defaults`"));
        }
        let mut overrides = Vec::new();
        for (pattern, layer) in &raw.overrides {
            let optr = format!("{ptr}/overrides/{}", escape(pattern));
            let globs = match Globs::new(&[pattern]) {
                Ok(g) => g,
                Err((_, e)) => {
                    self.key_err(&optr, format!("override key: {e}"));
                    continue;
                }
            };
            overrides.push((globs, self.layer(layer, &optr)));
        }
        let statics = self.statics(name, raw, &base, &ptr);
        if let (Some(awake), Some(all)) = (raw.max_awake, raw.max_stagings) {
            if awake >= all {
                self.warn(
                    &format!("{ptr}/max_awake"),
                    format!("max_awake ({awake}) is not below max_stagings ({all}), so it never puts a staging to sleep"),
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }
        Some(Environment {
            name: name.to_string(),
            repository: repository?,
            include: include?,
            exclude: exclude?,
            trailers: raw.branches.trailers,
            pull_requests,
            always: always?,
            max_stagings: raw.max_stagings,
            max_awake: raw.max_awake,
            base,
            settings: Arc::new(settings?),
            overrides,
            statics,
        })
    }

    /// The static stagings of environment `name`, each over the environment's settings.
    fn statics(
        &mut self,
        name: &str,
        raw: &RawEnvironment,
        base: &Layer,
        ptr: &str,
    ) -> Vec<StaticStaging> {
        let mut statics = Vec::new();
        for (sname, st) in &raw.statics {
            let sptr = format!("{ptr}/static/{}", escape(sname));
            if let Err(e) = naming::check_label(sname) {
                self.key_err(&sptr, format!("static staging name {sname:?}: {e}"));
            } else if name.len() + 1 + sname.len() > consts::MAX_LABEL {
                self.key_err(&sptr, format!("static staging name {sname:?}: `{name}-{sname}` is longer than {} characters", consts::MAX_LABEL));
            }
            let pin = match (&st.branch, &st.commit) {
                (Some(b), None) => Some(Pin::Branch(b.clone())),
                (None, Some(c)) => Some(Pin::Commit(c.clone())),
                _ => {
                    self.key_err(
                        &sptr,
                        format!(
                            "static staging {sname:?}: set exactly one of `branch` and `commit`"
                        ),
                    );
                    None
                }
            };
            let until = st
                .until
                .as_deref()
                .and_then(|u| self.time(u, &format!("{sptr}/until")));
            let layer = self.layer(&st.settings, &sptr).over(base);
            if let (Some(pin), Some(s)) = (pin, layer.resolve()) {
                statics.push(StaticStaging {
                    name: sname.clone(),
                    pin,
                    until,
                    settings: Arc::new(s),
                });
            }
        }
        statics
    }

    fn repository(
        &mut self,
        raw: &RawRepository,
        ptr: &str,
        replacement: Option<String>,
    ) -> Option<Repository> {
        let (url, creds, uptr) = match raw {
            RawRepository::Url(u) => (u.clone(), None, ptr.to_string()),
            RawRepository::Full(f) => (f.url.clone(), f.credentials.clone(), format!("{ptr}/url")),
        };
        let url = replacement.unwrap_or(url);
        if url.trim().is_empty() {
            self.err(&uptr, "repository URL is empty");
            return None;
        }
        let c = creds.unwrap_or_default();
        let has_token = c.token_env.is_some() || c.token_file.is_some();
        if let Err(e) = crate::redact::check_url(&url, has_token, c.allow_plain_http) {
            // The URL itself is not repeated: it may hold the very secret.
            self.err(&uptr, format!("repository URL refused: {e}"));
            return None;
        }
        let url = if crate::redact::is_remote(&url) || Path::new(&url).is_absolute() {
            url
        } else {
            self.root.join(&url).to_string_lossy().into_owned()
        };
        if c.token_env.is_some() && c.token_file.is_some() {
            self.err(
                &format!("{ptr}/credentials"),
                "set one of `token_env` and `token_file`, not both",
            );
        }
        Some(Repository {
            url,
            credentials: Credentials {
                username: c.username,
                token_env: c.token_env,
                token_file: c.token_file.map(Into::into),
                ssh_key_file: c.ssh_key_file.map(Into::into),
                known_hosts_file: c.known_hosts_file.map(Into::into),
                allow_plain_http: c.allow_plain_http,
            },
        })
    }

    fn globs(&mut self, patterns: &[String], ptr: &str) -> Option<Globs> {
        match Globs::new(patterns) {
            Ok(g) => Some(g),
            Err((i, e)) => {
                self.err(&format!("{ptr}/{i}"), e);
                // Report the later bad globs of the list too.
                for (j, p) in patterns.iter().enumerate().skip(i + 1) {
                    if let Err((_, e)) = Globs::new(&[p]) {
                        self.err(&format!("{ptr}/{j}"), e);
                    }
                }
                None
            }
        }
    }
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// Every string of every `values` and `links` anywhere in the file.
fn all_value_strings(raw: &RawFile) -> Vec<String> {
    let mut layers: Vec<&RawSettings> = vec![&raw.defaults];
    for env in raw.environments.values() {
        layers.push(&env.settings);
        layers.extend(env.overrides.values());
        layers.extend(env.statics.values().map(|s| &s.settings));
    }
    let mut out = Vec::new();
    for l in layers {
        out.extend(l.links.iter().flat_map(|m| m.values().cloned()));
        if let Some(values) = &l.values {
            collect_strings(&serde_json::Value::Object(values.clone()), &mut out);
        }
    }
    out
}
