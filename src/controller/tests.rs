//! The controller's own tests (its parts have theirs).
use super::*;

/// A controller over a config directory and a dir target under `dir`, an hour between passes.
fn controller(dir: &std::path::Path) -> Controller {
    Controller::new(
        ConfigSource::Dir(dir.to_path_buf()),
        RepoCache::new(dir.join("cache")),
        Arc::new(crate::targets::dir::DirTarget::new(dir.join("out"))),
        PassOptions::default(),
        Duration::from_secs(3600),
        CancellationToken::new(),
    )
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn an_approval_is_kept_when_the_queue_of_requests_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path());
    let h = c.handle();
    for _ in 0..20 {
        h.request(Trigger::Manual);
    }
    h.approve("abc".into());
    // The queue held no room for it, yet the next pass carries it out.
    assert!(c.approve.lock().unwrap().is_some());
    let _ = c.pass(Trigger::Manual).await;
    assert!(c.approve.lock().unwrap().is_none());
}

#[test]
fn the_next_pass_comes_at_the_interval_or_the_next_deadline_whichever_is_first() {
    let now = t("2026-11-26T12:00:00Z");
    let hour = Duration::from_secs(3600);
    assert_eq!(wake(now, hour, None), (hour, Trigger::Interval));
    assert_eq!(
        wake(now, hour, Some(t("2026-11-26T12:10:00Z"))),
        (Duration::from_secs(601), Trigger::Deadline)
    );
    assert_eq!(
        wake(now, hour, Some(t("2026-11-26T14:00:00Z"))),
        (hour, Trigger::Interval)
    );
    // A deadline that has passed is not waited for; one due now waits the minimum.
    assert_eq!(
        wake(now, hour, Some(t("2026-11-26T11:00:00Z"))),
        (hour, Trigger::Interval)
    );
    assert_eq!(
        wake(now, hour, Some(now)),
        (Duration::from_secs(1), Trigger::Deadline)
    );
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_arrives_behind_a_change_in_the_cluster_still_has_the_sources_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path());
    let h = c.handle();
    let webhook = Trigger::Webhook {
        repository: "https://git.example/shop".into(),
    };
    h.request(webhook.clone());
    // A pass for the cluster's change alone would plan from the last sources: the push
    // would wait for the interval.
    let started = tokio::time::Instant::now();
    assert_eq!(c.coalesce(Trigger::Target).await, webhook);
    // Nor is it held while a burst of changes in the cluster settles.
    assert!(started.elapsed() < TARGET_SETTLE, "{:?}", started.elapsed());
    h.request(Trigger::Target);
    h.request(Trigger::Approve);
    h.request(Trigger::Interval);
    assert_eq!(c.coalesce(Trigger::Manual).await, Trigger::Approve);
}
