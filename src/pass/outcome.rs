//! What a pass did: per staging, and in all.

use std::sync::Arc;

use crate::config::Config;
use crate::plan::{Action, Plan, Why};
use crate::render::RenderError;
use crate::targets::{Change, ChangeKind, TargetError};

/// Why one staging failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StagingError {
    /// Its objects could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The target refused or failed.
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl StagingError {
    /// A stable name of the kind of error, for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            StagingError::Render(e) => e.kind(),
            StagingError::Target(e) => e.kind(),
        }
    }
}

/// What happened to one staging.
#[derive(Debug)]
pub struct Outcome {
    /// Index into the plan's stagings.
    pub index: usize,
    /// Object changes made (or that would be made).
    pub changes: Vec<Change>,
    /// Why it failed, if it did.
    pub error: Option<StagingError>,
    /// Not started: the pass was cancelled first.
    pub skipped: bool,
}

/// The result of a pass.
#[derive(Debug)]
pub struct Report {
    /// The configuration used.
    pub config: Arc<Config>,
    /// The plan.
    pub plan: Plan,
    /// One outcome per planned staging that needed work.
    pub outcomes: Vec<Outcome>,
    /// Writes the target performed in this pass.
    pub writes: u64,
    /// Requests the pass sent to the target (reads and writes).
    pub requests: u64,
}

impl Report {
    /// Stagings that failed, in the plan or while converging.
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
            + self
                .plan
                .stagings
                .iter()
                .filter(|s| s.error.is_some())
                .count()
    }

    /// Stagings a cancelled pass did not get to.
    pub fn skipped(&self) -> usize {
        self.outcomes.iter().filter(|o| o.skipped).count()
    }

    /// Whether everything worked: no staging failed and every source could be read.
    pub fn ok(&self) -> bool {
        self.failures() == 0 && self.plan.failed_sources.is_empty()
    }

    /// The outcome of the staging at `index`, if it needed work.
    pub fn outcome(&self, index: usize) -> Option<&Outcome> {
        // Outcomes are sorted by index (see `converge`).
        self.outcomes
            .binary_search_by_key(&index, |o| o.index)
            .ok()
            .map(|i| &self.outcomes[i])
    }

    /// Why the staging at `index` failed, in the plan or while converging: the stable kind of
    /// the error and its words (redacted).
    pub fn error(&self, index: usize) -> Option<(&'static str, String)> {
        let text = |e: &dyn std::fmt::Display| crate::redact::text(&e.to_string()).into_owned();
        match (&self.plan.stagings[index].error, self.outcome(index)) {
            (Some(e), _) => Some((e.kind(), text(e))),
            (None, Some(o)) => o.error.as_ref().map(|e| (e.kind(), text(e))),
            (None, None) => None,
        }
    }

    /// What happened to a staging: the plan's action and reason, except that a planned noop
    /// whose rendered objects turned out changed (which only rendering can tell) was an update.
    pub fn effective(&self, index: usize) -> (Action, Why) {
        let p = &self.plan.stagings[index];
        let changes = self
            .outcome(index)
            .map(|o| o.changes.as_slice())
            .unwrap_or(&[]);
        let changes: Vec<&Change> = changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Wait)
            .collect();
        if p.action != Action::Noop || changes.is_empty() {
            return (p.action, p.why.clone());
        }
        let first: Vec<String> = changes.iter().take(3).map(|c| c.to_string()).collect();
        let more = changes.len().saturating_sub(3);
        let restored = changes.iter().all(|c| c.kind == ChangeKind::Restore);
        let why = if restored {
            Why::Restored {
                changes: first,
                more,
            }
        } else {
            Why::Rendered {
                changes: first,
                more,
            }
        };
        (Action::Update, why)
    }
}
