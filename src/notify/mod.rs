//! Notifications: what a pass tells the people around a staging (created, healthy, failing,
//! sleeping, waking, expired, expiring soon, deleted), as pure data here, delivered by
//! [`deliver`].
//!
//! At most once per transition, across restarts, without a write of its own: an event is sent
//! only for a transition made by this very pass (its time is the pass's), after the write that
//! recorded that transition on the staging succeeded. A restart finds the transition already
//! recorded, with an older time, and sends nothing. The `expiring` warning is recorded the same
//! way (`warned` on the staging). A crash between the write and the send loses the event rather
//! than sending it twice.

pub mod deliver;
pub mod status;
mod undelivered;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;

use crate::config::{Config, EventKind, Notify};
use crate::pass::Report;
use crate::plan::{health::Lifecycle, Action, Planned, Why};
use crate::text::rfc3339;

/// What is sent: one JSON document per event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// `created`, `updated`, `healthy`, `failing`, `sleeping`, `waking`, `expired`,
    /// `expiring`, `deleted`.
    pub event: EventKind,
    /// The staging.
    pub staging: String,
    /// Its environment.
    pub environment: String,
    /// Its branch (or a static staging's pin).
    pub branch: String,
    /// Its static name, if it is a static staging.
    #[serde(rename = "static")]
    pub static_name: Option<String>,
    /// The commit it runs.
    pub commit: Option<String>,
    /// Where it is in its life after the event (`running`, `sleeping:schedule`, ...).
    pub state: Option<Lifecycle>,
    /// Why, in words.
    pub reason: String,
    /// When (the pass's time).
    pub at: String,
    /// When it is deleted, if it will be.
    pub delete_at: Option<String>,
    /// When it wakes, if it is asleep and a schedule wakes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakes_at: Option<String>,
    /// Its links.
    pub links: IndexMap<String, String>,
    /// One line for chat (a Slack incoming webhook shows it as it is).
    pub text: String,
    /// Unique per event: a receiver may drop repeats by it.
    pub id: String,
}

/// One event and where it goes.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What to send.
    pub payload: Payload,
    /// Where.
    pub to: Arc<Notify>,
    /// `owner/repo` of the staging's application repository, for commit statuses.
    pub repository: Option<String>,
}

/// The event a transition of this pass makes, if it is one.
fn kind_of(action: Action, why: &Why) -> Option<EventKind> {
    Some(match (action, why) {
        (Action::Create, _) => EventKind::Created,
        (Action::Update, Why::ActiveAgain { .. }) => EventKind::Waking,
        (Action::Update, _) => EventKind::Updated,
        (Action::Wake, _) => EventKind::Waking,
        (Action::Sleep, _) => EventKind::Sleeping,
        (Action::Expire, _) => EventKind::Expired,
        (Action::Noop, Why::Healthy) => EventKind::Healthy,
        (Action::Noop, Why::Unhealthy { .. }) => EventKind::Failing,
        _ => return None,
    })
}

/// Everything a finished (not dry-run) pass has to tell.
pub fn events(report: &Report) -> Vec<Notice> {
    let at = report.plan.at;
    let mut out = Vec::new();
    for (i, p) in report.plan.stagings.iter().enumerate() {
        // Only after the write that recorded the transition succeeded.
        if !report
            .outcome(i)
            .is_some_and(|o| o.error.is_none() && !o.skipped)
        {
            continue;
        }
        if p.action == Action::Delete {
            if let Some(to) = notify_of_removed(&report.config, p) {
                out.push(notice(p, EventKind::Deleted, p.reason(), at, to));
            }
            continue;
        }
        let Some(to) = p.settings.as_ref().and_then(|s| s.notify.clone()) else {
            continue;
        };
        // Only what this pass did: a pass in the same second as the last finds its transitions
        // recorded with this very time.
        let added = p.made();
        for t in added {
            if let Some(kind) = kind_of(t.action, &t.why) {
                out.push(notice(p, kind, t.why.to_string(), at, to.clone()));
            }
        }
        if p.warn_now {
            let when = p.delete_at.map(rfc3339).unwrap_or_default();
            out.push(notice(
                p,
                EventKind::Expiring,
                format!("deleted at {when}"),
                at,
                to,
            ));
        }
    }
    out.retain(|n| n.to.events.contains(&n.payload.event));
    for n in &mut out {
        n.repository = n.to.commit_status.as_ref().and_then(|c| {
            c.repository.clone().or_else(|| {
                let env = report.config.environment(&n.payload.environment)?;
                crate::source::repository_of(&env.repository.url)
            })
        });
    }
    out
}

/// A deleted staging's notifications: its environment's settings for its branch, while the
/// environment is still configured.
fn notify_of_removed(config: &Config, p: &Planned) -> Option<Arc<Notify>> {
    let env = config.environment(&p.environment)?;
    let settings = match &p.static_name {
        Some(s) => env
            .statics
            .iter()
            .find(|st| &st.name == s)?
            .settings
            .clone(),
        None => env.settings_for(&p.branch),
    };
    settings.notify.clone()
}

fn notice(
    p: &Planned,
    event: EventKind,
    reason: String,
    at: DateTime<Utc>,
    to: Arc<Notify>,
) -> Notice {
    let links = p
        .context
        .as_ref()
        .map(|c| c.links.clone())
        .unwrap_or_default();
    let links: IndexMap<String, String> = links
        .into_iter()
        .map(|(k, v)| (k, crate::redact::url(&v)))
        .collect();
    let state = match event {
        EventKind::Deleted => None,
        _ => p.state.map(|s| Lifecycle::of(s, p.health.as_ref())),
    };
    let first_link = links
        .values()
        .next()
        .map(|l| format!(" {l}"))
        .unwrap_or_default();
    let text = format!(
        "octostage: {} ({}) {}: {}{}",
        p.name,
        p.static_name.as_deref().unwrap_or(&p.branch),
        event.name(),
        reason,
        first_link
    );
    let id = crate::naming::short_hash(
        &format!("{}\n{}\n{}", p.name, event.name(), rfc3339(at)),
        16,
    );
    Notice {
        payload: Payload {
            event,
            staging: p.name.clone(),
            environment: p.environment.clone(),
            branch: p.branch.clone(),
            static_name: p.static_name.clone(),
            commit: p.commit.as_ref().map(|c| c.sha.clone()),
            state,
            reason: crate::redact::text(&reason).into_owned(),
            at: rfc3339(at),
            delete_at: p.delete_at.map(rfc3339),
            wakes_at: p
                .next_change
                .filter(|_| p.state.is_some_and(|s| s.asleep()))
                .map(rfc3339),
            links,
            text: crate::redact::text(&text).into_owned(),
            id,
        },
        to,
        repository: None,
    }
}
