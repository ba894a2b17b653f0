//! Delivering notifications to real receivers on loopback: a receiver that hangs holds up only
//! itself, a failure that may have been received is not sent again, one that surely was not is
//! retried, and a notification command leaves no process behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use octostage::config::{EventKind, Notify, UrlSource, Webhook};
use octostage::notify::deliver::Notifier;
use octostage::notify::{Notice, Payload};

/// A receiver answering `status` (or never, for 0) and counting requests.
fn receiver(status: u16) -> (String, Arc<AtomicUsize>) {
    let (url, n, _) = receiver_with(move |_| status);
    (url, n)
}

/// A receiver answering the `i`-th request with `status(i)` (0: never); counts requests and
/// keeps `staging event` of each, in the order they came.
fn receiver_with(
    status: impl Fn(usize) -> u16 + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let status = Arc::new(status);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = seen.clone();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let (count, status, got) = (count.clone(), status.clone(), got.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                let (mut line, mut len) = (String::new(), 0usize);
                while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let i = count.fetch_add(1, Ordering::SeqCst);
                let status = status(i);
                if status == 200 {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    got.lock().unwrap().push(format!(
                        "{} {}",
                        v["staging"].as_str().unwrap_or("?"),
                        v["event"].as_str().unwrap_or("?")
                    ));
                }
                if status == 0 {
                    std::thread::sleep(Duration::from_secs(3600));
                }
                let _ = r.into_inner().write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            });
        }
    });
    (url, n, seen)
}

fn notice(to: Notify) -> Notice {
    notice_of("shop-a", EventKind::Created, to)
}

fn notice_of(staging: &str, event: EventKind, to: Notify) -> Notice {
    Notice {
        payload: Payload {
            event,
            staging: staging.into(),
            environment: "shop".into(),
            branch: "a".into(),
            static_name: None,
            commit: None,
            state: None,
            reason: "new branch".into(),
            at: "2026-11-26T12:00:00Z".into(),
            delete_at: None,
            wakes_at: None,
            links: Default::default(),
            text: "octostage: shop-a (a) created".into(),
            id: "1".into(),
        },
        to: Arc::new(to),
        repository: None,
    }
}

fn hooks(urls: &[&str], command: Option<Vec<String>>) -> Notify {
    Notify {
        webhooks: urls
            .iter()
            .map(|u| Webhook {
                url: UrlSource::Literal(u.to_string()),
                secret_env: None,
            })
            .collect(),
        command,
        events: EventKind::ALL.to_vec(),
        warn_before: Duration::from_secs(3600),
        commit_status: None,
    }
}

#[tokio::test]
async fn a_hanging_receiver_holds_up_only_itself_and_what_may_have_arrived_is_not_sent_again() {
    let (hang, hung) = receiver(0);
    let (ok, oks) = receiver(200);
    let (broken, broke) = receiver(500);
    let n = Notifier::start();
    n.send(vec![notice(hooks(&[&hang, &ok, &broken], None))]);
    let start = Instant::now();
    while oks.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the second receiver waited for the first"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n.finish(Duration::from_secs(30)).await;
    // The hanging one got it once (no answer within 10 s: it may have arrived), the one that
    // said 500 once: neither is sent again.
    assert_eq!(
        (
            hung.load(Ordering::SeqCst),
            oks.load(Ordering::SeqCst),
            broke.load(Ordering::SeqCst)
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn what_surely_did_not_arrive_is_retried() {
    let (busy, tries) = receiver(503);
    let n = Notifier::start();
    n.send(vec![notice(hooks(&[&busy], None))]);
    n.finish(Duration::from_secs(60)).await;
    assert_eq!(
        tries.load(Ordering::SeqCst),
        5,
        "five attempts with backoff"
    );
}

#[tokio::test]
async fn a_notification_command_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("left");
    // The command starts a child that would outlive it, and exits at once.
    let script = format!(
        "cat > /dev/null; (sleep 300; touch {}) & exit 0",
        marker.display()
    );
    let n = Notifier::start();
    n.send(vec![notice(hooks(
        &[],
        Some(vec!["sh".into(), "-c".into(), script]),
    ))]);
    n.finish(Duration::from_secs(30)).await;
    let out = std::process::Command::new("pgrep")
        .args(["-f", &marker.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn a_receiver_sees_a_stagings_events_in_order_across_passes_and_others_are_not_held_up() {
    // The first request is refused with 503 (retried a second later): the next pass's event
    // for the same staging waits behind it.
    let (flaky, _, order) = receiver_with(|i| if i == 0 { 503 } else { 200 });
    let (hang, _) = receiver(0);
    let (ok, _, fast) = receiver_with(|_| 200);
    let n = Notifier::start();
    let to = || hooks(&[&flaky, &hang, &ok], None);
    n.send(vec![notice_of("shop-a", EventKind::Created, to())]);
    n.send(vec![notice_of("shop-a", EventKind::Sleeping, to())]);
    // Twelve stagings at once: the hanging receiver does not hold up the others.
    n.send(
        (0..12)
            .map(|i| notice_of(&format!("shop-{i}"), EventKind::Created, to()))
            .collect(),
    );
    let start = Instant::now();
    while fast.lock().unwrap().len() < 14 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "held up: {:?}",
            fast.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The hanging receiver's deliveries are abandoned, and named; the flaky one's retry is
    // long done.
    let abandoned = n.finish(Duration::from_secs(5)).await;
    let hang_host = hang.trim_end_matches("/hook");
    assert_eq!(abandoned.len(), 13, "{abandoned:?}");
    assert!(
        abandoned
            .iter()
            .all(|(r, _)| r == &format!("webhook {hang_host}")),
        "{abandoned:?}"
    );
    assert!(abandoned.iter().any(|(_, s)| s == "shop-a"));
    assert!(abandoned.iter().any(|(_, s)| s == "shop-11"));
    let order = order.lock().unwrap().clone();
    let a: Vec<&String> = order.iter().filter(|e| e.starts_with("shop-a ")).collect();
    assert_eq!(a, ["shop-a created", "shop-a sleeping"]);
}
