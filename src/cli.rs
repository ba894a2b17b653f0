//! Command-line interface (clap derive). Raw flags only; `main` turns them into calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// One staging environment per git branch, declared in environments.yaml and converged safely.
///
/// octostage reads a config repository (environments.yaml), lists the branches of each
/// environment's application repository, computes which stagings should exist and whether they
/// are awake (TTL, retention, sleep schedules, caps, overrides, static stagings, requests) and
/// converges a target toward that set, notifying who asked to be told.
///
/// Exit codes: 0 ok, 1 invalid input or failed pass, 2 usage.
#[derive(Debug, Parser)]
#[command(name = "octostage", version, max_term_width = 100)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `octostage=debug` [default: `RUST_LOG`,
    /// else `warn`, and `octostage=info` for `run` without `--once`: one line per pass].
    #[arg(long, global = true, env = "OCTOSTAGE_LOG")]
    pub log: Option<String>,
    /// Log format: lines for people, or one JSON object per line for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "OCTOSTAGE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Network of render processes that read files from an application repository (kubectl
    /// kustomize, helm, a render command with `app_paths`): `none` runs each in a network
    /// namespace of its own with no interface up, so a file pushed to a branch cannot make a
    /// render fetch anything; `host` lets them use this host's network. `none` needs
    /// CAP_SYS_ADMIN or unprivileged user namespaces; where the kernel refuses both, such
    /// renders fail and say so.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "OCTOSTAGE_RENDER_NETWORK",
        default_value = "none"
    )]
    pub render_network: RenderNetwork,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The network of renders that read branch files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderNetwork {
    /// A network namespace of their own: no network at all.
    None,
    /// This host's network.
    Host,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check environments.yaml and its templates; print every problem with file:line:column.
    Validate(ValidateArgs),
    /// Render one staging's objects as multi-document YAML on stdout.
    Render(RenderArgs),
    /// Show what a pass would do to the target, changing nothing.
    Plan(PlanArgs),
    /// Converge the target: a pass at start, then at every interval, deadline, config file
    /// change, webhook and request; serve the dashboard, JSON API, webhooks and metrics.
    ///
    /// Replicas of one instance on a cluster take turns through a Lease: only the leader
    /// writes; the others plan without writing, serve what they see, and forward actions and
    /// webhooks to the leader.
    ///
    /// Secrets come from the environment only (flags show in `ps`): OCTOSTAGE_API_TOKEN
    /// (actions; without it the server is read-only), OCTOSTAGE_GITHUB_SECRET,
    /// OCTOSTAGE_GITEA_SECRET, OCTOSTAGE_GITLAB_TOKEN, and OCTOSTAGE_WEBHOOK_TOKEN (the bearer
    /// token of /hooks/generic). A webhook without its secret is off.
    Run(RunArgs),
    /// List the stagings the target holds: environment, branch, commit, state, age, next sleep
    /// or wake, expiry, deletion, links; with `--cost`, what they request and what sleep saved.
    Status(StatusArgs),
    /// Put a staging to sleep (scaled to zero) until `octostage wake`; from the next pass.
    Sleep(SleepArgs),
    /// Wake a sleeping staging, whatever its schedule says, for a while (`--for 2h`) or until
    /// the schedule's next sleep time; from the next pass.
    Wake(WakeArgs),
    /// Keep a staging for DURATION from now however idle, at most the environment's
    /// `max_extension`; from the next pass.
    Extend(ExtendArgs),
    /// Print the JSON Schema of environments.yaml.
    Schema,
    /// Print a completion script for SHELL: `octostage completions bash >
    /// /etc/bash_completion.d/octostage`, `octostage completions zsh > ~/.zfunc/_octostage`.
    Completions(CompletionsArgs),
    /// Show octostage at work on a demo application repository made locally (no cluster, no
    /// network): stagings appear, follow new commits, and expire.
    Demo(DemoArgs),
    /// Run a render program under a memory limit (octostage starts render processes so).
    #[command(hide = true)]
    InternalLimitMemory(LimitMemoryArgs),
    /// Render templates of the application repository read from stdin (octostage starts this
    /// under the memory limit).
    #[command(hide = true)]
    InternalRenderTemplates,
    /// Parse YAML read from stdin within a budget and print it as JSON (octostage starts this
    /// under the memory limit).
    #[command(hide = true)]
    InternalParseYaml(ParseYamlArgs),
}

/// `internal-parse-yaml` arguments.
#[derive(Debug, Args)]
pub struct ParseYamlArgs {
    /// Nodes left in the budget.
    pub nodes: u64,
    /// Bytes of text left in the budget.
    pub text: u64,
}

/// `internal-limit-memory` arguments.
#[derive(Debug, Args)]
pub struct LimitMemoryArgs {
    /// Most data memory, bytes.
    pub bytes: u64,
    /// Also leave the network: run in a network namespace of its own.
    #[arg(long)]
    pub no_network: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub argv: Vec<std::ffi::OsString>,
}

/// `validate`: the configuration, and whether to render samples against the application
/// repositories.
#[derive(Debug, Args, Clone)]
pub struct ValidateArgs {
    /// The configuration and the repositories.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check only the configuration: do not fetch application repositories to render one
    /// sample staging of each environment that runs kustomize or helm or reads its templates
    /// from the application repository.
    #[arg(long)]
    pub offline: bool,
}

/// Where the configuration comes from.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Config repository: a directory, or a git URL (https, ssh, file://).
    #[arg(long, short, env = "OCTOSTAGE_CONFIG")]
    pub config: String,
    /// Branch, tag or commit of a git config repository (default: the remote's HEAD).
    #[arg(long, env = "OCTOSTAGE_CONFIG_REF")]
    pub config_ref: Option<String>,
    /// Use URL instead of the environment's repository (a local mirror, a fixture): ENV=URL.
    /// A relative path is taken from the current directory. Repeatable.
    #[arg(long = "repository", value_name = "ENV=URL", value_parser = parse_pair)]
    pub repositories: Vec<(String, String)>,
    /// Cache directory for fetched repositories [default: $XDG_CACHE_HOME/octostage].
    #[arg(long, env = "OCTOSTAGE_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// Longest a branch listing (fetch included) may take; past it the listing is abandoned and
    /// its environments keep their stagings as they are.
    #[arg(long, default_value = "2m", value_parser = parse_positive_duration)]
    pub fetch_timeout: std::time::Duration,
    /// How a git config repository is read when it is private.
    #[command(flatten)]
    pub config_credentials: ConfigCredentials,
}

/// Credentials of a git config repository: where they are, never the secrets themselves (a
/// flag shows in `ps`). The https token comes from OCTOSTAGE_CONFIG_TOKEN or a file.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigCredentials {
    /// User name for an https config repository (default `x-access-token`, which GitHub and
    /// Gitea accept with a token; GitLab takes any name with a token).
    #[arg(long, env = "OCTOSTAGE_CONFIG_USERNAME", value_name = "NAME")]
    pub config_username: Option<String>,
    /// File holding the https token or password of the config repository (else the
    /// environment variable OCTOSTAGE_CONFIG_TOKEN, when set).
    #[arg(long, env = "OCTOSTAGE_CONFIG_TOKEN_FILE", value_name = "PATH")]
    pub config_token_file: Option<PathBuf>,
    /// SSH private key file for an ssh config repository (else the SSH agent).
    #[arg(long, env = "OCTOSTAGE_CONFIG_SSH_KEY_FILE", value_name = "PATH")]
    pub config_ssh_key_file: Option<PathBuf>,
    /// known_hosts file that must list the config repository's SSH server key (else
    /// ~/.ssh/known_hosts).
    #[arg(long, env = "OCTOSTAGE_CONFIG_KNOWN_HOSTS", value_name = "PATH")]
    pub config_known_hosts: Option<PathBuf>,
}

/// The environment variable holding the config repository's https token.
pub const CONFIG_TOKEN_ENV: &str = "OCTOSTAGE_CONFIG_TOKEN";

impl ConfigCredentials {
    /// As the credentials of a repository.
    pub fn credentials(&self) -> crate::config::Credentials {
        let from_env = std::env::var_os(CONFIG_TOKEN_ENV).is_some_and(|v| !v.is_empty());
        crate::config::Credentials {
            username: self.config_username.clone(),
            token_env: (from_env && self.config_token_file.is_none())
                .then(|| CONFIG_TOKEN_ENV.to_string()),
            token_file: self.config_token_file.clone(),
            ssh_key_file: self.config_ssh_key_file.clone(),
            known_hosts_file: self.config_known_hosts.clone(),
            allow_plain_http: false,
        }
    }
}

/// The source arguments of the commands that read the target (`sleep`, `wake`, `status`):
/// taken so that one set of arguments (a shell alias) works for every command; `status` and
/// `wake` say more with a configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct IgnoredConfigArgs {
    /// Config repository: optional here (taken so one alias works for all commands). With
    /// it, `status` also shows stagings that failed before they were ever created, and
    /// `wake` says when an awake cap of 0 keeps the staging asleep.
    #[arg(long, short)]
    pub config: Option<String>,
    /// As for `plan`.
    #[arg(long, hide = true)]
    pub config_ref: Option<String>,
    /// As for `plan`.
    #[arg(long = "repository", hide = true, value_parser = parse_pair)]
    pub repositories: Vec<(String, String)>,
    /// As for `plan`.
    #[arg(long, hide = true)]
    pub cache_dir: Option<PathBuf>,
    /// As for `plan`.
    #[arg(long, hide = true, value_parser = parse_positive_duration)]
    pub fetch_timeout: Option<std::time::Duration>,
    /// As for `plan`.
    #[command(flatten)]
    pub config_credentials: ConfigCredentials,
}

impl IgnoredConfigArgs {
    /// The configuration's arguments, when a configuration was named.
    pub fn config_args(&self) -> Option<ConfigArgs> {
        Some(ConfigArgs {
            config: self.config.clone()?,
            config_ref: self.config_ref.clone(),
            repositories: self.repositories.clone(),
            cache_dir: self.cache_dir.clone(),
            fetch_timeout: self
                .fetch_timeout
                .unwrap_or(std::time::Duration::from_secs(120)),
            config_credentials: self.config_credentials.clone(),
        })
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (env, url) = s
        .split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected ENV=URL, got {:?}", crate::redact::url(s)))?;
    let url = if crate::redact::is_remote(url) || std::path::Path::new(url).is_absolute() {
        url.to_string()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(url)
            .to_string_lossy()
            .into_owned()
    };
    Ok((env.to_string(), url))
}

fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < crate::consts::MIN_INTERVAL {
        return Err(format!(
            "must be at least {} (a shorter interval would only keep the sources and the cluster busy)",
            humantime::format_duration(crate::consts::MIN_INTERVAL)
        ));
    }
    Ok(d)
}

/// `render` arguments.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Where the configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Environment name.
    #[arg(long, short)]
    pub environment: String,
    /// Branch whose staging to render.
    #[arg(
        long,
        short,
        conflicts_with = "static_name",
        required_unless_present = "static_name"
    )]
    pub branch: Option<String>,
    /// Static staging to render (its name under `static:`).
    #[arg(long = "static")]
    pub static_name: Option<String>,
    /// The target whose stagings pin names (`none`: name it as a fresh target would).
    #[arg(long, short, default_value = "none")]
    pub target: String,
    /// Name of this octostage among others sharing a cluster.
    #[arg(long, env = "OCTOSTAGE_INSTANCE", default_value = crate::consts::DEFAULT_INSTANCE)]
    pub instance: String,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, with the span (pass, staging) of each event.
    Json,
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Text,
    /// `{"stagings": [...]}` for programs; times in RFC 3339.
    Json,
}

/// Where stagings land.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Which target.
    #[command(flatten)]
    pub select: TargetSelect,
    /// Believe a listing that lost more branches at once than safety.max_branch_loss_percent
    /// allows (after a real mass deletion of branches).
    #[arg(long)]
    pub confirm_deletions: bool,
    /// Most stagings converged at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// Which target, and which octostage on it.
#[derive(Debug, Args, Clone)]
pub struct TargetSelect {
    /// Target: `kube` (the cluster of the current kubeconfig or service account), `kube:PATH`
    /// (a kubeconfig file), `dir:PATH` (a folder per staging), or `auto`: `kube` when a
    /// kubeconfig or in-cluster configuration is found. For `plan` also `none` (an empty
    /// target: the plan shows what a fresh one would get), which `auto` means there when no
    /// cluster is found; `run` refuses both rather than deploy nothing.
    #[arg(long, short, env = "OCTOSTAGE_TARGET", default_value = "auto")]
    pub target: String,
    /// Name of this octostage among others sharing a cluster; each sees and touches only the
    /// stagings of its own instance.
    #[arg(long, env = "OCTOSTAGE_INSTANCE", default_value = crate::consts::DEFAULT_INSTANCE)]
    pub instance: String,
}

/// `plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Where the configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where stagings land.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Plan as if it were this time (RFC 3339, such as 2026-12-01T09:00:00+01:00), from the
    /// current listings and target: what expires, sleeps, wakes and is deleted by then.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Show each changing staging's links and objects, and for each updated object the fields
    /// that change (`~ spec.replicas: 1 → 3`), reading what the target holds; a Secret's
    /// values are never shown.
    #[arg(long)]
    pub diff: bool,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}; write RFC 3339 such as 2026-12-01T09:00:00+01:00"))
}

/// `sleep` arguments.
#[derive(Debug, Args)]
pub struct SleepArgs {
    /// The staging: its name, its branch, or a unique prefix of its name (see `octostage
    /// status`).
    pub staging: String,
    /// Which target.
    #[command(flatten)]
    pub select: TargetSelect,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub ignored: IgnoredConfigArgs,
}

/// `wake` arguments.
#[derive(Debug, Args)]
pub struct WakeArgs {
    /// The staging: its name, its branch, or a unique prefix of its name (see `octostage
    /// status`).
    pub staging: String,
    /// How long it stays awake, such as 2h; without it, until the schedule's next sleep time.
    #[arg(long = "for", value_parser = parse_positive_duration)]
    pub duration: Option<std::time::Duration>,
    /// Which target.
    #[command(flatten)]
    pub select: TargetSelect,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub ignored: IgnoredConfigArgs,
}

/// `extend` arguments.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The staging: its name, its branch, or a unique prefix of its name (see `octostage
    /// status`).
    pub staging: String,
    /// How long from now to keep it, such as 3d. A longer extension already given stands.
    #[arg(value_parser = parse_positive_duration)]
    pub duration: std::time::Duration,
    /// Replace an extension that lasts longer (shorten it).
    #[arg(long)]
    pub replace: bool,
    /// Where the configuration comes from (for `max_extension`).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Which target.
    #[command(flatten)]
    pub select: TargetSelect,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the configuration comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where stagings land.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Run one pass and exit (for CI and cron); exit 1 when a staging or a source failed.
    #[arg(long)]
    pub once: bool,
    /// Time between passes, e.g. 30s or 5m (at least 1s).
    #[arg(long, default_value = crate::consts::DEFAULT_INTERVAL, value_parser = parse_interval)]
    pub interval: std::time::Duration,
    /// Look at every staging at least this often, e.g. 10m (at least 1s). Passes between look
    /// only at what changed: a branch head, the configuration, a staging's objects, workloads
    /// or requests in the cluster (the cluster's watch tells), a deadline.
    #[arg(long, default_value = crate::consts::DEFAULT_RESYNC_TEXT, value_parser = parse_interval)]
    pub resync: std::time::Duration,
    /// Address of the HTTP server: dashboard, JSON API, webhooks, /healthz, /readyz
    /// (`0.0.0.0:8080` in a pod; port 0 picks a free one); `off` for none. Not started with
    /// --once.
    #[arg(long, env = "OCTOSTAGE_LISTEN", default_value = crate::consts::DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: Listen,
    /// Address of the probe server: /healthz, /readyz and /metrics on a listener of their
    /// own, which clients of the dashboard cannot crowd out (`0.0.0.0:8081` in a pod, for the
    /// kubelet and Prometheus; port 0 picks a free one); `off` for none.
    #[arg(long, env = "OCTOSTAGE_PROBE_LISTEN", default_value = crate::consts::DEFAULT_PROBE_LISTEN, value_parser = parse_listen)]
    pub probe_listen: Listen,
    /// Connections the HTTP server keeps open from one client address (of 256 in all). Behind
    /// an ingress controller every request comes from its few addresses: raise it there.
    #[arg(long, env = "OCTOSTAGE_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_connections_per_client: u16,
    /// Where other replicas forward actions and webhooks while this one leads, such as
    /// http://10.0.0.7:8080 (in a pod, from its IP; see deploy/).
    #[arg(long, env = "OCTOSTAGE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// This replica's name in leader election (a mark of the process is added) [default:
    /// POD_NAME, else HOSTNAME-PID].
    #[arg(long, env = "OCTOSTAGE_IDENTITY")]
    pub identity: Option<String>,
    /// Name of the Lease replicas of this instance take turns holding, in the namespace of
    /// POD_NAMESPACE (or the service account's, else default) [default: octostage-INSTANCE].
    #[arg(long, value_parser = parse_lease)]
    pub lease: Option<String>,
    /// Write without holding the lease: for a single replica where Leases may not be used.
    /// Two replicas run this way write at the same time.
    #[arg(long)]
    pub no_leader_election: bool,
}

/// Where `run` serves HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Nowhere.
    Off,
    /// This address.
    At(std::net::SocketAddr),
}

/// A lease name the API server takes (a DNS label): a wrong one would leave `run` never
/// leading, and so never writing.
fn parse_lease(s: &str) -> Result<String, String> {
    crate::naming::check_label(s)?;
    Ok(s.to_string())
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::At)
        .map_err(|e| format!("{e}: write HOST:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080, or off"))
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Which target.
    #[command(flatten)]
    pub select: TargetSelect,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Show what each staging's workloads request, its hours awake and asleep, and the
    /// CPU-hours and GiB-hours sleep and expiry saved against running always.
    #[arg(long)]
    pub cost: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub ignored: IgnoredConfigArgs,
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's repositories and stagings [default: a new temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
