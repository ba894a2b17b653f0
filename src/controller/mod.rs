//! The controller: what `octostage run` is. It owns the long-lived state (the last good
//! configuration, the last plan and each staging's recent outcomes), takes typed [`Trigger`]s
//! from anywhere (the interval, a deadline of the plan, a file of a local config directory, a
//! webhook, a manual request, start-up), runs one pass at a time, and coalesces the triggers that
//! arrive during a pass into one more. Others read its state through a [`Handle`] (the HTTP
//! server of a later release).
//!
//! The next pass comes at the earliest of the interval and the next deadline the plan knows
//! (an expiry, the end of a retention), not at the next poll.

mod electing;
mod handle;
pub mod leader;
mod reach;
mod signals;
mod state;
mod trigger;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use handle::Handle;
use leader::stop_when_lost;
pub use leader::{Election, Lead, Leadership, LeaseHeld};
pub use signals::shutdown_on_signals;
use signals::{manual_on_sighup, watch};
use state::count;
pub use state::{PassSummary, StagingEvent, State, MAX_EVENTS};
pub use trigger::{wake, Trigger};

use crate::pass::{self, PassError, PassOptions, Report, Scope};
use crate::source::{ConfigSource, RepoCache};
use crate::targets::Target;
use reach::{reach, Memo, Ran, Reach};

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

/// How long the controller lets a burst of changes in the cluster settle before a pass.
const TARGET_SETTLE: Duration = Duration::from_millis(200);

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
    resync: Duration,
    memo: std::sync::Mutex<Option<Memo>>,
    /// The Events of passes still being posted: they need the lease, so a replica about to
    /// release it waits for them first (see [`Controller::published`]).
    publishing: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
            resync: crate::consts::DEFAULT_RESYNC,
            memo: std::sync::Mutex::default(),
            publishing: std::sync::Mutex::default(),
        }
    }

    /// The same controller, looking at every staging at least every `resync` (passes between
    /// look at what changed).
    pub fn with_resync(mut self, resync: Duration) -> Controller {
        self.resync = resync;
        self
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
                trouble: None,
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
        let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let dirty = self.target.take_dirty();
        let reach = reach(
            &trigger,
            dirty,
            memo.as_ref(),
            at,
            self.resync,
            opts.dry_run,
        );
        let r =
            tracing::Instrument::instrument(self.run_reach(reach, memo, at, &opts, &cancel), span)
                .await;
        let r = match r {
            Ok(Ran::Unchanged(last)) => {
                if let Some(lost) = lost {
                    lost.abort();
                }
                tracing::debug!("nothing changed since the last pass");
                crate::metrics::get()
                    .passes
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: "unchanged".into(),
                    })
                    .inc();
                return Ok(last);
            }
            Ok(Ran::Ran(r)) => Ok(r),
            Err(e) => {
                *self.memo.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(e)
            }
        };
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
            let task = tokio::spawn(async move { target.publish(&notices).await });
            let mut publishing = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
            publishing.retain(|t| !t.is_finished());
            publishing.push(task);
        }
        r
    }

    /// Run what `reach` asks for; remember what the pass saw for the next one.
    async fn run_reach(
        &self,
        reach: Reach,
        memo: Option<Memo>,
        at: DateTime<Utc>,
        opts: &PassOptions,
        cancel: &CancellationToken,
    ) -> Result<Ran, PassError> {
        let (scope, reread, quiet, settled) = match reach {
            Reach::Unchanged(last) => return Ok(Ran::Unchanged(last)),
            Reach::Pass {
                scope,
                reread,
                quiet,
                settled,
            } => (scope, reread, quiet, settled),
        };
        let previous = memo.as_ref().map(|m| &m.sources);
        let sources = match (reread, previous) {
            (false, Some(p)) => p.clone(),
            _ => pass::read_sources(&self.source, &self.cache, opts, previous, cancel).await?,
        };
        let same = previous.is_some_and(|p| sources.same(p));
        if let (true, true, Scope::Changed { last, .. }) = (settled, same, &scope) {
            return Ok(Ran::Unchanged(last.clone()));
        }
        let observed = Arc::new(pass::observe(self.target.as_ref(), cancel).await?);
        if let (true, true, Scope::Changed { last, .. }, Some(m)) = (quiet, same, &scope, &memo) {
            // What the last plan was made from stays the base: readiness that moved and
            // changed no health is measured against it again next time.
            // `last` is the memo's report (see `reach`).
            if *m.observed == *observed || m.unchanged_by(&observed, at) {
                return Ok(Ran::Unchanged(last.clone()));
            }
        }
        let report = pass::run_observed(
            &sources,
            &observed,
            &self.cache,
            self.target.as_ref(),
            at,
            opts,
            &scope,
            cancel,
        )
        .await
        .map(Arc::new)?;
        let full_at = match (&memo, &scope) {
            (Some(m), Scope::Changed { .. }) => m.full_at,
            _ => at,
        };
        // A pass that did not reach every staging it meant to is no base for the next.
        *self.memo.lock().unwrap_or_else(|p| p.into_inner()) = (report.skipped() == 0)
            .then(|| Memo::new(sources, observed, report.clone(), full_at, opts.dry_run));
        Ok(Ran::Ran(report))
    }

    /// When `r`'s next lifecycle change is due: the memo's, worked out once when the pass
    /// made `r`, unless the memo holds another report.
    fn deadline_of(&self, r: &Arc<Report>) -> Option<DateTime<Utc>> {
        match &*self.memo.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(m) if Arc::ptr_eq(m.report().0, r) => m.report().1,
            _ => r.plan.next_deadline(),
        }
    }

    /// Wait, at most `limit`, for the Events of the passes so far to be posted, before the
    /// lease is released (a replica without it posts none). Whether all were; what is left
    /// after `limit` is given up.
    pub async fn published(&self, limit: Duration) -> bool {
        let tasks = std::mem::take(&mut *self.publishing.lock().unwrap_or_else(|p| p.into_inner()));
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let done = tokio::time::timeout(limit, futures::future::join_all(tasks)).await;
        if done.is_err() {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
            warn!(
                limit = %humantime::format_duration(limit),
                "Events of the last pass not all posted in time; the rest are given up (the staging records keep every transition)"
            );
        }
        done.is_ok()
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
        // Told here, not through the queue of requests: changes in the cluster come in bursts
        // and must never crowd out a webhook or an approval.
        let changed = self.target.changes();
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
                    self.deadline_of(&r)
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
            let target_changed = async {
                match &changed {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            trigger = tokio::select! {
                _ = tokio::time::sleep(wait) => due,
                Some(t) = self.rx.recv() => self.coalesce(t).await,
                _ = target_changed => self.coalesce(Trigger::Target).await,
                _ = self.shutdown.cancelled() => {
                    info!("shutting down");
                    self.stop(_election).await;
                    return;
                }
            };
            tracing::debug!(trigger = %trigger, "pass requested");
        }
    }

    /// Deliver what is left to deliver and let the election release the lease.
    async fn stop(self, election: Option<tokio::task::JoinHandle<()>>) {
        self.target.unwatch();
        self.published(NOTIFY_AT_EXIT).await;
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
    /// settles, becomes one pass; it is named after the request that asks most of it (see
    /// [`Trigger::rank`]).
    async fn coalesce(&mut self, first: Trigger) -> Trigger {
        let mut more = 0;
        let mut trigger = first;
        let settle = match trigger {
            Trigger::FileChange => Some(SETTLE),
            // Pods become ready a few at a time: one pass for the burst.
            Trigger::Target => Some(TARGET_SETTLE),
            _ => None,
        };
        if let Some(d) = settle {
            // A request that asks more (a webhook, an approval) ends the wait: it is never
            // held up behind a burst.
            let until = tokio::time::sleep(d);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    _ = &mut until => break,
                    Some(t) = self.rx.recv() => {
                        more += 1;
                        if t.rank() > trigger.rank() {
                            trigger = t;
                            break;
                        }
                    }
                }
            }
        }
        while let Ok(t) = self.rx.try_recv() {
            more += 1;
            if t.rank() > trigger.rank() {
                trigger = t;
            }
        }
        if more > 0 {
            info!(trigger = %trigger, coalesced = more, "requests coalesced into one pass");
        }
        trigger
    }
}

#[cfg(test)]
mod tests;
