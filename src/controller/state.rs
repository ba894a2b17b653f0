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
use crate::targets::StagingNotice;

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
    /// The error in words (redacted; a render's stderr tail, the API server's message).
    pub message: Option<String>,
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
    /// Whether a pass has run to its end (`/readyz`).
    pub ready: bool,
}

impl State {
    /// Take in a pass; returns what to tell on the stagings' namespaces.
    pub fn record(
        &mut self,
        trigger: Trigger,
        at: DateTime<Utc>,
        took: Duration,
        r: &Result<Arc<Report>, PassError>,
    ) -> Vec<StagingNotice> {
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
        let mut notices = Vec::new();
        match r {
            Ok(report) => {
                summary.writes = report.writes;
                summary.requests = report.requests;
                summary.failures = report.failures();
                self.config = Some(report.config.clone());
                notices = self.events(report, at);
                self.report = Some(report.clone());
                self.ready = true;
            }
            Err(e) => summary.error = Some(crate::redact::text(&e.to_string()).into_owned()),
        }
        self.last_pass = Some(summary);
        notices
    }

    fn events(&mut self, report: &Report, at: DateTime<Utc>) -> Vec<StagingNotice> {
        let mut notices = Vec::new();
        for (i, p) in report.plan.stagings.iter().enumerate() {
            let outcome = report.outcome(i);
            let changes = outcome.map_or(0, |o| o.changes.len());
            let (error, message) = report.error(i).unzip();
            notices.extend(notices_of(
                p,
                message.as_deref(),
                self.stagings.get(&p.name),
            ));
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
                message,
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
        notices
    }
}

/// What to post on a staging's namespace after a pass: each transition the pass made, and an
/// error when it is not the one last told.
fn notices_of(
    p: &crate::plan::Planned,
    error: Option<&str>,
    before: Option<&VecDeque<StagingEvent>>,
) -> Vec<StagingNotice> {
    let Some(namespace) = p.namespace.clone().filter(|_| p.exists_after()) else {
        return Vec::new();
    };
    let added = p.made();
    let mut out: Vec<StagingNotice> = added
        .iter()
        .map(|t| StagingNotice {
            namespace: namespace.clone(),
            warning: matches!(t.why, Why::Unhealthy { .. }),
            reason: reason_of(t.action, &t.why),
            action: t.action.to_string(),
            note: t.why.to_string(),
        })
        .collect();
    let last = before
        .and_then(|b| b.back())
        .and_then(|e| e.message.as_deref());
    if let Some(e) = error.filter(|e| Some(*e) != last) {
        out.push(StagingNotice {
            namespace,
            warning: true,
            reason: "Failed".into(),
            action: p.action.to_string(),
            note: e.to_string(),
        });
    }
    out
}

/// `Created`, `Updated`, `Sleeping`, `Waking`, `Expired`, `Healthy`, `Unhealthy`.
fn reason_of(action: Action, why: &Why) -> String {
    match (action, why) {
        (Action::Noop, Why::Healthy) => "Healthy",
        (Action::Noop, Why::Unhealthy { .. }) => "Unhealthy",
        (Action::Noop, _) => "Changed",
        (Action::Create, _) => "Created",
        (Action::Update, _) => "Updated",
        (Action::Sleep, _) => "Sleeping",
        (Action::Wake, _) => "Waking",
        (Action::Expire, _) => "Expired",
        (Action::Delete, _) => "Deleting",
    }
    .into()
}
/// A pass into the metrics: its result and duration, stagings by state, held deletions.
pub(super) fn count(r: &Result<Arc<Report>, PassError>, took: Duration) {
    let m = crate::metrics::get();
    m.pass_duration.observe(took.as_secs_f64());
    let result = match r {
        Ok(r) if r.ok() => "ok",
        Ok(_) => "failures",
        Err(PassError::Cancelled) => "cancelled",
        Err(_) => "error",
    };
    m.passes
        .get_or_create(&crate::metrics::ResultLabel {
            result: result.into(),
        })
        .inc();
    let Ok(r) = r else { return };
    m.stagings.clear();
    for (i, s) in r.plan.stagings.iter().enumerate() {
        let Some(state) = crate::report::lifecycle(s, r.outcome(i)) else {
            continue;
        };
        m.stagings
            .get_or_create(&crate::metrics::StagingLabels {
                environment: s.environment.clone(),
                state: state.to_string(),
            })
            .inc();
    }
    m.held_deletions
        .set(r.plan.stagings.iter().filter(|s| s.held()).count() as i64);
}
