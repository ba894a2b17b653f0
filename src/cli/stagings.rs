//! What a command does with stagings: render, plan, run, status and requests.

use clap::Args;

use super::sources::{parse_interval, parse_positive_duration};
use super::{ConfigArgs, Format, IgnoredConfigArgs};

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
    pub target: crate::targets::TargetSpec,
    /// Name of this octostage among others sharing a cluster.
    #[arg(long, env = "OCTOSTAGE_INSTANCE", default_value = crate::consts::DEFAULT_INSTANCE)]
    pub instance: String,
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
    pub target: crate::targets::TargetSpec,
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

pub(super) fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
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
    /// Run one pass and exit (for CI and cron); exit 1 when a staging or a source failed. On a
    /// cluster it holds the lease for the pass: refused while a running replica leads.
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
    /// Write without holding the lease: for a single replica (or `--once`) where Leases may not
    /// be used. Two replicas run this way write at the same time.
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
pub(super) fn parse_lease(s: &str) -> Result<String, String> {
    crate::naming::check_label(s).map_err(|e| format!("{s:?} {e}"))?;
    Ok(s.to_string())
}

pub(super) fn parse_listen(s: &str) -> Result<Listen, String> {
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
