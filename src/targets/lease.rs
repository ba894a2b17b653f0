//! What a target offers for several `octostage run` replicas to take turns: a lease record
//! that one holds at a time, written compare-and-swap, and events posted where people look.
//! The election itself (who takes the lease, when) is the controller's.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::TargetError;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// Whether it carries octostage's labels for this instance: only such a lease is written.
    pub ours: bool,
    /// Who holds it; `None` once released.
    pub holder: Option<String>,
    /// How long a holder's claim lasts without renewal.
    pub duration: Duration,
    /// When the holder took it.
    pub acquired: Option<DateTime<Utc>>,
    /// When the holder last renewed it.
    pub renewed: Option<DateTime<Utc>>,
    /// How many times it changed hands.
    pub transitions: i32,
    /// Where the holder takes actions (`http://10.0.0.7:8080`), when it said so.
    pub leader_url: Option<String>,
    /// The store's version of this record (compare and swap); empty for a new one.
    pub version: String,
}

/// A target's leases.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Where the lease lives, for messages (`lease default/octostage-a`).
    fn describe_lease(&self, name: &str) -> String;
    /// The lease `name`, if there is one.
    async fn read_lease(&self, name: &str) -> Result<Option<LeaseRecord>, TargetError>;
    /// Write `record` as lease `name` if it is still at `record.version` (empty: create it);
    /// `Ok(false)` when someone else wrote first.
    async fn write_lease(&self, name: &str, record: &LeaseRecord) -> Result<bool, TargetError>;
    /// The gate every other write of this target passes, which the election opens.
    fn gate(&self) -> &super::WriteGate;
}

/// An event about a staging, for the people who look at its namespace
/// (`kubectl get events -n NAMESPACE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingNotice {
    /// The staging's namespace.
    pub namespace: String,
    /// A warning (an error), or normal.
    pub warning: bool,
    /// A short CamelCase reason (`Created`, `Expired`, `Failed`).
    pub reason: String,
    /// What octostage did (`create`, `sleep`, `apply`).
    pub action: String,
    /// In words, at most 1 KiB, redacted.
    pub note: String,
}
