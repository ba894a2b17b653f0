//! What asks for passes from outside the process: a changed file of a local config
//! directory, SIGHUP; and SIGTERM or SIGINT, which stop it.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Handle, Trigger};

pub(super) fn watch(dir: PathBuf, handle: Handle) -> Option<notify::RecommendedWatcher> {
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
pub(super) fn manual_on_sighup(
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
