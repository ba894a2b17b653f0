//! `octostage run`: a pass at start, then on every trigger (interval, local file change), one at
//! a time; triggers that arrive during a pass coalesce into one more pass. SIGTERM and SIGINT
//! end the loop once the current pass is done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::Watcher;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::pass::{self, PassOptions, Report};
use crate::source::{ConfigSource, RepoCache};
use crate::target::Target;

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
}

impl Runner {
    /// One pass on a blocking thread (git and render commands block).
    pub async fn pass(self: &Arc<Self>, opts: &PassOptions) -> Result<Report, pass::PassError> {
        let me = self.clone();
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || {
            pass::run(
                &me.source,
                &me.cache,
                me.target.as_ref(),
                me.clock.now(),
                &opts,
            )
        })
        .await
        .expect("pass task panicked")
    }

    /// Run passes until SIGTERM or SIGINT.
    pub async fn run(self: Arc<Self>, opts: RunOptions) {
        let (tx, mut rx) = mpsc::channel::<&'static str>(1);
        let _watcher = self
            .source
            .local_dir()
            .and_then(|dir| watch(dir.to_path_buf(), tx.clone()));
        let mut shutdown = std::pin::pin!(shutdown_signal());
        loop {
            match self.pass(&opts.pass).await {
                Ok(r) if r.failures() > 0 => warn!(
                    failures = r.failures(),
                    "pass finished with failing stagings"
                ),
                Ok(_) => {}
                Err(e) => error!("pass failed, nothing was changed: {e}"),
            }
            let trigger = tokio::select! {
                _ = tokio::time::sleep(opts.interval) => "interval",
                Some(t) = rx.recv() => {
                    // Editors write in bursts: wait for quiet, then take everything queued as one.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while rx.try_recv().is_ok() {}
                    t
                }
                _ = &mut shutdown => {
                    info!("shutting down");
                    return;
                }
            };
            info!(trigger, "pass requested");
        }
    }
}

fn watch(dir: PathBuf, tx: mpsc::Sender<&'static str>) -> Option<notify::RecommendedWatcher> {
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| e.kind.is_create() || e.kind.is_modify() || e.kind.is_remove()) {
            // A full channel already holds a pending request: this one coalesces into it.
            let _ = tx.try_send("file change");
        }
    })
    .map_err(|e| {
        warn!(
            "cannot watch {}: {e}; relying on the interval",
            dir.display()
        )
    })
    .ok()?;
    w.watch(&dir, notify::RecursiveMode::Recursive)
        .map_err(|e| {
            warn!(
                "cannot watch {}: {e}; relying on the interval",
                dir.display()
            )
        })
        .ok()?;
    info!(dir = %dir.display(), "watching the config directory");
    Some(w)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
