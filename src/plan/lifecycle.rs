//! Time to live and retention: when a staging is active, sleeping after expiry, or gone.

use chrono::{DateTime, Utc};

use crate::config::Ttl;

/// Where a staging stands in its life at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Running.
    Active,
    /// Expired; kept asleep until its retention ends.
    Expired,
    /// Expired and past its retention: deleted.
    Gone,
}

/// The lifecycle of one staging at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Life {
    /// Later of the head commit's time and when octostage first saw that head, unless the head
    /// was already past its ttl when first seen (see [`Life::new`]).
    pub activity: DateTime<Utc>,
    /// When it expires, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it is deleted, if ever.
    pub delete_at: Option<DateTime<Utc>>,
    /// Phase at `now`.
    pub phase: Phase,
}

impl Life {
    /// Compute the lifecycle. `until` wins over `ttl` when given (static stagings).
    ///
    /// Activity is the later of the commit time and when octostage first saw the head, so a
    /// commit pushed days after it was made (a late push, a rebase that kept dates) keeps a full
    /// ttl. A head that was already older than the ttl when first seen gets no new lease of life:
    /// stale branches found on the first pass are not created, and a branch moved back to a stale
    /// commit expires.
    pub fn new(
        commit_time: DateTime<Utc>,
        first_seen: DateTime<Utc>,
        ttl: Ttl,
        until: Option<DateTime<Utc>>,
        retention: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Life {
        let ttl = match ttl {
            Ttl::Never => None,
            Ttl::After(d) => chrono::Duration::from_std(d).ok(),
        };
        // Committer dates are whatever the pusher says: a commit cannot have been made after
        // octostage first saw it, so a date in the future buys no time.
        let commit_time = commit_time.min(first_seen);
        let stale_when_seen = ttl
            .and_then(|d| commit_time.checked_add_signed(d))
            .is_some_and(|e| first_seen >= e);
        let activity = if stale_when_seen {
            commit_time
        } else {
            commit_time.max(first_seen)
        };
        let expires_at = until.or_else(|| ttl.and_then(|d| activity.checked_add_signed(d)));
        let delete_at = expires_at.and_then(|e| {
            chrono::Duration::from_std(retention)
                .ok()
                .and_then(|r| e.checked_add_signed(r))
        });
        let phase = match (expires_at, delete_at) {
            (Some(_), Some(d)) if now >= d => Phase::Gone,
            (Some(e), _) if now >= e => Phase::Expired,
            _ => Phase::Active,
        };
        Life {
            activity,
            expires_at,
            delete_at,
            phase,
        }
    }
}

impl Life {
    /// This life with its retention counted from when the staging was put to sleep expired
    /// (`expired_at`, as recorded; now when it expires in this pass), never from an expiry
    /// time that passed while nobody looked: a branch found stale, or octostage down for a
    /// week, still gets its whole retention, asleep, before it is deleted.
    pub fn retained(
        self,
        expired_at: Option<DateTime<Utc>>,
        retention: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Life {
        let Some(expires) = self.expires_at.filter(|e| now >= *e) else {
            return self;
        };
        let start = expires.max(expired_at.unwrap_or(now));
        let delete_at = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| start.checked_add_signed(r));
        let phase = match delete_at {
            Some(d) if now >= d => Phase::Gone,
            Some(_) => Phase::Expired,
            None => Phase::Expired,
        };
        Life {
            delete_at,
            phase,
            ..self
        }
    }

    /// This life kept at least until `keep_until` (`octostage extend`): a staging that never
    /// expires stays so, one that expires does so no earlier than then.
    pub fn extended(
        self,
        keep_until: DateTime<Utc>,
        retention: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Life {
        let Some(expires) = self.expires_at else {
            return self;
        };
        if keep_until <= expires {
            return self;
        }
        let delete_at = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| keep_until.checked_add_signed(r));
        let phase = match delete_at {
            Some(d) if now >= d => Phase::Gone,
            _ if now >= keep_until => Phase::Expired,
            _ => Phase::Active,
        };
        Life {
            expires_at: Some(keep_until),
            delete_at,
            phase,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const DAY: u64 = 86_400;

    #[test]
    fn activity_is_the_later_of_commit_time_and_first_seen() {
        // A commit made five days before it was pushed lives a full ttl from the push.
        let l = Life::new(
            t("2026-11-15T00:00:00Z"),
            t("2026-11-20T00:00:00Z"),
            Ttl::After(Duration::from_secs(7 * DAY)),
            None,
            Duration::ZERO,
            t("2026-11-26T00:00:00Z"),
        );
        assert_eq!(l.phase, Phase::Active);
        assert_eq!(l.expires_at, Some(t("2026-11-27T00:00:00Z")));
    }

    #[test]
    fn a_head_already_stale_when_first_seen_gets_no_new_life() {
        let l = Life::new(
            t("2026-10-01T00:00:00Z"),
            t("2026-11-20T00:00:00Z"),
            Ttl::After(Duration::from_secs(7 * DAY)),
            None,
            Duration::ZERO,
            t("2026-11-20T00:00:00Z"),
        );
        assert_eq!(
            (l.phase, l.activity),
            (Phase::Gone, t("2026-10-01T00:00:00Z"))
        );
    }

    #[test]
    fn expiry_then_retention_then_gone() {
        let ttl = Ttl::After(Duration::from_secs(7 * DAY));
        let life = |now| {
            Life::new(
                t("2026-11-01T00:00:00Z"),
                t("2026-11-01T00:00:00Z"),
                ttl,
                None,
                Duration::from_secs(DAY),
                t(now),
            )
            .phase
        };
        assert_eq!(life("2026-11-07T23:59:59Z"), Phase::Active);
        assert_eq!(life("2026-11-08T00:00:00Z"), Phase::Expired);
        assert_eq!(life("2026-11-09T00:00:00Z"), Phase::Gone);
        let never = Life::new(
            t("2020-01-01T00:00:00Z"),
            t("2020-01-01T00:00:00Z"),
            Ttl::Never,
            None,
            Duration::ZERO,
            t("2026-11-26T00:00:00Z"),
        );
        assert_eq!((never.phase, never.expires_at), (Phase::Active, None));
    }

    #[test]
    fn a_committer_date_in_the_future_buys_no_time() {
        let l = Life::new(
            t("2286-11-20T00:00:00Z"),
            t("2026-11-20T00:00:00Z"),
            Ttl::After(Duration::from_secs(7 * DAY)),
            None,
            Duration::ZERO,
            t("2026-11-20T00:00:00Z"),
        );
        assert_eq!(l.expires_at, Some(t("2026-11-27T00:00:00Z")));
        assert_eq!(l.activity, t("2026-11-20T00:00:00Z"));
    }

    #[test]
    fn an_extension_moves_expiry_and_deletion_later_never_earlier() {
        let ttl = Ttl::After(Duration::from_secs(DAY));
        let l = Life::new(
            t("2026-11-01T00:00:00Z"),
            t("2026-11-01T00:00:00Z"),
            ttl,
            None,
            Duration::from_secs(DAY),
            t("2026-11-02T12:00:00Z"),
        );
        assert_eq!(l.phase, Phase::Expired);
        let e = l.extended(
            t("2026-11-05T00:00:00Z"),
            Duration::from_secs(DAY),
            t("2026-11-02T12:00:00Z"),
        );
        assert_eq!(e.phase, Phase::Active);
        assert_eq!(e.expires_at, Some(t("2026-11-05T00:00:00Z")));
        assert_eq!(e.delete_at, Some(t("2026-11-06T00:00:00Z")));
        let earlier = l.extended(
            t("2026-11-01T12:00:00Z"),
            Duration::ZERO,
            t("2026-11-02T12:00:00Z"),
        );
        assert_eq!(earlier, l);
    }

    #[test]
    fn retention_counts_from_when_it_was_put_to_sleep() {
        let ttl = Ttl::After(Duration::from_secs(DAY));
        let minute = Duration::from_secs(60);
        let now = t("2026-11-26T12:00:00Z");
        // Expired a month ago by its dates, seen only now: a whole minute asleep first.
        let l = Life::new(
            t("2026-10-01T00:00:00Z"),
            t("2026-10-01T00:00:00Z"),
            ttl,
            None,
            minute,
            now,
        );
        assert_eq!(l.phase, Phase::Gone);
        let r = l.retained(None, minute, now);
        assert_eq!(
            (r.phase, r.delete_at),
            (Phase::Expired, Some(t("2026-11-26T12:01:00Z")))
        );
        let later = t("2026-11-26T12:01:00Z");
        let l = Life::new(
            t("2026-10-01T00:00:00Z"),
            t("2026-10-01T00:00:00Z"),
            ttl,
            None,
            minute,
            later,
        );
        assert_eq!(l.retained(Some(now), minute, later).phase, Phase::Gone);
        // Retention 0 deletes at once; an active life is left as it is.
        assert_eq!(l.retained(None, Duration::ZERO, now).phase, Phase::Gone);
        let active = Life::new(now, now, ttl, None, minute, now);
        assert_eq!(active.retained(None, minute, now), active);
    }

    #[test]
    fn until_wins_over_ttl() {
        let l = Life::new(
            t("2026-11-25T00:00:00Z"),
            t("2026-11-25T00:00:00Z"),
            Ttl::Never,
            Some(t("2026-11-26T00:00:00Z")),
            Duration::ZERO,
            t("2026-11-26T00:00:00Z"),
        );
        assert_eq!(l.phase, Phase::Gone);
    }
}
