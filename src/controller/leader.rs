//! Leader election over a lease the target keeps (client-go's algorithm): replicas of `run`
//! take turns writing; the others plan without writing and serve what they see.
//!
//! A lease is taken when it is free, released, or has not changed for its whole duration as
//! this process saw it (its own clock only: another's clock may be wrong). Its holder renews it
//! every [`LEASE_RETRY`]; a holder that could not renew for [`LEASE_RENEW_DEADLINE`] stops
//! writing, which comes before anyone else may take over at [`LEASE_DURATION`]. A stopping
//! holder releases it, so that another takes over at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::consts::{LEASE_DURATION, LEASE_RENEW_DEADLINE, LEASE_RETRY};
use crate::targets::{LeaseRecord, Target};

/// Who may write, as this process knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leadership {
    /// Whether this process may write.
    pub leading: bool,
    /// This process's identity in the election, or null when there is none.
    pub identity: Option<String>,
    /// The holder of the lease, as last read.
    pub leader: Option<String>,
    /// Where the holder takes actions, when it said so.
    #[serde(skip)]
    pub leader_url: Option<String>,
    /// Why the lease could not be read or written in the last round, if it could not.
    #[serde(skip)]
    pub trouble: Option<String>,
}

impl Leadership {
    /// A process that needs no election: it always writes.
    pub fn alone() -> Leadership {
        Leadership {
            leading: true,
            identity: None,
            leader: None,
            leader_url: None,
            trouble: None,
        }
    }
}

/// What to do with the lease as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It is ours: renew it.
    Renew,
    /// It is free, released or abandoned: take it.
    Take,
    /// Someone else holds it.
    Follow,
    /// It is not octostage's for this instance: never written.
    Foreign,
}

/// Decide, from the lease as read and how long it has stayed as it is in our own sight.
pub fn decide(me: &str, lease: Option<&LeaseRecord>, unchanged_for: Duration) -> Step {
    let Some(l) = lease else { return Step::Take };
    if !l.ours {
        return Step::Foreign;
    }
    match l.holder.as_deref() {
        Some(h) if h == me => Step::Renew,
        None => Step::Take,
        // Never longer than octostage's own duration: a lease written with an hour (by
        // whoever may write Leases there) must not freeze the replicas for an hour.
        Some(_) if unchanged_for >= l.duration.clamp(Duration::from_secs(1), LEASE_DURATION) => {
            Step::Take
        }
        Some(_) => Step::Follow,
    }
}

/// An election to run.
pub struct Election {
    /// The lease's name.
    pub lease: String,
    /// This process's identity: its name, and a mark of this very process.
    pub identity: String,
    /// Where this process takes actions, written on the lease while it leads.
    pub url: Option<String>,
}

impl Election {
    /// An election for lease `lease` as `name` (a pod's name). The identity adds a mark of
    /// this process (client-go adds a UUID): two processes given one name (a copied flag, a
    /// restarted container) must not both believe they hold the lease.
    pub fn new(lease: String, name: &str, url: Option<String>) -> Election {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mark = crate::naming::short_hash(&format!("{nanos} {}", std::process::id()), 8);
        Election {
            lease,
            identity: format!("{name}_{mark}"),
            url,
        }
    }
}

/// Run the election until `stop`, telling `tx` of every change; releases the lease at the end.
pub async fn run(
    target: Arc<dyn Target>,
    e: Election,
    tx: watch::Sender<Leadership>,
    stop: CancellationToken,
) {
    let Some(leases) = target.leases() else {
        tx.send_replace(Leadership::alone());
        return;
    };
    // Nothing is written until the lease is ours.
    leases.gate().close();
    let mut round = Round {
        seen: None,
        renewed: None,
        told: None,
        status: Leadership {
            leading: false,
            identity: Some(e.identity.clone()),
            leader: None,
            leader_url: None,
            trouble: None,
        },
    };
    loop {
        round.once(leases, &e).await;
        let status = round.status.clone();
        tx.send_if_modified(|old| {
            if *old == status {
                return false;
            }
            match (old.leading, status.leading) {
                (false, true) => info!(lease = %leases.describe_lease(&e.lease), "leading: this replica writes"),
                (true, false) => warn!(lease = %leases.describe_lease(&e.lease), "no longer leading: this replica stops writing"),
                _ if old.leader != status.leader => info!(leader = ?status.leader, "following"),
                _ => {}
            }
            crate::metrics::get().leader.set(status.leading as i64);
            *old = status;
            true
        });
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RETRY) => {}
            _ = stop.cancelled() => break,
        }
    }
    if round.status.leading {
        release(leases, &e).await;
    }
}

/// The lease, held for one pass.
pub struct Lead {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Lead {
    /// Stop renewing and give the lease up, so that a daemon takes over at once.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(crate::consts::LEASE_RETRY * 2, self.task).await;
    }
}

/// Why a one-off pass could not take the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseHeld {
    /// Another replica of this instance held it all the time the pass waited.
    #[error("{lease} is held by {}: a one-off pass would write beside a running octostage of this instance. Ask it for a pass instead (POST /api/v1/pass, or SIGHUP), stop it, or pass --instance for another instance", holder.as_deref().unwrap_or("another replica"))]
    Held {
        /// The lease, as the target describes it.
        lease: String,
        /// Who holds it, as last read.
        holder: Option<String>,
    },
    /// Told to stop while waiting for the lease.
    #[error("stopped while waiting for {lease}; nothing was written")]
    Stopped {
        /// The lease, as the target describes it.
        lease: String,
    },
    /// The lease could not be read or written (RBAC, the API server).
    #[error("{why}: a one-off pass writes only holding the lease; grant get, create and update on leases in its namespace, or pass --no-leader-election where no replica runs")]
    Trouble {
        /// What went wrong, naming the lease.
        why: String,
    },
}

/// Take the lease for one pass, waiting at most `limit`; see [`super::Controller::lead`].
pub(super) async fn lead(
    target: Arc<dyn Target>,
    e: Election,
    leadership: &(watch::Sender<Leadership>, watch::Receiver<Leadership>),
    parent: &CancellationToken,
    limit: Duration,
) -> Result<Option<Lead>, LeaseHeld> {
    let Some(lease) = target.leases().map(|l| l.describe_lease(&e.lease)) else {
        return Ok(None);
    };
    let stop = parent.child_token();
    let task = tokio::spawn(run(target, e, leadership.0.clone(), stop.clone()));
    let mut rx = leadership.1.clone();
    let wait = tokio::time::timeout(limit, rx.wait_for(|l| l.leading || l.trouble.is_some()));
    // A signal ends the wait at once; the election stops with it (its token is a child).
    let stopped = tokio::select! {
        _ = wait => false,
        _ = parent.cancelled() => true,
    };
    let now = rx.borrow().clone();
    if now.leading && !stopped {
        return Ok(Some(Lead { stop, task }));
    }
    Lead { stop, task }.release().await;
    if stopped {
        return Err(LeaseHeld::Stopped { lease });
    }
    Err(match now.trouble {
        Some(why) => LeaseHeld::Trouble { why },
        None => LeaseHeld::Held {
            lease,
            holder: now.leader,
        },
    })
}

/// What the election remembers between rounds.
struct Round {
    /// The lease's version as last read, and since when (our clock) it has not changed.
    seen: Option<(String, Instant)>,
    /// When this replica last wrote the lease.
    renewed: Option<Instant>,
    /// The last trouble logged, so that it is logged once, not every round.
    told: Option<String>,
    status: Leadership,
}

impl Round {
    /// Read the lease, and take or renew it when the rules say so.
    async fn once(&mut self, leases: &dyn crate::targets::Leases, e: &Election) {
        let read = tokio::time::timeout(LEASE_RETRY * 2, leases.read_lease(&e.lease)).await;
        let lease = match read {
            Ok(Ok(lease)) => lease,
            Ok(Err(err)) => return self.trouble(format!("cannot read the lease: {err}")),
            Err(_) => return self.trouble("reading the lease timed out".into()),
        };
        self.status.trouble = None;
        let version = lease
            .as_ref()
            .map(|l| l.version.clone())
            .unwrap_or_default();
        let since = match &self.seen {
            Some((v, at)) if *v == version => *at,
            _ => Instant::now(),
        };
        self.seen = Some((version, since));
        let step = decide(&e.identity, lease.as_ref(), since.elapsed());
        if step == Step::Foreign {
            leases.gate().close();
            self.status.leader = None;
            self.status.leader_url = None;
            return self.trouble(format!(
                "{} exists and is not octostage's for this instance: octostage never writes what it did not create; remove it or pass another --lease",
                leases.describe_lease(&e.lease)
            ));
        }
        if step == Step::Follow {
            leases.gate().close();
            self.status.leader = lease.as_ref().and_then(|l| l.holder.clone());
            self.status.leader_url = lease.as_ref().and_then(|l| l.leader_url.clone());
            self.status.leading = false;
            self.told = None;
            return;
        }
        let next = claim(e, lease.as_ref(), step);
        // Others count the lease's duration from when they see this write, which is later.
        let sent = Instant::now();
        let written = tokio::time::timeout(LEASE_RETRY * 2, leases.write_lease(&e.lease, &next));
        match written.await {
            Ok(Ok(true)) => {
                leases.gate().hold(sent, LEASE_RENEW_DEADLINE);
                self.renewed = Some(sent);
                self.status.leading = true;
                self.status.leader = Some(e.identity.clone());
                self.status.leader_url = e.url.clone();
                self.told = None;
            }
            // Another replica wrote first: it leads.
            Ok(Ok(false)) => {
                leases.gate().close();
                self.status.leading = false;
            }
            Ok(Err(err)) => self.trouble(format!("cannot write the lease: {err}")),
            Err(_) => self.trouble("writing the lease timed out".into()),
        }
    }

    /// The lease could not be read or written: keep writing only until the renew deadline, and
    /// say why once.
    fn trouble(&mut self, why: String) {
        if self.told.as_deref() != Some(why.as_str()) {
            warn!("{why}");
            self.told = Some(why.clone());
        }
        self.status.trouble = Some(why);
        self.status.leading = self.status.leading
            && self
                .renewed
                .is_some_and(|r| r.elapsed() < LEASE_RENEW_DEADLINE);
    }
}

/// The record that claims or renews the lease.
fn claim(e: &Election, lease: Option<&LeaseRecord>, step: Step) -> LeaseRecord {
    let now = chrono::Utc::now();
    let old = lease.cloned().unwrap_or_default();
    LeaseRecord {
        // What it writes is octostage's; over an existing lease only one that already was.
        ours: old.ours || old.version.is_empty(),
        holder: Some(e.identity.clone()),
        duration: LEASE_DURATION,
        acquired: match step {
            Step::Renew => old.acquired.or(Some(now)),
            _ => Some(now),
        },
        renewed: Some(now),
        transitions: match step {
            Step::Take if old.holder.is_some() || !old.version.is_empty() => old.transitions + 1,
            _ => old.transitions,
        },
        leader_url: e.url.clone(),
        version: old.version,
    }
}

/// Give the lease up, so that another replica takes over at once.
async fn release(leases: &dyn crate::targets::Leases, e: &Election) {
    leases.gate().close();
    let read = tokio::time::timeout(LEASE_RETRY, leases.read_lease(&e.lease)).await;
    let Ok(Ok(Some(l))) = read else { return };
    if l.holder.as_deref() != Some(e.identity.as_str()) {
        return;
    }
    let released = LeaseRecord {
        holder: None,
        duration: Duration::from_secs(1),
        leader_url: None,
        ..l
    };
    match tokio::time::timeout(LEASE_RETRY, leases.write_lease(&e.lease, &released)).await {
        Ok(Ok(true)) => info!(lease = %leases.describe_lease(&e.lease), "lease released"),
        _ => {
            warn!(lease = %leases.describe_lease(&e.lease), "could not release the lease; another replica takes over when it lapses")
        }
    }
}

/// Cancel `cancel` as soon as this replica stops leading, or the write gate refuses a write
/// (its lease lapsed before the election noticed: the process was paused, say).
pub(super) fn stop_when_lost(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(h: &str) -> LeaseRecord {
        LeaseRecord {
            ours: true,
            holder: Some(h.into()),
            duration: Duration::from_secs(15),
            version: "7".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_released_or_unchanged_for_its_duration() {
        let s = Duration::from_secs;
        assert_eq!(decide("a", None, s(0)), Step::Take);
        assert_eq!(decide("a", Some(&held_by("a")), s(0)), Step::Renew);
        assert_eq!(decide("a", Some(&held_by("b")), s(14)), Step::Follow);
        assert_eq!(decide("a", Some(&held_by("b")), s(15)), Step::Take);
        let released = LeaseRecord {
            holder: None,
            ..held_by("b")
        };
        assert_eq!(decide("a", Some(&released), s(0)), Step::Take);
        // A lease without a duration still waits a second rather than be taken at once.
        let zero = LeaseRecord {
            duration: Duration::ZERO,
            ..held_by("b")
        };
        assert_eq!(decide("a", Some(&zero), s(0)), Step::Follow);
        // A lease claiming an hour is taken after octostage's own 15 s.
        let hour = LeaseRecord {
            duration: s(3600),
            ..held_by("b")
        };
        assert_eq!(decide("a", Some(&hour), s(14)), Step::Follow);
        assert_eq!(decide("a", Some(&hour), s(15)), Step::Take);
        // A lease that is not octostage's for this instance is never taken, however old, and
        // never renewed, whoever it names.
        for holder in [None, Some("a".to_string()), Some("b".to_string())] {
            let foreign = LeaseRecord {
                ours: false,
                holder,
                ..held_by("b")
            };
            assert_eq!(decide("a", Some(&foreign), s(3600)), Step::Foreign);
        }
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let e = Election {
            lease: "l".into(),
            identity: "a".into(),
            url: None,
        };
        let old = held_by("b");
        let taken = claim(&e, Some(&old), Step::Take);
        assert_eq!(taken.transitions, 1);
        assert_eq!(taken.holder.as_deref(), Some("a"));
        assert_eq!(taken.version, "7");
        let renewed = claim(&e, Some(&taken), Step::Renew);
        assert_eq!(renewed.acquired, taken.acquired);
        assert_eq!(renewed.transitions, 1);
        assert_eq!(claim(&e, None, Step::Take).transitions, 0);
    }
}
