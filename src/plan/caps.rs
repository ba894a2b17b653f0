//! Caps over all environments together (`limits`), after each environment applied its own.
//! Beyond a cap the least recently active stagings are not created or, when they exist, put
//! to sleep; never deleted for it (a cap lowered by mistake must not take stagings with it).

use std::cmp::Reverse;

use chrono::{DateTime, Utc};

use super::{Action, Planned, SleepCause, State, Why};
use crate::config::Limits;

/// Who keeps a place first: stagings that never expire, then the newest head commit (no
/// later than when it was first seen), then the staging that exists, then by name: only what
/// stays put between passes, so stagings never take turns (see the environment's cap).
type Rank<'a> = (bool, Reverse<Option<DateTime<Utc>>>, bool, &'a str, &'a str);

fn precedence(p: &Planned) -> Rank<'_> {
    (
        p.expires_at.is_some(),
        Reverse(p.commit.as_ref().map(|c| c.time.min(p.first_seen))),
        p.present.is_none(),
        p.environment.as_str(),
        p.name.as_str(),
    )
}

/// Apply `limits` to the stagings of a plan.
pub fn global(stagings: &mut [Planned], limits: &Limits) {
    if let Some(max) = limits.max_stagings {
        let mut order: Vec<usize> = (0..stagings.len())
            .filter(|&i| stagings[i].exists_after() && stagings[i].error.is_none())
            .collect();
        order.sort_by(|&a, &b| precedence(&stagings[a]).cmp(&precedence(&stagings[b])));
        for &i in order.iter().skip(max as usize) {
            let p = &mut stagings[i];
            if p.present.is_none() {
                not_created(p, max);
            } else {
                capped(p, "max_stagings", max);
            }
        }
    }
    if let Some(max) = limits.max_awake {
        let mut order: Vec<usize> = (0..stagings.len())
            .filter(|&i| stagings[i].state == Some(State::Active) && stagings[i].error.is_none())
            .collect();
        // Woken by `octostage wake` first: someone is using it.
        order.sort_by(|&a, &b| {
            let (a, b) = (&stagings[a], &stagings[b]);
            (!a.woken, precedence(a)).cmp(&(!b.woken, precedence(b)))
        });
        for &i in order.iter().skip(max as usize) {
            capped(&mut stagings[i], "max_awake", max);
        }
    }
}

fn not_created(p: &mut Planned, max: u32) {
    p.action = Action::Noop;
    p.why = Why::NotCreated {
        cause: Box::new(Why::OverLimit {
            cap: "max_stagings".into(),
            max,
        }),
    };
    p.state = None;
    p.context = None;
    p.settings = None;
    p.next_change = None;
}

/// Asleep for a cap: what is applied anyway (a new commit) still is, asleep.
fn capped(p: &mut Planned, cap: &str, max: u32) {
    if p.state != Some(State::Active) {
        return;
    }
    p.state = Some(State::Sleeping(SleepCause::Cap));
    p.next_change = None;
    if matches!(p.action, Action::Noop | Action::Wake | Action::Sleep) {
        if p.present_state() == p.state {
            (p.action, p.why) = (Action::Noop, Why::UpToDate);
        } else {
            let why = Why::OverLimit {
                cap: cap.to_string(),
                max,
            };
            (p.action, p.why) = (Action::Sleep, why);
        }
    }
}
