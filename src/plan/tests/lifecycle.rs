//! Sleep schedules, requests (`sleep`, `wake --for`, `extend`) and `max_awake` through the
//! whole planner, with a fixed clock.

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Office hours in Berlin; `now()` (Thursday 2026-11-26 12:00Z) is inside them.
fn office() -> Config {
    config("    sleep: {at: \"0 20 * * Mon-Fri\", wake: \"0 7 * * Mon-Fri\", timezone: Europe/Berlin}\n")
}

fn five() -> crate::plan::Listings {
    listing((1..=5).map(|i| branch(&format!("f{i}"), 0)).collect())
}

#[test]
fn a_berlin_schedule_puts_five_stagings_to_sleep_and_wakes_them_on_time() {
    let c = office();
    let l = five();
    let p = run(&c, &l, &[], now());
    assert!(p.stagings.iter().all(|s| s.state == Some(State::Active)));
    // Thursday 20:00 CET is 19:00Z: the controller is woken then, not at its next poll.
    assert_eq!(p.next_deadline(), Some(t("2026-11-26T19:00:00Z")));
    let held = applied(&p);
    let p = run(&c, &l, &held, t("2026-11-26T19:00:00Z"));
    for s in &p.stagings {
        assert_eq!(s.action, Action::Sleep, "{}", s.name);
        assert_eq!(s.state, Some(State::Sleeping(SleepCause::Schedule)));
        assert_eq!(s.reason(), "sleep schedule until 2026-11-27T06:00:00Z");
    }
    assert_eq!(p.next_deadline(), Some(t("2026-11-27T06:00:00Z")));
    let held = applied(&p);
    // Asleep through the night: nothing to do, nothing written.
    let p = run(&c, &l, &held, t("2026-11-27T05:59:59Z"));
    assert!(p.stagings.iter().all(|s| s.action == Action::Noop));
    let p = run(&c, &l, &held, t("2026-11-27T06:00:00Z"));
    assert!(p.stagings.iter().all(|s| s.action == Action::Wake));
    // Friday night to Monday morning, across a weekend.
    let p = run(&c, &l, &applied(&p), t("2026-11-27T19:00:00Z"));
    assert_eq!(p.next_deadline(), Some(t("2026-11-30T06:00:00Z")));
}

#[test]
fn the_clock_counts_hours_awake_and_asleep() {
    let c = office();
    let l = five();
    let p = run(&c, &l, &[], t("2026-11-26T07:00:00Z"));
    let p = run(&c, &l, &applied(&p), t("2026-11-26T19:00:00Z"));
    let p = run(&c, &l, &applied(&p), t("2026-11-27T06:00:00Z"));
    let clock = find(&p, "f1").clock.unwrap();
    assert_eq!(
        (clock.awake_seconds, clock.asleep_seconds),
        (12 * 3600, 11 * 3600)
    );
    assert_eq!(clock.since, t("2026-11-27T06:00:00Z"));
}

fn with_requests(held: &mut [StagingRecord], name: &str, r: Requests) {
    held.iter_mut().find(|s| s.branch == name).unwrap().requests = r;
}

#[test]
fn wake_for_an_hour_then_sleep_again() {
    let c = office();
    let l = five();
    let p = run(&c, &l, &[], t("2026-11-26T07:00:00Z"));
    let mut held = applied(&run(&c, &l, &applied(&p), t("2026-11-26T20:00:00Z")));
    let asked = t("2026-11-26T21:00:00Z");
    let until = asked + Duration::hours(1);
    let wake = Requests {
        wake: Some(Wake {
            at: asked,
            until: Some(until),
        }),
        sleep: None,
        keep_until: None,
    };
    with_requests(&mut held, "f1", wake.clone());
    let p = run(&c, &l, &held, asked);
    assert_eq!(find(&p, "f1").action, Action::Wake);
    assert_eq!(find(&p, "f2").action, Action::Noop);
    assert_eq!(p.next_deadline(), Some(until));
    let mut held = applied(&p);
    with_requests(&mut held, "f1", wake);
    let p = run(&c, &l, &held, until);
    assert_eq!(find(&p, "f1").action, Action::Sleep);
    assert_eq!(
        find(&p, "f1").state,
        Some(State::Sleeping(SleepCause::Schedule))
    );
}

#[test]
fn an_extension_is_kept_but_never_beyond_max_extension() {
    // ttl 7d; `extend` asked a day before expiry for 30 days, written by hand past the
    // command's check: the planner still keeps it only max_extension (3d) from the asking.
    let c = config("    max_extension: 3d\n    retention: 1d\n");
    let l = listing(vec![branch("a", 0)]);
    let mut held = applied(&run(&c, &l, &[], now()));
    let asked = now() + Duration::days(6);
    with_requests(
        &mut held,
        "a",
        Requests {
            sleep: None,
            wake: None,
            keep_until: Some(Extension {
                at: asked,
                until: asked + Duration::days(30),
            }),
        },
    );
    let p = run(&c, &l, &held, now() + Duration::days(8));
    let a = find(&p, "a");
    assert_eq!(
        (a.action, a.expires_at),
        (Action::Noop, Some(asked + Duration::days(3)))
    );
    assert_eq!(a.delete_at, Some(asked + Duration::days(4)));
    let p = run(&c, &l, &held, asked + Duration::days(3));
    assert_eq!(find(&p, "a").action, Action::Expire);
}

#[test]
fn max_awake_puts_the_least_recently_active_to_sleep_and_wakes_them_when_there_is_room() {
    let c = config("    max_awake: 3\n");
    let l = listing(vec![
        branch("main", 30),
        branch("b1", 0),
        branch("b2", 1),
        branch("b3", 2),
        branch("b4", 3),
    ]);
    let p = run(&c, &l, &[], now());
    let asleep: Vec<&str> = p
        .stagings
        .iter()
        .filter(|s| s.state == Some(State::Sleeping(SleepCause::Cap)))
        .map(|s| s.branch.as_str())
        .collect();
    // `main` never expires, so it stays awake first; then the most recently active.
    assert_eq!(asleep, ["b3", "b4"]);
    assert!(find(&p, "b4").reason().contains("new branch"));
    let held: Vec<StagingRecord> = applied(&p)
        .into_iter()
        .filter(|s| s.branch != "b1")
        .collect();
    let l = listing(vec![
        branch("main", 30),
        branch("b2", 1),
        branch("b3", 2),
        branch("b4", 3),
    ]);
    let p = run(&c, &l, &held, now());
    assert_eq!(find(&p, "b3").action, Action::Wake);
    assert_eq!(find(&p, "b4").action, Action::Noop);
}

#[test]
fn a_manual_sleep_outlasts_the_schedule_and_a_new_commit_updates_asleep() {
    let c = office();
    let l = five();
    let mut held = applied(&run(&c, &l, &[], now()));
    with_requests(
        &mut held,
        "f1",
        Requests {
            sleep: Some(now()),
            wake: None,
            keep_until: None,
        },
    );
    let p = run(&c, &l, &held, now());
    assert_eq!(find(&p, "f1").action, Action::Sleep);
    let mut held = applied(&p);
    with_requests(
        &mut held,
        "f1",
        Requests {
            sleep: Some(now()),
            wake: None,
            keep_until: None,
        },
    );
    let l = listing(
        (1..=5)
            .map(|i| branch(&format!("f{i}"), i64::from(i == 1)))
            .collect(),
    );
    let p = run(&c, &l, &held, t("2026-11-27T06:00:00Z"));
    let f1 = find(&p, "f1");
    assert_eq!(
        (f1.action, f1.state),
        (Action::Update, Some(State::Sleeping(SleepCause::Manual)))
    );
}

#[test]
fn limits_over_all_environments_never_delete() {
    let two = |extra: &str| {
        parsed(&format!(
            "version: 1\ndefaults:\n  templates: t\n  ttl: 7d\n{extra}environments:\n  shop:\n    repository: /repo\n  blog:\n    repository: /repo2\n"
        ))
    };
    let mut l = listing(vec![branch("a", 0), branch("b", 1), branch("c", 2)]);
    l.insert("blog".into(), l["shop"].clone());
    let c = two("limits:\n  max_stagings: 4\n  max_awake: 2\n");
    let p = run(&c, &l, &[], now());
    let created: Vec<String> = p
        .stagings
        .iter()
        .filter(|s| s.exists_after())
        .map(|s| format!("{}/{} {}", s.environment, s.branch, s.state.unwrap()))
        .collect();
    assert_eq!(
        created,
        [
            "blog/a active",
            "blog/b sleeping (cap)",
            "shop/a active",
            "shop/b sleeping (cap)"
        ]
    );
    let c3 = find_in(&p, "shop", "c");
    assert_eq!(
        c3.reason(),
        "not created: over limits.max_stagings (4) of all environments; least recently active"
    );
    // Lowered to 2: the two that exist beyond it sleep, none is deleted.
    let c = two("limits:\n  max_stagings: 2\n");
    let p = run(&c, &l, &applied(&p), now());
    assert!(p.stagings.iter().all(|s| s.action != Action::Delete));
    assert_eq!(
        p.stagings
            .iter()
            .filter(|s| s.state == Some(State::Active))
            .count(),
        2
    );
}

fn find_in<'a>(p: &'a Plan, env: &str, branch: &str) -> &'a Planned {
    p.stagings
        .iter()
        .find(|s| s.environment == env && s.branch == branch)
        .unwrap()
}

#[test]
fn a_cap_is_stable_from_pass_to_pass() {
    // Branches left out are never "first seen": they must not look newer on every pass and
    // push the stagings out in turn.
    let l = listing((1..=5).map(|i| branch(&format!("b{i}"), i)).collect());
    for c in [config("    max_stagings: 3\n"), parsed("version: 1\ndefaults:\n  templates: t\nlimits:\n  max_stagings: 3\nenvironments:\n  shop:\n    repository: /repo\n")] {
        let p = run(&c, &l, &[], now());
        let kept: Vec<&str> = p.stagings.iter().filter(|s| s.exists_after()).map(|s| s.branch.as_str()).collect();
        assert_eq!(kept, ["b1", "b2", "b3"], "the newest commits");
        let mut held = applied(&p);
        for later in 1..=3 {
            let p = run(&c, &l, &held, now() + Duration::seconds(later));
            assert!(p.stagings.iter().all(|s| s.action == Action::Noop), "{:?}", p.stagings.iter().map(|s| (&s.branch, s.action)).collect::<Vec<_>>());
            held = applied(&p);
        }
    }
}

#[test]
fn found_by_attacking_requests_and_warnings() {
    // `wake` on a staging a cap put to sleep wakes it: another sleeps instead.
    let c = config("    max_awake: 1\n");
    let l = listing(vec![branch("a", 0), branch("b", 1)]);
    let mut held = applied(&run(&c, &l, &[], now()));
    assert_eq!(
        held.iter().find(|s| s.branch == "b").unwrap().state,
        State::Sleeping(SleepCause::Cap)
    );
    let wake = Requests {
        wake: Some(Wake {
            at: now(),
            until: Some(now() + Duration::hours(1)),
        }),
        ..Requests::default()
    };
    with_requests(&mut held, "b", wake);
    let p = run(&c, &l, &held, now());
    assert_eq!(
        (find(&p, "b").action, find(&p, "a").action),
        (Action::Wake, Action::Sleep)
    );
    // When the cap no longer holds it, it wakes "for room", not "for its schedule".
    let c2 = config("    max_awake: 2\n");
    let held = applied(&run(&c, &l, &applied(&run(&c, &l, &[], now())), now()));
    let p = run(&c2, &l, &held, now());
    assert_eq!(find(&p, "b").reason(), "room under max_awake");

    // An extension asked "in the future" (written by hand) is not believed: it would roll
    // forward with every pass.
    let c = config("    max_extension: 3d\n");
    let l = listing(vec![branch("x", 0)]);
    let mut held = applied(&run(&c, &l, &[], now()));
    let far: DateTime<Utc> = "9999-01-01T00:00:00Z".parse().unwrap();
    with_requests(
        &mut held,
        "x",
        Requests {
            keep_until: Some(Extension {
                at: far,
                until: far,
            }),
            ..Requests::default()
        },
    );
    let p = run(&c, &l, &held, now());
    assert_eq!(
        find(&p, "x").expires_at,
        Some(now() + Duration::days(7)),
        "the ttl, later than 3 days"
    );
    let c = config("    ttl: 1d\n    max_extension: 3d\n");
    let p = run(&c, &l, &held, now());
    assert_eq!(find(&p, "x").expires_at, Some(now() + Duration::days(1)));
    let p = run(&c, &l, &held, now() + Duration::days(30));
    assert_ne!(
        find(&p, "x").action,
        Action::Noop,
        "expired, not kept rolling"
    );

    // The expiring warning goes only to expired stagings, not to new ones whose ttl and
    // retention fit in its lead.
    let c = config("    ttl: 2m\n    retention: 2m\n    notify:\n      command: [\"true\"]\n");
    let p = run(&c, &l, &[], now());
    assert!(!find(&p, "x").warn_now);
    let p = run(&c, &l, &applied(&p), now() + Duration::minutes(3));
    assert_eq!(
        (find(&p, "x").action, find(&p, "x").warn_now),
        (Action::Expire, true)
    );
    let p = run(&c, &l, &applied(&p), now() + Duration::minutes(4));
    assert!(!find(&p, "x").warn_now, "once per deletion time");
}

#[test]
fn sleep_never_turns_off_an_inherited_schedule() {
    let c = parsed("version: 1\ndefaults:\n  templates: t\n  sleep: {at: \"0 20 * * *\", wake: \"0 7 * * *\"}\nenvironments:\n  shop:\n    repository: /repo\n    overrides:\n      main: {sleep: never}\n");
    let l = listing(vec![branch("main", 0), branch("b", 0)]);
    let p = run(&c, &l, &[], "2026-11-26T22:00:00Z".parse().unwrap());
    assert_eq!(find(&p, "main").state, Some(State::Active));
    assert_eq!(
        find(&p, "b").state,
        Some(State::Sleeping(SleepCause::Schedule))
    );
}

#[test]
fn a_wake_at_every_sleep_time_is_refused() {
    for (at, wake) in [
        ("0 20 * * *", "00 20 * * *"),
        ("0 20 * * 5", "0 20 * * *"),
        ("0 20 * * *", "0 20,21 * * *"),
    ] {
        let text = format!("version: 1\ndefaults:\n  templates: t\n  sleep: {{at: \"{at}\", wake: \"{wake}\"}}\nenvironments:\n  shop:\n    repository: /repo\n");
        let r = parse(
            &text,
            "environments.yaml",
            Path::new("/cfg"),
            &templates(),
            &LoadOptions::default(),
        );
        let e = r.err().unwrap_or_else(|| panic!("{at} / {wake} accepted"));
        assert!(format!("{e:?}").contains("never sleep"), "{e:?}");
    }
}
