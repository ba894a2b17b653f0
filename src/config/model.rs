//! The validated configuration: what the rest of octostage works with. Every value here has
//! been checked; nothing downstream reads raw YAML.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{GlobBuilder, GlobMatcher};
use indexmap::IndexMap;

use crate::consts;

pub use super::notify::{
    CommitStatus, EventKind, Notify, Provider, PullRequests, TokenError, TokenSource, UrlSource,
    Webhook,
};
pub use super::render_spec::*;

/// A validated `environments.yaml` with the templates it refers to.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the config repository (render commands run here).
    pub root: PathBuf,
    /// Commit of the config repository, when it is a git checkout.
    pub commit: Option<String>,
    /// Safety limits of a pass.
    pub safety: Safety,
    /// Caps over all environments.
    pub limits: Limits,
    /// Environments in file order.
    pub environments: Vec<Environment>,
    /// Template files by directory, loaded and compiled once.
    pub templates: Arc<crate::templating::TemplateSet>,
    /// Things worth knowing that do not make the file invalid.
    pub warnings: Vec<super::Problem>,
    /// Environments left out because their part of the file is invalid, with the problems:
    /// their stagings are frozen as they are (see [`super::load_for_pass`]).
    pub frozen: Vec<(String, String)>,
}

impl Config {
    /// A digest of every value of the configuration, for this process only: two loads with
    /// the same digest plan and render alike. Taken over the `Debug` form, which prints every
    /// field (templates by the digest of their files); a derived `Hash` would need it of
    /// compiled globs and templates, which have none.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        struct Feed<'a>(&'a mut std::collections::hash_map::DefaultHasher);
        impl std::fmt::Write for Feed<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                s.hash(self.0);
                Ok(())
            }
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let _ = std::fmt::write(&mut Feed(&mut h), format_args!("{self:?}"));
        h.finish()
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }
}

/// Caps over all environments (see `limits` in environments.yaml).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most stagings in all.
    pub max_stagings: Option<u32>,
    /// Most stagings awake in all.
    pub max_awake: Option<u32>,
}

/// Safety limits of a pass (see `safety` in environments.yaml).
#[derive(Debug, Clone)]
pub struct Safety {
    /// Most deletions in one pass.
    pub max_deletions_per_pass: u32,
    /// Largest share (percent) of branch stagings whose branches may vanish in one listing.
    pub max_branch_loss_percent: u32,
    /// Namespaces that are never a staging's: [`consts::PROTECTED_NAMESPACES`] and the file's.
    pub protected_namespaces: Globs,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_deletions_per_pass: consts::DEFAULT_MAX_DELETIONS_PER_PASS,
            max_branch_loss_percent: consts::DEFAULT_MAX_BRANCH_LOSS_PERCENT,
            protected_namespaces: Globs::new(consts::PROTECTED_NAMESPACES)
                .expect("built-in globs compile"),
        }
    }
}

impl Safety {
    /// The pattern that protects `namespace`, if one does.
    pub fn protects(&self, namespace: &str) -> Option<&str> {
        self.protected_namespaces.matches(namespace)
    }
}

/// One environment.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Name, a DNS label of at most 24 characters.
    pub name: String,
    /// The application repository.
    pub repository: Repository,
    /// Branches that get a staging.
    pub include: Globs,
    /// Branches that never get one.
    pub exclude: Globs,
    /// Whether `Staging:` trailers of head commits steer branch stagings.
    pub trailers: bool,
    /// With `branches.from: pull_requests`: only branches of open pull requests.
    pub pull_requests: Option<Arc<PullRequests>>,
    /// Branches whose stagings never expire.
    pub always: Globs,
    /// Most stagings of this environment.
    pub max_stagings: Option<u32>,
    /// Most stagings of this environment awake at once.
    pub max_awake: Option<u32>,
    /// Settings of the environment (defaults applied), before branch overrides.
    pub base: Layer,
    /// The same, resolved, for branches that no override matches.
    pub settings: Arc<Settings>,
    /// Branch overrides in file order.
    pub overrides: Vec<(Globs, Layer)>,
    /// Static stagings in file order.
    pub statics: Vec<StaticStaging>,
}

impl Environment {
    /// Settings for a branch: the environment's, with every matching override applied in order.
    pub fn settings_for(&self, branch: &str) -> Arc<Settings> {
        let mut layer: Option<Layer> = None;
        for (pattern, over) in &self.overrides {
            if pattern.matches(branch).is_some() {
                layer = Some(over.over(layer.as_ref().unwrap_or(&self.base)));
            }
        }
        match layer {
            None => self.settings.clone(),
            // Validation resolved every override against the base, so this cannot fail.
            Some(l) => Arc::new(
                l.resolve()
                    .expect("override validated against its environment"),
            ),
        }
    }
}

/// An application repository reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// URL or path (relative paths already made absolute against the config repository).
    pub url: String,
    /// Where credentials come from.
    pub credentials: Credentials,
}

/// References to credentials; the secrets themselves are read only when fetching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name for https.
    pub username: Option<String>,
    /// Environment variable holding a token.
    pub token_env: Option<String>,
    /// File holding a token.
    pub token_file: Option<PathBuf>,
    /// SSH private key file.
    pub ssh_key_file: Option<PathBuf>,
    /// known_hosts file the SSH server's key must be listed in (else libgit2's default,
    /// `~/.ssh/known_hosts`).
    pub known_hosts_file: Option<PathBuf>,
    /// Whether a token may travel over plain `http://`.
    pub allow_plain_http: bool,
}

/// A list of branch globs: `*` within one path segment, `**` across `/`.
#[derive(Debug, Clone, Default)]
pub struct Globs {
    patterns: Vec<(String, GlobMatcher)>,
}

impl Globs {
    /// Compile globs; the error names the pattern and what is wrong with it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Globs, (usize, String)> {
        let mut out = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| (i, format!("invalid glob {p:?}: {}", e.kind())))?;
            out.push((p.to_string(), glob.compile_matcher()));
        }
        Ok(Globs { patterns: out })
    }

    /// The first pattern matching `name`.
    pub fn matches(&self, name: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|(_, m)| m.is_match(name))
            .map(|(p, _)| p.as_str())
    }

    /// The patterns as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }
}

/// A staging declared by name.
#[derive(Debug, Clone)]
pub struct StaticStaging {
    /// Its name inside the environment (the staging is `<environment>-<name>`).
    pub name: String,
    /// What it runs.
    pub pin: Pin,
    /// When it expires, if ever.
    pub until: Option<DateTime<Utc>>,
    /// Its settings, resolved.
    pub settings: Arc<Settings>,
}

/// What a static staging runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// The head of a branch.
    Branch(String),
    /// A fixed commit (sha, short sha or tag).
    Commit(String),
}

/// Time to live of a staging without activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Never expires.
    Never,
    /// Expires this long after its last activity.
    After(Duration),
}

/// A validated sleep schedule.
#[derive(Debug, Clone)]
pub struct Sleep {
    /// When stagings go to sleep.
    pub at: cron::Schedule,
    /// When they wake.
    pub wake: cron::Schedule,
    /// Time zone of both.
    pub timezone: chrono_tz::Tz,
}

/// One level of settings (defaults, environment, override, static) after validation.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// Namespace template.
    pub namespace: Option<String>,
    /// Render spec.
    pub render: Option<Render>,
    /// Render time limit.
    pub render_timeout: Option<Duration>,
    /// Render output limit, bytes.
    pub render_output_limit: Option<u64>,
    /// Render memory limit, bytes.
    pub render_memory_limit: Option<u64>,
    /// Extra environment variables handed to render commands.
    pub render_env: Option<Vec<String>>,
    /// Values (merged key by key, deeply).
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    /// Links (merged key by key).
    pub links: Option<IndexMap<String, String>>,
    /// Time to live.
    pub ttl: Option<Ttl>,
    /// Sleep before deletion once expired.
    pub retention: Option<Duration>,
    /// Sleep schedule; `Some(None)`: `never`, over an inherited one.
    pub sleep: Option<Option<Sleep>>,
    /// Longest `extend`.
    pub max_extension: Option<Duration>,
    /// Longest not ready before Failing.
    pub health_deadline: Option<Duration>,
    /// Notifications.
    pub notify: Option<Arc<Notify>>,
    /// Objects copied into every staging; replaces an inherited list.
    pub copy: Option<Vec<Copy>>,
    /// Paths of the application repository exported for rendering.
    pub app_paths: Option<Vec<String>>,
    /// Images to wait for.
    pub wait_for: Option<Arc<WaitFor>>,
}

impl Layer {
    /// This layer over `base`: set fields win, maps merge.
    pub fn over(&self, base: &Layer) -> Layer {
        Layer {
            namespace: self.namespace.clone().or_else(|| base.namespace.clone()),
            render: self.render.clone().or_else(|| base.render.clone()),
            render_timeout: self.render_timeout.or(base.render_timeout),
            render_output_limit: self.render_output_limit.or(base.render_output_limit),
            render_memory_limit: self.render_memory_limit.or(base.render_memory_limit),
            render_env: self.render_env.clone().or_else(|| base.render_env.clone()),
            values: merge_values(base.values.as_ref(), self.values.as_ref()),
            links: match (&base.links, &self.links) {
                (Some(b), Some(o)) => {
                    let mut m = b.clone();
                    m.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Some(m)
                }
                (b, o) => o.clone().or_else(|| b.clone()),
            },
            ttl: self.ttl.or(base.ttl),
            retention: self.retention.or(base.retention),
            sleep: self.sleep.clone().or_else(|| base.sleep.clone()),
            max_extension: self.max_extension.or(base.max_extension),
            health_deadline: self.health_deadline.or(base.health_deadline),
            notify: self.notify.clone().or_else(|| base.notify.clone()),
            copy: self.copy.clone().or_else(|| base.copy.clone()),
            app_paths: self.app_paths.clone().or_else(|| base.app_paths.clone()),
            wait_for: self.wait_for.clone().or_else(|| base.wait_for.clone()),
        }
    }

    /// Fill what is unset with the built-in defaults; `None` when no render spec is set.
    pub fn resolve(self) -> Option<Settings> {
        Some(Settings {
            namespace: self
                .namespace
                .unwrap_or_else(|| consts::DEFAULT_NAMESPACE.to_string()),
            render: self.render?,
            render_timeout: self
                .render_timeout
                .unwrap_or(consts::DEFAULT_RENDER_TIMEOUT),
            render_output_limit: self
                .render_output_limit
                .unwrap_or(consts::DEFAULT_RENDER_OUTPUT_LIMIT),
            render_memory_limit: self
                .render_memory_limit
                .unwrap_or(consts::DEFAULT_RENDER_MEMORY_LIMIT),
            render_env: self.render_env.unwrap_or_default(),
            values: self.values.unwrap_or_default(),
            links: self.links.unwrap_or_default(),
            ttl: self.ttl.unwrap_or(Ttl::After(consts::DEFAULT_TTL)),
            retention: self.retention.unwrap_or_default(),
            sleep: self.sleep.flatten(),
            max_extension: self.max_extension.unwrap_or(consts::DEFAULT_MAX_EXTENSION),
            health_deadline: self
                .health_deadline
                .unwrap_or(consts::DEFAULT_HEALTH_DEADLINE),
            notify: self.notify,
            copy: self.copy.unwrap_or_default(),
            app_paths: self.app_paths.unwrap_or_default(),
            wait_for: self.wait_for,
        })
    }
}

fn merge_values(
    base: Option<&serde_json::Map<String, serde_json::Value>>,
    over: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    match (base, over) {
        (Some(b), Some(o)) => {
            let mut m = b.clone();
            for (k, v) in o {
                let merged = match (m.get(k), v) {
                    (Some(serde_json::Value::Object(bm)), serde_json::Value::Object(om)) => {
                        serde_json::Value::Object(
                            merge_values(Some(bm), Some(om)).unwrap_or_default(),
                        )
                    }
                    _ => v.clone(),
                };
                m.insert(k.clone(), merged);
            }
            Some(m)
        }
        (b, o) => o.or(b).cloned(),
    }
}

/// Settings of one staging, every level applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace template.
    pub namespace: String,
    /// Render spec.
    pub render: Render,
    /// Render time limit, reading the output included.
    pub render_timeout: Duration,
    /// Most bytes one staging's render may produce.
    pub render_output_limit: u64,
    /// Most memory (data segment and private mappings) each process of a render may take.
    pub render_memory_limit: u64,
    /// Environment variables of octostage handed to render commands, besides the defaults.
    pub render_env: Vec<String>,
    /// Values (templates inside strings not yet rendered).
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Link templates.
    pub links: IndexMap<String, String>,
    /// Time to live.
    pub ttl: Ttl,
    /// Sleep before deletion once expired.
    pub retention: Duration,
    /// Sleep schedule.
    pub sleep: Option<Sleep>,
    /// Longest `extend`, counted from when it is asked.
    pub max_extension: Duration,
    /// Longest not ready before Failing.
    pub health_deadline: Duration,
    /// Notifications, if any.
    pub notify: Option<Arc<Notify>>,
    /// Objects copied into every staging.
    pub copy: Vec<Copy>,
    /// Paths of the application repository given as `app_paths`.
    pub app_paths: Vec<String>,
    /// Images to wait for, if any.
    pub wait_for: Option<Arc<WaitFor>>,
}

impl Settings {
    /// The paths of the application repository a render of these settings reads: `app_paths`
    /// and the render spec's own, none when it reads none.
    pub fn app_export(&self) -> Vec<String> {
        let mut out = self.app_paths.clone();
        if let Some(p) = self.render.app_path() {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_keep_star_inside_a_segment_and_doublestar_across() {
        let g = Globs::new(&["feature/*"]).unwrap();
        assert!(g.matches("feature/a").is_some());
        assert!(g.matches("feature/a/b").is_none());
        let g = Globs::new(&["feature/**"]).unwrap();
        assert!(g.matches("feature/a/b").is_some());
        assert_eq!(Globs::new(&["**"]).unwrap().matches("a/b/c"), Some("**"));
        assert!(Globs::new(&["ok", "feature/[ab"]).unwrap_err().0 == 1);
    }

    #[test]
    fn layers_merge_values_deeply_and_links_by_key() {
        let base = Layer {
            values: Some(
                json!({"a": {"x": 1, "y": 2}, "b": 1})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            links: Some([("web".to_string(), "w".to_string())].into_iter().collect()),
            ttl: Some(Ttl::Never),
            ..Layer::default()
        };
        let over = Layer {
            values: Some(json!({"a": {"y": 3}}).as_object().unwrap().clone()),
            links: Some([("api".to_string(), "a".to_string())].into_iter().collect()),
            ..Layer::default()
        };
        let l = over.over(&base);
        assert_eq!(
            json!(l.values.unwrap()),
            json!({"a": {"x": 1, "y": 3}, "b": 1})
        );
        assert_eq!(l.links.unwrap().len(), 2);
        assert_eq!(l.ttl, Some(Ttl::Never));
        assert!(l.render.is_none());
    }
}
