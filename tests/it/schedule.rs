//! A sleep schedule in a non-UTC zone, through the real controller with a test clock on a dir
//! target and real git: ten stagings go to sleep and wake at the right instants, the controller
//! is due at each boundary, the cost report gives the figures the schedule implies, and
//! `plan --at` on the real binary shows the next boundary.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use octostage::controller::{Clock, Controller, Trigger};
use octostage::pass::PassOptions;
use octostage::source::{ConfigSource, RepoCache};
use octostage::targets::{dir::DirTarget, Target};

use crate::util::*;

struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Ten branches, each a Deployment requesting half a core and 1 GiB, asleep 20:00 to 07:00
/// Berlin time on weekdays and all weekend.
fn setup() -> DirRun {
    let d = DirRun::new(&days_ago(1));
    for i in 1..=10 {
        d.repo
            .commit(&format!("feature/b{i}"), "work", &days_ago(0));
    }
    d.template("cm.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        - name: web\n          image: web\n          resources: {requests: {cpu: 500m, memory: 1Gi}}\n");
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!("version: 1\nenvironments:\n  app:\n    repository: {}\n    templates: t\n    ttl: never\n    branches: {{include: [\"feature/**\"]}}\n    sleep: {{at: \"0 20 * * Mon-Fri\", wake: \"0 7 * * Mon-Fri\", timezone: Europe/Berlin}}\n", d.repo.path.display()),
    )
    .unwrap();
    d
}

fn replicas(d: &DirRun) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(&d.out).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path().join("deployment-web.yaml")).unwrap();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("replicas:"))
            .unwrap();
        out.push(line.trim().to_string());
    }
    out
}

#[tokio::test]
async fn a_berlin_schedule_sleeps_and_wakes_ten_stagings_on_time_and_the_cost_report_adds_up() {
    let d = setup();
    let clock = Arc::new(TestClock(Mutex::new(t("2026-11-27T07:00:00Z"))));
    let target: Arc<dyn Target> = Arc::new(DirTarget::new(&d.out));
    let cache = d.tmp.path().join("cache");
    let controller = Controller::new(
        ConfigSource::parse(d.cfg.to_str().unwrap(), None, cache.clone()),
        RepoCache::new(cache),
        target.clone(),
        PassOptions {
            load: Default::default(),
            dry_run: false,
            confirm_deletions: false,
            approved: None,
            concurrency: 4,
            progress: Default::default(),
            diff: false,
            images: Default::default(),
        },
        std::time::Duration::from_secs(3600),
        Default::default(),
    )
    .with_clock(clock.clone());
    let at = |s: &str| *clock.0.lock().unwrap() = t(s);

    // Friday 08:00 in Berlin: created awake; the controller is due at 20:00 CET (19:00Z).
    let r = controller.pass(Trigger::Startup).await.unwrap();
    assert_eq!(
        r.plan
            .stagings
            .iter()
            .filter(|s| s.action.to_string() == "create")
            .count(),
        10
    );
    assert_eq!(r.plan.next_deadline(), Some(t("2026-11-27T19:00:00Z")));
    assert!(replicas(&d).iter().all(|r| r == "replicas: 1"));

    // A second before: nothing. At 20:00 CET: all ten asleep until Monday 07:00 CET.
    at("2026-11-27T18:59:59Z");
    let r = controller.pass(Trigger::Deadline).await.unwrap();
    assert!(r
        .plan
        .stagings
        .iter()
        .all(|s| s.action.to_string() == "noop"));
    at("2026-11-27T19:00:00Z");
    let r = controller.pass(Trigger::Deadline).await.unwrap();
    assert!(r
        .plan
        .stagings
        .iter()
        .all(|s| s.action.to_string() == "sleep"));
    assert!(
        replicas(&d).iter().all(|r| r == "replicas: 0"),
        "{:?}",
        replicas(&d)
    );
    assert_eq!(r.plan.next_deadline(), Some(t("2026-11-30T06:00:00Z")));

    // Monday 07:00 CET: awake again.
    at("2026-11-30T06:00:00Z");
    let r = controller.pass(Trigger::Deadline).await.unwrap();
    assert!(r
        .plan
        .stagings
        .iter()
        .all(|s| s.action.to_string() == "wake"));
    assert!(replicas(&d).iter().all(|r| r == "replicas: 1"));

    // 12 h awake, 59 h asleep each, half a core and 1 GiB: 29.5 CPU-h and 59 GiB-h saved.
    let status = target.status().await.unwrap();
    let cost = octostage::cost::report(
        status.stagings.iter().map(|s| &s.staging),
        t("2026-11-30T06:00:00Z"),
    );
    let one = cost.stagings.values().next().unwrap();
    assert_eq!((one.hours_awake, one.hours_asleep), (12.0, 59.0));
    assert_eq!((one.cpu_hours, one.gib_hours), (6.0, 12.0));
    assert_eq!((one.cpu_hours_saved, one.gib_hours_saved), (29.5, 59.0));
    let all = &cost.environments["app"];
    assert_eq!((all.cpu_cores, all.memory_gib), (5.0, 10.0));
    assert_eq!((all.cpu_hours_saved, all.gib_hours_saved), (295.0, 590.0));
    controller.finish(std::time::Duration::from_secs(1)).await;

    // The real binary: what the coming Friday night does, before it comes.
    let plan_at = |when: &str| -> serde_json::Value {
        serde_json::from_str(&d.run_ok(&["plan", "--format", "json", "--at", when])).unwrap()
    };
    let p = plan_at("2026-12-04T20:00:00+01:00");
    let actions: Vec<&str> = p["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["sleep"; 10]);
    assert!(p["stagings"][0]["reason"]
        .as_str()
        .unwrap()
        .ends_with("until 2026-12-07T06:00:00Z"));
    let p = plan_at("2026-12-04T19:59:59+01:00");
    assert!(p["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["action"] == "noop" && s["next_change"] == "2026-12-04T19:00:00Z"));
}
