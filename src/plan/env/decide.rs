//! What happens to one desired staging, compared with what the target holds.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::super::{
    Action, Clock, Phase, PlanError, Planned, Present, SleepCause, StagingRecord, State, WakeCause,
    Why,
};
use super::{Candidate, EnvPlanner};
use crate::config::Ttl;
use crate::render::Context;
use crate::source::Commit;

impl EnvPlanner<'_> {
    fn expired(&self, c: &Candidate<'_>) -> Why {
        match (c.ttl, c.life.expires_at) {
            (Ttl::After(d), _) => Why::Idle {
                idle_seconds: (self.inputs.now - c.life.activity).num_seconds(),
                ttl_seconds: d.as_secs(),
            },
            (Ttl::Never, Some(until)) => Why::UntilPassed { until },
            (Ttl::Never, None) => unreachable!("a staging that never expires is never expired"),
        }
    }

    fn action(&self, c: &Candidate<'_>) -> (Action, Option<State>, Why) {
        let commit = c.commit.sha[..c.commit.sha.len().min(7)].to_string();
        let not_created = |cause| Why::NotCreated {
            cause: Box::new(cause),
        };
        let desired = match c.posture.asleep {
            Some(cause) => State::Sleeping(cause),
            None => State::Active,
        };
        match (c.observed, c.life.phase, c.capped) {
            (Some(_), _, Some(max)) => (Action::Delete, None, Why::OverCap { max }),
            (None, _, Some(max)) => (Action::Noop, None, not_created(Why::OverCap { max })),
            (Some(_), Phase::Gone, _) => (Action::Delete, None, self.expired(c)),
            (None, Phase::Gone | Phase::Expired, _) => {
                (Action::Noop, None, not_created(self.expired(c)))
            }
            (Some(o), Phase::Expired, _) => {
                let already = o.state == State::Expired && o.commit == c.commit.sha;
                let why = Why::Retained {
                    cause: Box::new(self.expired(c)),
                    retention_seconds: c.settings.retention.as_secs(),
                    delete_at: c.life.delete_at,
                    now: !already,
                };
                let action = if already {
                    Action::Noop
                } else {
                    Action::Expire
                };
                (action, Some(State::Expired), why)
            }
            (None, Phase::Active, _) => (
                Action::Create,
                Some(desired),
                if c.static_name.is_some() {
                    Why::Static { commit }
                } else {
                    Why::NewBranch { commit }
                },
            ),
            (Some(o), Phase::Active, _) if o.state == State::Expired => {
                let commit = (o.commit != c.commit.sha).then_some(commit);
                (Action::Update, Some(desired), Why::ActiveAgain { commit })
            }
            (Some(o), Phase::Active, _) if o.commit != c.commit.sha => {
                (Action::Update, Some(desired), Why::NewCommit { commit })
            }
            (Some(o), Phase::Active, _) if o.state != desired => {
                let action = if desired.asleep() {
                    Action::Sleep
                } else {
                    Action::Wake
                };
                let why = match (&c.posture.why, o.state) {
                    // Asleep for a cap, awake now for want of one: there is room again.
                    (
                        Why::Awake {
                            by: WakeCause::Schedule,
                            until,
                        },
                        State::Sleeping(SleepCause::Cap),
                    ) => Why::Awake {
                        by: WakeCause::Room,
                        until: *until,
                    },
                    (w, _) => w.clone(),
                };
                (action, Some(desired), why)
            }
            (Some(_), Phase::Active, _) => (Action::Noop, Some(desired), Why::UpToDate),
        }
    }

    pub(super) fn decide(&self, c: Candidate<'_>) -> Planned {
        let (action, state, mut why) = self.action(&c);
        // A commit that asks to sleep says so, rather than only "new commit".
        if c.posture.asleep == Some(SleepCause::Trailer)
            && matches!(action, Action::Create | Action::Update)
        {
            why = c.posture.why.clone();
        }
        let p = Planned {
            environment: self.env.name.clone(),
            branch: c.branch.clone(),
            static_name: c.static_name.clone(),
            name: c.name.clone(),
            namespace: c.observed.map(|o| o.namespace.clone()),
            commit: Some(c.commit.clone()),
            action,
            why,
            hold: None,
            first_seen: c.first_seen,
            expires_at: c.life.expires_at,
            expired_at: match (state, c.observed) {
                (Some(State::Expired), Some(o)) if o.state == State::Expired => {
                    o.expired_at.or(Some(self.inputs.now))
                }
                (Some(State::Expired), _) => Some(self.inputs.now),
                _ => None,
            },
            delete_at: c.life.delete_at,
            state,
            next_change: match c.life.phase {
                Phase::Active => c.posture.next_change,
                _ => None,
            },
            clock: c
                .observed
                .map(|o| o.clock.unwrap_or_else(|| Clock::start(o.first_seen))),
            usage: c.observed.and_then(|o| o.usage),
            health: c.observed.and_then(|o| o.health.clone()),
            warned: c.observed.and_then(|o| o.warned),
            warn_now: false,
            settings: Some(c.settings.clone()),
            context: None,
            error: None,
            present: c.observed.map(Present::of),
            history: c.observed.map(|o| o.history.clone()).unwrap_or_default(),
            added: 0,
            woken: matches!(
                c.posture.why,
                Why::Awake {
                    by: WakeCause::Request,
                    ..
                }
            ),
        };
        if !p.exists_after() {
            return p;
        }
        self.place(p, &c)
    }

    /// `p` with its template context and namespace, or blocked when they cannot be had or
    /// the namespace is protected.
    fn place(&self, mut p: Planned, c: &Candidate<'_>) -> Planned {
        // The last plan's context, when built from the very same inputs: templating every
        // staging again is most of a plan's work.
        let reused = self
            .inputs
            .previous
            .and_then(|prev| prev.staging(&self.env.name, &c.name))
            .filter(|q| {
                q.branch == c.branch
                    && q.commit.as_ref() == Some(&c.commit)
                    && q.settings
                        .as_ref()
                        .is_some_and(|s| Arc::ptr_eq(s, &c.settings))
            })
            .and_then(|q| q.context.clone());
        let ctx = match reused {
            Some(ctx) => Ok(ctx),
            None => Context::build(
                &self.config.templates,
                &self.env.name,
                &c.name,
                &c.branch,
                &c.commit,
                &c.settings,
                self.config.commit.as_deref(),
            )
            .map(Arc::new),
        };
        match ctx {
            Ok(ctx) => {
                if let Some(pattern) = self.config.safety.protects(&ctx.namespace) {
                    p.namespace = Some(ctx.namespace.clone());
                    p.block(PlanError::Protected {
                        namespace: ctx.namespace.clone(),
                        pattern: pattern.to_string(),
                    });
                    return p;
                }
                if let Some(o) = c.observed.filter(|o| o.namespace != ctx.namespace) {
                    // Moving a staging between namespaces would orphan the old one; it is
                    // recreated instead.
                    p.action = Action::Update;
                    p.why = Why::NamespaceMove {
                        from: o.namespace.clone(),
                        to: ctx.namespace.clone(),
                    };
                }
                p.namespace = Some(ctx.namespace.clone());
                p.context = Some(ctx);
            }
            Err(e) => p.block(PlanError::Render(e.into())),
        }
        p
    }
}

pub(super) fn absent(
    env: &str,
    branch: &str,
    static_name: Option<&str>,
    name: &str,
    why: Why,
) -> Planned {
    Planned {
        environment: env.to_string(),
        branch: branch.to_string(),
        static_name: static_name.map(str::to_string),
        name: name.to_string(),
        namespace: None,
        commit: None,
        action: Action::Noop,
        why,
        hold: None,
        first_seen: DateTime::<Utc>::UNIX_EPOCH,
        expires_at: None,
        expired_at: None,
        delete_at: None,
        state: None,
        next_change: None,
        clock: None,
        usage: None,
        health: None,
        warned: None,
        warn_now: false,
        settings: None,
        context: None,
        error: None,
        present: None,
        history: Vec::new(),
        added: 0,
        woken: false,
    }
}

/// When this head was first seen: as recorded when the target runs this very commit, else now.
pub(super) fn first_seen(
    o: Option<&StagingRecord>,
    commit: &Commit,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match o {
        Some(o) if o.commit == commit.sha => o.first_seen,
        _ => now,
    }
}
