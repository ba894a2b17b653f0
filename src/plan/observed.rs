//! What a target reports about the stagings it holds: the state octostage keeps on the objects
//! it owns instead of in a database.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// One staging as a target holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedStaging {
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
}
