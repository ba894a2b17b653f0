//! Delivering notifications, away from the pass: a queue drained by one task, each delivery
//! retried with backoff and bounded in time, a few at once. A slow or dead receiver costs its
//! own deliveries, never a pass. What goes out never carries a secret: URLs from `url_env` and
//! HMAC keys are read when sending and never written anywhere; a failed delivery names only
//! the receiver's host.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Notice;
use crate::config::{UrlSource, Webhook};

/// Passes' notices waiting at most; beyond, new ones are dropped (and said).
const QUEUE: usize = 1024;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 8;
/// Attempts per delivery, and the wait before the second (doubling).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// One attempt, the whole request or command included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Vec<Notice>>,
    tracker: TaskTracker,
}

impl Notifier {
    /// Start the delivery task on the current runtime.
    pub fn start() -> Notifier {
        let (tx, mut rx) = mpsc::channel::<Vec<Notice>>(QUEUE);
        let tracker = TaskTracker::new();
        let t = tracker.clone();
        tracker.spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            // Made on first use: loading the system's root certificates costs memory a run
            // without webhooks should not pay.
            let client: Arc<std::sync::OnceLock<reqwest::Client>> = Arc::default();
            while let Some(batch) = rx.recv().await {
                // One staging's events go out in the order they happened; stagings in parallel.
                let mut by_staging: Vec<Vec<Notice>> = Vec::new();
                for n in batch {
                    match by_staging
                        .iter_mut()
                        .find(|g| g[0].payload.staging == n.payload.staging)
                    {
                        Some(g) => g.push(n),
                        None => by_staging.push(vec![n]),
                    }
                }
                for group in by_staging {
                    let permit = slots.clone().acquire_owned().await.expect("never closed");
                    let client = client.clone();
                    t.spawn(async move {
                        for n in &group {
                            deliver(&client, n).await;
                        }
                        drop(permit);
                    });
                }
            }
        });
        Notifier { tx, tracker }
    }

    /// Queue the notices of one pass; never waits.
    pub fn send(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        for n in &notices {
            debug!(staging = %n.payload.staging, event = n.payload.event.name(), "notifying");
        }
        if self.tx.try_send(notices).is_err() {
            warn!("notification queue full ({QUEUE} passes behind); a pass's events were dropped");
        }
    }

    /// Stop taking notices and wait, at most `limit`, for those queued to be delivered (or to
    /// give up): for `run --once`, which exits after its pass.
    pub async fn finish(self, limit: Duration) {
        let Notifier { tx, tracker } = self;
        drop(tx);
        tracker.close();
        if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
            warn!("notifications still being delivered after {limit:?} were abandoned");
        }
    }
}

/// One notice to each of its webhooks and its command, each retried on its own.
async fn deliver(client: &std::sync::OnceLock<reqwest::Client>, n: &Notice) {
    for hook in &n.to.webhooks {
        let client = client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(ATTEMPT_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client without custom TLS builds")
        });
        retried(|| post(client, hook, n)).await;
    }
    if let Some(cmd) = &n.to.command {
        retried(|| run(cmd, n)).await;
    }
}

/// Run `attempt` until it succeeds, at most [`ATTEMPTS`] times with doubling waits.
async fn retried<F, Fut>(mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut wait = FIRST_RETRY;
    for n in 1..=ATTEMPTS {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => warn!(attempt = n, "notification not delivered: {e}"),
            Err(_) => warn!(
                attempt = n,
                "notification not delivered within {ATTEMPT_TIMEOUT:?}"
            ),
        }
        if n < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    warn!("notification given up after {ATTEMPTS} attempts");
}

/// `scheme://host` of a URL: all a message may show of it (a path may hold a secret).
fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

async fn post(client: &reqwest::Client, hook: &Webhook, n: &Notice) -> Result<(), String> {
    let url = match &hook.url {
        UrlSource::Literal(u) => u.clone(),
        UrlSource::Env(name) => env(name)?,
    };
    crate::config::validate::check_webhook_url(&url)?;
    let body = serde_json::to_vec(&n.payload).expect("payloads serialize");
    let mut req = client
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("octostage/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-octostage-event", n.payload.event.name())
        .header("x-octostage-delivery", &n.payload.id);
    if let Some(name) = &hook.secret_env {
        let key = env(name)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
        mac.update(&body);
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        req = req.header("x-octostage-signature-256", format!("sha256={sig}"));
    }
    let host = host_of(&url);
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{host}: {}", e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("{host} answered {}", resp.status()))
    }
}

/// Run the notification command with the payload on stdin and the bare environment render
/// commands get; its output is discarded.
async fn run(cmd: &[String], n: &Notice) -> Result<(), String> {
    let (prog, args) = cmd.split_first().ok_or("empty command")?;
    let mut c = tokio::process::Command::new(prog);
    c.args(args)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for k in crate::consts::RENDER_ENV_DEFAULT {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.env("OCTOSTAGE_EVENT", n.payload.event.name());
    let mut child = c.spawn().map_err(|e| format!("{prog}: {e}"))?;
    let body = serde_json::to_vec(&n.payload).expect("payloads serialize");
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is its own business.
        let _ = stdin.write_all(&body).await;
    }
    let status = child.wait().await.map_err(|e| format!("{prog}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{prog} exited with {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scheme_and_host_of_a_url_are_shown() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            host_of("http://user:pw@127.0.0.1:9/x?token=1"),
            "http://127.0.0.1:9"
        );
    }
}
