//! How a controller takes part in its instance's election: held for one pass (`run --once`), or
//! followed for the life of a daemon.

use std::time::Duration;

use super::{leader, Controller, Handle, Lead, LeaseHeld, Trigger};

impl Controller {
    /// For one pass (`run --once`): take the lease, waiting at most `limit` for it, and keep it
    /// until [`Lead::release`]. A one-off pass beside a leading daemon would write at the same
    /// time as it; `Err` tells who leads instead. `Ok(None)`: no election to hold.
    pub async fn lead(&mut self, limit: Duration) -> Result<Option<Lead>, LeaseHeld> {
        let Some(e) = self.election.take() else {
            return Ok(None);
        };
        leader::lead(
            self.target.clone(),
            e,
            &self.leadership,
            &self.shutdown,
            limit,
        )
        .await
    }

    /// Start the election, if there is one, and wait for its first word (a lease read and
    /// write), so that a lone replica writes from its first pass. Becoming the leader later asks
    /// for a pass at once: the last leader's work may be due.
    pub(super) async fn start_election(
        &mut self,
        handle: &Handle,
    ) -> Option<tokio::task::JoinHandle<()>> {
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
            let mut led = rx.borrow().leading;
            while rx.changed().await.is_ok() {
                let leading = rx.borrow_and_update().leading;
                if leading && !led {
                    h.request(Trigger::Leader);
                }
                led = leading;
            }
        });
        Some(task)
    }
}
