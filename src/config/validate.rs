//! Semantic checks that a schema cannot express, turning [`RawFile`] into [`Config`]. Every
//! problem is collected with its position; a value that fails is reported and skipped so the
//! rest of the file is still checked.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::*;
use super::position::{escape, Positions};
use super::raw::*;
use super::{Files, LoadOptions, Problem};
use crate::consts;
use crate::naming;
use crate::render::TemplateSet;

/// Collects problems while validating one file.
pub struct Validator<'a> {
    file: &'a str,
    positions: &'a Positions,
    files: &'a dyn Files,
    root: &'a Path,
    problems: Vec<Problem>,
    templates: TemplateSet,
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
            templates: TemplateSet::default(),
        }
    }

    /// The problems found.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
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
        // The built-in default namespace template is rendered for every staging: compile it once
        // like the file's own templates.
        self.template_str(consts::DEFAULT_NAMESPACE, "/defaults");
        let defaults = self.layer(&raw.defaults, "/defaults");
        let safety = Safety {
            max_deletions_per_pass: raw
                .safety
                .max_deletions_per_pass
                .unwrap_or(consts::DEFAULT_MAX_DELETIONS_PER_PASS),
            max_branch_loss_percent: raw
                .safety
                .max_branch_loss_percent
                .unwrap_or(consts::DEFAULT_MAX_BRANCH_LOSS_PERCENT),
        };
        if safety.max_branch_loss_percent > 100 {
            self.err(
                "/safety/max_branch_loss_percent",
                "a percentage must be between 0 and 100",
            );
        }
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
            safety,
            environments,
            templates: Arc::new(std::mem::take(&mut self.templates)),
        })
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
            let layer = self.layer(&st.settings, &sptr).over(&base);
            if let (Some(pin), Some(s)) = (pin, layer.resolve()) {
                statics.push(StaticStaging {
                    name: sname.clone(),
                    pin,
                    until,
                    settings: Arc::new(s),
                });
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
            always: always?,
            max_stagings: raw.max_stagings,
            base,
            settings: Arc::new(settings?),
            overrides,
            statics,
        })
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
        if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
            let authority = rest.split('/').next().unwrap_or("");
            if authority
                .rsplit_once('@')
                .is_some_and(|(user, _)| user.contains(':'))
            {
                self.err(&uptr, "repository URL carries a password: remove it and reference it with `credentials.token_env` or `credentials.token_file`");
                return None;
            }
        }
        let is_url = url.contains("://") || (url.contains('@') && url.contains(':'));
        let url = if is_url || Path::new(&url).is_absolute() {
            url
        } else {
            self.root.join(&url).to_string_lossy().into_owned()
        };
        let c = creds.unwrap_or_default();
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

    fn layer(&mut self, raw: &RawSettings, ptr: &str) -> Layer {
        if let Some(ns) = &raw.namespace {
            self.template_str(ns, &format!("{ptr}/namespace"));
        }
        // A declared render spec counts as declared even when it is wrong: its own problem is
        // reported, and "no render spec" on top of it would only mislead.
        let render = match (&raw.templates, &raw.command) {
            (Some(dir), Some(_)) => {
                self.err(ptr, "`templates` and `command` are both set here; keep one");
                Some(Render::Templates(dir.clone()))
            }
            (Some(dir), None) => Some(Render::Templates(
                self.templates_dir(dir, &format!("{ptr}/templates")),
            )),
            (None, Some(cmd)) => {
                if cmd.is_empty() {
                    self.err(
                        &format!("{ptr}/command"),
                        "command is empty: give the program and its arguments",
                    );
                }
                for (i, arg) in cmd.iter().enumerate() {
                    self.template_str(arg, &format!("{ptr}/command/{i}"));
                }
                Some(Render::Command(cmd.clone()))
            }
            (None, None) => None,
        };
        if let Some(values) = &raw.values {
            self.template_values(
                &serde_json::Value::Object(values.clone()),
                &format!("{ptr}/values"),
            );
        }
        if let Some(links) = &raw.links {
            for (k, v) in links {
                self.template_str(v, &format!("{ptr}/links/{}", escape(k)));
            }
        }
        let ttl = raw.ttl.as_deref().and_then(|t| {
            if t == "never" {
                Some(Ttl::Never)
            } else {
                self.duration(t, &format!("{ptr}/ttl")).map(Ttl::After)
            }
        });
        Layer {
            namespace: raw.namespace.clone(),
            render,
            render_timeout: raw
                .render_timeout
                .as_deref()
                .and_then(|d| self.duration(d, &format!("{ptr}/render_timeout"))),
            values: raw.values.clone(),
            links: raw.links.clone(),
            ttl,
            retention: raw
                .retention
                .as_deref()
                .and_then(|d| self.duration(d, &format!("{ptr}/retention"))),
            sleep: raw
                .sleep
                .as_ref()
                .and_then(|s| self.sleep(s, &format!("{ptr}/sleep"))),
        }
    }

    /// Load and compile the templates of `dir`, reporting what is wrong; the normalized name.
    fn templates_dir(&mut self, dir: &str, ptr: &str) -> String {
        let p = Path::new(dir);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            self.err(ptr, format!("templates directory {dir:?} must be a relative path inside the config repository"));
            return dir.to_string();
        }
        let dir = dir.trim_end_matches('/').to_string();
        if self.templates.has_dir(&dir) {
            return dir;
        }
        match self.files.template_files(&dir) {
            Err(e) => self.err(ptr, e),
            Ok(files) => {
                if files.is_empty() {
                    self.err(
                        ptr,
                        format!("templates directory {dir:?} holds no *.yaml, *.yml or *.j2 file"),
                    );
                }
                for (problem_file, line, msg) in self.templates.add_dir(&dir, files) {
                    self.problems.push(Problem {
                        file: problem_file,
                        pos: super::position::Pos { line, column: 1 },
                        message: msg,
                    });
                }
            }
        }
        dir
    }

    fn template_str(&mut self, text: &str, ptr: &str) {
        if let Err(e) = self.templates.add_inline(text) {
            self.err(ptr, format!("template {text:?}: {e}"));
        }
    }

    fn template_values(&mut self, v: &serde_json::Value, ptr: &str) {
        match v {
            serde_json::Value::String(s) => self.template_str(s, ptr),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| self.template_values(x, &format!("{ptr}/{i}"))),
            serde_json::Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| self.template_values(x, &format!("{ptr}/{}", escape(k)))),
            _ => {}
        }
    }

    fn duration(&mut self, text: &str, ptr: &str) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    ptr,
                    format!("invalid duration {text:?}: {e}; write it like 90m, 36h, 7d or 1h30m"),
                );
                None
            }
        }
    }

    fn time(&mut self, text: &str, ptr: &str) -> Option<DateTime<Utc>> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.err(
                    ptr,
                    format!(
                        "invalid time {text:?}: {e}; write RFC 3339 such as 2026-12-24T18:00:00Z"
                    ),
                );
                None
            }
        }
    }

    fn sleep(&mut self, raw: &RawSleep, ptr: &str) -> Option<Sleep> {
        let at = self.cron(&raw.at, &format!("{ptr}/at"));
        let wake = self.cron(&raw.wake, &format!("{ptr}/wake"));
        let tz = raw.timezone.as_deref().unwrap_or("UTC");
        let timezone = match chrono_tz::Tz::from_str(tz) {
            Ok(t) => Some(t),
            Err(_) => {
                self.err(
                    &format!("{ptr}/timezone"),
                    format!(
                        "unknown time zone {tz:?}: use an IANA name such as Europe/Berlin or UTC"
                    ),
                );
                None
            }
        };
        Some(Sleep {
            at: at?,
            wake: wake?,
            timezone: timezone?,
        })
    }

    fn cron(&mut self, text: &str, ptr: &str) -> Option<cron::Schedule> {
        match parse_cron(text) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(ptr, e);
                None
            }
        }
    }
}

/// Parse a cron expression of five fields (minute first) or six/seven (seconds first).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {text}"),
        6 | 7 => text.to_string(),
        n => return Err(format!("invalid cron expression {text:?}: it has {n} fields; write five (minute hour day month weekday), such as \"0 20 * * Mon-Fri\"")),
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        // The crate's message repeats the expression with a caret line; its last line says why.
        let why = e
            .to_string()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .to_string();
        format!("invalid cron expression {text:?}: {why}")
    })
}
