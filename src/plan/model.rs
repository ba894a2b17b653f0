//! What the planner takes and gives: actions, planned stagings, plans and inputs.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Foreign, Hold, Observed, State, Why};
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
    /// It expired: put it to sleep and keep it until its retention ends.
    Expire,
    /// Scale it to zero (a schedule, a request, a cap).
    Sleep,
    /// Scale it back to its rendered size.
    Wake,
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
            Action::Sleep => "sleep",
            Action::Wake => "wake",
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
    /// What led to it.
    pub why: Why,
    /// The safety rule that holds a deletion back, if one does (the action is then noop).
    pub hold: Option<Hold>,
    /// When octostage first saw this commit.
    pub first_seen: DateTime<Utc>,
    /// When it expires, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was put to sleep expired, while it is.
    pub expired_at: Option<DateTime<Utc>>,
    /// When it is deleted after its retention, if ever (when the plan knows).
    pub delete_at: Option<DateTime<Utc>>,
    /// State after the pass (`None` for stagings that will not exist).
    pub state: Option<State>,
    /// When it next goes to sleep or wakes, if it will.
    pub next_change: Option<DateTime<Utc>>,
    /// Time awake and asleep, this pass included.
    pub clock: Option<super::Clock>,
    /// What its workloads request when awake (as last rendered).
    pub usage: Option<super::Usage>,
    /// How its workloads are doing after the pass (awake stagings).
    pub health: Option<super::Health>,
    /// The deletion time its `expiring` warning went out for.
    pub warned: Option<DateTime<Utc>>,
    /// Whether this pass sends the `expiring` warning.
    pub warn_now: bool,
    /// Resolved settings (for stagings that will exist).
    pub settings: Option<Arc<Settings>>,
    /// Template context (for stagings that will exist and whose context rendered).
    pub context: Option<Arc<Context>>,
    /// Why the staging cannot be converged; it is left as it is.
    pub error: Option<PlanError>,
    /// How the target holds it now (`None`: the target does not hold it).
    pub present: Option<Present>,
    /// Its transitions: the recorded ones, and this pass's when it changes the staging.
    pub history: Vec<super::Transition>,
    /// How many of the last transitions of `history` this pass made.
    pub added: usize,
    /// Kept awake by `octostage wake` (caps put others to sleep first).
    pub woken: bool,
}

/// How the target holds a staging before the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Its state.
    pub state: State,
    /// Its namespace.
    pub namespace: String,
    /// The commit it runs.
    pub commit: String,
}

impl Present {
    /// As `record` shows it.
    pub fn of(record: &super::StagingRecord) -> Present {
        Present {
            state: record.state,
            namespace: record.namespace.clone(),
            commit: record.commit.clone(),
        }
    }
}

impl Planned {
    /// Its state as the target holds it now (`None`: the target does not hold it).
    pub fn present_state(&self) -> Option<State> {
        self.present.as_ref().map(|h| h.state)
    }

    /// Whether the staging exists after the pass.
    pub fn exists_after(&self) -> bool {
        self.state.is_some()
    }

    /// Whether `self` and `other` would be converged alike: every field equal, the settings
    /// the same object (a configuration read again but unchanged keeps its settings).
    /// Destructured so that a new field cannot be forgotten here.
    pub fn same(&self, other: &Planned) -> bool {
        let Planned {
            environment,
            branch,
            static_name,
            name,
            namespace,
            commit,
            action,
            why,
            hold,
            first_seen,
            expires_at,
            expired_at,
            delete_at,
            state,
            next_change,
            clock,
            usage,
            health,
            warned,
            warn_now,
            settings,
            context,
            error,
            present,
            history,
            added,
            woken,
        } = self;
        let same_settings = match (settings, &other.settings) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_settings
            && *environment == other.environment
            && *branch == other.branch
            && *static_name == other.static_name
            && *name == other.name
            && *namespace == other.namespace
            && *commit == other.commit
            && *action == other.action
            && *why == other.why
            && *hold == other.hold
            && *first_seen == other.first_seen
            && *expires_at == other.expires_at
            && *expired_at == other.expired_at
            && *delete_at == other.delete_at
            && *state == other.state
            && *next_change == other.next_change
            && *clock == other.clock
            && *usage == other.usage
            && *health == other.health
            && *warned == other.warned
            && *warn_now == other.warn_now
            && match (context, &other.context) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            }
            && *error == other.error
            && *present == other.present
            && *history == other.history
            && *added == other.added
            && *woken == other.woken
    }

    /// The transitions this very pass made (the newest `added` of its history).
    pub fn made(&self) -> &[super::Transition] {
        &self.history[self.history.len() - self.added.min(self.history.len())..]
    }

    /// Whether something holds back what the plan would otherwise do (a deletion held or
    /// deferred, a failed source, a missing pin, a blocking error, an image not there yet):
    /// worth showing even though the action is noop.
    pub fn held(&self) -> bool {
        let waiting = |w: &Why| matches!(w, Why::WaitingForImage { .. });
        self.hold.is_some()
            || self.error.is_some()
            || waiting(&self.why)
            || matches!(&self.why, Why::NotCreated { cause } if waiting(cause))
            || matches!(
                self.why,
                Why::SourceFailed { .. } | Why::PinMissing { .. } | Why::BranchUnreadable { .. }
            )
    }

    /// Why, as a sentence (for tables, logs, the delete reason on a namespace).
    pub fn reason(&self) -> String {
        match (&self.error, &self.hold) {
            (Some(e), _) => e.to_string(),
            (None, Some(h)) => h.explain(&self.why),
            (None, None) => self.why.to_string(),
        }
    }

    /// `environment/branch` (or `environment/static name`), to name it in messages.
    pub fn label(&self) -> String {
        match &self.static_name {
            Some(s) => format!("{}/static {s}", self.environment),
            None => format!("{}/{}", self.environment, self.branch),
        }
    }

    /// Hold the staging as the target has it: nothing is written for it this pass.
    pub fn block(&mut self, error: PlanError) {
        self.action = Action::Noop;
        self.state = self.present_state();
        if let Some(h) = &self.present {
            self.namespace = Some(h.namespace.clone());
        }
        self.context = None;
        self.hold = None;
        self.why = Why::Blocked;
        self.error = Some(error);
    }
}

/// A whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The time it was made for.
    pub at: DateTime<Utc>,
    /// Every staging the pass looked at, sorted by environment and name.
    pub stagings: Vec<Planned>,
    /// Environments whose source failed, with the error (their deletions are frozen).
    pub failed_sources: Vec<(String, String)>,
    /// Things worth knowing that change nothing: include patterns that match no branch,
    /// branches skipped for their names.
    pub hints: Vec<String>,
    /// When an image a staging waits for is asked for again.
    pub recheck: Option<DateTime<Utc>>,
    /// Images the plan held stagings back for without the registry's word: the pass asks
    /// for them and plans again with the answers.
    pub asks: Vec<super::ImageAsk>,
}

impl Plan {
    /// The staging `name` of `environment`, if the plan has it.
    pub fn staging(&self, environment: &str, name: &str) -> Option<&Planned> {
        self.stagings
            .binary_search_by(|p| {
                (p.environment.as_str(), p.name.as_str()).cmp(&(environment, name))
            })
            .ok()
            .map(|i| &self.stagings[i])
    }

    /// The stagings a safety rule holds back, sorted, with a digest of them: what an approval
    /// names, so that it approves this set and no other (`POST /api/v1/approve {"held": ..}`).
    pub fn held(&self) -> Option<(Vec<&str>, String)> {
        let mut names: Vec<&str> = self
            .stagings
            .iter()
            .filter(|s| s.held())
            .map(|s| s.name.as_str())
            .collect();
        if names.is_empty() {
            return None;
        }
        names.sort_unstable();
        let digest = crate::naming::short_hash(&names.join("\n"), 12);
        Some((names, digest))
    }
}

/// Each environment's branch listing, or why it could not be read.
pub type Listings = HashMap<String, Result<RepoListing, crate::source::ListingError>>;

/// Inputs of the planner besides the configuration.
pub struct Inputs<'a> {
    /// Listing per environment: the branches, or why they could not be read.
    pub listings: &'a Listings,
    /// What the target holds.
    pub observed: &'a Observed,
    /// The time of the pass.
    pub now: DateTime<Utc>,
    /// Believe a listing that lost more branches than `safety.max_branch_loss_percent`.
    pub confirm_deletions: bool,
    /// The last plan, whose stagings' template contexts are taken again where what they were
    /// built from is the same (the settings, the same objects; name, branch and commit).
    pub previous: Option<&'a Plan>,
    /// What is known of the images stagings wait for (`wait_for`); `None` to plan as if
    /// every image were there (rendering a staging to look at it).
    pub images: Option<&'a super::ImageFacts>,
}

/// Why a staging cannot be converged this pass. Nothing is written for it; a staging that
/// exists is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Its template context (namespace, values, links), or an image it waits for, does not
    /// render.
    #[error("cannot render: {0}")]
    Render(Unrendered),
    /// Its static pin does not resolve.
    #[error(transparent)]
    Pin(#[from] crate::source::PinError),
    /// Its namespace is protected.
    #[error(
        "namespace {namespace:?} is protected (by {pattern:?}); a staging may never live in it"
    )]
    Protected {
        /// The namespace.
        namespace: String,
        /// The pattern that protects it.
        pattern: String,
    },
    /// Another staging of the configuration has the same name.
    #[error("staging name {name:?} is also the name of {other}; names must be unique across the configuration: rename an environment or exclude a branch")]
    NameCollision {
        /// The name.
        name: String,
        /// The other staging (`environment/branch`).
        other: String,
    },
    /// Another staging of the configuration resolves to the same namespace.
    #[error("namespace {namespace:?} is also the namespace of {other}; each staging needs a namespace of its own: put `{{{{ staging }}}}` in the namespace template")]
    NamespaceCollision {
        /// The namespace.
        namespace: String,
        /// The other staging (`environment/branch`).
        other: String,
    },
    /// Its name or namespace belongs to a staging this pass deletes.
    #[error("{place:?} is being deleted with {other} in this pass; this staging takes it once it is gone")]
    Leaving {
        /// The name or namespace.
        place: String,
        /// The staging being deleted (`environment/branch`).
        other: String,
    },
    /// Its namespace (or folder) exists and is not this instance's.
    #[error("namespace {place:?} {why}")]
    Conflict {
        /// The namespace or folder.
        place: String,
        /// Whose it is.
        why: Foreign,
    },
}

/// Why part of a staging's plan did not render. Plans are compared (see [`Planned::same`]),
/// so two of these are equal when they say the same.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unrendered {
    /// A template of its context failed.
    #[error(transparent)]
    Template(#[from] crate::render::RenderError),
    /// An image it waits for renders to no image reference.
    #[error(transparent)]
    Image(#[from] crate::source::registry::RegistryError),
    /// An image it waits for names another registry than the template wrote out.
    #[error("wait_for.image {image:?} names registry {named:?}, not {written:?} as written")]
    Registry {
        /// The rendered image.
        image: String,
        /// The registry it names.
        named: String,
        /// The registry the template wrote out.
        written: String,
    },
}

impl PartialEq for Unrendered {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Unrendered {}

impl PlanError {
    /// A stable name of the kind of error, for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            PlanError::Render(_) => "render",
            PlanError::Pin(_) => "pin",
            PlanError::Protected { .. } => "protected",
            PlanError::NameCollision { .. } => "name-collision",
            PlanError::NamespaceCollision { .. } => "namespace-collision",
            PlanError::Leaving { .. } => "leaving",
            PlanError::Conflict { .. } => "conflict",
        }
    }
}

impl Plan {
    /// The earliest time after the plan's own at which a staging's lifecycle changes (it
    /// expires, its retention ends, it goes to sleep or wakes): a pass then has something to do.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.stagings
            .iter()
            .filter(|p| p.exists_after())
            .flat_map(|p| {
                let pending = p
                    .settings
                    .as_ref()
                    .and_then(|s| super::health::deadline_of(p.health.as_ref(), s.health_deadline));
                let warn = super::warn_at(p)
                    .filter(|_| p.warned != p.delete_at && p.state == Some(State::Expired));
                [p.expires_at, p.delete_at, p.next_change, pending, warn]
            })
            .flatten()
            .chain(self.recheck)
            .filter(|t| *t > self.at)
            .min()
    }
}
