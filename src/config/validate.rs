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
use crate::templating::TemplateSet;

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
            environments,
            templates: Arc::new(std::mem::take(&mut self.templates)),
            warnings: std::mem::take(&mut self.warnings),
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

    fn layer(&mut self, raw: &RawSettings, ptr: &str) -> Layer {
        if let Some(ns) = &raw.namespace {
            self.namespace(ns, &format!("{ptr}/namespace"));
        }
        let render = self.render_spec(raw, ptr);
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
        if let Some(names) = &raw.render_env {
            self.render_env(names, &format!("{ptr}/render_env"));
        }
        let ttl = raw.ttl.as_deref().and_then(|t| {
            if t == "never" {
                Some(Ttl::Never)
            } else {
                self.duration(t, &format!("{ptr}/ttl")).map(Ttl::After)
            }
        });
        let render_timeout = raw.render_timeout.as_deref().and_then(|d| {
            let p = format!("{ptr}/render_timeout");
            let d = self.duration(d, &p)?;
            if d.is_zero() || d > consts::MAX_RENDER_TIMEOUT {
                self.err(&p, "render_timeout must be longer than 0s and at most 1h");
                return None;
            }
            Some(d)
        });
        let render_output_limit = raw.render_output_limit.as_deref().and_then(|t| {
            let p = format!("{ptr}/render_output_limit");
            match parse_size(t) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.err(&p, e);
                    None
                }
            }
        });
        if raw.sleep.is_some() {
            self.warn(
                &format!("{ptr}/sleep"),
                "sleep schedules are checked but not acted on yet: stagings keep running at night",
            );
        }
        Layer {
            namespace: raw.namespace.clone(),
            render,
            render_timeout,
            render_output_limit,
            render_env: raw.render_env.clone(),
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

    /// A declared render spec counts as declared even when it is wrong: its own problem is
    /// reported, and "no render spec" on top of it would only mislead.
    fn render_spec(&mut self, raw: &RawSettings, ptr: &str) -> Option<Render> {
        match (&raw.templates, &raw.command) {
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
                for (i, message) in super::untrusted::command(cmd, self.tainted()) {
                    self.err(&format!("{ptr}/command/{i}"), message);
                }
                Some(Render::Command(cmd.clone()))
            }
            (None, None) => None,
        }
    }

    /// Whether any `values` or `links` of the file uses a name from git: then a render command
    /// may not take `values` or `links` in its arguments either (conservative: a value used in
    /// an argument may come from any level).
    fn tainted(&self) -> bool {
        self.all_value_strings
            .iter()
            .any(|t| super::untrusted::uses_untrusted(t))
    }

    /// A namespace template; a literal one is checked here, a templated one when it renders.
    fn namespace(&mut self, ns: &str, ptr: &str) {
        self.template_str(ns, ptr);
        if crate::templating::is_template(ns) {
            return;
        }
        if let Err(e) = naming::check_label(ns) {
            self.err(
                ptr,
                format!(
                    "namespace {ns:?} is not a valid DNS-1123 label: it {}",
                    e.trim_start_matches("is ")
                ),
            );
        } else if let Some(p) = self.safety.protects(ns) {
            self.err(ptr, format!("namespace {ns:?} is protected (by {p:?}); a staging may never live in it: choose a namespace of its own, such as \"{{{{ staging }}}}\""));
        }
    }

    fn render_env(&mut self, names: &[String], ptr: &str) {
        for (i, name) in names.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.err(&p, format!("{name:?} is not an environment variable name"));
            } else if name == "KUBECONFIG" || self.token_envs.contains(name) {
                self.err(&p, format!("{name} holds credentials (a kubeconfig or a repository token) and is never handed to render commands"));
            } else if name.starts_with("OCTOSTAGE_") {
                self.err(&p, format!("{name} is one of octostage's own settings (it may name a kubeconfig); render commands get the context as OCTOSTAGE_* variables already"));
            }
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
                for (file, source) in &files {
                    for (line, expr) in super::untrusted::yaml_template(source) {
                        self.warnings.push(Problem {
                            file: file.clone(),
                            pos: super::position::Pos { line, column: 1 },
                            message: format!("`{{{{ {expr} }}}}` writes a value from git into YAML as it is; whoever pushes chooses it: write `{{{{ {expr} | tojson }}}}`"),
                        });
                    }
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
        let pos = self.positions.value(ptr);
        // A quoted scalar's text starts one column after its quote.
        let quoted = self.positions.is_quoted(ptr);
        let origin = crate::templating::Origin {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column + usize::from(quoted),
        };
        if let Err(e) = self.templates.add_inline(text, Some(origin)) {
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
        if text.trim() == "0" {
            return Some(Duration::ZERO);
        }
        match humantime::parse_duration(text) {
            // Longer would overflow time arithmetic and quietly mean "never".
            Ok(d) if d > consts::MAX_DURATION => {
                self.err(
                    ptr,
                    format!("duration {text:?} is longer than 100 years; for a staging that never expires write `never`"),
                );
                None
            }
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

/// Parse a size such as `32MiB`, `500KiB`, `1GiB` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {text:?}: write it like 500KiB, 32MiB or 1GiB"
            ))
        }
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid size {text:?}: write a positive size like 500KiB, 32MiB or 1GiB"
        )),
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
