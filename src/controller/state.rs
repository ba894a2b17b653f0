//! What the controller remembers between passes, for whoever reads it: the last good
//! configuration and plan, how each pass went, and each staging's recent events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Trigger;
use crate::config::Config;
use crate::pass::{PassError, Report};
use crate::plan::{Action, Why};

/// Most events kept per staging.
pub const MAX_EVENTS: usize = 20;

/// How one pass went.
#[derive(Debug, Clone)]
pub struct PassSummary {
    /// What asked for it.
    pub trigger: Trigger,
    /// Its time.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub took: Duration,
    /// Writes it made.
    pub writes: u64,
    /// Requests it sent.
    pub requests: u64,
    /// Stagings that failed.
    pub failures: usize,
    /// Why it could not run at all, if it could not.
    pub error: Option<String>,
}

/// Something that happened to a staging in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingEvent {
    /// The pass's time.
    pub at: DateTime<Utc>,
    /// What the plan did.
    pub action: Action,
    /// Why.
    pub why: Why,
    /// Objects changed.
    pub changes: usize,
    /// The kind of error, if it failed.
    pub error: Option<&'static str>,
}

/// The controller's state.
#[derive(Debug, Default)]
pub struct State {
    /// Passes run.
    pub passes: u64,
    /// The latest pass.
    pub last_pass: Option<PassSummary>,
    /// When the next pass is due, unless a trigger comes first.
    pub next_pass_at: Option<DateTime<Utc>>,
    /// The last configuration that loaded.
    pub config: Option<Arc<Config>>,
    /// The last pass that ran, with its plan and outcomes.
    pub report: Option<Arc<Report>>,
    /// Each staging's recent events, oldest first, at most [`MAX_EVENTS`]: only passes that
    /// did something to it or failed it.
    pub stagings: BTreeMap<String, VecDeque<StagingEvent>>,
}

impl State {
    /// Take in a pass.
    pub fn record(
        &mut self,
        trigger: Trigger,
        at: DateTime<Utc>,
        took: Duration,
        r: &Result<Arc<Report>, PassError>,
    ) {
        self.passes += 1;
        let mut summary = PassSummary {
            trigger,
            at,
            took,
            writes: 0,
            requests: 0,
            failures: 0,
            error: None,
        };
        match r {
            Ok(report) => {
                summary.writes = report.writes;
                summary.requests = report.requests;
                summary.failures = report.failures();
                self.config = Some(report.config.clone());
                self.events(report, at);
                self.report = Some(report.clone());
            }
            Err(e) => summary.error = Some(e.to_string()),
        }
        self.last_pass = Some(summary);
    }

    fn events(&mut self, report: &Report, at: DateTime<Utc>) {
        for (i, p) in report.plan.stagings.iter().enumerate() {
            let outcome = report.outcome(i);
            let changes = outcome.map_or(0, |o| o.changes.len());
            let error = p
                .error
                .as_ref()
                .map(|e| e.kind())
                .or_else(|| outcome.and_then(|o| o.error.as_ref().map(|e| e.kind())));
            if p.action == Action::Noop && changes == 0 && error.is_none() {
                continue;
            }
            let events = self.stagings.entry(p.name.clone()).or_default();
            // A staging the plan refuses is told once, not at every pass while it stays so
            // (errors while converging are logged where they happen).
            if let Some(e) = &p.error {
                if events.back().map(|last| last.error) != Some(error) {
                    tracing::warn!(staging = %p.name, error = %e, "staging refused by the plan");
                }
            }
            events.push_back(StagingEvent {
                at,
                action: p.action,
                why: p.why.clone(),
                changes,
                error,
            });
            while events.len() > MAX_EVENTS {
                events.pop_front();
            }
        }
        // Stagings that are gone take their events with them.
        self.stagings.retain(|name, _| {
            report
                .plan
                .stagings
                .iter()
                .any(|p| &p.name == name && (p.exists_after() || p.action == Action::Delete))
        });
    }
}
