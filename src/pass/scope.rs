//! Which stagings a pass converges: every one, or those that changed since the last pass.
//! The plan itself is always whole (caps, collisions, the branch-loss freeze and the deletion
//! limit need every staging); what a pass saves is the work per staging (render, compare,
//! write), which is most of it.

use std::sync::Arc;

use super::Report;
use crate::plan::Plan;

/// Which stagings a pass converges.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// Every staging (a pass of its own, a resync, a changed configuration).
    #[default]
    All,
    /// Those the target saw change (`dirty`), and those whose entry in the plan differs from
    /// `last`'s, failed or was not reached there, or copies objects from elsewhere (a copied
    /// Secret is not watched). The others hold what `last` left them, so converging them would
    /// change nothing.
    Changed {
        /// Stagings the target saw change.
        dirty: std::collections::BTreeSet<String>,
        /// The last pass that ran.
        last: Arc<Report>,
    },
}

impl Scope {
    /// The last pass, when this one goes on from it.
    pub fn last(&self) -> Option<&Arc<Report>> {
        match self {
            Scope::All => None,
            Scope::Changed { last, .. } => Some(last),
        }
    }

    /// The stagings of `plan` to converge under this scope.
    pub(super) fn select(&self, plan: &Plan) -> Vec<bool> {
        let Scope::Changed { dirty, last } = self else {
            return vec![true; plan.stagings.len()];
        };
        let before: std::collections::HashMap<&str, usize> = last
            .plan
            .stagings
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        plan.stagings
            .iter()
            .map(|p| {
                let Some(&i) = before.get(p.name.as_str()) else {
                    return true;
                };
                let unsettled = last
                    .outcome(i)
                    .is_some_and(|o| o.error.is_some() || o.skipped);
                dirty.contains(&p.name)
                    || unsettled
                    || !p.same(&last.plan.stagings[i])
                    || p.settings.as_ref().is_some_and(|s| !s.copy.is_empty())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::path::Path;

    use super::*;
    use crate::config::{parse, Config, LoadOptions, MemFiles};
    use crate::plan::{Inputs, Observed};
    use crate::source::{Branch, Commit, RepoListing};

    fn config() -> Config {
        let files = MemFiles::new([(
            "t/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        )]);
        let text = "version: 1\ndefaults:\n  templates: t\nenvironments:\n  shop:\n    repository: /repo\n    branches:\n      include: ['feature/*']\n";
        parse(
            text,
            "environments.yaml",
            Path::new("/cfg"),
            &files,
            &LoadOptions::default(),
        )
        .unwrap()
    }

    fn plan_of(config: &Config, heads: &[(&str, &str)]) -> Plan {
        plan_after(config, heads, None)
    }

    fn plan_after(config: &Config, heads: &[(&str, &str)], previous: Option<&Plan>) -> Plan {
        let now = "2026-12-07T12:00:00Z".parse().unwrap();
        let branches = heads
            .iter()
            .map(|(name, sha)| Branch {
                name: name.to_string(),
                commit: Commit {
                    sha: sha.repeat(40),
                    time: now,
                    author: "Dev".into(),
                    subject: "work".into(),
                    steer: None,
                },
            })
            .collect();
        let listings = HashMap::from([(
            "shop".to_string(),
            Ok(RepoListing {
                branches,
                ..RepoListing::default()
            }),
        )]);
        crate::plan::plan(
            config,
            &Inputs {
                listings: &listings,
                observed: &Observed::default(),
                now,
                confirm_deletions: false,
                previous,
                images: None,
            },
        )
    }

    fn report(config: &Config, plan: Plan) -> Arc<Report> {
        Arc::new(Report {
            config: Arc::new(config.clone()),
            plan,
            outcomes: Vec::new(),
            writes: 0,
            requests: 0,
        })
    }

    fn chosen(plan: &Plan, scope: &Scope) -> Vec<String> {
        plan.stagings
            .iter()
            .zip(scope.select(plan))
            .filter(|(_, s)| *s)
            .map(|(p, _)| p.branch.clone())
            .collect()
    }

    #[test]
    fn a_pass_after_a_push_looks_at_the_pushed_staging_and_what_the_target_saw_change() {
        let c = config();
        let last = report(
            &c,
            plan_of(
                &c,
                &[("feature/a", "a"), ("feature/b", "b"), ("feature/c", "c")],
            ),
        );
        let now = plan_of(
            &c,
            &[
                ("feature/a", "a"),
                ("feature/b", "e"),
                ("feature/c", "c"),
                ("feature/d", "d"),
            ],
        );
        let name_of = |branch: &str| {
            now.stagings
                .iter()
                .find(|p| p.branch == branch)
                .unwrap()
                .name
                .clone()
        };
        let scope = Scope::Changed {
            dirty: BTreeSet::new(),
            last: last.clone(),
        };
        // A new head and a new branch; the others are as the last pass left them.
        assert_eq!(chosen(&now, &scope), ["feature/b", "feature/d"]);
        let scope = Scope::Changed {
            dirty: BTreeSet::from([name_of("feature/c")]),
            last,
        };
        assert_eq!(
            chosen(&now, &scope),
            ["feature/b", "feature/c", "feature/d"]
        );
        assert_eq!(chosen(&now, &Scope::All).len(), 4);
    }

    #[test]
    fn a_configuration_read_again_is_the_same_only_when_it_is_the_same_object() {
        // Two loads of one text digest alike (a pass then keeps the first, see `read_sources`),
        // but a staging planned from another load's settings is looked at again.
        let (c1, c2) = (config(), config());
        assert_eq!(c1.digest(), c2.digest());
        let last = report(&c1, plan_of(&c1, &[("feature/a", "a")]));
        let scope = Scope::Changed {
            dirty: BTreeSet::new(),
            last,
        };
        assert!(chosen(&plan_of(&c1, &[("feature/a", "a")]), &scope).is_empty());
        assert_eq!(
            chosen(&plan_of(&c2, &[("feature/a", "a")]), &scope),
            ["feature/a"]
        );
    }

    #[test]
    fn a_plan_takes_the_last_plans_contexts_where_their_inputs_are_the_same() {
        let c = config();
        let first = plan_of(&c, &[("feature/a", "a"), ("feature/b", "b")]);
        let next = plan_after(&c, &[("feature/a", "a"), ("feature/b", "e")], Some(&first));
        let ctx = |p: &Plan, b: &str| {
            p.stagings
                .iter()
                .find(|s| s.branch == b)
                .and_then(|s| s.context.clone())
                .unwrap()
        };
        assert!(Arc::ptr_eq(
            &ctx(&first, "feature/a"),
            &ctx(&next, "feature/a")
        ));
        // A new commit is a new context, built again: the commit is in it.
        assert!(!Arc::ptr_eq(
            &ctx(&first, "feature/b"),
            &ctx(&next, "feature/b")
        ));
        assert_eq!(ctx(&next, "feature/b").commit.sha, "e".repeat(40));
        // Another load of the configuration (other settings objects): built again, equal.
        let again = plan_after(&config(), &[("feature/a", "a")], Some(&first));
        assert!(!Arc::ptr_eq(
            &ctx(&first, "feature/a"),
            &ctx(&again, "feature/a")
        ));
        assert_eq!(ctx(&first, "feature/a"), ctx(&again, "feature/a"));
    }
}
