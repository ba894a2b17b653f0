//! `Staging:` trailers in real commits, through the real binary and a dir target.

use crate::util::*;

#[test]
fn trailers_skip_keep_and_sleep_steer_branches_from_their_head_commits() {
    let d = DirRun::new(&days_ago(1));
    d.config(
        "    max_extension: 30d\n",
        "safety:\n  max_deletions_per_pass: 1\n",
    );
    d.repo.commit("feature/a", "Work on a", &days_ago(1));
    d.repo.commit("feature/b", "Work on b", &days_ago(1));
    d.repo.commit("feature/old", "Old work", &days_ago(1));
    d.run_ok(&["run", "--once"]);
    assert_eq!(d.stagings(), 4);

    // `keep 14d` on a branch whose ttl is 7d: status shows the extended expiry.
    d.repo.commit(
        "feature/old",
        "Demo next week\n\nStaging: keep 14d\n",
        &days_ago(1),
    );
    // `skip` on two branches: the deletion guard lets one go per pass.
    d.repo
        .commit("feature/a", "Not needed\n\nStaging: skip\n", &days_ago(1));
    d.repo.commit(
        "feature/b",
        "Not needed either\n\nSigned-off-by: Dev <d@example.com>\nstaging: skip\n",
        &days_ago(1),
    );
    let plan = d.run_ok(&["plan"]);
    assert!(plan.contains("head commit says `Staging: skip`"), "{plan}");
    d.run_ok(&["run", "--once"]);
    assert_eq!(d.stagings(), 3, "one deletion per pass");
    d.run_ok(&["run", "--once"]);
    assert_eq!(d.stagings(), 2);

    let target = format!("dir:{}", d.out.display());
    let status_of =
        |format: &str| octostage_ok(&["status", "--format", format, "--target", &target], 0);
    let status = status_of("json");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let old = v["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["branch"] == "feature/old")
        .unwrap_or_else(|| panic!("{status}"))
        .clone();
    let expires: chrono::DateTime<chrono::Utc> =
        old["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (13.5..=14.1).contains(&days),
        "expires in {days} days: {old}"
    );
    let text = status_of("text");
    assert!(text.contains("feature/old"), "{text}");

    // `sleep`: the staging is kept, asleep, with the trailer as the reason.
    d.repo
        .commit("feature/old", "Pause it\n\nStaging: sleep\n", &days_ago(0));
    let plan = d.run_ok(&["plan"]);
    assert!(
        plan.contains("Staging: sleep") || plan.contains("trailer"),
        "{plan}"
    );
    d.run_ok(&["run", "--once"]);
    let status = status_of("json");
    assert!(status.contains("sleeping:trailer"), "{status}");
}
