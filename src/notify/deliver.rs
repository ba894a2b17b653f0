//! Delivering notifications, away from the pass: a queue drained by one task; each receiver
//! gets a staging's events in order, receivers in parallel, a few at once, each attempt bounded
//! in time. A slow or dead receiver costs its own deliveries, never a pass or another receiver.
//! At most once wins over delivery: an attempt is tried again (with backoff) only when the
//! receiver certainly did not take the event (no connection, 408, 429, 502, 503, 504); a
//! timeout after sending, another status or a failing command is not. What goes out never
//! carries a secret: URLs from `url_env` and HMAC keys are read when sending and never written
//! anywhere; a failed delivery names the receiver's host, or the variable holding its URL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::undelivered::{Fail, Undelivered};
use super::Notice;
use crate::config::{CommitStatus, Provider, UrlSource, Webhook};

/// Passes' notices waiting at most; beyond, new ones are dropped (and said).
const QUEUE: usize = 1024;
/// Deliveries in flight at once to one receiver.
const PER_RECEIVER: usize = 4;
/// Attempts per delivery, and the wait before the second (doubling).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// One attempt, the whole request or command included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries not yet done, by (receiver as shown, staging): what `run --once` names when it
/// stops waiting.
type Pending = Arc<std::sync::Mutex<std::collections::BTreeMap<(String, String), usize>>>;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Vec<Notice>>,
    tracker: TaskTracker,
    pending: Pending,
}

impl Notifier {
    /// Start the delivery task on the current runtime.
    pub fn start() -> Notifier {
        let (tx, mut rx) = mpsc::channel::<Vec<Notice>>(QUEUE);
        let tracker = TaskTracker::new();
        let t = tracker.clone();
        let pending = Pending::default();
        let p = pending.clone();
        tracker.spawn(async move {
            // Made on first use: loading the system's root certificates costs memory a run
            // without webhooks should not pay.
            let client: Arc<std::sync::OnceLock<reqwest::Client>> = Arc::default();
            // One lane per receiver and staging: a task that delivers that staging's events to
            // that receiver one after the other, across passes, so a receiver sees them in the
            // order they happened (a retried event holds back the later ones). Lanes of one
            // receiver share its few slots; receivers share nothing, so a hanging one holds up
            // only itself.
            let mut lanes: HashMap<(Sink, String), mpsc::UnboundedSender<Notice>> = HashMap::new();
            let mut slots: HashMap<Sink, Arc<Semaphore>> = HashMap::new();
            while let Some(batch) = rx.recv().await {
                for n in batch {
                    let sinks = n.to.webhooks.iter().cloned().map(Sink::Hook);
                    let status = n.to.commit_status.clone().map(Sink::Status);
                    for sink in sinks
                        .chain(n.to.command.clone().map(Sink::Command))
                        .chain(status)
                    {
                        let key = (sink.clone(), n.payload.staging.clone());
                        let lane = lanes.entry(key.clone()).or_insert_with(|| {
                            let slots = slots
                                .entry(sink.clone())
                                .or_insert_with(|| Arc::new(Semaphore::new(PER_RECEIVER)))
                                .clone();
                            lane(&t, sink, slots, client.clone(), p.clone())
                        });
                        *p.lock()
                            .expect("not poisoned")
                            .entry((key.0.shown(), key.1.clone()))
                            .or_default() += 1;
                        let _ = lane.send(n.clone());
                        if n.payload.event == crate::config::EventKind::Deleted {
                            // Its last event: the lane ends once it is delivered.
                            lanes.remove(&key);
                        }
                    }
                }
            }
        });
        Notifier {
            tx,
            tracker,
            pending,
        }
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
    pub async fn finish(self, limit: Duration) -> Vec<(String, String)> {
        let Notifier {
            tx,
            tracker,
            pending,
        } = self;
        drop(tx);
        tracker.close();
        if tokio::time::timeout(limit, tracker.wait()).await.is_ok() {
            return Vec::new();
        }
        let left: Vec<(String, String)> = pending
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, _)| k.clone())
            .collect();
        for (receiver, staging) in &left {
            warn!(%receiver, %staging, "notification still being delivered after {limit:?} was abandoned");
        }
        left
    }
}

/// A lane: `sink`'s deliveries for one staging, in order, each holding one of its `slots`.
fn lane(
    tracker: &TaskTracker,
    sink: Sink,
    slots: Arc<Semaphore>,
    client: Arc<std::sync::OnceLock<reqwest::Client>>,
    pending: Pending,
) -> mpsc::UnboundedSender<Notice> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
    tracker.spawn(async move {
        while let Some(n) = rx.recv().await {
            let _slot = slots.acquire().await.expect("never closed");
            // Made on first use: a command-only receiver never loads the root certificates.
            let http = || {
                client.get_or_init(|| {
                    reqwest::Client::builder()
                        .timeout(ATTEMPT_TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .expect("a client without custom TLS builds")
                })
            };
            let staging = n.payload.staging.as_str();
            match &sink {
                Sink::Hook(hook) => retried(staging, || post(http(), hook, &n)).await,
                Sink::Command(cmd) => retried(staging, || run(cmd, &n)).await,
                Sink::Status(c) => retried(staging, || set_status(http(), c, &n)).await,
            }
            let key = (sink.shown(), n.payload.staging.clone());
            let mut p = pending.lock().expect("not poisoned");
            if let Some(count) = p.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    p.remove(&key);
                }
            }
        }
    });
    tx
}

/// Where a notice goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sink {
    Hook(Webhook),
    Command(Vec<String>),
    Status(CommitStatus),
}

impl Sink {
    /// The receiver as messages may show it (no path, no secret).
    fn shown(&self) -> String {
        match self {
            Sink::Hook(h) => match &h.url {
                UrlSource::Literal(u) => format!("webhook {}", host_of(u)),
                UrlSource::Env(name) => format!("the webhook in {name}"),
            },
            Sink::Command(c) => format!(
                "notify command `{}`",
                c.first().map(String::as_str).unwrap_or("")
            ),
            Sink::Status(c) => format!(
                "commit statuses at {} ({})",
                host_of(&c.api_url),
                c.provider.name()
            ),
        }
    }
}

/// Run `attempt` until it succeeds or fails for good, at most [`ATTEMPTS`] times with doubling
/// waits. Only a failure that proves the receiver did not take the event is tried again.
async fn retried<F, Fut>(staging: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Fail>>,
{
    let mut wait = FIRST_RETRY;
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Ok(()) => return,
            Err(Fail::Final(e)) => {
                warn!(%staging, "notification not delivered, and not sent again: {e}");
                crate::metrics::get().notification_failures.inc();
                return;
            }
            Err(Fail::Retry(e)) => {
                warn!(%staging, attempt = n, "notification not delivered: {e}")
            }
        }
        if n < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    warn!(%staging, "notification given up after {ATTEMPTS} attempts");
    crate::metrics::get().notification_failures.inc();
}

/// `scheme://host` of a URL: all a message may show of it (a path may hold a secret).
fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

async fn post(client: &reqwest::Client, hook: &Webhook, n: &Notice) -> Result<(), Fail> {
    // A URL from the environment may itself be the secret: messages name the variable only.
    let (url, shown) = match &hook.url {
        UrlSource::Literal(u) => (u.clone(), host_of(u)),
        UrlSource::Env(name) => {
            let url =
                std::env::var(name).map_err(|_| Fail::Final(Undelivered::Unset(name.clone())))?;
            if crate::config::validate::check_webhook_url(url.trim()).is_err() || url.trim() != url
            {
                return Err(Fail::Final(Undelivered::BadUrl(name.clone())));
            }
            (url, format!("the webhook in {name}"))
        }
    };
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
        let key = std::env::var(name).map_err(|_| Fail::Final(Undelivered::Unset(name.clone())))?;
        let sig = crate::signing::hmac_sha256(key.as_bytes(), &[&body]);
        req = req.header("x-octostage-signature-256", format!("sha256={sig}"));
    }
    match req.body(body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let why = Undelivered::Answered {
                to: shown,
                status: r.status(),
                what: "",
            };
            match r.status().as_u16() {
                408 | 429 | 502 | 503 | 504 => Err(Fail::Retry(why)),
                _ => Err(Fail::Final(why)),
            }
        }
        Err(e) if e.is_connect() => Err(Fail::Retry(Undelivered::Unreachable(shown))),
        Err(e) if e.is_timeout() => Err(Fail::Final(Undelivered::Late {
            to: shown,
            limit: ATTEMPT_TIMEOUT,
        })),
        Err(e) => Err(Fail::Final(Undelivered::Request {
            to: shown,
            source: e.without_url(),
        })),
    }
}

/// Set the commit status a notice asks for, if it asks for one.
async fn set_status(client: &reqwest::Client, c: &CommitStatus, n: &Notice) -> Result<(), Fail> {
    let Some(repository) = n.repository.as_deref() else {
        return Err(Fail::Final(Undelivered::NoRepository(
            n.payload.environment.clone(),
        )));
    };
    let Some(req) = super::status::request(c, repository, &n.payload) else {
        return Ok(());
    };
    let shown = format!("{} ({})", host_of(&c.api_url), c.provider.name());
    let token = c.token.read().map_err(|e| Fail::Final(e.into()))?;
    let mut r = client
        .post(&req.url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("octostage/", env!("CARGO_PKG_VERSION")),
        );
    r = match c.provider {
        Provider::Github => r
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28"),
        Provider::Gitlab => r.header("private-token", token),
        Provider::Gitea => r.header("authorization", format!("token {token}")),
    };
    match r.body(req.body.to_string()).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let why = Undelivered::Answered {
                to: shown,
                status: r.status(),
                what: " to a commit status",
            };
            match r.status().as_u16() {
                408 | 429 | 500 | 502 | 503 | 504 => Err(Fail::Retry(why)),
                _ => Err(Fail::Final(why)),
            }
        }
        Err(e) if e.is_connect() => Err(Fail::Retry(Undelivered::Unreachable(shown))),
        // Setting the same status twice is harmless: a timeout is tried again too.
        Err(e) if e.is_timeout() => Err(Fail::Retry(Undelivered::LateStatus(shown))),
        Err(e) => Err(Fail::Final(Undelivered::Request {
            to: shown,
            source: e.without_url(),
        })),
    }
}

/// Most of a failing command's stderr shown.
const STDERR_TAIL: usize = 2048;

/// Run the notification command in a process group of its own, with the payload on stdin and
/// the bare environment render commands get. When it exits, or after [`ATTEMPT_TIMEOUT`], the
/// whole group is stopped: nothing it started outlives the delivery.
async fn run(cmd: &[String], n: &Notice) -> Result<(), Fail> {
    use tokio::io::AsyncReadExt;
    let (prog, args) = cmd
        .split_first()
        .ok_or(Fail::Final(Undelivered::EmptyCommand))?;
    let mut c = tokio::process::Command::new(prog);
    c.args(args)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for k in crate::consts::RENDER_ENV_DEFAULT {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.env("OCTOSTAGE_EVENT", n.payload.event.name());
    let failed = |source| {
        Fail::Final(Undelivered::Command {
            program: prog.clone(),
            source,
        })
    };
    let mut child = c.spawn().map_err(failed)?;
    let group = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(nix::unistd::Pid::from_raw);
    let stop = || {
        if let Some(g) = group {
            let _ = nix::sys::signal::killpg(g, nix::sys::signal::Signal::SIGKILL);
        }
    };
    let mut stderr = child.stderr.take().expect("piped");
    let tail = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        let from = buf.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&buf[from..]).trim().to_string()
    });
    let body = serde_json::to_vec(&n.payload).expect("payloads serialize");
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is its own business.
            let _ = stdin.write_all(&body).await;
        }
        child.wait().await
    };
    let status = tokio::time::timeout(ATTEMPT_TIMEOUT, work).await;
    stop();
    let said = tokio::time::timeout(std::time::Duration::from_secs(1), tail)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    match status {
        Err(_) => Err(Fail::Final(Undelivered::CommandLate {
            program: prog.clone(),
            limit: ATTEMPT_TIMEOUT,
        })),
        Ok(Err(e)) => Err(failed(e)),
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(Fail::Final(Undelivered::CommandFailed {
            program: prog.clone(),
            status: s,
            said: crate::redact::text(&said).into_owned(),
        })),
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
