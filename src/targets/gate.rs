//! Whether this process may write now: the lease it holds, on its own monotonic clock.
//!
//! The election opens the gate each time it renews the lease, until the renew deadline
//! counted from the moment the renewal was *sent* (others count the lease's duration from when
//! they see it, which is later). Every write request checks the gate right before it is sent,
//! so a process that was paused (SIGSTOP, a frozen VM, a long GC-like stall) and wakes up
//! after its lease lapsed sends nothing: no apply, patch, delete or Event, whatever its
//! in-flight work believed when it started. `Instant` counts while the process is stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Open for good: a process that does not take part in an election (`--once`, a single
/// replica without Leases, the dir target).
const ALWAYS: u64 = u64::MAX;

/// A write refused because the lease may have lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not sent: this replica's lease lapsed (it may have been paused); another replica may lead now, so it writes nothing until it holds the lease again")]
pub struct Lapsed;

struct Inner {
    base: Instant,
    /// Nanoseconds after `base` until which writes may be sent; 0: closed.
    until: AtomicU64,
    refused: AtomicU64,
    refusals: Notify,
}

/// Whether `e`, or any error that caused it, is [`Lapsed`] (a transport carries it inside an
/// `io::Error`).
pub fn is_lapsed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        let inside_io = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|i| i.is::<Lapsed>());
        if e.is::<Lapsed>() || inside_io {
            return true;
        }
        next = e.source();
    }
    false
}

/// Shared by the election (which opens it) and the writers (which check it).
#[derive(Clone)]
pub struct WriteGate(Arc<Inner>);

impl Default for WriteGate {
    fn default() -> WriteGate {
        WriteGate::open()
    }
}

impl std::fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteGate(open: {})", self.check().is_ok())
    }
}

impl WriteGate {
    fn with(until: u64) -> WriteGate {
        WriteGate(Arc::new(Inner {
            base: Instant::now(),
            until: AtomicU64::new(until),
            refused: AtomicU64::new(0),
            refusals: Notify::new(),
        }))
    }

    /// Open for good, until [`WriteGate::close`].
    pub fn open() -> WriteGate {
        WriteGate::with(ALWAYS)
    }

    /// Closed until [`WriteGate::hold`].
    pub fn closed() -> WriteGate {
        WriteGate::with(0)
    }

    /// Writes may be sent until `valid` has passed since `sent` (when the lease write that
    /// makes this true was sent).
    pub fn hold(&self, sent: Instant, valid: Duration) {
        // `sent + valid`, counted from `base`: 0 (closed) when it lies before `base`.
        let until = (sent + valid).saturating_duration_since(self.0.base);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(ALWAYS - 1);
        self.0.until.store(nanos, Ordering::SeqCst);
    }

    /// No write from now on.
    pub fn close(&self) {
        self.0.until.store(0, Ordering::SeqCst);
    }

    /// Whether a write may be sent now.
    pub fn check(&self) -> Result<(), Lapsed> {
        let until = self.0.until.load(Ordering::SeqCst);
        if until == ALWAYS {
            return Ok(());
        }
        let now = u64::try_from(self.0.base.elapsed().as_nanos()).unwrap_or(ALWAYS);
        if now < until {
            Ok(())
        } else {
            Err(Lapsed)
        }
    }

    /// [`WriteGate::check`] for a write about to be sent: a refusal is counted and wakes
    /// whoever waits in [`WriteGate::refused`].
    pub fn admit(&self) -> Result<(), Lapsed> {
        self.check().inspect_err(|_| self.refuse())
    }

    /// Count a write refused (here or where its bytes would have left), and wake whoever
    /// waits in [`WriteGate::refused`].
    pub fn refuse(&self) {
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        crate::metrics::get().writes_refused.inc();
        self.0.refusals.notify_waiters();
    }

    /// Writes refused so far.
    pub fn refusals(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Until a write is refused.
    pub async fn refused(&self) {
        self.0.refusals.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_is_open_only_within_the_deadline_counted_from_the_renewal_sent() {
        assert!(WriteGate::open().check().is_ok());
        let g = WriteGate::closed();
        assert_eq!(g.check(), Err(Lapsed));
        g.hold(Instant::now(), Duration::from_secs(10));
        assert!(g.check().is_ok());
        // A renewal sent eleven seconds ago (the process was paused since) opens nothing.
        g.hold(
            Instant::now() - Duration::from_secs(11),
            Duration::from_secs(10),
        );
        assert_eq!(g.admit(), Err(Lapsed));
        assert_eq!(g.refusals(), 1);
        g.hold(Instant::now(), Duration::from_secs(10));
        g.close();
        assert_eq!(g.check(), Err(Lapsed));
    }
}
