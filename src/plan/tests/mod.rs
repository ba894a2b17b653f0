//! Planner tests on inline configurations, fixed `now`, no I/O.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::config::{parse, LoadOptions, MemFiles};
use crate::source::{Branch, Commit, RepoListing};

/// The templates directory `t` with one ConfigMap.
fn templates() -> MemFiles {
    MemFiles::new([(
        "t/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )])
}

fn config(extra: &str) -> Config {
    parsed(&format!(
        "version: 1\ndefaults:\n  templates: t\n  ttl: 7d\nenvironments:\n  shop:\n    repository: /repo\n    always: [main]\n{extra}"
    ))
}

/// `text` as environments.yaml over [`templates`]; panics on a problem.
fn parsed(text: &str) -> Config {
    parse(
        text,
        "environments.yaml",
        Path::new("/cfg"),
        &templates(),
        &LoadOptions::default(),
    )
    .unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-26T12:00:00Z".parse().unwrap()
}

fn branch(name: &str, days_ago: i64) -> Branch {
    Branch {
        name: name.into(),
        commit: Commit {
            sha: format!(
                "{:0>40}",
                crate::naming::short_hash(&format!("{name}{days_ago}"), 12)
            ),
            time: now() - Duration::days(days_ago),
            author: "Dev".into(),
            subject: "work".into(),
            steer: None,
        },
    }
}

fn listing(branches: Vec<Branch>) -> crate::plan::Listings {
    [(
        "shop".to_string(),
        Ok(RepoListing {
            branches,
            ..RepoListing::default()
        }),
    )]
    .into()
}

/// What the target would hold after applying `plan`.
fn applied(plan: &Plan) -> Vec<StagingRecord> {
    plan.stagings
        .iter()
        .filter(|p| p.exists_after())
        .map(StagingRecord::of)
        .collect()
}

fn run(
    c: &Config,
    l: &crate::plan::Listings,
    observed: &[StagingRecord],
    at: DateTime<Utc>,
) -> Plan {
    plan(
        c,
        &Inputs {
            listings: l,
            observed: &observed_of(observed),
            now: at,
            confirm_deletions: false,
            previous: None,
            images: None,
        },
    )
}

fn observed_of(stagings: &[StagingRecord]) -> Observed {
    Observed {
        stagings: stagings.iter().cloned().map(std::sync::Arc::new).collect(),
        ..Default::default()
    }
}

fn find<'a>(p: &'a Plan, branch: &str) -> &'a Planned {
    p.stagings
        .iter()
        .find(|s| s.branch == branch)
        .unwrap_or_else(|| panic!("{branch} not in plan"))
}

#[test]
fn new_branches_are_created_and_a_second_plan_is_all_noop() {
    let c = config("");
    let l = listing(vec![branch("main", 100), branch("feature/a", 1)]);
    let p1 = run(&c, &l, &[], now());
    assert_eq!(find(&p1, "main").action, Action::Create);
    assert_eq!(find(&p1, "main").expires_at, None);
    assert_eq!(
        find(&p1, "feature/a").reason(),
        format!(
            "new branch at {}",
            &find(&p1, "feature/a").commit.as_ref().unwrap().sha[..7]
        )
    );
    assert_eq!(
        find(&p1, "feature/a").expires_at,
        Some(now() + Duration::days(7)),
        "a full ttl from when it was first seen"
    );
    let p2 = run(&c, &l, &applied(&p1), now());
    assert!(
        p2.stagings.iter().all(|s| s.action == Action::Noop),
        "{p2:?}"
    );
}

#[test]
fn deleted_branch_new_commit_and_ttl() {
    let c = config("");
    let l = listing(vec![
        branch("main", 100),
        branch("a", 1),
        branch("b", 1),
        branch("c", 1),
    ]);
    let held = applied(&run(&c, &l, &[], now()));
    let l2 = listing(vec![branch("main", 100), branch("a", 0), branch("c", 1)]);
    let later = now() + Duration::days(3);
    let p = run(&c, &l2, &held, later);
    assert_eq!(find(&p, "a").action, Action::Update);
    assert!(find(&p, "a").reason().starts_with("new commit "));
    assert_eq!(
        (find(&p, "b").action, find(&p, "b").reason().as_str()),
        (Action::Delete, "branch deleted")
    );
    // c was committed a day before it was first seen, 8 days ago by `later + 4d`.
    let p = run(&c, &l2, &held, now() + Duration::days(7));
    assert_eq!(find(&p, "c").action, Action::Delete);
    assert_eq!(find(&p, "c").reason(), "no activity for 7d (ttl 7d)");
    assert_eq!(find(&p, "main").action, Action::Noop);
}

#[test]
fn late_pushed_commits_live_a_full_ttl_and_stale_heads_none() {
    let c = config("");
    // Committed five days ago, first seen now: a full week from now.
    let p = run(&c, &listing(vec![branch("late", 5)]), &[], now());
    assert_eq!(
        (find(&p, "late").action, find(&p, "late").expires_at),
        (Action::Create, Some(now() + Duration::days(7)))
    );
    // Already past its ttl when first seen: a stale branch is not created.
    let p = run(&c, &listing(vec![branch("old", 30)]), &[], now());
    assert_eq!(find(&p, "old").action, Action::Noop);
    assert_eq!(
        find(&p, "old").reason(),
        "not created: no activity for 30d (ttl 7d)"
    );
    // A running staging whose branch moves to a commit older than its ttl expires.
    let held = applied(&run(&c, &listing(vec![branch("a", 0)]), &[], now()));
    let p = run(
        &c,
        &listing(vec![branch("a", 9)]),
        &held,
        now() + Duration::hours(1),
    );
    assert_eq!(
        (find(&p, "a").action, find(&p, "a").reason().as_str()),
        (Action::Delete, "no activity for 9d1h (ttl 7d)")
    );
}

fn obs(name: &str, branch: &str) -> StagingRecord {
    StagingRecord {
        name: name.into(),
        environment: "shop".into(),
        branch: branch.into(),
        static_name: None,
        namespace: name.into(),
        commit: "0".repeat(40),
        first_seen: now(),
        expires_at: None,
        expired_at: None,
        delete_at: None,
        state: State::Active,
        next_change: None,
        clock: None,
        usage: None,
        health: None,
        warned: None,
        links: Default::default(),
        history: Vec::new(),
        requests: Default::default(),
    }
}

#[test]
fn retention_sleeps_before_deleting() {
    let c = config("    retention: 2d\n");
    let l = listing(vec![branch("a", 0)]);
    let held = applied(&run(&c, &l, &[], now()));
    let p = run(&c, &l, &held, now() + Duration::days(8));
    assert_eq!(find(&p, "a").action, Action::Expire);
    let held = applied(&p);
    assert_eq!(held[0].state, State::Expired);
    let p = run(&c, &l, &held, now() + Duration::days(8));
    assert_eq!(find(&p, "a").action, Action::Noop);
    // Expired on day 7, put to sleep on day 8: the two days of retention count from then.
    let p = run(&c, &l, &held, now() + Duration::days(9));
    assert_eq!(find(&p, "a").action, Action::Noop);
    assert_eq!(find(&p, "a").delete_at, Some(now() + Duration::days(10)));
    let p = run(&c, &l, &held, now() + Duration::days(10));
    assert_eq!(find(&p, "a").action, Action::Delete);
}

#[test]
fn excluded_and_failed_sources() {
    let c = config("    branches:\n      exclude: ['wip/**']\n");
    let mut held = vec![obs("shop-wip-x", "wip/x")];
    let p = run(&c, &listing(vec![branch("wip/x", 0)]), &held, now());
    assert_eq!(
        (
            find(&p, "wip/x").action,
            find(&p, "wip/x").reason().as_str()
        ),
        (Action::Delete, "excluded by pattern \"wip/**\"")
    );
    held.push(obs("shop-a", "a"));
    let failed: HashMap<_, _> = [(
        "shop".to_string(),
        Err(crate::source::ListingError::Source(std::sync::Arc::new(
            crate::source::SourceError::Git {
                url: "/repo".into(),
                action: "fetch",
                message: "connection refused".into(),
            },
        ))),
    )]
    .into();
    let p = run(&c, &failed, &held, now());
    assert!(p.stagings.iter().all(|s| s.action == Action::Noop
        && s.held()
        && s.reason().contains("connection refused")));
    assert_eq!(p.failed_sources.len(), 1);
}

#[test]
fn an_empty_or_shrunken_listing_is_not_believed() {
    let c = config("");
    let held: Vec<_> = (0..4)
        .map(|i| obs(&format!("shop-b{i}"), &format!("b{i}")))
        .collect();
    let p = run(&c, &listing(vec![]), &held, now());
    assert!(
        p.stagings
            .iter()
            .all(|s| s.action == Action::Noop && s.held()),
        "{p:?}"
    );
    let p = run(&c, &listing(vec![branch("b0", 0)]), &held, now());
    assert_eq!(
        p.stagings
            .iter()
            .filter(|s| s.action == Action::Delete)
            .count(),
        0
    );
    let p = plan(
        &c,
        &Inputs {
            listings: &listing(vec![branch("b0", 0)]),
            observed: &observed_of(&held),
            now: now(),
            confirm_deletions: true,
            previous: None,
            images: None,
        },
    );
    assert_eq!(
        p.stagings
            .iter()
            .filter(|s| s.action == Action::Delete)
            .count(),
        3
    );
    // One of four is an ordinary deletion.
    let p = run(
        &c,
        &listing((0..3).map(|i| branch(&format!("b{i}"), 0)).collect()),
        &held,
        now(),
    );
    assert_eq!(
        p.stagings
            .iter()
            .filter(|s| s.action == Action::Delete)
            .count(),
        1
    );
}

#[test]
fn deletions_per_pass_are_bounded() {
    let c = config("    ttl: 1h\nsafety:\n  max_deletions_per_pass: 2\n");
    let l = listing((0..5).map(|i| branch(&format!("b{i}"), 0)).collect());
    let held = applied(&run(&c, &l, &[], now()));
    let p = run(&c, &l, &held, now() + Duration::hours(2));
    assert_eq!(
        p.stagings
            .iter()
            .filter(|s| s.action == Action::Delete)
            .count(),
        2
    );
    assert_eq!(
        p.stagings
            .iter()
            .filter(|s| s.reason().starts_with("deletion deferred"))
            .count(),
        3
    );
}

#[test]
fn max_stagings_keeps_the_most_recently_active() {
    let c = config("    max_stagings: 2\n");
    let l = listing(vec![
        branch("main", 50),
        branch("new", 0),
        branch("older", 2),
    ]);
    let p = run(&c, &l, &[], now());
    assert_eq!(find(&p, "main").action, Action::Create);
    assert_eq!(find(&p, "new").action, Action::Create);
    assert_eq!(find(&p, "older").action, Action::Noop);
    assert!(find(&p, "older").reason().contains("max_stagings"));
}

#[test]
fn overrides_and_statics() {
    let c = config(
        "    overrides:\n      'release/*':\n        ttl: never\n        namespace: 'rel-{{ branch.slug }}'\n    static:\n      demo:\n        branch: main\n        values: {customer: acme}\n",
    );
    let l = listing(vec![branch("main", 100), branch("release/1.2", 60)]);
    let p = run(&c, &l, &[], now());
    let rel = find(&p, "release/1.2");
    assert_eq!(
        (rel.action, rel.expires_at, rel.namespace.as_deref()),
        (Action::Create, None, Some("rel-release-1-2"))
    );
    let demo = p
        .stagings
        .iter()
        .find(|s| s.static_name.as_deref() == Some("demo"))
        .unwrap();
    assert_eq!(
        (demo.name.as_str(), demo.action, demo.expires_at),
        ("shop-demo", Action::Create, None)
    );
    assert_eq!(demo.context.as_ref().unwrap().values["customer"], "acme");
}

#[test]
fn a_static_staging_goes_when_its_until_passes() {
    let c = config(
        "    static:\n      demo:\n        branch: main\n        until: '2026-11-27T00:00:00Z'\n",
    );
    let l = listing(vec![branch("main", 1)]);
    let held = applied(&run(&c, &l, &[], now()));
    let p = run(&c, &l, &held, now() + Duration::days(2));
    let demo = p.stagings.iter().find(|s| s.static_name.is_some()).unwrap();
    assert_eq!(
        (demo.action, demo.reason().as_str()),
        (
            Action::Delete,
            "its until time 2026-11-27T00:00:00Z has passed"
        )
    );
}

#[test]
fn a_removed_environment_is_held_until_confirmed() {
    let c = config("");
    let mut o = obs("docs-main", "main");
    o.environment = "docs".into();
    let p = run(&c, &listing(vec![]), std::slice::from_ref(&o), now());
    let s = p.stagings.iter().find(|s| s.environment == "docs").unwrap();
    assert_eq!((s.action, s.held()), (Action::Noop, true));
    assert!(
        s.reason().contains("removed from the configuration")
            && s.reason().contains("--confirm-deletions"),
        "{}",
        s.reason()
    );
    let p = plan(
        &c,
        &Inputs {
            listings: &listing(vec![]),
            observed: &observed_of(&[o]),
            now: now(),
            confirm_deletions: true,
            previous: None,
            images: None,
        },
    );
    let s = p.stagings.iter().find(|s| s.environment == "docs").unwrap();
    assert_eq!(s.action, Action::Delete);
}

mod collisions;
mod images;
mod lifecycle;
mod trailers;

/// A readiness that changes no health is no reason to plan again, and one that does is; each
/// answer agrees with the plan that would be made.
#[test]
fn a_readiness_that_changes_no_health_leaves_the_plan_as_it_is() {
    let c = config("");
    let l = listing(vec![branch("feature/a", 0)]);
    let with = |records: &[StagingRecord], r: Readiness| {
        let mut o = observed_of(records);
        o.readiness = Some(
            records
                .iter()
                .map(|s| (s.name.clone(), r.clone()))
                .collect(),
        );
        o
    };
    let plan_at = |o: &Observed| {
        plan(
            &c,
            &Inputs {
                listings: &l,
                observed: o,
                now: now(),
                confirm_deletions: false,
                previous: None,
                images: None,
            },
        )
    };
    let first = run(&c, &l, &[], now());
    let before = with(&applied(&first), Readiness::Ready);
    let ready = plan_at(&before);
    // Settled: applied, running, recorded.
    let settled = with(&applied(&ready), Readiness::Ready);
    let last = plan_at(&settled);
    assert!(last.stagings.iter().all(|p| p.action == Action::Noop));
    let same = |l: &Plan, o: &Observed| {
        health::unchanged_by(l, &health::AtRest::of(l), &settled, o, now())
    };
    let health = |p: &Plan| {
        p.stagings
            .iter()
            .map(|s| s.health.clone())
            .collect::<Vec<_>>()
    };
    let unseen = with(
        &applied(&ready),
        Readiness::Unobserved("Deployment/web: change not yet seen".into()),
    );
    assert!(same(&last, &unseen));
    // Measured against a plan with a staging still on its way, the answer is no.
    assert!(!same(&first, &unseen));
    assert_eq!(health(&plan_at(&unseen)), health(&last));
    let down = with(
        &applied(&ready),
        Readiness::NotReady("Deployment/web: 0 of 1 ready".into()),
    );
    assert!(!same(&last, &down));
    assert_ne!(health(&plan_at(&down)), health(&last));
    // Anything else that differs is never taken for readiness alone.
    let mut other = unseen.clone();
    other.stagings.clear();
    assert!(!same(&last, &other));
}
