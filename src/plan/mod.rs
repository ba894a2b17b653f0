//! The planner, pure: from the configuration, the branch listings, what the target holds and
//! `now`, the stagings that should exist and what to do about each, with a reason.
//!
//! Safety rules live here, where they can be tested in microseconds: an environment whose
//! listing failed keeps every staging as it is; a listing that loses too many branches at once,
//! or an environment that vanishes from the configuration, is not believed until confirmed;
//! names and namespaces are unique across the configuration; a namespace that exists and is not
//! this instance's is a conflict; and one pass deletes at most `safety.max_deletions_per_pass`
//! stagings.

mod caps;
mod decision;
mod env;
mod guard;
pub mod health;
mod images;
pub mod lifecycle;
mod model;
mod observed;
mod posture;
pub mod schedule;
pub mod trailer;

use std::collections::HashMap;

pub use decision::{Hold, WakeCause, Why};
pub use images::{ImageAsk, ImageFact, ImageFacts};
pub use lifecycle::{Life, Phase};
pub use model::{Action, Inputs, Listings, Plan, PlanError, Planned, Present, Unrendered};
pub use observed::{
    Clock, Extension, Foreign, Health, Observed, Readiness, ReadinessMap, Requests, SleepCause,
    StagingRecord, State, Transition, Usage, Wake, MAX_HISTORY,
};
pub use posture::Posture;

use crate::config::Config;

/// Compute the plan.
pub fn plan(config: &Config, inputs: &Inputs<'_>) -> Plan {
    let mut by_env: HashMap<&str, Vec<&StagingRecord>> = HashMap::new();
    for o in &inputs.observed.stagings {
        by_env.entry(o.environment.as_str()).or_default().push(o);
    }
    let mut out = Plan {
        at: inputs.now,
        ..Plan::default()
    };
    for environment in &config.environments {
        let observed = by_env.remove(environment.name.as_str()).unwrap_or_default();
        match inputs.listings.get(&environment.name) {
            Some(Ok(listing)) => {
                let mut p = env::EnvPlanner::new(config, environment, inputs, listing, &observed);
                p.run();
                out.hints.extend(p.hints());
                out.stagings.extend(p.out);
            }
            failed => {
                let why = match failed {
                    Some(Err(e)) => e.to_string(),
                    _ => "no listing".to_string(),
                };
                for o in observed {
                    out.stagings
                        .push(keep(o, Why::SourceFailed { error: why.clone() }));
                }
                out.failed_sources.push((environment.name.clone(), why));
            }
        }
    }
    removed_environments(config, by_env, inputs.confirm_deletions, &mut out);
    // Before the global rules: a staging held back for its image stays as the target holds it.
    if let Some(facts) = inputs.images {
        let wanted = images::hold_missing(config, &mut out.stagings, facts, inputs.now);
        (out.asks, out.recheck) = (wanted.asks, wanted.recheck);
    }
    // Deferred deletions keep their stagings, so they take part in the checks that follow.
    guard::limit_deletions(&mut out.stagings, config.safety.max_deletions_per_pass);
    guard::collisions(&mut out.stagings);
    guard::conflicts(&mut out.stagings, inputs.observed);
    caps::global(&mut out.stagings, &config.limits);
    settle_clocks(&mut out.stagings, inputs.now);
    settle_health(&mut out.stagings, inputs.observed, inputs.now);
    warn_expiring(&mut out.stagings, inputs.now);
    record_transitions(&mut out.stagings, inputs.now);
    out.stagings
        .sort_by(|a, b| (&a.environment, &a.name).cmp(&(&b.environment, &b.name)));
    out
}

/// Stagings of environments the configuration no longer has: kept as they are when their
/// part of the file is invalid (frozen), else deleted once confirmed.
fn removed_environments(
    config: &Config,
    by_env: HashMap<&str, Vec<&StagingRecord>>,
    confirm_deletions: bool,
    out: &mut Plan,
) {
    let mut removed: Vec<(&str, Vec<&StagingRecord>)> = by_env.into_iter().collect();
    removed.sort_by_key(|(e, _)| *e);
    let frozen = |e: &str| {
        config
            .frozen
            .iter()
            .find(|(f, _)| f == e)
            .map(|(_, problems)| {
                format!("environments.yaml is invalid for this environment: {problems}")
            })
    };
    for (environment, _) in &config.frozen {
        out.failed_sources
            .push((environment.clone(), frozen(environment).unwrap_or_default()));
    }
    for (environment, observed) in removed {
        // Left out of this pass because its part of the file is invalid: frozen as it is.
        if let Some(why) = frozen(environment) {
            for o in observed {
                out.stagings
                    .push(keep(o, Why::SourceFailed { error: why.clone() }));
            }
            continue;
        }
        for o in observed {
            let mut p = gone(
                o,
                Why::EnvironmentRemoved {
                    environment: environment.to_string(),
                },
            );
            if !confirm_deletions {
                // Renaming an environment, a bad merge or the wrong --config branch looks the
                // same as a real removal: like a mass loss of branches, it waits for a human.
                guard::hold(
                    &mut p,
                    Hold::EnvironmentGone {
                        environment: environment.to_string(),
                    },
                );
            }
            out.stagings.push(p);
        }
    }
}

/// Each staging's clock: started when it is created, turned when it goes to sleep or wakes.
fn settle_clocks(stagings: &mut [Planned], now: chrono::DateTime<chrono::Utc>) {
    for p in stagings.iter_mut() {
        let Some(state) = p.state else {
            continue;
        };
        p.clock = match (p.present_state(), p.clock) {
            (Some(before), Some(c)) if before.asleep() != state.asleep() => {
                Some(c.turn(before.asleep(), now))
            }
            (Some(_), Some(c)) => Some(c),
            _ => Some(Clock::start(now)),
        };
    }
}

/// The health of every staging this pass writes, from what the target saw of its workloads;
/// a change of health is a transition of its own.
fn settle_health(
    stagings: &mut [Planned],
    observed: &Observed,
    now: chrono::DateTime<chrono::Utc>,
) {
    for p in stagings.iter_mut() {
        let Some(settings) = p.settings.as_ref().filter(|_| p.context.is_some()) else {
            continue;
        };
        let readiness = observed
            .readiness
            .as_ref()
            .map(|r| r.get(&p.name).unwrap_or(&Readiness::Ready));
        let after = health::next(
            p.action,
            p.state,
            p.health.as_ref(),
            readiness,
            settings.health_deadline,
            now,
        );
        if p.action == Action::Noop {
            if let Some(why) = health::transition(p.health.as_ref(), after.as_ref()) {
                push(
                    p,
                    Transition {
                        at: now,
                        action: Action::Noop,
                        why,
                    },
                );
            }
        }
        p.health = after;
    }
}

/// When the `expiring` warning of a staging that is to be deleted goes out, if it is to.
fn warn_at(p: &Planned) -> Option<chrono::DateTime<chrono::Utc>> {
    let notify = p.settings.as_ref()?.notify.as_ref()?;
    if !notify.events.contains(&crate::config::EventKind::Expiring) {
        return None;
    }
    let lead = chrono::Duration::from_std(notify.warn_before).ok()?;
    p.delete_at?.checked_sub_signed(lead)
}

/// Expired stagings whose deletion comes within their warning's lead: warned once per deletion
/// time, recorded in the same write that the warning follows.
fn warn_expiring(stagings: &mut [Planned], now: chrono::DateTime<chrono::Utc>) {
    for p in stagings.iter_mut() {
        let due = warn_at(p).is_some_and(|w| now >= w) && p.delete_at.is_some_and(|d| now < d);
        // Only an expired staging is about to be deleted; an active one's deletion time moves
        // with every commit.
        let expired = p.state == Some(State::Expired);
        if due && expired && p.context.is_some() && p.warned != p.delete_at {
            p.warned = p.delete_at;
            p.warn_now = true;
        }
    }
}

fn push(p: &mut Planned, t: Transition) {
    p.history.push(t);
    p.added += 1;
    let extra = p.history.len().saturating_sub(MAX_HISTORY);
    p.history.drain(..extra);
}

/// What this pass changes goes into each staging's history.
fn record_transitions(stagings: &mut [Planned], now: chrono::DateTime<chrono::Utc>) {
    for p in stagings.iter_mut() {
        if matches!(
            p.action,
            Action::Create | Action::Update | Action::Expire | Action::Sleep | Action::Wake
        ) {
            let t = Transition {
                at: now,
                action: p.action,
                why: p.why.clone(),
            };
            push(p, t);
        }
    }
}

fn keep(o: &StagingRecord, why: Why) -> Planned {
    Planned {
        environment: o.environment.clone(),
        branch: o.branch.clone(),
        static_name: o.static_name.clone(),
        name: o.name.clone(),
        namespace: Some(o.namespace.clone()),
        // Only its sha is recorded: enough to name it (and set a commit status on it).
        commit: (!o.commit.is_empty())
            .then(|| crate::source::Commit::recorded(&o.commit, o.first_seen)),
        action: Action::Noop,
        why,
        hold: None,
        first_seen: o.first_seen,
        expires_at: o.expires_at,
        expired_at: o.expired_at,
        delete_at: o.delete_at,
        state: Some(o.state),
        next_change: o.next_change,
        clock: o.clock,
        usage: o.usage,
        health: o.health.clone(),
        warned: o.warned,
        warn_now: false,
        settings: None,
        context: None,
        error: None,
        present: Some(Present::of(o)),
        history: o.history.clone(),
        added: 0,
        woken: false,
    }
}

fn gone(o: &StagingRecord, why: Why) -> Planned {
    Planned {
        action: Action::Delete,
        state: None,
        ..keep(o, why)
    }
}

#[cfg(test)]
mod tests;
