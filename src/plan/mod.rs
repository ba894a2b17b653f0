//! The planner, pure: from the configuration, the branch listings, what the target holds and
//! `now`, the stagings that should exist and what to do about each, with a reason.
//!
//! Safety rules live here, where they can be tested in microseconds: an environment whose
//! listing failed keeps every staging as it is; a listing that loses too many branches at once is
//! not believed; and one pass deletes at most `safety.max_deletions_per_pass` stagings.

pub mod lifecycle;
mod model;
mod observed;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use lifecycle::{human, human_std, rfc3339, Life, Phase};
pub use model::{Action, Inputs, Plan, Planned};
pub use observed::{ObservedStaging, State};

use crate::config::{Config, Environment, Pin, Settings, Ttl};
use crate::naming;
use crate::render::Context;
use crate::source::{Commit, RepoListing};

/// Compute the plan.
pub fn plan(config: &Config, inputs: &Inputs<'_>) -> Plan {
    let mut by_env: HashMap<&str, Vec<&ObservedStaging>> = HashMap::new();
    for o in inputs.observed {
        by_env.entry(o.environment.as_str()).or_default().push(o);
    }
    let mut out = Plan::default();
    for env in &config.environments {
        let observed = by_env.remove(env.name.as_str()).unwrap_or_default();
        match inputs.listings.get(&env.name) {
            Some(Ok(listing)) => {
                let mut p = EnvPlanner {
                    config,
                    env,
                    inputs,
                    listing,
                    observed: &observed,
                    out: Vec::new(),
                };
                p.run();
                out.stagings.extend(p.out);
            }
            failed => {
                let why = match failed {
                    Some(Err(e)) => e.clone(),
                    _ => "no listing".to_string(),
                };
                for o in observed {
                    out.stagings.push(keep(
                        o,
                        format!("source failed, staging kept as it is: {why}"),
                    ));
                }
                out.failed_sources.push((env.name.clone(), why));
            }
        }
    }
    for (env, observed) in by_env {
        for o in observed {
            out.stagings.push(gone(
                o,
                format!("environment {env:?} removed from the configuration"),
            ));
        }
    }
    limit_deletions(&mut out.stagings, config.safety.max_deletions_per_pass);
    out.stagings
        .sort_by(|a, b| (&a.environment, &a.name).cmp(&(&b.environment, &b.name)));
    out
}

fn keep(o: &ObservedStaging, reason: String) -> Planned {
    Planned {
        environment: o.environment.clone(),
        branch: o.branch.clone(),
        static_name: o.static_name.clone(),
        name: o.name.clone(),
        namespace: Some(o.namespace.clone()),
        commit: None,
        action: Action::Noop,
        reason,
        first_seen: o.first_seen,
        expires_at: o.expires_at,
        state: Some(o.state),
        settings: None,
        context: None,
        error: None,
        held: true,
    }
}

fn gone(o: &ObservedStaging, reason: String) -> Planned {
    Planned {
        action: Action::Delete,
        state: None,
        held: false,
        ..keep(o, reason)
    }
}

/// Turn deletions beyond the per-pass limit into noops; the first ones by name go first.
fn limit_deletions(stagings: &mut [Planned], max: u32) {
    let mut idx: Vec<usize> = (0..stagings.len())
        .filter(|&i| stagings[i].action == Action::Delete)
        .collect();
    idx.sort_by(|&a, &b| {
        (&stagings[a].environment, &stagings[a].name)
            .cmp(&(&stagings[b].environment, &stagings[b].name))
    });
    for &i in idx.iter().skip(max as usize) {
        let s = &mut stagings[i];
        s.action = Action::Noop;
        s.state = Some(State::Active);
        s.held = true;
        s.reason = format!(
            "deletion deferred to a later pass (safety.max_deletions_per_pass is {max}): {}",
            s.reason
        );
    }
}

struct EnvPlanner<'a> {
    config: &'a Config,
    env: &'a Environment,
    inputs: &'a Inputs<'a>,
    listing: &'a RepoListing,
    observed: &'a [&'a ObservedStaging],
    out: Vec<Planned>,
}

/// One desired staging before it is compared with the target.
struct Candidate<'a> {
    branch: String,
    static_name: Option<String>,
    name: String,
    commit: Commit,
    settings: Arc<Settings>,
    life: Life,
    first_seen: DateTime<Utc>,
    ttl: Ttl,
    observed: Option<&'a ObservedStaging>,
    capped: Option<u32>,
}

impl<'a> EnvPlanner<'a> {
    fn run(&mut self) {
        let now = self.inputs.now;
        let mut seen: HashSet<&str> = HashSet::new();
        let mut candidates = Vec::new();

        // Static stagings first: their names are reserved before branches are named.
        let observed_by_name: HashMap<&str, &ObservedStaging> = self
            .observed
            .iter()
            .map(|o| (o.name.as_str(), *o))
            .collect();
        let mut reserved = HashSet::new();
        for st in &self.env.statics {
            let name = naming::static_name(&self.env.name, &st.name);
            reserved.insert(name.clone());
            let o = observed_by_name.get(name.as_str()).copied();
            let (branch, commit) =
                match &st.pin {
                    Pin::Branch(b) => (
                        b.clone(),
                        self.listing
                            .branches
                            .iter()
                            .find(|x| &x.name == b)
                            .map(|x| x.commit.clone())
                            .ok_or_else(|| format!("pinned branch {b:?} does not exist")),
                    ),
                    Pin::Commit(c) => (
                        c.clone(),
                        self.listing.pins.get(c).cloned().unwrap_or_else(|| {
                            Err(format!("pinned commit {c:?} was not looked up"))
                        }),
                    ),
                };
            match commit {
                Ok(commit) => {
                    let first_seen = first_seen(o, &commit, now);
                    let life = Life::new(
                        commit.time,
                        first_seen,
                        Ttl::Never,
                        st.until,
                        st.settings.retention,
                        now,
                    );
                    candidates.push(Candidate {
                        branch,
                        static_name: Some(st.name.clone()),
                        name,
                        commit,
                        settings: st.settings.clone(),
                        life,
                        first_seen,
                        ttl: Ttl::Never,
                        observed: o,
                        capped: None,
                    });
                }
                Err(e) => {
                    if let Some(o) = o {
                        seen.insert(o.name.as_str());
                        self.out
                            .push(keep(o, format!("{e}; static staging kept as it is")));
                    } else {
                        self.out.push(Planned {
                            error: Some(e.clone()),
                            ..absent(&self.env.name, &branch, Some(&st.name), &name, e)
                        });
                    }
                }
            }
        }

        // Branch stagings.
        let included: Vec<&crate::source::Branch> = self
            .listing
            .branches
            .iter()
            .filter(|b| {
                self.env.include.matches(&b.name).is_some()
                    && self.env.exclude.matches(&b.name).is_none()
            })
            .collect();
        let held: HashMap<&str, &str> = self
            .observed
            .iter()
            .filter(|o| o.static_name.is_none())
            .map(|o| (o.branch.as_str(), o.name.as_str()))
            .collect();
        let names = naming::assign(
            &self.env.name,
            included.iter().map(|b| b.name.as_str()),
            &reserved,
            &held,
        );
        let mut branch_candidates = Vec::new();
        for b in included {
            let name = names[b.name.as_str()].clone();
            let o = observed_by_name
                .get(name.as_str())
                .copied()
                .filter(|o| o.static_name.is_none() && o.branch == b.name);
            let settings = self.env.settings_for(&b.name);
            let ttl = if self.env.always.matches(&b.name).is_some() {
                Ttl::Never
            } else {
                settings.ttl
            };
            let first_seen = first_seen(o, &b.commit, now);
            let life = Life::new(
                b.commit.time,
                first_seen,
                ttl,
                None,
                settings.retention,
                now,
            );
            branch_candidates.push(Candidate {
                branch: b.name.clone(),
                static_name: None,
                name,
                commit: b.commit.clone(),
                settings,
                life,
                first_seen,
                ttl,
                observed: o,
                capped: None,
            });
        }
        if let Some(max) = self.env.max_stagings {
            let room = (max as usize).saturating_sub(
                candidates
                    .iter()
                    .filter(|c| c.life.phase != Phase::Gone)
                    .count(),
            );
            let mut live: Vec<&mut Candidate> = branch_candidates
                .iter_mut()
                .filter(|c| c.life.phase != Phase::Gone)
                .collect();
            // Stagings that never expire first, then the most recently active.
            live.sort_by(|a, b| {
                (
                    a.ttl != Ttl::Never,
                    std::cmp::Reverse(a.life.activity),
                    &a.name,
                )
                    .cmp(&(
                        b.ttl != Ttl::Never,
                        std::cmp::Reverse(b.life.activity),
                        &b.name,
                    ))
            });
            for c in live.into_iter().skip(room) {
                c.capped = Some(max);
            }
        }
        candidates.extend(branch_candidates);
        for c in candidates {
            if let Some(o) = c.observed {
                seen.insert(o.name.as_str());
            }
            let p = self.decide(c);
            self.out.push(p);
        }

        // What the target holds that no candidate claimed.
        let listed: HashMap<&str, &crate::source::Branch> = self
            .listing
            .branches
            .iter()
            .map(|b| (b.name.as_str(), b))
            .collect();
        let mut vanished = Vec::new();
        let branch_stagings = self
            .observed
            .iter()
            .filter(|o| o.static_name.is_none())
            .count();
        for o in self
            .observed
            .iter()
            .filter(|o| !seen.contains(o.name.as_str()))
        {
            let reason = if let Some(s) = &o.static_name {
                format!("static staging {s:?} removed from the configuration")
            } else if listed.contains_key(o.branch.as_str()) {
                match self.env.exclude.matches(&o.branch) {
                    Some(p) => format!("excluded by pattern {p:?}"),
                    None => "no longer matched by branches.include".to_string(),
                }
            } else {
                vanished.push(self.out.len());
                "branch deleted".to_string()
            };
            self.out.push(gone(o, reason));
        }
        self.guard_vanished(&vanished, branch_stagings);
    }

    /// Hold "branch deleted" deletions when the listing lost a suspicious share of branches.
    fn guard_vanished(&mut self, vanished: &[usize], total: usize) {
        let limit = self.config.safety.max_branch_loss_percent as usize;
        let empty = self.listing.branches.is_empty();
        let suspect = empty || (vanished.len() > 1 && vanished.len() * 100 > total * limit);
        if vanished.is_empty() || !suspect || self.inputs.confirm_deletions {
            return;
        }
        let why = if empty {
            "the repository listed no branches at all".to_string()
        } else {
            format!("{} of {} branch stagings lost their branch at once (more than safety.max_branch_loss_percent, {limit}%)", vanished.len(), total)
        };
        for &i in vanished {
            let p = &mut self.out[i];
            p.action = Action::Noop;
            p.state = Some(State::Active);
            p.held = true;
            p.reason = format!("branch deleted, but deletion held: {why}; if that is right, run once with --confirm-deletions");
        }
    }

    fn decide(&self, c: Candidate<'_>) -> Planned {
        let now = self.inputs.now;
        // Only expiring stagings need this text; most of a large plan does not.
        // A staging without a ttl expires only through a static staging's `until`.
        let expired_reason = || match (c.ttl, c.life.expires_at) {
            (Ttl::After(d), _) => format!(
                "no activity for {} (ttl {})",
                human(now - c.life.activity),
                human_std(d)
            ),
            (Ttl::Never, Some(until)) => format!("its until time {} has passed", rfc3339(until)),
            (Ttl::Never, None) => unreachable!("a staging that never expires is never expired"),
        };
        let short = &c.commit.sha[..c.commit.sha.len().min(7)];
        let (action, state, reason) = match (c.observed, c.life.phase, c.capped) {
            (Some(_), _, Some(max)) => (
                Action::Delete,
                None,
                format!("over max_stagings ({max}); least recently active"),
            ),
            (None, _, Some(max)) => (
                Action::Noop,
                None,
                format!("not created: over max_stagings ({max})"),
            ),
            (Some(_), Phase::Gone, _) => (Action::Delete, None, expired_reason()),
            (None, Phase::Gone | Phase::Expired, _) => (
                Action::Noop,
                None,
                format!("not created: {}", expired_reason()),
            ),
            (Some(o), Phase::Expired, _) => {
                let when = c
                    .life
                    .delete_at
                    .map(|d| format!("; deleted at {}", rfc3339(d)))
                    .unwrap_or_default();
                if o.state == State::Expired && o.commit == c.commit.sha {
                    (
                        Action::Noop,
                        Some(State::Expired),
                        format!("expired, kept: {}{when}", expired_reason()),
                    )
                } else {
                    (
                        Action::Expire,
                        Some(State::Expired),
                        format!(
                            "{}; kept until deletion (retention {}){when}",
                            expired_reason(),
                            human_std(c.settings.retention)
                        ),
                    )
                }
            }
            (None, Phase::Active, _) => (
                Action::Create,
                Some(State::Active),
                if c.static_name.is_some() {
                    format!("static staging at {short}")
                } else {
                    format!("new branch at {short}")
                },
            ),
            (Some(o), Phase::Active, _) if o.commit != c.commit.sha => (
                Action::Update,
                Some(State::Active),
                format!("new commit {short}"),
            ),
            (Some(o), Phase::Active, _) if o.state != State::Active => (
                Action::Update,
                Some(State::Active),
                "active again".to_string(),
            ),
            (Some(_), Phase::Active, _) => {
                (Action::Noop, Some(State::Active), "up to date".to_string())
            }
        };
        let mut p = Planned {
            environment: self.env.name.clone(),
            branch: c.branch.clone(),
            static_name: c.static_name.clone(),
            name: c.name.clone(),
            namespace: c.observed.map(|o| o.namespace.clone()),
            commit: Some(c.commit.clone()),
            action,
            reason,
            first_seen: c.first_seen,
            expires_at: c.life.expires_at,
            state,
            settings: Some(c.settings.clone()),
            context: None,
            error: None,
            held: false,
        };
        if p.exists_after() {
            match Context::build(
                &self.config.templates,
                &self.env.name,
                &c.name,
                &c.branch,
                &c.commit,
                &c.settings,
                self.config.commit.as_deref(),
            ) {
                Ok(ctx) => {
                    if let Some(o) = c.observed.filter(|o| o.namespace != ctx.namespace) {
                        // Moving a staging between namespaces would orphan the old one; it is
                        // recreated instead.
                        p.action = Action::Update;
                        p.reason = format!(
                            "namespace changes from {} to {}",
                            o.namespace, ctx.namespace
                        );
                    }
                    p.namespace = Some(ctx.namespace.clone());
                    p.context = Some(Box::new(ctx));
                }
                Err(e) => {
                    p.error = Some(e.to_string());
                    p.action = Action::Noop;
                    p.reason = format!("cannot render: {e}");
                    p.state = c.observed.map(|o| o.state);
                }
            }
        }
        p
    }
}

fn absent(
    env: &str,
    branch: &str,
    static_name: Option<&str>,
    name: &str,
    reason: String,
) -> Planned {
    Planned {
        environment: env.to_string(),
        branch: branch.to_string(),
        static_name: static_name.map(str::to_string),
        name: name.to_string(),
        namespace: None,
        commit: None,
        action: Action::Noop,
        reason,
        first_seen: DateTime::<Utc>::UNIX_EPOCH,
        expires_at: None,
        state: None,
        settings: None,
        context: None,
        error: None,
        held: false,
    }
}

/// When this head was first seen: as recorded when the target runs this very commit, else now.
fn first_seen(o: Option<&ObservedStaging>, commit: &Commit, now: DateTime<Utc>) -> DateTime<Utc> {
    match o {
        Some(o) if o.commit == commit.sha => o.first_seen,
        _ => now,
    }
}

#[cfg(test)]
mod tests;
