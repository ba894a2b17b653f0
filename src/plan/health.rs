//! Whether an awake staging works: Pending once something was rolled out, Running when every
//! workload is ready, Failing when a Job failed or it stayed not ready past its deadline.
//! From what the target saw of the workloads at the start of the pass, and what the staging
//! recorded before.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Action, Health, Readiness, State, Why};
use crate::text::human_std;

/// The health of a staging after a pass that does `action` and leaves it in `state`.
pub fn next(
    action: Action,
    state: Option<State>,
    before: Option<&Health>,
    readiness: Option<&Readiness>,
    deadline: Duration,
    now: DateTime<Utc>,
) -> Option<Health> {
    if state != Some(State::Active) {
        return None;
    }
    let keep = |h: Health| match before {
        Some(b) if b.same_kind(&h) => b.clone(),
        _ => h,
    };
    let Some(readiness) = readiness else {
        // A target that runs nothing (dir): a staging is its files, there once applied.
        return Some(keep(Health::Running { since: now }));
    };
    if matches!(action, Action::Create | Action::Update | Action::Wake) {
        return Some(Health::Pending { since: now });
    }
    Some(match readiness {
        Readiness::Unknown(_) => before.cloned().unwrap_or(Health::Pending { since: now }),
        Readiness::Ready => keep(Health::Running { since: now }),
        Readiness::Failed(reason) => keep(Health::Failing {
            since: now,
            reason: reason.clone(),
        }),
        // A running staging stays running while a change someone else made is on its way to
        // its controller; anything else waits as for any other not ready workload.
        Readiness::Unobserved(_) if matches!(before, Some(Health::Running { .. })) => {
            keep(Health::Running { since: now })
        }
        Readiness::NotReady(what) | Readiness::Unobserved(what) => match before {
            Some(Health::Pending { since }) => {
                let late = chrono::Duration::from_std(deadline)
                    .ok()
                    .and_then(|d| since.checked_add_signed(d))
                    .is_some_and(|d| now >= d);
                if late {
                    Health::Failing {
                        since: now,
                        reason: format!("{what} after {}", human_std(deadline)),
                    }
                } else {
                    Health::Pending { since: *since }
                }
            }
            Some(f @ Health::Failing { .. }) => f.clone(),
            _ => Health::Pending { since: now },
        },
    })
}

/// What [`unchanged_by`] needs of a plan, worked out once per plan: its stagings by name, and
/// whether every staging whose health a plan works out is at rest (no action).
#[derive(Debug, Clone, Default)]
pub struct AtRest {
    by_name: std::collections::HashMap<String, Vec<usize>>,
    all: bool,
}

impl AtRest {
    /// The index of `plan`.
    pub fn of(plan: &super::Plan) -> AtRest {
        let mut by_name: std::collections::HashMap<String, Vec<usize>> = Default::default();
        let mut all = true;
        for (i, p) in plan.stagings.iter().enumerate() {
            if p.settings.is_some() && p.context.is_some() {
                all &= p.action == Action::Noop;
                by_name.entry(p.name.clone()).or_default().push(i);
            }
        }
        AtRest { by_name, all }
    }
}

/// Whether a plan made at `now` from `observed` would leave every staging of `last` as it is,
/// where `last` was made from `before` and `observed` differs from it in workloads' readiness
/// alone: each changed readiness gives the health `last` has (a workload not ready and ready
/// again, a change a running staging's controller has not seen yet). Lets such a change cost
/// no pass. Any staging still on its way (an action other than none) says no: its health is
/// worked out anew by the next plan. `rest` is [`AtRest::of`] `last`; only the stagings whose
/// readiness differs are looked at.
pub fn unchanged_by(
    last: &super::Plan,
    rest: &AtRest,
    before: &super::Observed,
    observed: &super::Observed,
    now: DateTime<Utc>,
) -> bool {
    if before.stagings != observed.stagings
        || before.foreign_namespaces != observed.foreign_namespaces
        || before.foreign_names != observed.foreign_names
    {
        return false;
    }
    let (Some(old), Some(new)) = (&before.readiness, &observed.readiness) else {
        return before.readiness == observed.readiness;
    };
    if !rest.all {
        return false;
    }
    old.diff(new).all(|change| {
        let name = match change {
            imbl::ordmap::DiffItem::Add(name, _) | imbl::ordmap::DiffItem::Remove(name, _) => name,
            imbl::ordmap::DiffItem::Update { new: (name, _), .. } => name,
        };
        let r = new.get(name).unwrap_or(&Readiness::Ready);
        rest.by_name.get(name).into_iter().flatten().all(|&i| {
            let p = &last.stagings[i];
            let Some(settings) = p.settings.as_ref() else {
                return true;
            };
            next(
                Action::Noop,
                p.state,
                p.health.as_ref(),
                Some(r),
                settings.health_deadline,
                now,
            ) == p.health
        })
    })
}

/// Where a staging is in its life, as `status` and `plan` show it: its recorded state and, awake,
/// its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Applied, not ready yet.
    Pending,
    /// Every workload ready.
    Running,
    /// A Job failed, an apply failed, or not ready past its deadline.
    Failing,
    /// Scaled to zero, and why.
    Sleeping(super::SleepCause),
    /// Expired: asleep until its retention ends.
    Expired,
    /// Being deleted.
    Deleting,
    /// Its place is taken by something octostage did not create.
    Conflict,
}

impl Lifecycle {
    /// The lifecycle of a staging in `state` with `health`.
    pub fn of(state: State, health: Option<&Health>) -> Lifecycle {
        match (state, health) {
            (State::Sleeping(c), _) => Lifecycle::Sleeping(c),
            (State::Expired, _) => Lifecycle::Expired,
            (State::Active, Some(Health::Running { .. }) | None) => Lifecycle::Running,
            (State::Active, Some(Health::Pending { .. })) => Lifecycle::Pending,
            (State::Active, Some(Health::Failing { .. })) => Lifecycle::Failing,
        }
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lifecycle::Pending => f.write_str("pending"),
            Lifecycle::Running => f.write_str("running"),
            Lifecycle::Failing => f.write_str("failing"),
            Lifecycle::Sleeping(c) => write!(f, "sleeping:{c}"),
            Lifecycle::Expired => f.write_str("expired"),
            Lifecycle::Deleting => f.write_str("deleting"),
            Lifecycle::Conflict => f.write_str("conflict"),
        }
    }
}

impl serde::Serialize for Lifecycle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The transition a change of health makes, if it is one worth recording.
pub fn transition(before: Option<&Health>, after: Option<&Health>) -> Option<Why> {
    let after = after?;
    if before.is_some_and(|b| b.same_kind(after)) {
        return None;
    }
    Some(match after {
        Health::Running { .. } => Why::Healthy,
        Health::Failing { reason, .. } => Why::Unhealthy {
            reason: reason.clone(),
        },
        Health::Pending { .. } => Why::NotReady,
    })
}

/// When a pending staging turns failing if nothing changes: a pass is due then.
pub fn deadline_of(h: Option<&Health>, deadline: Duration) -> Option<DateTime<Utc>> {
    match h {
        Some(Health::Pending { since }) => chrono::Duration::from_std(deadline)
            .ok()
            .and_then(|d| since.checked_add_signed(d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn pending_then_running_or_failing_past_the_deadline() {
        let start = t("2026-11-26T12:00:00Z");
        let h = next(
            Action::Create,
            Some(State::Active),
            None,
            Some(&Readiness::Ready),
            TEN_MIN,
            start,
        );
        assert_eq!(h, Some(Health::Pending { since: start }));
        let not_ready = Readiness::NotReady("Deployment/web: 0 of 2 ready".into());
        let h2 = next(
            Action::Noop,
            Some(State::Active),
            h.as_ref(),
            Some(&not_ready),
            TEN_MIN,
            t("2026-11-26T12:09:59Z"),
        );
        assert_eq!(h2, h);
        let h3 = next(
            Action::Noop,
            Some(State::Active),
            h2.as_ref(),
            Some(&not_ready),
            TEN_MIN,
            t("2026-11-26T12:10:00Z"),
        );
        assert_eq!(
            h3,
            Some(Health::Failing {
                since: t("2026-11-26T12:10:00Z"),
                reason: "Deployment/web: 0 of 2 ready after 10m".into()
            })
        );
        assert_eq!(
            transition(h2.as_ref(), h3.as_ref()),
            Some(Why::Unhealthy {
                reason: "Deployment/web: 0 of 2 ready after 10m".into()
            })
        );
        let h4 = next(
            Action::Noop,
            Some(State::Active),
            h3.as_ref(),
            Some(&Readiness::Ready),
            TEN_MIN,
            t("2026-11-26T12:11:00Z"),
        );
        assert_eq!(
            h4,
            Some(Health::Running {
                since: t("2026-11-26T12:11:00Z")
            })
        );
        assert_eq!(transition(h3.as_ref(), h4.as_ref()), Some(Why::Healthy));
        // Running stays running, its time kept: nothing to record or write.
        let h5 = next(
            Action::Noop,
            Some(State::Active),
            h4.as_ref(),
            Some(&Readiness::Ready),
            TEN_MIN,
            t("2026-11-26T13:00:00Z"),
        );
        assert_eq!(
            (h5.clone(), transition(h4.as_ref(), h5.as_ref())),
            (h4, None)
        );
    }

    #[test]
    fn a_change_its_controller_has_not_seen_yet_leaves_a_running_staging_running() {
        let at = t("2026-11-26T12:00:00Z");
        let unseen = Readiness::Unobserved("Deployment/web: change not yet seen".into());
        let running = Health::Running {
            since: t("2026-11-26T11:00:00Z"),
        };
        let r = |action, before: Option<&Health>| {
            next(
                action,
                Some(State::Active),
                before,
                Some(&unseen),
                TEN_MIN,
                at,
            )
        };
        assert_eq!(r(Action::Noop, Some(&running)), Some(running.clone()));
        // After octostage's own change, and before anything ran, it is not ready.
        let pending = Some(Health::Pending { since: at });
        assert_eq!(r(Action::Update, Some(&running)), pending);
        assert_eq!(r(Action::Noop, pending.as_ref()), pending);
        assert_eq!(r(Action::Noop, None), pending);
    }

    #[test]
    fn a_failed_job_fails_at_once_and_asleep_has_no_health() {
        let now = t("2026-11-26T12:00:00Z");
        let failed = Readiness::Failed("Job/migrate: BackoffLimitExceeded".into());
        let h = next(
            Action::Noop,
            Some(State::Active),
            Some(&Health::Pending { since: now }),
            Some(&failed),
            TEN_MIN,
            now,
        );
        assert!(matches!(h, Some(Health::Failing { .. })));
        let asleep = Some(State::Sleeping(crate::plan::SleepCause::Schedule));
        assert_eq!(
            next(
                Action::Sleep,
                asleep,
                h.as_ref(),
                Some(&failed),
                TEN_MIN,
                now
            ),
            None
        );
    }
}
