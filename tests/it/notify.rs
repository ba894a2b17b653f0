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
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let count = count.clone();
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
                count.fetch_add(1, Ordering::SeqCst);
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
    (url, n)
}

fn notice(to: Notify) -> Notice {
    Notice {
        payload: Payload {
            event: EventKind::Created,
            staging: "shop-a".into(),
            environment: "shop".into(),
            branch: "a".into(),
            static_name: None,
            commit: None,
            state: None,
            reason: "new branch".into(),
            at: "2026-11-26T12:00:00Z".into(),
            delete_at: None,
            links: Default::default(),
            text: "octostage: shop-a (a) created".into(),
            id: "1".into(),
        },
        to: Arc::new(to),
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
