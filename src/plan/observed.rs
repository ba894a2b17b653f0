//! What a target reports about the stagings it holds: the record octostage keeps on what it
//! owns instead of in a database (one annotation on a namespace, the status file of a dir
//! target: the same record, the same (de)serializer).

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{Action, Why};
pub use crate::render::sleep::Usage;

/// Most transitions a record keeps.
pub const MAX_HISTORY: usize = 20;

/// Lifecycle state recorded on a staging. Written as one string (`active`,
/// `sleeping:schedule`, `sleeping:manual`, `sleeping:cap`, `expired`) so that every reader, a
/// YAML status file or a `jq` filter, can take it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum State {
    /// Running at its rendered size.
    Active,
    /// Scaled to zero (Deployments and StatefulSets at 0 replicas, CronJobs suspended), its
    /// Services, Ingresses, ConfigMaps, Secrets and volumes kept.
    Sleeping(SleepCause),
    /// Expired: asleep until its retention ends, then deleted.
    Expired,
}

impl From<State> for String {
    fn from(s: State) -> String {
        match s {
            State::Active => "active".into(),
            State::Sleeping(c) => format!("sleeping:{c}"),
            State::Expired => "expired".into(),
        }
    }
}

/// A state this version does not know (written by a newer one, or by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

impl TryFrom<String> for State {
    type Error = UnknownState;
    fn try_from(s: String) -> Result<State, UnknownState> {
        Ok(match s.as_str() {
            "active" => State::Active,
            "expired" => State::Expired,
            "sleeping:schedule" => State::Sleeping(SleepCause::Schedule),
            "sleeping:manual" => State::Sleeping(SleepCause::Manual),
            "sleeping:cap" => State::Sleeping(SleepCause::Cap),
            "sleeping:trailer" => State::Sleeping(SleepCause::Trailer),
            other => return Err(UnknownState(other.to_string())),
        })
    }
}

impl State {
    /// Whether its workloads are scaled to zero.
    pub fn asleep(self) -> bool {
        !matches!(self, State::Active)
    }
}

/// Why a staging sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SleepCause {
    /// Its sleep schedule.
    Schedule,
    /// `octostage sleep`.
    Manual,
    /// More stagings are awake than `max_awake` allows; the least recently active sleep.
    Cap,
    /// The head commit's `Staging: sleep` trailer.
    Trailer,
}

impl std::fmt::Display for SleepCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SleepCause::Schedule => "schedule",
            SleepCause::Manual => "manual",
            SleepCause::Cap => "cap",
            SleepCause::Trailer => "trailer",
        })
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Active => f.write_str("active"),
            State::Sleeping(c) => write!(f, "sleeping ({c})"),
            State::Expired => f.write_str("expired"),
        }
    }
}

/// How an awake staging's workloads are doing, as recorded on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "lowercase")]
pub enum Health {
    /// Applied, not ready yet.
    Pending {
        /// Since when.
        since: DateTime<Utc>,
    },
    /// Every workload ready.
    Running {
        /// Since when.
        since: DateTime<Utc>,
    },
    /// A Job failed, or not ready past the health deadline.
    Failing {
        /// Since when.
        since: DateTime<Utc>,
        /// What is wrong (`Deployment/web: 0 of 2 ready after 10m`).
        reason: String,
    },
}

impl Health {
    /// Since when it has been so.
    pub fn since(&self) -> DateTime<Utc> {
        match self {
            Health::Pending { since }
            | Health::Running { since }
            | Health::Failing { since, .. } => *since,
        }
    }

    /// Whether `other` is the same kind of health (whatever its time and reason).
    pub fn same_kind(&self, other: &Health) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// What a target sees of a staging's workloads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every Deployment and StatefulSet has its replicas ready and rolled out, every Job
    /// completed.
    Ready,
    /// Not yet: the first workload that is not (`Deployment/web: 1 of 2 ready`).
    NotReady(String),
    /// A workload's controller has not yet seen a change of its spec (which): not ready, but
    /// no reason to call a running staging unwell (another manager's change, an autoscaler,
    /// is seen within moments and then shows what it does to the replicas).
    Unobserved(String),
    /// A Job failed, or a rollout gave up: which, and why.
    Failed(String),
    /// The workloads could not be read this time (why): the recorded health stands.
    Unknown(String),
}

/// What people asked of a staging with `octostage sleep`, `wake` and `extend`. Kept apart from
/// the record (a namespace annotation of its own, a file of its own in a dir target): the
/// commands write it, passes only read it, so neither overwrites the other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    /// `octostage sleep`: asleep from then until a `wake` without `--for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<DateTime<Utc>>,
    /// The latest `octostage wake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<Wake>,
    /// The latest `extend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_until: Option<Extension>,
}

impl Requests {
    /// Whether nothing is asked.
    pub fn is_empty(&self) -> bool {
        self.sleep.is_none() && self.wake.is_none() && self.keep_until.is_none()
    }
}

/// `octostage wake`: awake whatever the schedule (or a manual sleep) says, until `until`; with
/// no `until`, until the schedule's next sleep time (a manual sleep is then lifted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// When it was asked.
    pub at: DateTime<Utc>,
    /// Until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// `octostage extend`: keep the staging until then, however idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// When it was asked (`max_extension` counts from here).
    pub at: DateTime<Utc>,
    /// Keep until.
    pub until: DateTime<Utc>,
}

/// How long a staging has been awake and asleep since it was created, for the cost report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// When the current stretch (awake or asleep) began.
    pub since: DateTime<Utc>,
    /// Seconds awake before it.
    pub awake_seconds: u64,
    /// Seconds asleep (sleeping or expired) before it.
    pub asleep_seconds: u64,
}

impl Clock {
    /// A clock started at `at`.
    pub fn start(at: DateTime<Utc>) -> Clock {
        Clock {
            since: at,
            awake_seconds: 0,
            asleep_seconds: 0,
        }
    }

    /// The clock after a change at `at` from a stretch that was `asleep` (or not).
    pub fn turn(self, asleep: bool, at: DateTime<Utc>) -> Clock {
        let (awake, slept) = self.totals(asleep, at);
        Clock {
            since: at,
            awake_seconds: awake,
            asleep_seconds: slept,
        }
    }

    /// Seconds awake and asleep up to `now`, the current stretch being `asleep` (or not).
    pub fn totals(&self, asleep: bool, now: DateTime<Utc>) -> (u64, u64) {
        let stretch = u64::try_from((now - self.since).num_seconds()).unwrap_or(0);
        if asleep {
            (self.awake_seconds, self.asleep_seconds + stretch)
        } else {
            (self.awake_seconds + stretch, self.asleep_seconds)
        }
    }
}

/// One change of a staging, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When (the time of the pass).
    pub at: DateTime<Utc>,
    /// What was done.
    pub action: Action,
    /// Why.
    pub why: Why,
}

/// What octostage records on a staging it holds: what a restart must not forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingRecord {
    /// Staging name.
    pub name: String,
    /// Environment.
    pub environment: String,
    /// Full branch name (or the pin of a static staging).
    pub branch: String,
    /// Static staging name, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_name: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Commit it runs.
    pub commit: String,
    /// When octostage first saw that commit.
    pub first_seen: DateTime<Utc>,
    /// When it expires, as last computed.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was put to sleep expired (its retention counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<DateTime<Utc>>,
    /// When it is deleted after its retention, as last computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_at: Option<DateTime<Utc>>,
    /// Lifecycle state.
    pub state: State,
    /// When it next goes to sleep or wakes (a schedule boundary, the end of `wake --for`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_change: Option<DateTime<Utc>>,
    /// Time awake and asleep, for the cost report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// What its workloads request when awake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// How its workloads are doing while awake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The deletion time the `expiring` warning went out for (sent at most once per time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned: Option<DateTime<Utc>>,
    /// Rendered links.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub links: IndexMap<String, String>,
    /// Its latest transitions, oldest first (at most [`MAX_HISTORY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Transition>,
    /// What people asked of it (read from where the commands write it, never from the record).
    #[serde(skip)]
    pub requests: Requests,
}

impl StagingRecord {
    /// The record of a planned staging after a pass that rendered it, with what it costs as
    /// rendered.
    pub fn applied(p: &super::Planned, usage: Usage) -> StagingRecord {
        StagingRecord {
            usage: Some(usage),
            ..StagingRecord::of(p)
        }
    }

    /// The record of a planned staging after its pass (its usage as last recorded).
    pub fn of(p: &super::Planned) -> StagingRecord {
        StagingRecord {
            name: p.name.clone(),
            environment: p.environment.clone(),
            branch: p.branch.clone(),
            static_name: p.static_name.clone(),
            namespace: p.namespace.clone().unwrap_or_default(),
            commit: p.commit.as_ref().map(|c| c.sha.clone()).unwrap_or_default(),
            first_seen: p.first_seen,
            expires_at: p.expires_at,
            expired_at: p.expired_at,
            delete_at: p.delete_at,
            state: p.state.unwrap_or(State::Active),
            next_change: p.next_change,
            clock: p.clock,
            usage: p.usage,
            health: p.health.clone(),
            warned: p.warned,
            links: p
                .context
                .as_ref()
                .map(|c| c.links.clone())
                .unwrap_or_default(),
            history: p.history.clone(),
            requests: Requests::default(),
        }
    }
}

/// Why a namespace (kube) or folder (dir) that exists is not this octostage's to write: a
/// staging that would live there is a conflict, reported and left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// It exists and octostage did not create it (no creation record).
    NotCreated,
    /// It carries octostage's labels but no creation record: made by hand, copied, or by an
    /// older octostage.
    LabelsWithoutRecord,
    /// It carries octostage's labels and creation record, but octostage's field manager never
    /// wrote it: the record was copied (by hand, or by a backup restore).
    RecordNotWritten,
    /// Another octostage instance created it.
    OtherInstance(String),
    /// A symbolic link stands where the staging's folder would be.
    SymbolicLink,
    /// It is octostage's and still terminating after a deletion.
    Terminating,
    /// It is octostage's but its recorded state cannot be read.
    Unreadable(String),
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Foreign::NotCreated => f.write_str("exists and octostage did not create it; octostage never adopts what it did not create: remove it, or choose another namespace for this staging"),
            Foreign::LabelsWithoutRecord => write!(f, "carries octostage's labels but no creation record ({}), so octostage did not create it; it is left alone. If an older octostage made it and you want it managed, add that annotation by hand", crate::consts::ANNOTATION_CREATED_BY),
            Foreign::RecordNotWritten => f.write_str("carries octostage's labels and creation record, but octostage never wrote it (copied by hand or by a restore); it is left alone"),
            Foreign::OtherInstance(i) => write!(f, "belongs to octostage instance {i:?}; two instances never share a staging: give one of them other names or namespaces"),
            Foreign::SymbolicLink => f.write_str("is a symbolic link; octostage never writes or deletes through one: remove it"),
            Foreign::Terminating => f.write_str("is still being deleted; the staging is created again once it is gone"),
            Foreign::Unreadable(why) => write!(f, "is octostage's but its recorded state cannot be read ({why}); it is left alone: fix or delete it by hand"),
        }
    }
}

/// How each staging's workloads are doing, by staging name. A persistent map: a copy costs
/// nothing and two copies that share most of their entries compare by what differs, so a
/// change of one workload costs what changed, not the number of stagings.
pub type ReadinessMap = imbl::OrdMap<String, Readiness>;

/// What a target holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The stagings this instance created (shared: a target that keeps its view between
    /// passes hands out the same records).
    pub stagings: Vec<std::sync::Arc<StagingRecord>>,
    /// Namespaces that exist and are not this instance's, by name (kube target).
    pub foreign_namespaces: std::collections::BTreeMap<String, Foreign>,
    /// Staging names whose place is taken by something not this instance's (dir target: a
    /// folder without octostage's status file).
    pub foreign_names: std::collections::BTreeMap<String, Foreign>,
    /// How each staging's workloads are doing, by staging name; `None` when the target cannot
    /// tell (a dir target runs nothing: a staging is its files).
    pub readiness: Option<ReadinessMap>,
}
