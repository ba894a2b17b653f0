//! What the planner takes and gives: actions, planned stagings, plans and inputs.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ObservedStaging, State};
use crate::config::Settings;
use crate::render::Context;
use crate::source::{Commit, RepoListing};

/// What to do with a staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create it.
    Create,
    /// Apply a new commit or new configuration.
    Update,
    /// It expired: mark it expired and keep it until its retention ends.
    Expire,
    /// Delete it.
    Delete,
    /// Nothing to do.
    Noop,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Expire => "expire",
            Action::Delete => "delete",
            Action::Noop => "noop",
        })
    }
}

/// One staging in a plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Environment name.
    pub environment: String,
    /// Branch (full name), or for a static staging pinned to a commit, the pin.
    pub branch: String,
    /// Name of the static staging, for static stagings.
    pub static_name: Option<String>,
    /// Staging name.
    pub name: String,
    /// Namespace (from the template, or what the target recorded).
    pub namespace: Option<String>,
    /// The commit it runs after this pass.
    pub commit: Option<Commit>,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// When octostage first saw this commit.
    pub first_seen: DateTime<Utc>,
    /// When it expires, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// State after the pass (`None` for stagings that will not exist).
    pub state: Option<State>,
    /// Resolved settings (for stagings that will exist).
    pub settings: Option<Arc<Settings>>,
    /// Template context (for stagings that will exist and whose context rendered).
    pub context: Option<Box<Context>>,
    /// Why the context could not be built; the staging is left as it is.
    pub error: Option<String>,
    /// A safety rule holds back what the plan would otherwise do (a deletion held or deferred,
    /// a failed source, a missing pin): worth showing even though the action is noop.
    pub held: bool,
}

impl Planned {
    /// Whether the staging exists after the pass.
    pub fn exists_after(&self) -> bool {
        self.state.is_some()
    }
}

/// A whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Every staging the pass looked at, sorted by environment and name.
    pub stagings: Vec<Planned>,
    /// Environments whose source failed, with the error (their deletions are frozen).
    pub failed_sources: Vec<(String, String)>,
}

/// Inputs of the planner besides the configuration.
pub struct Inputs<'a> {
    /// Listing per environment: the branches, or why they could not be read.
    pub listings: &'a HashMap<String, Result<RepoListing, String>>,
    /// What the target holds.
    pub observed: &'a [ObservedStaging],
    /// The time of the pass.
    pub now: DateTime<Utc>,
    /// Believe a listing that lost more branches than `safety.max_branch_loss_percent`.
    pub confirm_deletions: bool,
}
