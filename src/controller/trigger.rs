//! Why a pass runs.

/// What asked for a pass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trigger {
    /// The first pass of `run`.
    Startup,
    /// The interval passed.
    Interval,
    /// A deadline the plan knew came: a staging expires or its retention ends.
    Deadline,
    /// A file of the local config directory changed.
    FileChange,
    /// A webhook said a repository changed.
    Webhook {
        /// The repository, as the webhook named it.
        repository: String,
    },
    /// Someone asked (SIGHUP, or an API call).
    Manual,
    /// Someone approved the deletions a safety rule holds back: this one pass believes
    /// listings that lost many branches at once (as `--confirm-deletions` does).
    Approve,
    /// This replica became the leader: it writes from now on.
    Leader,
    /// The target changed in a way a pass acts on: a workload became ready or not, someone
    /// ran `octostage sleep | wake | extend`.
    Target,
}

impl Trigger {
    /// How much a pass for it must look at, for coalescing: requests that arrive together
    /// become one pass named after the one that asks most, so a webhook that arrives while a
    /// change in the cluster waits still has the sources read again, and an approval is never
    /// lost.
    pub fn rank(&self) -> u8 {
        match self {
            // The cluster changed: the last sources stand.
            Trigger::Target => 0,
            // The sources are read again.
            Trigger::Interval | Trigger::Deadline | Trigger::Webhook { .. } => 1,
            // Every staging is looked at.
            Trigger::Startup | Trigger::FileChange | Trigger::Manual | Trigger::Leader => 2,
            Trigger::Approve => 3,
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Startup => f.write_str("startup"),
            Trigger::Interval => f.write_str("interval"),
            Trigger::Deadline => f.write_str("deadline"),
            Trigger::FileChange => f.write_str("file change"),
            Trigger::Webhook { repository } => write!(f, "webhook for {repository}"),
            Trigger::Manual => f.write_str("manual"),
            Trigger::Approve => f.write_str("deletions approved"),
            Trigger::Leader => f.write_str("became leader"),
            Trigger::Target => f.write_str("target changed"),
        }
    }
}

/// How long until the next pass, and why then: the interval, or a deadline of the plan when
/// that comes first (a second late, so the pass sees it passed; never sooner than
/// [`crate::consts::MIN_INTERVAL`]).
pub fn wake(
    now: chrono::DateTime<chrono::Utc>,
    interval: std::time::Duration,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> (std::time::Duration, Trigger) {
    let until_deadline = deadline
        .and_then(|d| (d - now).to_std().ok())
        .map(|d| (d + std::time::Duration::from_secs(1)).max(crate::consts::MIN_INTERVAL));
    match until_deadline {
        Some(d) if d < interval => (d, Trigger::Deadline),
        _ => (interval, Trigger::Interval),
    }
}
