//! `Staging:` trailers through the whole planner.

use super::*;

fn steered(name: &str, days_ago: i64, steer: &str) -> Branch {
    let mut b = branch(name, days_ago);
    b.commit.steer = Some(steer.to_string());
    b
}

#[test]
fn skip_removes_a_staging_through_the_deletion_guard() {
    let c = config("    max_extension: 30d\n");
    let before = listing(vec![branch("a", 0), branch("b", 0), branch("c", 0)]);
    let held = applied(&run(&c, &before, &[], now()));
    let after = listing(vec![
        steered("a", 0, "skip"),
        steered("b", 0, "SKIP"),
        branch("c", 0),
        steered("d", 0, "skip"),
    ]);
    let p = run(&c, &after, &held, now());
    for b in ["a", "b"] {
        let s = find(&p, b);
        assert_eq!(s.action, Action::Delete, "{b}");
        assert_eq!(s.reason(), "head commit says `Staging: skip`");
    }
    assert_eq!(find(&p, "c").action, Action::Noop);
    assert!(p.stagings.iter().all(|s| s.branch != "d"), "never created");
    // The same guard as every deletion: at most max_deletions_per_pass.
    let c = config("    max_extension: 30d\nsafety:\n  max_deletions_per_pass: 1\n");
    let p = run(&c, &after, &held, now());
    let held_back = p.stagings.iter().filter(|s| s.hold.is_some()).count();
    assert_eq!(held_back, 1, "{:#?}", p.stagings);
}

#[test]
fn keep_extends_the_expiry_up_to_max_extension() {
    let c = config("    max_extension: 10d\n");
    // Seven days idle with a 7d ttl: expired without the trailer.
    let old = listing(vec![branch("a", 8)]);
    let p = run(&c, &old, &[], now());
    assert!(p.stagings.is_empty() || find(&p, "a").action == Action::Noop);
    let kept = listing(vec![steered("a", 8, "keep 14d")]);
    let p = run(&c, &kept, &[], now());
    let s = find(&p, "a");
    assert_eq!(s.action, Action::Create);
    // First seen now, kept 14d capped by max_extension 10d.
    assert_eq!(s.expires_at, Some(now() + Duration::days(10)));
    let c = config("    max_extension: 30d\n");
    let p = run(&c, &kept, &[], now());
    assert_eq!(find(&p, "a").expires_at, Some(now() + Duration::days(14)));
}

#[test]
fn sleep_puts_a_staging_to_sleep_until_a_new_commit_or_a_wake() {
    let c = config("");
    let p = run(&c, &listing(vec![steered("a", 0, "sleep")]), &[], now());
    let s = find(&p, "a");
    assert_eq!(s.state, Some(State::Sleeping(SleepCause::Trailer)));
    let held = applied(&p);
    // Awake and then the same commit gets... nothing new: a staging made awake by a branch
    // whose head now says sleep is put to sleep with the trailer as the reason.
    let awake = applied(&run(&c, &listing(vec![branch("b", 0)]), &[], now()));
    let mut b = branch("b", 0);
    b.commit.steer = Some("sleep".into());
    let p2 = run(&c, &listing(vec![b]), &awake, now());
    let s = find(&p2, "b");
    assert_eq!(s.action, Action::Sleep);
    assert!(s.reason().contains("Staging: sleep"), "{}", s.reason());
    let p = run(&c, &listing(vec![branch("a", 0)]), &held, now());
    assert_eq!(find(&p, "a").state, Some(State::Active));
}

#[test]
fn an_environment_can_turn_trailers_off_and_bad_values_are_hints() {
    let c = config("    branches:\n      trailers: false\n");
    let l = listing(vec![steered("a", 0, "skip"), steered("b", 0, "sleep")]);
    let p = run(&c, &l, &[], now());
    assert_eq!(find(&p, "a").action, Action::Create);
    assert_eq!(find(&p, "b").state, Some(State::Active));
    let c = config("");
    let l = listing(vec![steered("a", 0, "keep forever; $(rm -rf /)")]);
    let p = run(&c, &l, &[], now());
    assert_eq!(find(&p, "a").action, Action::Create);
    assert!(
        p.hints.iter().any(|h| h.contains("trailer is ignored")),
        "{:?}",
        p.hints
    );
}
