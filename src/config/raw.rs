//! The file format of `environments.yaml`, as written by people. These types define the JSON
//! Schema; [`super::validate`] turns them into the validated [`super::Config`].
//!
//! Scalars that need checking beyond their type (durations, cron expressions, globs, time zones)
//! are kept as strings here so that one bad value does not hide the others: every problem of a
//! file is reported at once.

pub use super::raw_forge::*;
pub use super::raw_render::*;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The root of `environments.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "octostage environments.yaml")]
pub struct RawFile {
    /// Format version of this file. Only `1` exists.
    pub version: u32,
    /// Settings every environment inherits; each environment, override and static staging may
    /// replace them.
    #[serde(default)]
    pub defaults: RawSettings,
    /// Guards that keep a bad listing from deleting stagings in bulk.
    #[serde(default)]
    pub safety: RawSafety,
    /// Caps over all environments together.
    #[serde(default)]
    pub limits: RawLimits,
    /// The environments, by name. A name is a lowercase DNS label of at most 24 characters; it
    /// starts every staging name of the environment.
    pub environments: IndexMap<String, RawEnvironment>,
}

/// Settings that can be set in `defaults`, per environment, per branch override and per static
/// staging. The most specific level wins; `values` and `links` are merged key by key.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSettings {
    /// Template of the namespace a staging lives in (default `{{ staging }}`). Must render to a
    /// DNS-1123 label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Directory in the config repository whose `*.yaml`, `*.yml` and `*.j2` files are minijinja
    /// templates of Kubernetes objects; or `{from: app, path: deploy/k8s}`: the directory in the
    /// application repository at the staging's commit. Exclusive with `command`, `kustomize` and
    /// `helm` at the same level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<RawTemplates>,
    /// A program and its arguments (each a template) that prints multi-document YAML, such as
    /// `helm template` or `kubectl kustomize`. Runs in the config repository with the template
    /// context in `OCTOSTAGE_*` environment variables. Exclusive with `templates` at the same
    /// level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A kustomize directory rendered with `kubectl kustomize` through an overlay octostage
    /// generates per staging: the namespace, image names and tags and patches below, each a
    /// template. Exclusive with `templates`, `command` and `helm` at the same level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<RawKustomize>,
    /// A Helm chart rendered with `helm template` (helm must be installed), with `values` as
    /// templates. Exclusive with `templates`, `command` and `kustomize` at the same level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<RawHelm>,
    /// Paths of the application repository a render command reads: exported at the staging's
    /// commit into a read-only directory given as `OCTOSTAGE_APP_DIR`. `templates`, `kustomize`
    /// and `helm` taken `from: app` export their own path unless this lists more (a kustomize
    /// overlay whose base lives elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_paths: Option<Vec<String>>,
    /// How long rendering one staging may take, reading the command's output included, before
    /// its command (and every process it started) is stopped (default `60s`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    #[schemars(schema_with = "duration_schema")]
    pub render_timeout: Option<String>,
    /// Most output rendering one staging may produce, such as `32MiB` (the default) or `500KiB`;
    /// beyond it the render fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_output_limit: Option<String>,
    /// Most memory a render command (kubectl, helm, your command) and every process it starts
    /// may each take, such as `1GiB` (the default) or `512MiB`; templates from the application
    /// repository are rendered in a process under the same limit. A render that reaches it
    /// fails: files from a branch cannot make octostage or its host run out of memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_memory_limit: Option<String>,
    /// Names of environment variables of octostage handed to render commands, besides `PATH`,
    /// `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR` and the `OCTOSTAGE_*` context (for example
    /// `HELM_CACHE_HOME`). Nothing else of octostage's environment reaches a render command;
    /// variables named by `credentials.token_env` and `KUBECONFIG` are refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_env: Option<Vec<String>>,
    /// Free values handed to templates as `values`; strings inside are templates themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    /// Named URLs of a staging (templates), shown in plans and status and handed to templates as
    /// `links`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<IndexMap<String, String>>,
    /// Time to live without activity, such as `36h` or `7d`; `never` keeps the staging forever.
    /// Activity is the later of the head commit's time and when octostage first saw that head.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    #[schemars(schema_with = "duration_schema")]
    pub ttl: Option<String>,
    /// How long an expired staging is kept asleep (scaled to zero, its volumes kept) before it
    /// is deleted; `0` deletes at once. A new commit in that time wakes it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    #[schemars(schema_with = "duration_schema")]
    pub retention: Option<String>,
    /// When stagings sleep and wake, or `never` (turning off a schedule set at a wider level).
    /// Asleep, a staging's Deployments and StatefulSets are applied with 0 replicas and its
    /// CronJobs suspended; Services, Ingresses, ConfigMaps, Secrets and volumes stay.
    /// `octostage wake` and `octostage sleep` override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<RawSleepSetting>,
    /// How long an awake staging may stay not ready (its Deployments and StatefulSets short of
    /// their ready replicas, its Jobs not complete) after a change before it is Failing, such
    /// as `15m` (default `10m`). A failed Job makes it Failing at once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    #[schemars(schema_with = "duration_schema")]
    pub health_deadline: Option<String>,
    /// Who is told when a staging is created, healthy, failing, sleeping, waking, about to be
    /// deleted and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<RawNotify>,
    /// Longest `octostage extend` may keep a staging beyond the time it is asked, such as `14d`
    /// (default `7d`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    #[schemars(schema_with = "duration_schema")]
    pub max_extension: Option<String>,
    /// Secrets and ConfigMaps copied from another namespace into every staging (a wildcard TLS
    /// certificate, an image pull secret), and kept up to date on every pass. A list here
    /// replaces an inherited one. Their values never appear in any output. Needs the kube
    /// target and `get` on exactly those objects (see `deploy/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<Vec<RawCopy>>,
    /// Images that must exist in their registry before a staging is created on a commit or
    /// moved to it: until they do, a new staging is not created and a running one keeps its
    /// commit, and the registry is asked again with backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<RawWaitFor>,
}

/// Notifications: JSON POSTed to webhooks and/or given to a command on stdin, once per
/// transition (recorded on the staging, so a restart sends no duplicate), retried with backoff,
/// never holding up a pass.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawNotify {
    /// Webhooks to POST the payload to. The payload has a plain `text` field, so a Slack
    /// incoming webhook takes it as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<RawWebhook>,
    /// A program and its arguments (not templates) run with the payload on stdin, with the same
    /// bare environment as render commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Which events to send (default all): created, updated, healthy, failing, sleeping,
    /// waking, expired, expiring, deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// How long before its deletion an expired staging's `expiring` warning goes out, such as
    /// `24h` (the default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    #[schemars(schema_with = "duration_schema")]
    pub warn_before: Option<String>,
    /// A commit status on each staging's commit (GitHub, GitLab, Gitea): pending while it is
    /// applied, success when it runs (with its first link), failure when it fails, and a last
    /// one when it is deleted; once per transition, like every notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_status: Option<RawCommitStatus>,
}

/// One webhook. Its URL may itself be a secret (Slack's are): give it by environment variable.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawWebhook {
    /// The URL (`https://`, or `http://` for a receiver on loopback or inside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Name of an environment variable holding the URL (exclusive with `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// Name of an environment variable holding a key: each request then carries
    /// `X-Octostage-Signature-256: sha256=<HMAC-SHA256 of the body, hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// A sleep schedule, or `never` to turn off one inherited from a wider level.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawSleepSetting {
    /// `never`: always awake (unless put to sleep by hand or by a cap).
    Never(RawNever),
    /// A schedule.
    Schedule(RawSleep),
}

/// The word `never`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawNever {
    /// Never.
    Never,
}

/// A sleep schedule: two cron expressions in an IANA time zone.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSleep {
    /// Cron expression of when stagings go to sleep: five fields as crontab reads them (minute
    /// hour day-of-month month weekday; 0 and 7 are Sunday), such as `0 20 * * Mon-Fri`.
    pub at: String,
    /// Cron expression of when they wake, such as `0 7 * * Mon-Fri`.
    pub wake: String,
    /// IANA time zone the expressions are read in, such as `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Caps over all environments together (each environment may have its own as well). Beyond a
/// cap, the least recently active stagings (those that never expire count as most active) are
/// not created or, when they exist, put to sleep, with the reason shown: never deleted for it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawLimits {
    /// Most stagings in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stagings: Option<u32>,
    /// Most stagings awake at once in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_awake: Option<u32>,
}

/// Safety limits of a pass.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSafety {
    /// Most stagings one pass may delete (default 10); the rest wait for later passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletions_per_pass: Option<u32>,
    /// Largest share, in percent, of an environment's branch stagings whose branches may vanish
    /// from one listing (default 50). A larger loss is treated as a broken listing: those
    /// deletions are held until the branches are confirmed gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_branch_loss_percent: Option<u32>,
    /// Globs of namespaces that are never a staging's, besides `default` and `kube-*`, which
    /// are always protected (for example your production namespaces: `["prod-*", "monitoring"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_namespaces: Vec<String>,
}

/// One environment: an application repository and how its branches become stagings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawEnvironment {
    /// The application repository whose branches are watched.
    pub repository: RawRepository,
    /// Which branches get a staging.
    #[serde(default)]
    pub branches: RawBranches,
    /// Branch names or globs whose stagings never expire, such as `main`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always: Vec<String>,
    /// Most stagings of this environment; beyond it the least recently active branches get none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stagings: Option<u32>,
    /// Most stagings of this environment awake at once; beyond it the least recently active
    /// sleep (scaled to zero) until there is room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_awake: Option<u32>,
    /// Settings for branches matching a name or glob, applied in file order over the
    /// environment's settings.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub overrides: IndexMap<String, RawSettings>,
    /// Named stagings pinned to a branch or a commit (a customer demo, a release candidate).
    #[serde(default, rename = "static", skip_serializing_if = "IndexMap::is_empty")]
    pub statics: IndexMap<String, RawStatic>,
    /// The environment's own settings over `defaults`.
    #[serde(flatten)]
    pub settings: RawSettings,
}

/// Where an application repository lives: a URL or path, or a map with credentials.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRepository {
    /// An `https://`, `ssh://`, `git@host:path`, `file://` URL or a local path.
    Url(String),
    /// A URL with credentials.
    Full(RawRepositoryFull),
}

/// A repository URL with a reference to its credentials.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRepositoryFull {
    /// An `https://`, `ssh://`, `git@host:path`, `file://` URL or a local path.
    pub url: String,
    /// Where credentials come from; never the secrets themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RawCredentials>,
}

/// References to credentials: names of environment variables or files, never inline secrets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawCredentials {
    /// User name for https (default `x-access-token`, which GitHub and Gitea accept with a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Name of an environment variable holding an https token or password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Path of a file holding an https token or password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Path of an SSH private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_file: Option<String>,
    /// Path of a known_hosts file (OpenSSH's format) that must list the SSH server's key;
    /// without it, `~/.ssh/known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<String>,
    /// Allow sending the token over plain `http://` (default false: refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plain_http: bool,
}

/// Branch selection by glob: `*` matches within one path segment, `**` across `/`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawBranches {
    /// Globs of branches that get a staging (default: all).
    #[serde(default = "all_branches")]
    pub include: Vec<String>,
    /// Globs of branches that never get one, even when included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Whether a `Staging:` trailer in a branch's head commit steers its staging (default
    /// `true`): `Staging: skip` (no staging; an existing one is deleted, through the deletion
    /// guards), `Staging: keep 14d` (kept at least that long after the commit was first seen,
    /// capped by `max_extension`), `Staging: sleep` (asleep until a later commit or a `wake`).
    /// Static stagings ignore trailers.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub trailers: bool,
    /// Where the branches come from: `git` (default: every branch of the repository) or
    /// `pull_requests`: only the head branches of open pull (merge) requests, as the forge's
    /// API lists them (`pull_requests` below), polled with conditional requests so an idle
    /// poll costs no rate limit. `include`, `exclude` and trailers apply on top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The forge listing the pull requests, with `from: pull_requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_requests: Option<RawPullRequests>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for RawBranches {
    fn default() -> Self {
        RawBranches {
            include: all_branches(),
            exclude: Vec::new(),
            trailers: true,
            from: None,
            pull_requests: None,
        }
    }
}

fn all_branches() -> Vec<String> {
    vec!["**".to_string()]
}

/// A staging declared by name and pinned to a branch or a commit.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawStatic {
    /// Branch whose head the staging follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Commit (full or short sha, or a tag) the staging stays on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// RFC 3339 time after which the staging expires; without it, it never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Settings of this staging over the environment's.
    #[serde(flatten)]
    pub settings: RawSettings,
}

/// A duration as written: text (`7d`), or the bare number `0`, which YAML reads as an integer
/// (`retention: 0`). Any other bare number is refused: it has no unit.
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(i64),
        F(f64),
    }
    match Option::<Text>::deserialize(d)? {
        None => Ok(None),
        Some(Text::S(s)) => Ok(Some(s)),
        Some(Text::N(0)) => Ok(Some("0".into())),
        Some(Text::N(n)) => Err(serde::de::Error::custom(format!(
            "{n} has no unit: write a duration such as {n}d, {n}h or {n}m"
        ))),
        Some(Text::F(f)) => Err(serde::de::Error::custom(format!(
            "{f} has no unit: write a duration such as 36h"
        ))),
    }
}

/// The schema of [`duration_text`]: a string, or the integer 0.
fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "string"}, {"type": "integer", "const": 0}]
    })
}
