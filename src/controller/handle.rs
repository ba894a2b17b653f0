//! What the server and the commands hold of a running controller.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};

use super::{Leadership, State, Trigger};
use crate::targets::Target;

/// What others hold of a running controller: a way to ask for a pass, its state, who writes,
/// and the target (where requests such as `extend` are recorded).
#[derive(Clone)]
pub struct Handle {
    pub(super) tx: mpsc::Sender<Trigger>,
    pub(super) state: Arc<RwLock<State>>,
    pub(super) leadership: watch::Receiver<Leadership>,
    pub(super) target: Arc<dyn Target>,
    pub(super) passes: watch::Receiver<u64>,
    /// An approval is kept here until a pass takes it: a full queue of requests must not
    /// lose it (a pass is coming anyway then).
    pub(super) approve: Arc<std::sync::Mutex<Option<String>>>,
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
