//! Validated notification settings: where events go and which.

use std::time::Duration;

/// What events there are to notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Created.
    Created,
    /// A new commit or configuration applied.
    Updated,
    /// Every workload ready.
    Healthy,
    /// A Job failed, or not ready past the deadline.
    Failing,
    /// Put to sleep.
    Sleeping,
    /// Woken.
    Waking,
    /// Expired: asleep until deleted.
    Expired,
    /// Deleted soon (`warn_before`).
    Expiring,
    /// Deleted.
    Deleted,
}

impl EventKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::Updated,
        EventKind::Healthy,
        EventKind::Failing,
        EventKind::Sleeping,
        EventKind::Waking,
        EventKind::Expired,
        EventKind::Expiring,
        EventKind::Deleted,
    ];

    /// Its name in environments.yaml and payloads.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Healthy => "healthy",
            EventKind::Failing => "failing",
            EventKind::Sleeping => "sleeping",
            EventKind::Waking => "waking",
            EventKind::Expired => "expired",
            EventKind::Expiring => "expiring",
            EventKind::Deleted => "deleted",
        }
    }
}

/// Where a webhook's URL comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UrlSource {
    /// Written in the file.
    Literal(String),
    /// An environment variable, read when sending.
    Env(String),
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Webhook {
    /// Its URL.
    pub url: UrlSource,
    /// Environment variable of its HMAC key.
    pub secret_env: Option<String>,
}

/// Notification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Webhooks.
    pub webhooks: Vec<Webhook>,
    /// A command given the payload on stdin.
    pub command: Option<Vec<String>>,
    /// Events sent.
    pub events: Vec<EventKind>,
    /// Lead of the `expiring` warning.
    pub warn_before: Duration,
}
