//! `wait_for` in the planner: what is known of each image is an input; an image not known is
//! asked for by the plan, and the staging is held as the target holds it meanwhile.

use super::*;
use crate::plan::{ImageFact, ImageFacts};

const IMAGE: &str = "registry.example.com/shop/web";

fn waiting() -> Config {
    config(&format!(
        "    wait_for:\n      give_up: 1h\n      image: \"{IMAGE}:{{{{ commit.short_sha }}}}\"\n"
    ))
}

fn with_facts(c: &Config, l: &Listings, observed: &[StagingRecord], facts: &ImageFacts) -> Plan {
    plan(
        c,
        &Inputs {
            listings: l,
            observed: &observed_of(observed),
            now: now(),
            confirm_deletions: false,
            previous: None,
            images: Some(facts),
        },
    )
}

/// A branch whose commit's short sha tells it from others (the planner tests' own are padded).
fn at(name: &str, days_ago: i64, sha: &str) -> Branch {
    let b = branch(name, days_ago);
    Branch {
        commit: Commit {
            sha: format!("{sha:0<40}"),
            ..b.commit
        },
        ..b
    }
}

fn image_of(b: &Branch) -> String {
    format!("{IMAGE}:{}", &b.commit.sha[..7])
}

fn missing(next: DateTime<Utc>) -> ImageFact {
    ImageFact {
        present: false,
        detail: "not in the registry yet".into(),
        next,
        wait: std::time::Duration::from_secs(10),
    }
}

fn present() -> ImageFact {
    ImageFact {
        present: true,
        ..missing(now())
    }
}

#[test]
fn a_new_staging_is_created_only_once_its_image_is_known_to_be_there() {
    let c = waiting();
    let main = branch("main", 0);
    let l = listing(vec![main.clone()]);
    // Nothing known: held, and the plan asks.
    let p = with_facts(&c, &l, &[], &ImageFacts::new());
    let s = find(&p, "main");
    assert_eq!(s.action, Action::Noop);
    assert!(!s.exists_after() && s.context.is_none() && s.history.is_empty());
    assert!(
        matches!(&s.why, Why::NotCreated { cause } if matches!(**cause, Why::WaitingForImage { .. }))
    );
    assert_eq!(p.asks.len(), 1);
    assert_eq!(p.asks[0].image, image_of(&main));
    assert!(!p.asks[0].gave_up);
    // Known missing, asked again later: held, nothing asked now, woken at `next`.
    let next = now() + Duration::seconds(20);
    let facts: ImageFacts = [(image_of(&main), missing(next))].into();
    let p = with_facts(&c, &l, &[], &facts);
    assert!(p.asks.is_empty());
    assert_eq!(p.recheck, Some(next));
    assert_eq!(find(&p, "main").action, Action::Noop);
    // Due again: asked again.
    let facts: ImageFacts = [(image_of(&main), missing(now()))].into();
    assert_eq!(with_facts(&c, &l, &[], &facts).asks.len(), 1);
    // There: created, nothing asked.
    let facts: ImageFacts = [(image_of(&main), present())].into();
    let p = with_facts(&c, &l, &[], &facts);
    assert_eq!(find(&p, "main").action, Action::Create);
    assert!(p.asks.is_empty() && p.recheck.is_none());
    // Rendering a staging to look at it plans as if every image were there.
    assert_eq!(
        find(&run(&c, &l, &[], now()), "main").action,
        Action::Create
    );
}

#[test]
fn a_running_staging_keeps_its_commit_until_the_new_image_is_there() {
    let c = waiting();
    let old = at("main", 3, "aaaaaaa");
    let facts: ImageFacts = [(image_of(&old), present())].into();
    let before = with_facts(&c, &listing(vec![old.clone()]), &[], &facts);
    let running = applied(&before);
    let new = at("main", 0, "bbbbbbb");
    let p = with_facts(&c, &listing(vec![new.clone()]), &running, &facts);
    let s = find(&p, "main");
    assert_eq!(s.action, Action::Noop, "{s:?}");
    assert_eq!(
        s.commit.as_ref().map(|c| c.sha.as_str()),
        Some(old.commit.sha.as_str())
    );
    assert!(
        matches!(&s.why, Why::WaitingForImage { image, gave_up: false, .. } if *image == image_of(&new))
    );
    // No transition is recorded for a move that did not happen.
    assert_eq!(s.history, running[0].history);
    assert_eq!(s.added, 0);
    assert_eq!(p.asks.len(), 1);
}

#[test]
fn past_give_up_what_is_known_stands_and_nothing_is_asked_again() {
    let c = waiting();
    // A commit of two hours ago, `give_up: 1h`.
    let late = Branch {
        commit: Commit {
            time: now() - Duration::hours(2),
            ..branch("main", 0).commit
        },
        ..branch("main", 0)
    };
    let l = listing(vec![late.clone()]);
    // Never asked in this process: asked once, as past giving up.
    let p = with_facts(&c, &l, &[], &ImageFacts::new());
    assert!(p.asks.len() == 1 && p.asks[0].gave_up);
    // Known missing, even long due: never asked again, never rechecked.
    let facts: ImageFacts = [(image_of(&late), missing(now() - Duration::hours(1)))].into();
    let p = with_facts(&c, &l, &[], &facts);
    assert!(p.asks.is_empty() && p.recheck.is_none());
    assert!(
        matches!(&find(&p, "main").why, Why::NotCreated { cause } if matches!(**cause, Why::WaitingForImage { gave_up: true, .. }))
    );
}
