//! Static stagings: pinned to a branch or a commit, named by the configuration, never expiring
//! unless `until` says so.

use std::collections::HashSet;

use super::super::{Life, PlanError, Why};
use super::{absent, first_seen, Candidate, EnvPlanner};
use crate::config::{Pin, Ttl};
use crate::naming;
use crate::source::{Commit, PinError};

impl<'a> EnvPlanner<'a> {
    pub(super) fn statics(&mut self) -> (Vec<Candidate<'a>>, HashSet<String>) {
        let now = self.inputs.now;
        let mut candidates = Vec::new();
        let mut reserved = HashSet::new();
        for st in &self.env.statics {
            let name = naming::static_name(&self.env.name, &st.name);
            let o = self.by_name.get(name.as_str()).copied();
            if let Some(other) = o.filter(|o| o.static_name.as_deref() != Some(&st.name)) {
                // A branch staging (or another static) already has this name: it keeps it.
                let mut p = absent(
                    &self.env.name,
                    &st.name,
                    Some(&st.name),
                    &name,
                    Why::Blocked,
                );
                p.block(PlanError::NameCollision {
                    name: name.clone(),
                    other: format!("{}/{}", other.environment, other.branch),
                });
                self.out.push(p);
                continue;
            }
            reserved.insert(name.clone());
            let (branch, commit) = self.pinned(&st.pin);
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
                    let (life, posture) =
                        super::steer(o, &st.settings, life, now, None, &self.windows);
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
                        posture,
                    });
                }
                Err(e) => {
                    if let Some(o) = o {
                        self.seen.insert(o.name.as_str());
                        self.out.push(super::super::keep(
                            o,
                            Why::PinMissing {
                                error: e.to_string(),
                            },
                        ));
                    } else {
                        let why = Why::PinMissing {
                            error: e.to_string(),
                        };
                        let mut p = absent(&self.env.name, &branch, Some(&st.name), &name, why);
                        p.error = Some(PlanError::Pin(e));
                        self.out.push(p);
                    }
                }
            }
        }
        (candidates, reserved)
    }

    /// The branch name shown for a pin and the commit it resolves to in the listing.
    fn pinned(&self, pin: &Pin) -> (String, Result<Commit, PinError>) {
        match pin {
            Pin::Branch(b) => (
                b.clone(),
                self.listing
                    .branches
                    .iter()
                    .chain(&self.listing.pinned_heads)
                    .find(|x| &x.name == b)
                    .map(|x| x.commit.clone())
                    .ok_or_else(|| PinError::NoBranch(b.clone())),
            ),
            Pin::Commit(c) => (
                c.clone(),
                self.listing
                    .pins
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| Err(PinError::NotLookedUp(c.clone()))),
            ),
        }
    }
}
