//! `octostage run`: a pass at start, then on every trigger (interval, local file change), one at
//! a time; triggers that arrive during a pass coalesce into one more pass. SIGTERM and SIGINT,
//! at any moment (the first pass included), let the stagings in flight finish, skip the rest
//! and end the loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::pass::{self, PassOptions, Report};
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

/// How `run` behaves.
pub struct RunOptions {
    /// Time between passes.
    pub interval: Duration,
    /// Options of each pass.
    pub pass: PassOptions,
}

/// What `run` needs.
pub struct Runner {
    /// Config source.
    pub source: ConfigSource,
    /// Branch cache.
    pub cache: RepoCache,
    /// Target.
    pub target: Arc<dyn Target>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Fires on SIGTERM or SIGINT (or when a caller stops the runner).
    pub shutdown: CancellationToken,
}

impl Runner {
    /// One pass, stopped between stagings when shutdown is requested.
    pub async fn pass(&self, opts: &PassOptions) -> Result<Report, pass::PassError> {
        pass::run(
            &self.source,
            &self.cache,
            self.target.as_ref(),
            self.clock.now(),
            opts,
            &self.shutdown,
        )
        .await
    }

    /// Run passes until shutdown.
    pub async fn run(&self, opts: RunOptions) {
        let (tx, mut rx) = mpsc::channel::<&'static str>(1);
        let _watcher = self
            .source
            .local_dir()
            .and_then(|dir| watch(dir.to_path_buf(), tx.clone()));
        loop {
            match self.pass(&opts.pass).await {
                Ok(r) if !r.ok() => warn!(
                    failures = r.failures(),
                    failed_sources = r.plan.failed_sources.len(),
                    "pass finished with failing stagings or sources"
                ),
                Ok(_) => {}
                Err(pass::PassError::Cancelled) => {}
                Err(e) => error!("pass failed, nothing was changed: {e}"),
            }
            if self.shutdown.is_cancelled() {
                info!("shutting down");
                return;
            }
            let trigger = tokio::select! {
                _ = tokio::time::sleep(opts.interval) => "interval",
                Some(t) = rx.recv() => {
                    // Editors write in bursts: wait for quiet, then take everything queued as one.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while rx.try_recv().is_ok() {}
                    t
                }
                _ = self.shutdown.cancelled() => {
                    info!("shutting down");
                    return;
                }
            };
            info!(trigger, "pass requested");
        }
    }
}

fn watch(dir: PathBuf, tx: mpsc::Sender<&'static str>) -> Option<notify::RecommendedWatcher> {
    let warn_once = |e: notify::Error| {
        warn!(
            "cannot watch {}: {e}; relying on the interval",
            dir.display()
        )
    };
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| e.kind.is_create() || e.kind.is_modify() || e.kind.is_remove()) {
            // A full channel already holds a pending request: this one coalesces into it.
            let _ = tx.try_send("file change");
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
