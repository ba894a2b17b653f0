//! What a target reports about the stagings it holds: the record octostage keeps on what it
//! owns instead of in a database (one annotation on a namespace, the status file of a dir
//! target: the same record, the same (de)serializer).

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{Action, Why};

/// Most transitions a record keeps.
pub const MAX_HISTORY: usize = 20;

/// Lifecycle state recorded on a staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Running.
    Active,
    /// Expired and asleep until its retention ends.
    Expired,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Active => "active",
            State::Expired => "expired",
        })
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
    /// Lifecycle state.
    pub state: State,
    /// Rendered links.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub links: IndexMap<String, String>,
    /// Its latest transitions, oldest first (at most [`MAX_HISTORY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Transition>,
}

impl StagingRecord {
    /// The record of a planned staging after its pass.
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
            state: p.state.unwrap_or(State::Active),
            links: p
                .context
                .as_ref()
                .map(|c| c.links.clone())
                .unwrap_or_default(),
            history: p.history.clone(),
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

/// What a target holds.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The stagings this instance created.
    pub stagings: Vec<StagingRecord>,
    /// Namespaces that exist and are not this instance's, by name (kube target).
    pub foreign_namespaces: std::collections::BTreeMap<String, Foreign>,
    /// Staging names whose place is taken by something not this instance's (dir target: a
    /// folder without octostage's status file).
    pub foreign_names: std::collections::BTreeMap<String, Foreign>,
}
