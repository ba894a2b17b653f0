//! Names and defaults that the rest of the code, the cluster and the docs agree on.

use std::time::Duration;

/// Label every object octostage owns carries, with the value [`MANAGER`].
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`], and the server-side apply field manager.
pub const MANAGER: &str = "octostage";
/// The field manager of `octostage sleep | wake | extend`, which write only their requests.
pub const REQUESTS_MANAGER: &str = "octostage-requests";
/// Label naming the environment a staging belongs to.
pub const LABEL_ENVIRONMENT: &str = "octostage.dev/environment";
/// Label naming the staging an object belongs to.
pub const LABEL_STAGING: &str = "octostage.dev/staging";
/// Label naming the octostage instance that owns a staging namespace; instances sharing a
/// cluster never see, so never touch, each other's stagings.
pub const LABEL_INSTANCE: &str = "octostage.dev/instance";
/// Longest `Staging:` trailer value read; a longer one is not a valid steer anyway.
pub const MAX_TRAILER: usize = 64;
/// Most bytes of a commit's subject kept (its first paragraph can be megabytes, and it reaches
/// templates, tables, notifications and forges).
pub const MAX_SUBJECT: usize = 1024;
/// Most bytes of a commit author's name kept.
pub const MAX_AUTHOR: usize = 256;
/// How long after a commit's time `wait_for` keeps asking the registry, by default.
pub const DEFAULT_IMAGE_GIVE_UP: Duration = Duration::from_secs(3600);
/// Default instance name.
pub const DEFAULT_INSTANCE: &str = "default";
/// Annotation of a rendered object: its wave, an integer (default 0). Waves are applied in
/// order, each once the workloads of the one before are healthy.
pub const ANNOTATION_WAVE: &str = "octostage.dev/wave";
/// Waves range over `-MAX_WAVE..=MAX_WAVE`.
pub const MAX_WAVE: i32 = 100;
/// Annotation carrying the content hash of an applied object.
pub const ANNOTATION_HASH: &str = "octostage.dev/content-hash";
/// Annotation octostage writes on a staging's namespace only when it creates it: which
/// instance created it and when. A namespace without it is never octostage's to write, prune
/// or delete, whatever its labels say.
pub const ANNOTATION_CREATED_BY: &str = "octostage.dev/created-by";

/// The file a config repository keeps at its root.
pub const CONFIG_FILE: &str = "environments.yaml";
/// The only format version this release reads.
pub const FORMAT_VERSION: u32 = 1;

/// Default time to live of a branch staging without activity (7 days).
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest `octostage extend` when `max_extension` is not set (as Release allows).
pub const DEFAULT_MAX_EXTENSION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an awake staging may stay not ready after a change when `health_deadline` is not
/// set.
pub const DEFAULT_HEALTH_DEADLINE: Duration = Duration::from_secs(600);
/// How long before deletion the `expiring` notification goes out when `warn_before` is not set.
pub const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(24 * 3600);
/// Default namespace template.
pub const DEFAULT_NAMESPACE: &str = "{{ staging }}";
/// Default limit on how long a render command may run.
pub const DEFAULT_RENDER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on what rendering one staging may produce (32 MiB).
pub const DEFAULT_RENDER_OUTPUT_LIMIT: u64 = 32 << 20;
/// Most memory each process of a render may take, unless `render_memory_limit` says otherwise:
/// `helm template` of a large chart stays well under it, a YAML alias bomb does not.
pub const DEFAULT_RENDER_MEMORY_LIMIT: u64 = 1 << 30;
/// Below this, kubectl's own runtime cannot start.
pub const MIN_RENDER_MEMORY_LIMIT: u64 = 128 << 20;
/// Above this the limit bounds nothing a render host has.
pub const MAX_RENDER_MEMORY_LIMIT: u64 = 64 << 30;
/// Namespaces that are never a staging's, whatever the configuration says.
pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-*"];
/// Environment variables of octostage every render command gets (when set); nothing else of
/// octostage's environment reaches it unless `render_env` names it.
pub const RENDER_ENV_DEFAULT: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
/// Instructions one template render may execute (minijinja fuel): a runaway loop stops with an
/// error instead of holding a pass.
pub const TEMPLATE_FUEL: u64 = 20_000_000;
/// Longest wait for a connection to the API server.
pub const KUBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one API request (each attempt of a retried one).
pub const KUBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a watch may stay silent before its connection counts as dead: longer than the
/// 290 s after which the API server is asked to end it (and octostage resumes it).
pub const KUBE_WATCH_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a pass waits for a watch's first listing before listing on its own.
pub const WATCH_FIRST_LIST_WAIT: Duration = Duration::from_secs(10);
/// Longest a staging's writes may take, besides its render: past it the staging fails and the
/// pass goes on.
pub const STAGING_WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest reading what the target holds may take.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest duration a setting or request takes (`ttl`, `retention`, `wake --for`): 100 years
/// as humantime counts them (365.25 days each), so that `100y` itself is taken.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);
/// Longest `render_timeout`.
pub const MAX_RENDER_TIMEOUT: Duration = Duration::from_secs(3600);
/// Shortest interval between passes of `octostage run`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default number of deletions one pass may perform.
pub const DEFAULT_MAX_DELETIONS_PER_PASS: u32 = 10;
/// Default share (percent) of an environment's branch stagings whose branches may vanish in one
/// listing before the listing is treated as suspect.
pub const DEFAULT_MAX_BRANCH_LOSS_PERCENT: u32 = 50;
/// Default interval between passes of `octostage run`.
pub const DEFAULT_INTERVAL: &str = "30s";
/// How often `run` looks at every staging, whatever changed (passes between look at what
/// the sources and the cluster say changed).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
/// [`DEFAULT_RESYNC`] as `--resync` takes it.
pub const DEFAULT_RESYNC_TEXT: &str = "10m";

/// Longest environment name: leaves room for a branch slug inside a 63-character label.
pub const MAX_ENVIRONMENT_NAME: usize = 24;
/// Maximum length of a DNS-1123 label.
pub const MAX_LABEL: usize = 63;
/// `reportingController` of the Events octostage posts.
pub const EVENT_CONTROLLER: &str = "octostage.dev/controller";
/// How long a leader's claim lasts without renewal (client-go's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// A leader that could not renew for this long stops writing: before anyone may take over.
pub const LEASE_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the lease is renewed, or looked at by those waiting for it.
pub const LEASE_RETRY: Duration = Duration::from_secs(2);
/// Default listen address of `run`'s HTTP server.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default listen address of `run`'s probe server (health, readiness, metrics).
pub const DEFAULT_PROBE_LISTEN: &str = "127.0.0.1:8081";
/// Largest webhook or action body taken.
pub const MAX_BODY: usize = 1 << 20;
