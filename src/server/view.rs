//! What the dashboard and the JSON API show, made from the controller's state alone (no second
//! source of truth): pure, so that the tests need no server.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::controller::{Leadership, StagingEvent, State};
use crate::pass::Report;
use crate::plan::{Action, Planned};
use crate::text::{human, rfc3339};

/// A staging's commit.
#[derive(Debug, Clone, Serialize)]
pub struct CommitView {
    /// Full sha.
    pub sha: String,
    /// The first 7 characters.
    pub short: String,
    /// First line of the message.
    pub subject: String,
    /// Author name.
    pub author: String,
    /// Committer time.
    pub time: String,
}

/// A link of a staging.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// Its name in the config (`web`).
    pub name: String,
    /// Where it points.
    pub url: String,
}

/// A time, and how far it is from now in words.
#[derive(Debug, Clone, Serialize)]
pub struct When {
    /// RFC 3339.
    pub at: String,
    /// `in 2d3h`, or `5m ago` when it has passed.
    pub relative: String,
}

impl When {
    fn of(t: DateTime<Utc>, now: DateTime<Utc>) -> When {
        let relative = if t >= now {
            format!("in {}", human(t - now))
        } else {
            format!("{} ago", human(now - t))
        };
        When {
            at: rfc3339(t),
            relative,
        }
    }
}

/// The next sleep or wake.
#[derive(Debug, Clone, Serialize)]
pub struct NextChange {
    /// `sleeps` or `wakes`.
    pub kind: &'static str,
    /// When.
    pub when: When,
}

/// One entry of a staging's history or recent events.
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// When.
    pub at: String,
    /// What was done.
    pub action: String,
    /// Why, in words.
    pub why: String,
    /// Objects changed, for a pass's event.
    pub changes: Option<usize>,
    /// The error kind and message, when it failed.
    pub error: Option<String>,
}

/// A staging as the dashboard and `/api/v1/stagings` show it.
#[derive(Debug, Clone, Serialize)]
pub struct StagingView {
    /// Staging name.
    pub name: String,
    /// Environment.
    pub environment: String,
    /// Branch (or a static staging's pin).
    pub branch: String,
    /// Static staging name.
    #[serde(rename = "static")]
    pub static_name: Option<String>,
    /// Namespace (or folder).
    pub namespace: Option<String>,
    /// Its commit.
    pub commit: Option<CommitView>,
    /// pending, running, failing, sleeping:CAUSE, expired, deleting, conflict, or
    /// not-created.
    pub state: String,
    /// The state's family (`sleeping` of `sleeping:schedule`), for styling and filters.
    pub state_group: String,
    /// The action of the last pass (what a follower would do).
    pub action: Action,
    /// Why, in words.
    pub reason: String,
    /// The last error, when it failed.
    pub error: Option<String>,
    /// Whether a safety rule holds its deletion back.
    pub held: bool,
    /// When octostage first saw its commit.
    pub since: When,
    /// When it expires, if it does.
    pub expires: Option<When>,
    /// When it is deleted, if it will be.
    pub deleted: Option<When>,
    /// Its next sleep or wake.
    pub next: Option<NextChange>,
    /// Its links.
    pub links: Vec<LinkView>,
    /// Object changes of the last pass.
    pub changes: Vec<String>,
}

/// A staging in detail (`/stagings/{name}`).
#[derive(Debug, Clone, Serialize)]
pub struct StagingDetail {
    /// What the list shows.
    #[serde(flatten)]
    pub staging: StagingView,
    /// Its health (`{"is": "failing", "reason": ...}`).
    pub health: Option<crate::plan::Health>,
    /// Its recorded transitions, newest first.
    pub history: Vec<EntryView>,
    /// What the recent passes did to it or how they failed, newest first.
    pub events: Vec<EntryView>,
    /// Its timeline ahead: sleep, wake, expiry, deletion, in order.
    pub timeline: Vec<(String, When)>,
}

/// The whole picture (`/api/v1/stagings`).
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Every staging of the last pass.
    pub stagings: Vec<StagingView>,
    /// Environments whose source failed, with why (their stagings are kept as they are).
    pub failed_sources: Vec<(String, String)>,
    /// Who writes.
    pub leadership: Leadership,
    /// When the last pass ran, and how it went.
    pub last_pass: Option<PassView>,
    /// When the next pass is due, unless something asks sooner.
    pub next_pass_at: Option<String>,
    /// The deletions held back by a safety rule, and the digest that approves this set.
    pub held: Option<HeldView>,
}

/// Deletions held back.
#[derive(Debug, Clone, Serialize)]
pub struct HeldView {
    /// The stagings.
    pub stagings: Vec<String>,
    /// What `POST /api/v1/approve` names to carry out exactly these.
    pub digest: String,
}

/// The last pass.
#[derive(Debug, Clone, Serialize)]
pub struct PassView {
    /// When.
    pub at: String,
    /// What asked for it.
    pub trigger: String,
    /// How long it took, in milliseconds.
    pub took_ms: u128,
    /// Writes it made.
    pub writes: u64,
    /// Why it could not run, if it could not.
    pub error: Option<String>,
}

fn commit_view(p: &Planned) -> Option<CommitView> {
    p.commit.as_ref().map(|c| CommitView {
        sha: c.sha.clone(),
        short: c.sha.chars().take(7).collect(),
        subject: c.subject.clone(),
        author: c.author.clone(),
        time: rfc3339(c.time),
    })
}

/// One staging of the last pass.
pub fn staging(r: &Report, i: usize, now: DateTime<Utc>) -> StagingView {
    let p = &r.plan.stagings[i];
    let outcome = r.outcome(i);
    let (action, why) = r.effective(i);
    let state = crate::report::lifecycle(p, outcome)
        .map(|l| l.to_string())
        .unwrap_or_else(|| "not-created".into());
    let error = r.error(i).map(|(_, m)| m);
    let reason = if why == p.why {
        p.reason()
    } else {
        why.to_string()
    };
    let asleep = p.state.is_some_and(|s| s.asleep());
    StagingView {
        name: p.name.clone(),
        environment: p.environment.clone(),
        branch: p.branch.clone(),
        static_name: p.static_name.clone(),
        namespace: p.namespace.clone(),
        commit: commit_view(p),
        state_group: state.split(':').next().unwrap_or_default().to_string(),
        state,
        action,
        reason: crate::redact::text(&reason).into_owned(),
        error,
        held: p.held(),
        since: When::of(p.first_seen, now),
        expires: p.expires_at.map(|t| When::of(t, now)),
        deleted: p.delete_at.map(|t| When::of(t, now)),
        next: p
            .next_change
            .filter(|_| p.state != Some(crate::plan::State::Expired))
            .map(|t| NextChange {
                kind: if asleep { "wakes" } else { "sleeps" },
                when: When::of(t, now),
            }),
        links: p
            .context
            .as_ref()
            .map(|c| {
                c.links
                    .iter()
                    .map(|(name, url)| LinkView {
                        name: name.clone(),
                        url: crate::redact::url(url),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        changes: outcome
            .map(|o| o.changes.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// Every staging, and how the controller is doing.
pub fn overview(state: &State, leadership: Leadership, now: DateTime<Utc>) -> Overview {
    let (stagings, failed_sources) = match &state.report {
        Some(r) => (
            (0..r.plan.stagings.len())
                .map(|i| staging(r, i, now))
                .collect(),
            r.plan
                .failed_sources
                .iter()
                .map(|(e, m)| (e.clone(), crate::redact::text(m).into_owned()))
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    Overview {
        stagings,
        failed_sources,
        leadership,
        last_pass: last_pass(state),
        next_pass_at: state.next_pass_at.map(rfc3339),
        held: state
            .report
            .as_ref()
            .and_then(|r| r.plan.held())
            .map(|(names, digest)| HeldView {
                stagings: names.into_iter().map(String::from).collect(),
                digest,
            }),
    }
}

/// The last pass, if one ran.
pub fn last_pass(state: &State) -> Option<PassView> {
    state.last_pass.as_ref().map(|p| PassView {
        at: rfc3339(p.at),
        trigger: p.trigger.to_string(),
        took_ms: p.took.as_millis(),
        writes: p.writes,
        error: p.error.clone(),
    })
}

fn event_entry(e: &StagingEvent) -> EntryView {
    EntryView {
        at: rfc3339(e.at),
        action: e.action.to_string(),
        why: crate::redact::text(&e.why.to_string()).into_owned(),
        changes: Some(e.changes),
        error: e
            .error
            .map(|k| format!("{k}: {}", e.message.as_deref().unwrap_or_default())),
    }
}

/// One staging in detail, if the last pass knows it.
pub fn detail(state: &State, name: &str, now: DateTime<Utc>) -> Option<StagingDetail> {
    let r = state.report.as_ref()?;
    let i = r.plan.stagings.iter().position(|p| p.name == name)?;
    let p = &r.plan.stagings[i];
    let view = staging(r, i, now);
    let mut timeline = Vec::new();
    if let Some(n) = &view.next {
        timeline.push((n.kind.to_string(), n.when.clone()));
    }
    if let Some(e) = &view.expires {
        timeline.push(("expires".to_string(), e.clone()));
    }
    if let Some(d) = &view.deleted {
        timeline.push(("deleted".to_string(), d.clone()));
    }
    timeline.sort_by(|a, b| a.1.at.cmp(&b.1.at));
    // What this pass set out to do and failed did not happen: its transitions say FAILED
    // with the error (a staging never created has no "create" in its history).
    let failed = r
        .outcome(i)
        .and_then(|o| o.error.as_ref().map(|e| e.to_string()))
        .or_else(|| p.error.as_ref().map(|e| e.to_string()));
    let this_pass = p.history.len() - p.added.min(p.history.len());
    Some(StagingDetail {
        health: p.health.clone(),
        history: p
            .history
            .iter()
            .enumerate()
            .rev()
            .map(|(k, t)| EntryView {
                at: rfc3339(t.at),
                action: t.action.to_string(),
                why: crate::redact::text(&t.why.to_string()).into_owned(),
                changes: None,
                error: failed
                    .as_ref()
                    .filter(|_| k >= this_pass)
                    .map(|e| format!("FAILED: {}", crate::redact::text(e))),
            })
            .collect(),
        events: state
            .stagings
            .get(name)
            .map(|es| es.iter().rev().map(event_entry).collect())
            .unwrap_or_default(),
        timeline,
        staging: view,
    })
}
