//! The controller: what `octostage run` is. It owns the long-lived state (the last good
//! configuration, the last plan and each staging's recent outcomes), takes typed [`Trigger`]s
//! from anywhere (the interval, a deadline of the plan, a file of a local config directory, a
//! webhook, a manual request, start-up), runs one pass at a time, and coalesces the triggers that
//! arrive during a pass into one more. Others read its state through a [`Handle`] (the HTTP
//! server of a later release).
//!
//! The next pass comes at the earliest of the interval and the next deadline the plan knows
//! (an expiry, the end of a retention), not at the next poll.

pub mod leader;
mod state;
mod trigger;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use leader::{Election, Leadership};
pub use state::{PassSummary, StagingEvent, State, MAX_EVENTS};
pub use trigger::Trigger;

use crate::pass::{self, PassError, PassOptions, Report};
use crate::source::{ConfigSource, RepoCache};
use crate::targets::Target;

/// The time source of passes; tests and the demo move it by hand.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Longest a stopping `run` waits for notifications still being delivered.
pub const NOTIFY_AT_EXIT: Duration = Duration::from_secs(10);

/// When a pass that could not run is tried again, at the latest.
const RETRY_FAILED: chrono::Duration = chrono::Duration::seconds(10);

/// How long the controller lets a burst of file changes settle before it starts a pass.
const SETTLE: Duration = Duration::from_millis(300);

/// What the controller works with.
pub struct Controller {
    source: ConfigSource,
    cache: RepoCache,
    target: Arc<dyn Target>,
    clock: Arc<dyn Clock>,
    opts: PassOptions,
    interval: Duration,
    shutdown: CancellationToken,
    state: Arc<RwLock<State>>,
    tx: mpsc::Sender<Trigger>,
    rx: mpsc::Receiver<Trigger>,
    notifier: crate::notify::deliver::Notifier,
    election: Option<Election>,
    leadership: (watch::Sender<Leadership>, watch::Receiver<Leadership>),
    passes: watch::Sender<u64>,
    approve: Arc<std::sync::Mutex<Option<String>>>,
}

/// What others hold of a running controller: a way to ask for a pass, its state, who writes,
/// and the target (where requests such as `extend` are recorded).
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Trigger>,
    state: Arc<RwLock<State>>,
    leadership: watch::Receiver<Leadership>,
    target: Arc<dyn Target>,
    passes: watch::Receiver<u64>,
    /// An approval is kept here until a pass takes it: a full queue of requests must not
    /// lose it (a pass is coming anyway then).
    approve: Arc<std::sync::Mutex<Option<String>>>,
}

impl Handle {
    /// Ask for a pass. A request made while one is already waiting coalesces into it.
    pub fn request(&self, trigger: Trigger) {
        let _ = self.tx.try_send(trigger);
    }

    /// Approve the deletions held back in the set of digest `held` (as the plan shows it), and
    /// ask for the pass that carries them out if the set is still the same.
    pub fn approve(&self, held: String) {
        *self.approve.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
        self.request(Trigger::Approve);
    }

    /// The controller's state as of now.
    pub fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Who writes, as of now.
    pub fn leadership(&self) -> Leadership {
        self.leadership.borrow().clone()
    }

    /// Told the number of passes whenever one finishes (the dashboard's live updates).
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.clone()
    }

    /// The target the controller converges.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }
}

impl Controller {
    /// A controller over these sources and target; `shutdown` stops it between stagings.
    pub fn new(
        source: ConfigSource,
        cache: RepoCache,
        target: Arc<dyn Target>,
        opts: PassOptions,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Controller {
        // Room for one request of each kind; more of a kind coalesce.
        let (tx, rx) = mpsc::channel(8);
        Controller {
            source,
            cache,
            target,
            clock: Arc::new(SystemClock),
            opts,
            interval,
            shutdown,
            state: Arc::default(),
            tx,
            rx,
            notifier: crate::notify::deliver::Notifier::start(),
            election: None,
            leadership: watch::channel(Leadership::alone()),
            passes: watch::channel(0).0,
            approve: Arc::default(),
        }
    }

    /// The same controller, writing only while it holds the lease of `election` (when the
    /// target keeps leases; otherwise it needs none). Until then it plans without writing.
    pub fn with_election(mut self, election: Election) -> Controller {
        if self.target.leases().is_some() {
            self.leadership.0.send_replace(Leadership {
                leading: false,
                identity: Some(election.identity.clone()),
                leader: None,
                leader_url: None,
            });
            self.election = Some(election);
        }
        self
    }

    /// The same controller with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Controller {
        self.clock = clock;
        self
    }

    /// A handle to ask for passes and read the state.
    pub fn handle(&self) -> Handle {
        Handle {
            tx: self.tx.clone(),
            state: self.state.clone(),
            leadership: self.leadership.1.clone(),
            target: self.target.clone(),
            passes: self.passes.subscribe(),
            approve: self.approve.clone(),
        }
    }

    /// One pass, for `trigger`; its outcome goes into the state. A replica that does not
    /// lead plans without writing, and a pass stops between stagings when leadership is lost.
    pub async fn pass(&self, trigger: Trigger) -> Result<Arc<Report>, PassError> {
        let started = std::time::Instant::now();
        let at = self.clock.now();
        let leading = self.leadership.1.borrow().leading;
        crate::metrics::get().leader.set(leading as i64);
        let opts = PassOptions {
            dry_run: self.opts.dry_run || !leading,
            approved: self
                .approve
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
            ..self.opts.clone()
        };
        let cancel = self.shutdown.child_token();
        let gate = self.target.leases().map(|l| l.gate().clone());
        let lost = leading
            .then(|| stop_when_lost(self.leadership.1.clone(), gate.clone(), cancel.clone()));
        // The pass's log lines name what asked for it (`trigger=manual`).
        let span = tracing::info_span!("trigger", trigger = %trigger);
        let r = tracing::Instrument::instrument(
            pass::run(
                &self.source,
                &self.cache,
                self.target.as_ref(),
                at,
                &opts,
                &cancel,
            ),
            span,
        )
        .await
        .map(Arc::new);
        if let Some(lost) = lost {
            lost.abort();
        }
        // A replica whose lease lapsed during the pass tells no one what it did: the next
        // leader's pass will.
        let still_leading = !gate.as_ref().is_some_and(|g| g.check().is_err());
        if let Ok(r) = &r {
            if !opts.dry_run && still_leading {
                self.notifier.send(crate::notify::events(r));
            }
        }
        count(&r, started.elapsed());
        let notices = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            let notices = state.record(trigger, at, started.elapsed(), &r);
            self.passes.send_replace(state.passes);
            notices
        };
        if !opts.dry_run && !notices.is_empty() {
            let target = self.target.clone();
            tokio::spawn(async move { target.publish(&notices).await });
        }
        r
    }

    /// Wait, at most `limit`, for the notifications of the passes so far to be delivered.
    pub async fn finish(self, limit: Duration) -> Vec<(String, String)> {
        self.notifier.finish(limit).await
    }

    /// Run passes until shutdown: one at start-up, then one per (coalesced) trigger.
    pub async fn run(mut self) {
        let handle = self.handle();
        let _election = self.start_election(&handle).await;
        let _watcher = self
            .source
            .local_dir()
            .and_then(|dir| watch(dir.to_path_buf(), handle.clone()));
        let _manual = manual_on_sighup(handle.clone(), self.shutdown.clone());
        // A process that stays up keeps a live view instead of reading the target every pass.
        self.target.watch();
        let _target = self.target.changes().map(|changed| {
            let (handle, stop) = (handle.clone(), self.shutdown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = changed.notified() => handle.request(Trigger::Target),
                        _ = stop.cancelled() => return,
                    }
                }
            })
        });
        let mut trigger = Trigger::Startup;
        loop {
            let deadline = match self.pass(trigger.clone()).await {
                Ok(r) => {
                    if !r.ok() {
                        warn!(
                            failures = r.failures(),
                            failed_sources = r.plan.failed_sources.len(),
                            "pass finished with failing stagings or sources"
                        );
                    }
                    r.plan.next_deadline()
                }
                Err(PassError::Cancelled) => None,
                Err(e) => {
                    error!("pass failed, nothing was changed: {e}");
                    // Again soon rather than at the next interval (a file descriptor
                    // shortage, an API server restarting).
                    Some(self.clock.now() + RETRY_FAILED)
                }
            };
            if self.shutdown.is_cancelled() {
                info!("shutting down");
                self.stop(_election).await;
                return;
            }
            let (wait, due) = self.next_wake(deadline);
            self.set_next(wait);
            trigger = tokio::select! {
                _ = tokio::time::sleep(wait) => due,
                Some(t) = self.rx.recv() => self.coalesce(t).await,
                _ = self.shutdown.cancelled() => {
                    info!("shutting down");
                    self.stop(_election).await;
                    return;
                }
            };
            tracing::debug!(trigger = %trigger, "pass requested");
        }
    }

    /// Start the election, if there is one, and wait for its first word (a lease read and
    /// write), so that a lone replica writes from its first pass. Becoming the leader later asks
    /// for a pass at once: the last leader's work may be due.
    async fn start_election(&mut self, handle: &Handle) -> Option<tokio::task::JoinHandle<()>> {
        let e = self.election.take()?;
        let task = tokio::spawn(leader::run(
            self.target.clone(),
            e,
            self.leadership.0.clone(),
            self.shutdown.clone(),
        ));
        let mut rx = self.leadership.1.clone();
        // Marked seen first: the value set before the election started is not its word.
        rx.borrow_and_update();
        // A lone replica gets its answer in one round trip; an API server under load may be
        // slow, and a first pass that only plans would be wasted.
        let _ = tokio::time::timeout(crate::consts::LEASE_DURATION, rx.changed()).await;
        rx.borrow_and_update();
        let h = handle.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if rx.borrow_and_update().leading {
                    h.request(Trigger::Leader);
                }
            }
        });
        Some(task)
    }

    /// Deliver what is left to deliver and let the election release the lease.
    async fn stop(self, election: Option<tokio::task::JoinHandle<()>>) {
        self.finish(NOTIFY_AT_EXIT).await;
        if let Some(e) = election {
            let _ = tokio::time::timeout(crate::consts::LEASE_RETRY * 2, e).await;
        }
    }

    fn next_wake(&self, deadline: Option<DateTime<Utc>>) -> (Duration, Trigger) {
        wake(self.clock.now(), self.interval, deadline)
    }

    fn set_next(&self, wait: Duration) {
        let next = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .next_pass_at = Some(next);
    }

    /// Everything requested while the last pass ran, or arriving while a burst of file changes
    /// settles, becomes one pass; it is named after the first request.
    async fn coalesce(&mut self, first: Trigger) -> Trigger {
        if first == Trigger::FileChange {
            tokio::time::sleep(SETTLE).await;
        }
        let mut more = 0;
        let mut trigger = first;
        while let Ok(t) = self.rx.try_recv() {
            more += 1;
            // An approval coalesced into another request must not be lost.
            if t == Trigger::Approve {
                trigger = t;
            }
        }
        if more > 0 {
            info!(trigger = %trigger, coalesced = more, "requests coalesced into one pass");
        }
        trigger
    }
}

/// Cancel `cancel` as soon as this replica stops leading, or the write gate refuses a write
/// (its lease lapsed before the election noticed: the process was paused, say).
fn stop_when_lost(
    mut rx: watch::Receiver<Leadership>,
    gate: Option<crate::targets::WriteGate>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let refused = async {
            match &gate {
                Some(g) => g.refused().await,
                None => std::future::pending().await,
            }
        };
        let lost = async {
            while rx.changed().await.is_ok() {
                if !rx.borrow_and_update().leading {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = lost => warn!("leadership lost during a pass: stopping it between stagings"),
            _ = refused => warn!("the lease lapsed during a pass (was this process paused?): its writes are refused and the pass stops"),
        }
        cancel.cancel();
    })
}

/// A pass into the metrics: its result and duration, stagings by state, held deletions.
fn count(r: &Result<Arc<Report>, PassError>, took: Duration) {
    let m = crate::metrics::get();
    m.pass_duration.observe(took.as_secs_f64());
    let result = match r {
        Ok(r) if r.ok() => "ok",
        Ok(_) => "failures",
        Err(PassError::Cancelled) => "cancelled",
        Err(_) => "error",
    };
    m.passes
        .get_or_create(&crate::metrics::ResultLabel {
            result: result.into(),
        })
        .inc();
    let Ok(r) = r else { return };
    m.stagings.clear();
    for (i, s) in r.plan.stagings.iter().enumerate() {
        let Some(state) = crate::report::lifecycle(s, r.outcome(i)) else {
            continue;
        };
        m.stagings
            .get_or_create(&crate::metrics::StagingLabels {
                environment: s.environment.clone(),
                state: state.to_string(),
            })
            .inc();
    }
    m.held_deletions
        .set(r.plan.stagings.iter().filter(|s| s.held()).count() as i64);
}

/// How long until the next pass, and why then: the interval, or a deadline of the plan when
/// that comes first (a second late, so the pass sees it passed; never sooner than
/// [`crate::consts::MIN_INTERVAL`]).
pub fn wake(
    now: DateTime<Utc>,
    interval: Duration,
    deadline: Option<DateTime<Utc>>,
) -> (Duration, Trigger) {
    let until_deadline = deadline
        .and_then(|d| (d - now).to_std().ok())
        .map(|d| (d + Duration::from_secs(1)).max(crate::consts::MIN_INTERVAL));
    match until_deadline {
        Some(d) if d < interval => (d, Trigger::Deadline),
        _ => (interval, Trigger::Interval),
    }
}

fn watch(dir: PathBuf, handle: Handle) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let warn_once = |e: notify::Error| {
        warn!(
            "cannot watch {}: {e}; relying on the interval",
            dir.display()
        )
    };
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| e.kind.is_create() || e.kind.is_modify() || e.kind.is_remove()) {
            handle.request(Trigger::FileChange);
        }
    })
    .map_err(&warn_once)
    .ok()?;
    w.watch(&dir, notify::RecursiveMode::Recursive)
        .map_err(&warn_once)
        .ok()?;
    info!(dir = %dir.display(), "watching the config directory");
    Some(w)
}

/// SIGHUP asks for a pass at once (`kill -HUP`), as daemons are asked to look again.
fn manual_on_sighup(
    handle: Handle,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).ok()?;
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(()) = hup.recv() => handle.request(Trigger::Manual),
                _ = shutdown.cancelled() => return,
            }
        }
    }))
}

/// A token that fires on the first SIGTERM or SIGINT; the handlers are installed before this
/// returns, so no signal is missed however early it comes.
pub fn shutdown_on_signals() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: finishing the stagings in flight, then stopping"),
            _ = int.recv() => info!("SIGINT: finishing the stagings in flight, then stopping"),
        }
        t.cancel();
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn an_approval_is_kept_when_the_queue_of_requests_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let c = Controller::new(
            ConfigSource::Dir(dir.path().to_path_buf()),
            RepoCache::new(dir.path().join("cache")),
            Arc::new(crate::targets::dir::DirTarget::new(dir.path().join("out"))),
            PassOptions::default(),
            Duration::from_secs(3600),
            CancellationToken::new(),
        );
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
}
