//! Planning one environment whose branches were listed: its static stagings, its branch
//! stagings (named, capped, aged), and what the target holds that nothing claims any more.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::posture::{posture_in, Posture};
use super::schedule::Windows;
use super::trailer::{self, Steer};
use super::StagingRecord;
use super::{guard, Hold, Inputs, Life, Phase, Planned, Why};
use crate::config::{Config, Environment, Settings, Ttl};
use crate::naming;
use crate::source::{Branch, Commit, RepoListing};

mod decide;
mod statics;

use decide::{absent, first_seen};

pub(super) struct EnvPlanner<'a> {
    config: &'a Config,
    env: &'a Environment,
    inputs: &'a Inputs<'a>,
    listing: &'a RepoListing,
    observed: &'a [&'a StagingRecord],
    by_name: HashMap<&'a str, &'a StagingRecord>,
    /// Observed stagings some candidate claimed.
    seen: HashSet<&'a str>,
    /// Include patterns that were the first to match some branch.
    matched: HashSet<&'a str>,
    /// Branches whose head says `Staging: skip`.
    skipped: HashSet<&'a str>,
    windows: Windows,
    pub out: Vec<Planned>,
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
    observed: Option<&'a StagingRecord>,
    capped: Option<u32>,
    /// Awake or asleep, before `max_awake`.
    posture: Posture,
}

/// Who keeps a place under a cap first: stagings that never expire, then the newest head
/// commit (no later than when it was first seen), then the staging that exists, then by name.
/// Only what stays put between passes counts: a branch left out is never "first seen" and
/// would look newer than every staging on each pass, and the stagings would take turns.
type Rank<'c> = (bool, Reverse<DateTime<Utc>>, bool, &'c str);

fn precedence<'c>(c: &'c Candidate<'_>) -> Rank<'c> {
    (
        c.ttl != Ttl::Never,
        Reverse(c.commit.time.min(c.first_seen)),
        c.observed.is_none(),
        c.name.as_str(),
    )
}

/// Whether `octostage wake` keeps it awake.
fn woken(p: &Posture) -> bool {
    matches!(
        p.why,
        Why::Awake {
            by: super::WakeCause::Request,
            ..
        }
    )
}

/// A candidate's life kept longer by `octostage extend` (no further than `max_extension` from
/// when it was asked, whatever the request says) or a `Staging: keep` trailer (no further than
/// `max_extension` from when its commit was first seen), and its posture, which a `Staging:
/// sleep` trailer puts to sleep unless someone asked it to wake.
fn steer(
    o: Option<&StagingRecord>,
    settings: &Settings,
    life: Life,
    now: DateTime<Utc>,
    trailer: Option<(Steer, DateTime<Utc>)>,
    windows: &Windows,
) -> (Life, Posture) {
    let most = |from: DateTime<Utc>| {
        chrono::Duration::from_std(settings.max_extension)
            .ok()
            .and_then(|m| from.checked_add_signed(m))
            .unwrap_or(from)
    };
    let life = match trailer {
        Some((Steer::Keep(d), seen)) => {
            let asked = chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| seen.checked_add_signed(d))
                .unwrap_or(seen);
            life.extended(asked.min(most(seen)), settings.retention, now)
        }
        _ => life,
    };
    let none = super::Requests::default();
    let requests = o.map_or(&none, |o| &o.requests);
    let life = match requests.keep_until {
        // A request cannot have been made later than now: one that says so was not made by
        // `extend`, and is not believed (it would roll forward with every pass).
        Some(e) if e.at <= now => life.extended(e.until.min(most(e.at)), settings.retention, now),
        _ => life,
    };
    let expired_at = o
        .filter(|o| o.state == super::State::Expired)
        .and_then(|o| o.expired_at);
    let life = life.retained(expired_at, settings.retention, now);
    let mut posture = posture_in(settings.sleep.as_ref(), requests, now, windows);
    let woken = matches!(
        posture.why,
        Why::Awake {
            by: super::WakeCause::Request,
            ..
        }
    );
    if matches!(trailer, Some((Steer::Sleep, _))) && !woken {
        posture = Posture::asleep(super::SleepCause::Trailer, None);
    }
    (life, posture)
}

impl<'a> EnvPlanner<'a> {
    pub fn new(
        config: &'a Config,
        env: &'a Environment,
        inputs: &'a Inputs<'a>,
        listing: &'a RepoListing,
        observed: &'a [&'a StagingRecord],
    ) -> Self {
        EnvPlanner {
            config,
            env,
            inputs,
            listing,
            observed,
            by_name: observed.iter().map(|o| (o.name.as_str(), *o)).collect(),
            seen: HashSet::new(),
            matched: HashSet::new(),
            skipped: HashSet::new(),
            windows: Windows::default(),
            out: Vec::new(),
        }
    }

    pub fn run(&mut self) {
        // Static stagings first: their names are reserved before branches are named.
        let (mut candidates, reserved) = self.statics();
        let mut branches = self.branches(&reserved);
        self.cap(&candidates, &mut branches);
        candidates.extend(branches);
        self.cap_awake(&mut candidates);
        for c in candidates {
            if let Some(o) = c.observed {
                self.seen.insert(o.name.as_str());
            }
            let p = self.decide(c);
            self.out.push(p);
        }
        self.leftovers();
    }

    /// Include patterns that match none of the listed branches, and branches skipped for their
    /// names: nothing wrong for the planner, but likely a mistake worth a line.
    pub fn hints(&self) -> Vec<String> {
        let name = &self.env.name;
        let mut out = Vec::new();
        let branches = &self.listing.branches;
        if !branches.is_empty() {
            for p in self.env.include.patterns() {
                let Ok(g) = crate::config::Globs::new(&[p]) else {
                    continue;
                };
                if branches.iter().any(|b| g.matches(&b.name).is_some()) {
                    continue;
                }
                let mut hint = format!(
                    "environment {name}: branches.include pattern {p:?} matches none of its {} branches",
                    branches.len()
                );
                if let Some(wider) = p.strip_suffix('*').filter(|s| !s.ends_with('*')) {
                    let wider = format!("{wider}**");
                    if let Ok(w) = crate::config::Globs::new(&[&wider]) {
                        let n = branches
                            .iter()
                            .filter(|b| w.matches(&b.name).is_some())
                            .count();
                        if n > 0 {
                            hint.push_str(&format!(
                                " (`*` stays within one path segment; {wider:?} would match {n})"
                            ));
                        }
                    }
                }
                out.push(hint);
            }
        }
        for b in &self.listing.branches {
            if let (true, Some(Err(e))) = (self.env.trailers, self.parsed(b)) {
                out.push(format!(
                    "environment {name}: branch {:?}: its head's `Staging:` trailer is ignored: {e}",
                    b.name
                ));
            }
        }
        for s in &self.listing.skipped {
            out.push(format!(
                "environment {name}: branch {:?} gets no staging: its name {}",
                s.name, s.why
            ));
        }
        out.extend(pull_hints(name, &self.listing.pulls_left_out));
        out
    }

    fn parsed(&self, b: &Branch) -> Option<Result<Steer, trailer::SteerError>> {
        b.commit.steer.as_deref().map(trailer::parse)
    }

    /// What the head commit's trailer asks, when this environment listens to trailers.
    fn trailer(&self, b: &Branch) -> Option<Steer> {
        if !self.env.trailers {
            return None;
        }
        self.parsed(b)?.ok()
    }

    fn branches(&mut self, reserved: &HashSet<String>) -> Vec<Candidate<'a>> {
        let now = self.inputs.now;
        let env = self.env;
        let mut included: Vec<&'a Branch> = Vec::new();
        for b in &self.listing.branches {
            if let Some(p) = env.include.matches(&b.name) {
                self.matched.insert(p);
                if env.exclude.matches(&b.name).is_some() {
                    continue;
                }
                if self.trailer(b) == Some(Steer::Skip) {
                    self.skipped.insert(b.name.as_str());
                    continue;
                }
                included.push(b);
            }
        }
        let held: HashMap<&str, &str> = self
            .observed
            .iter()
            .filter(|o| o.static_name.is_none())
            .map(|o| (o.branch.as_str(), o.name.as_str()))
            .collect();
        // A staging whose branch is gone keeps its name until it is deleted: a new branch with
        // the same slug (a rename `feat` → `FEAT`) gets another name, not the one being deleted.
        let wanted: HashSet<&str> = included.iter().map(|b| b.name.as_str()).collect();
        let mut reserved = reserved.clone();
        reserved.extend(
            held.iter()
                .filter(|(b, _)| !wanted.contains(*b))
                .map(|(_, n)| n.to_string()),
        );
        let names = naming::assign(
            &self.env.name,
            included.iter().map(|b| b.name.as_str()),
            &reserved,
            &held,
        );
        included
            .into_iter()
            .map(|b| {
                let name = names[b.name.as_str()].clone();
                let o = self
                    .by_name
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
                let trailer = self.trailer(b).map(|t| (t, first_seen));
                let (life, posture) = steer(o, &settings, life, now, trailer, &self.windows);
                Candidate {
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
                    posture,
                }
            })
            .collect()
    }

    /// `max_awake`: of the stagings that would be awake, those that never expire first, then
    /// the most recently active, stay awake; the others sleep until there is room.
    fn cap_awake(&self, candidates: &mut [Candidate<'a>]) {
        let Some(max) = self.env.max_awake else {
            return;
        };
        let mut awake: Vec<&mut Candidate> = candidates
            .iter_mut()
            .filter(|c| {
                c.capped.is_none() && c.life.phase == Phase::Active && c.posture.asleep.is_none()
            })
            .collect();
        // Woken by `octostage wake`: someone is using it, so it stays awake first.
        awake.sort_by(|a, b| {
            (!woken(&a.posture), precedence(a)).cmp(&(!woken(&b.posture), precedence(b)))
        });
        for c in awake.into_iter().skip(max as usize) {
            c.posture = c.posture.clone().capped();
        }
    }

    /// `max_stagings`: stagings that never expire first, then the most recently active.
    fn cap(&self, statics: &[Candidate<'a>], branches: &mut [Candidate<'a>]) {
        let Some(max) = self.env.max_stagings else {
            return;
        };
        let live_statics = statics
            .iter()
            .filter(|c| c.life.phase != Phase::Gone)
            .count();
        let room = (max as usize).saturating_sub(live_statics);
        let mut live: Vec<&mut Candidate> = branches
            .iter_mut()
            .filter(|c| c.life.phase != Phase::Gone)
            .collect();
        live.sort_by(|a, b| precedence(a).cmp(&precedence(b)));
        for c in live.into_iter().skip(room) {
            c.capped = Some(max);
        }
    }

    /// What the target holds that no candidate claimed.
    fn leftovers(&mut self) {
        let listed: HashSet<&str> = self
            .listing
            .branches
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        let total = self
            .observed
            .iter()
            .filter(|o| o.static_name.is_none())
            .count();
        let unreadable: HashSet<&str> = self
            .listing
            .skipped
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let mut vanished = Vec::new();
        for o in self
            .observed
            .iter()
            .filter(|o| !self.seen.contains(o.name.as_str()))
        {
            if o.static_name.is_none() && unreadable.contains(o.branch.as_str()) {
                let branch = o.branch.clone();
                self.out
                    .push(super::keep(o, Why::BranchUnreadable { branch }));
                continue;
            }
            let why = if let Some(s) = &o.static_name {
                Why::StaticRemoved { name: s.clone() }
            } else if self.skipped.contains(o.branch.as_str()) {
                Why::TrailerSkip
            } else if listed.contains(o.branch.as_str()) {
                match self.env.exclude.matches(&o.branch) {
                    Some(p) => Why::Excluded {
                        pattern: p.to_string(),
                    },
                    None => Why::NotIncluded,
                }
            } else {
                vanished.push(self.out.len());
                if self.listing.pull_requests {
                    Why::PullRequestClosed
                } else {
                    Why::BranchDeleted
                }
            };
            self.out.push(super::gone(o, why));
        }
        self.guard_vanished(&vanished, total);
    }

    /// Hold "branch deleted" deletions when the listing lost a suspicious share of branches.
    fn guard_vanished(&mut self, vanished: &[usize], total: usize) {
        let limit = self.config.safety.max_branch_loss_percent as usize;
        let empty = self.listing.branches.is_empty();
        let suspect = empty || (vanished.len() > 1 && vanished.len() * 100 > total * limit);
        if vanished.is_empty() || !suspect || self.inputs.confirm_deletions {
            return;
        }
        let hold = if empty {
            Hold::EmptyListing
        } else {
            Hold::MassLoss {
                lost: vanished.len(),
                total,
                limit: self.config.safety.max_branch_loss_percent,
            }
        };
        for &i in vanished {
            guard::hold(&mut self.out[i], hold.clone());
        }
    }
}

/// Most pull requests named one by one in hints; the rest are counted.
const MAX_PULL_HINTS: usize = 20;

/// Hints for labelled open pull requests that get no staging.
fn pull_hints(env: &str, left: &[(u64, String, crate::source::pulls::LeftOut)]) -> Vec<String> {
    use crate::source::pulls::LeftOut;
    let mut out: Vec<String> = left
        .iter()
        .take(MAX_PULL_HINTS)
        .map(|(n, branch, why)| {
            let why = match why {
                LeftOut::Fork => "it comes from a fork (fork pull requests never get a staging: their code is not this repository's)",
                LeftOut::NotListed => "its branch is not among this environment's branches (not in the repository yet, or left out by `branches`)",
            };
            format!(
                "environment {env}: pull request #{n} (branch {:?}) gets no staging: {why}",
                crate::text::printable(branch)
            )
        })
        .collect();
    if left.len() > MAX_PULL_HINTS {
        out.push(format!(
            "environment {env}: {} more pull requests get no staging",
            left.len() - MAX_PULL_HINTS
        ));
    }
    out
}
