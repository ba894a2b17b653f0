//! Names and namespaces that two stagings would share, within a pass or with what the target
//! holds.

use super::*;

fn two_envs(namespace: &str) -> Config {
    parsed(&format!(
        "version: 1\ndefaults:\n  templates: t\n  namespace: {namespace:?}\nenvironments:\n  shop:\n    repository: /repo\n  shop-x:\n    repository: /repo2\n"
    ))
}

fn listings2(shop: Vec<Branch>, shop_x: Vec<Branch>) -> crate::plan::Listings {
    let mut l = listing(shop);
    l.extend(
        listing(shop_x)
            .into_values()
            .map(|v| ("shop-x".to_string(), v)),
    );
    l
}

#[test]
fn names_colliding_across_environments_block_both() {
    let c = two_envs("{{ staging }}");
    let p = run(
        &c,
        &listings2(vec![branch("x-y", 0)], vec![branch("y", 0)]),
        &[],
        now(),
    );
    let blocked: Vec<&Planned> = p.stagings.iter().filter(|s| s.name == "shop-x-y").collect();
    assert_eq!(blocked.len(), 2);
    for s in &blocked {
        assert_eq!(
            (s.action, s.held(), s.exists_after()),
            (Action::Noop, true, false)
        );
        assert_eq!(s.error.as_ref().unwrap().kind(), "name-collision");
        assert!(s.context.is_none());
    }
    assert!(blocked[0].reason().contains("shop-x/y") && blocked[1].reason().contains("shop/x-y"));
}

#[test]
fn a_shared_namespace_blocks_every_staging_in_it_and_keeps_the_existing_one() {
    let c = two_envs("shared-{{ environment }}");
    let l = listings2(vec![branch("a", 0)], vec![]);
    let first = applied(&run(&c, &l, &[], now()));
    assert_eq!(first.len(), 1);
    let l = listings2(vec![branch("a", 0), branch("b", 0)], vec![]);
    let p = run(&c, &l, &first, now());
    for b in ["a", "b"] {
        let s = find(&p, b);
        assert_eq!(
            s.error.as_ref().unwrap().kind(),
            "namespace-collision",
            "{s:?}"
        );
        assert_eq!(s.action, Action::Noop);
        assert!(s.context.is_none(), "nothing is written for {b}");
    }
    assert_eq!(
        find(&p, "a").state,
        Some(State::Active),
        "the existing one is kept"
    );
    assert_eq!(find(&p, "b").state, None);
}

#[test]
fn protected_and_foreign_namespaces_are_conflicts() {
    let c = two_envs("kube-{{ branch.slug }}");
    let p = run(&c, &listings2(vec![branch("a", 0)], vec![]), &[], now());
    assert_eq!(find(&p, "a").error.as_ref().unwrap().kind(), "protected");
    let c = two_envs("{{ staging }}");
    let mut observed = observed_of(&[]);
    observed
        .foreign_namespaces
        .insert("shop-a".into(), Foreign::NotCreated);
    observed
        .foreign_namespaces
        .insert("shop-x-b".into(), Foreign::OtherInstance("blue".into()));
    let p = plan(
        &c,
        &Inputs {
            listings: &listings2(vec![branch("a", 0), branch("c", 0)], vec![branch("b", 0)]),
            observed: &observed,
            now: now(),
            confirm_deletions: true,
            previous: None,
            images: None,
        },
    );
    for (b, why) in [("a", "did not create it"), ("b", "instance \"blue\"")] {
        let s = find(&p, b);
        assert_eq!(s.error.as_ref().unwrap().kind(), "conflict");
        assert!(s.reason().contains(why), "{}", s.reason());
        assert_eq!((s.action, s.exists_after()), (Action::Noop, false));
    }
    assert_eq!(find(&p, "c").action, Action::Create);
}

#[test]
fn an_include_pattern_matching_nothing_gets_a_hint() {
    let c = config("    branches:\n      include: [main, \"feature/*\"]\n");
    let p = run(
        &c,
        &listing(vec![branch("main", 0), branch("feature/a/b", 0)]),
        &[],
        now(),
    );
    assert_eq!(p.hints.len(), 1, "{:?}", p.hints);
    assert!(
        p.hints[0].contains("\"feature/*\" matches none of its 2 branches")
            && p.hints[0].contains("\"feature/**\" would match 1"),
        "{}",
        p.hints[0]
    );
}

/// Found by attacking octostage: a deferred deletion's staging, or one deleted in the same
/// pass, had its namespace or name taken by another staging, which then wrote into it (and the
/// deletion removed the newcomer).
#[test]
fn a_name_or_namespace_being_deleted_or_kept_is_not_free_in_the_same_pass() {
    let c = config(
        "    overrides:\n      b2:\n        namespace: shop-feat\nsafety:\n  max_deletions_per_pass: 1\n  max_branch_loss_percent: 100\n",
    );
    let all = ["main", "a1", "feat", "b2"];
    let l = listing(all.iter().map(|b| branch(b, 0)).collect());
    // Before the override, each has a namespace of its own.
    let held = applied(&run(&config(""), &l, &[], now()));
    // a1 and feat vanish: one deletion now, one deferred; b2 wants feat's namespace.
    let l = listing(["main", "b2"].iter().map(|b| branch(b, 0)).collect());
    let p = run(&c, &l, &held, now());
    let b2 = find(&p, "b2");
    assert_eq!(b2.action, Action::Noop, "{b2:?}");
    assert!(
        matches!(
            b2.error.as_ref().unwrap().kind(),
            "namespace-collision" | "leaving"
        ),
        "{b2:?}"
    );
    assert_eq!(
        b2.namespace.as_deref(),
        Some("shop-b2"),
        "b2 stays where it is"
    );
}

#[test]
fn a_renamed_branch_gets_a_name_of_its_own_while_the_old_staging_is_deleted() {
    let c = config("");
    let l = listing(vec![branch("main", 0), branch("feat", 0)]);
    let held = applied(&run(&c, &l, &[], now()));
    // `git branch -m feat FEAT`: same slug.
    let l = listing(vec![branch("main", 0), branch("FEAT", 0)]);
    let p = run(&c, &l, &held, now());
    let old = find(&p, "feat");
    let new = find(&p, "FEAT");
    assert_eq!(
        (old.action, old.name.as_str()),
        (Action::Delete, "shop-feat")
    );
    assert_eq!(new.action, Action::Create);
    assert_ne!(new.name, "shop-feat", "{new:?}");
    assert_ne!(new.namespace, old.namespace);
}

#[test]
fn moving_into_a_namespace_deleted_in_the_same_pass_waits() {
    let c = config("    overrides:\n      b2:\n        namespace: shop-feature-x\n");
    let l = listing(vec![
        branch("main", 0),
        branch("b2", 0),
        branch("feature/x", 0),
    ]);
    let held = applied(&run(&config(""), &l, &[], now()));
    let l = listing(vec![branch("main", 0), branch("b2", 0)]);
    let p = run(&c, &l, &held, now());
    assert_eq!(find(&p, "feature/x").action, Action::Delete);
    let b2 = find(&p, "b2");
    assert_eq!(b2.error.as_ref().unwrap().kind(), "leaving", "{b2:?}");
    assert_eq!(b2.namespace.as_deref(), Some("shop-b2"));
}
