//! How much a pass looks at: nothing when nothing changed, the stagings that changed, or
//! every one (its own request, a changed configuration, the resync).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Trigger;
use crate::pass::{self, Report, Scope};

/// What the last pass saw, so that the next one can look only at what changed since.
#[derive(Clone)]
pub(super) struct Memo {
    pub sources: pass::Sources,
    /// What the target held when the last pass looked.
    pub observed: Arc<crate::plan::Observed>,
    /// Private with `deadline`: one is never replaced without the other.
    report: Arc<Report>,
    /// When the last pass over every staging ran.
    pub full_at: DateTime<Utc>,
    pub dry_run: bool,
    /// When the report's next lifecycle change is due: worked out once per pass, as it looks
    /// at every staging, and not again at each change the target reports.
    deadline: Option<DateTime<Utc>>,
    /// The report's stagings by name, for [`Memo::unchanged_by`].
    rest: crate::plan::health::AtRest,
}

impl Memo {
    pub fn new(
        sources: pass::Sources,
        observed: Arc<crate::plan::Observed>,
        report: Arc<Report>,
        full_at: DateTime<Utc>,
        dry_run: bool,
    ) -> Memo {
        Memo {
            deadline: report.plan.next_deadline(),
            rest: crate::plan::health::AtRest::of(&report.plan),
            sources,
            observed,
            report,
            full_at,
            dry_run,
        }
    }

    /// Whether a plan made at `at` from `observed` would leave every staging of the last report
    /// as it is (see [`crate::plan::health::unchanged_by`]): costs what changed since the last
    /// pass looked, not the number of stagings.
    pub fn unchanged_by(&self, observed: &crate::plan::Observed, at: DateTime<Utc>) -> bool {
        crate::plan::health::unchanged_by(
            &self.report.plan,
            &self.rest,
            &self.observed,
            observed,
            at,
        )
    }

    /// The last pass's report, and when its next lifecycle change is due.
    pub fn report(&self) -> (&Arc<Report>, Option<DateTime<Utc>>) {
        (&self.report, self.deadline)
    }
}

/// What a pass did.
pub(super) enum Ran {
    /// Nothing to do: the last pass's report stands.
    Unchanged(Arc<Report>),
    /// It ran.
    Ran(Arc<Report>),
}

/// What a pass looks at.
#[derive(Debug)]
pub(super) enum Reach {
    /// Nothing it could act on changed since the last pass: that pass's report stands.
    Unchanged(Arc<Report>),
    /// The stagings of `scope`, from sources read again or (a change the target saw) those of
    /// the last pass. `quiet`: no deadline is due, the last pass left nothing to retry and the
    /// target saw nothing change but workloads' readiness, so the same sources and the same
    /// view of the target leave nothing to do (the plan is a function of them and the clock,
    /// and the clock matters only at deadlines). `settled`: quiet, and the target saw nothing
    /// at all, so the same sources alone leave nothing to do.
    Pass {
        scope: Scope,
        reread: bool,
        quiet: bool,
        settled: bool,
    },
}

/// Which stagings the pass for `trigger` looks at: every one unless the target tells what
/// changed and a last pass over every staging is younger than `resync`; then those the target
/// saw change and those whose plan changed (see [`Scope::Changed`]).
pub(super) fn reach(
    trigger: &Trigger,
    dirty: Option<crate::targets::Dirty>,
    memo: Option<&Memo>,
    at: DateTime<Utc>,
    resync: Duration,
    dry_run: bool,
) -> Reach {
    let all = Reach::Pass {
        scope: Scope::All,
        reread: true,
        quiet: false,
        settled: false,
    };
    let (Some(dirty), Some(memo)) = (dirty, memo) else {
        return all;
    };
    let own = matches!(
        trigger,
        Trigger::Startup
            | Trigger::Manual
            | Trigger::Approve
            | Trigger::Leader
            | Trigger::FileChange
    );
    let stale = chrono::Duration::from_std(resync).map_or(true, |r| at - memo.full_at >= r);
    if dirty.all || own || stale || memo.dry_run != dry_run {
        return all;
    }
    let due = memo.deadline.is_some_and(|d| d <= at);
    let unsettled = !memo.report.ok() || memo.report.skipped() > 0;
    let quiet = dirty.stagings.is_empty() && !due && !unsettled;
    let settled = quiet && dirty.health.is_empty();
    let reread = *trigger != Trigger::Target;
    if settled && !reread {
        return Reach::Unchanged(memo.report.clone());
    }
    let mut marked = dirty.stagings;
    marked.extend(dirty.health);
    Reach::Pass {
        reread,
        quiet,
        settled,
        scope: Scope::Changed {
            dirty: marked,
            last: memo.report.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;
    use crate::targets::Dirty;

    fn at() -> DateTime<Utc> {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    fn memo() -> Memo {
        let config = Arc::new(
            crate::config::parse(
                "version: 1\ndefaults:\n  templates: t\nenvironments:\n  shop:\n    repository: /repo\n",
                "environments.yaml",
                std::path::Path::new("/cfg"),
                &crate::config::MemFiles::new([("t/cm.yaml", "kind: ConfigMap\n")]),
                &crate::config::LoadOptions::default(),
            )
            .unwrap(),
        );
        Memo::new(
            pass::Sources {
                digest: config.digest(),
                config: config.clone(),
                listings: Arc::new(HashMap::new()),
                reads: None,
            },
            Arc::default(),
            Arc::new(Report {
                config,
                plan: crate::plan::Plan {
                    at: at(),
                    ..Default::default()
                },
                outcomes: Vec::new(),
                writes: 0,
                requests: 0,
            }),
            at() - chrono::Duration::minutes(1),
            false,
        )
    }

    fn dirty(stagings: &[&str]) -> Option<Dirty> {
        Some(Dirty {
            stagings: stagings.iter().map(|s| s.to_string()).collect(),
            ..Dirty::default()
        })
    }

    const RESYNC: Duration = Duration::from_secs(600);

    fn all(r: &Reach) -> bool {
        matches!(
            r,
            Reach::Pass {
                scope: Scope::All,
                ..
            }
        )
    }

    #[test]
    fn every_staging_is_looked_at_without_a_last_pass_or_a_target_that_tells_what_changed() {
        let m = memo();
        assert!(all(&reach(
            &Trigger::Interval,
            dirty(&[]),
            None,
            at(),
            RESYNC,
            false
        )));
        assert!(all(&reach(
            &Trigger::Interval,
            None,
            Some(&m),
            at(),
            RESYNC,
            false
        )));
        let everything = Some(Dirty {
            all: true,
            ..Dirty::default()
        });
        assert!(all(&reach(
            &Trigger::Target,
            everything,
            Some(&m),
            at(),
            RESYNC,
            false
        )));
    }

    #[test]
    fn asked_for_passes_leadership_and_the_resync_look_at_every_staging() {
        let m = memo();
        for t in [
            Trigger::Startup,
            Trigger::Manual,
            Trigger::Approve,
            Trigger::Leader,
            Trigger::FileChange,
        ] {
            assert!(
                all(&reach(&t, dirty(&[]), Some(&m), at(), RESYNC, false)),
                "{t}"
            );
        }
        let later = at() + chrono::Duration::minutes(9);
        assert!(all(&reach(
            &Trigger::Interval,
            dirty(&[]),
            Some(&m),
            later,
            RESYNC,
            false
        )));
        // A follower that starts leading writes what it only planned before.
        assert!(all(&reach(
            &Trigger::Interval,
            dirty(&[]),
            Some(&m),
            at(),
            RESYNC,
            true
        )));
    }

    #[test]
    fn a_change_seen_by_the_target_alone_looks_at_it_with_the_last_sources() {
        let m = memo();
        assert!(matches!(
            reach(&Trigger::Target, dirty(&[]), Some(&m), at(), RESYNC, false),
            Reach::Unchanged(_)
        ));
        match reach(
            &Trigger::Target,
            dirty(&["shop-a"]),
            Some(&m),
            at(),
            RESYNC,
            false,
        ) {
            Reach::Pass {
                scope: Scope::Changed { dirty, .. },
                reread: false,
                quiet: false,
                settled: false,
            } => {
                assert_eq!(dirty, BTreeSet::from(["shop-a".to_string()]))
            }
            other => panic!("{other:?}"),
        }
        // The interval reads the sources again; with nothing seen, the same sources mean no pass.
        assert!(matches!(
            reach(
                &Trigger::Interval,
                dirty(&[]),
                Some(&m),
                at(),
                RESYNC,
                false
            ),
            Reach::Pass {
                scope: Scope::Changed { .. },
                reread: true,
                quiet: true,
                settled: true
            }
        ));
        // Only a readiness that changed: the pass looks at the target, and runs only if it
        // shows something else than the last pass saw.
        let health = Some(Dirty {
            health: BTreeSet::from(["shop-a".to_string()]),
            ..Dirty::default()
        });
        match reach(&Trigger::Target, health, Some(&m), at(), RESYNC, false) {
            Reach::Pass {
                scope: Scope::Changed { dirty, .. },
                reread: false,
                quiet: true,
                settled: false,
            } => assert_eq!(dirty, BTreeSet::from(["shop-a".to_string()])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_due_deadline_is_never_settled() {
        let mut m = memo();
        let mut plan = m.report.plan.clone();
        plan.recheck = Some(at() - chrono::Duration::seconds(1));
        plan.at = at() - chrono::Duration::minutes(1);
        let report = Arc::new(Report {
            plan,
            ..clone_report(&m.report)
        });
        m = Memo::new(m.sources, m.observed, report, m.full_at, m.dry_run);
        assert!(matches!(
            reach(
                &Trigger::Deadline,
                dirty(&[]),
                Some(&m),
                at(),
                RESYNC,
                false
            ),
            Reach::Pass {
                quiet: false,
                settled: false,
                ..
            }
        ));
    }

    fn clone_report(r: &Report) -> Report {
        Report {
            config: r.config.clone(),
            plan: r.plan.clone(),
            outcomes: Vec::new(),
            writes: 0,
            requests: 0,
        }
    }
}
