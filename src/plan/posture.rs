//! Awake or asleep: what a staging's sleep schedule and the requests people made of it
//! (`octostage sleep`, `octostage wake [--for]`) say at an instant, and when that next changes.
//!
//! Precedence, strongest first: a wake request (for its duration, or without one until the
//! schedule's next sleep time), a manual sleep (until a `wake` without a duration lifts it),
//! the schedule. So `wake --for 1h` on a staging put to sleep by hand wakes it for the hour,
//! then it sleeps again. The
//! `max_awake` cap comes after, over what this leaves awake (see the environment planner).

use chrono::{DateTime, Utc};

use super::schedule;
use super::{Requests, SleepCause, Wake, WakeCause, Why};
use crate::config::Sleep;

/// Awake or asleep, why, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posture {
    /// Asleep, and why; `None` when awake.
    pub asleep: Option<SleepCause>,
    /// What a sleep or wake at this instant would give as its reason.
    pub why: Why,
    /// When this changes next, if it does.
    pub next_change: Option<DateTime<Utc>>,
}

impl Posture {
    fn awake(by: WakeCause, until: Option<DateTime<Utc>>) -> Posture {
        Posture {
            asleep: None,
            why: Why::Awake { by, until },
            next_change: until,
        }
    }

    pub(super) fn asleep(cause: SleepCause, until: Option<DateTime<Utc>>) -> Posture {
        Posture {
            asleep: Some(cause),
            why: Why::Asleep { cause, until },
            next_change: until,
        }
    }

    /// Put to sleep by the `max_awake` cap `max` (the cap lifts only when room is made, so
    /// no time is known).
    pub fn capped(self) -> Posture {
        Posture {
            asleep: Some(SleepCause::Cap),
            why: Why::Asleep {
                cause: SleepCause::Cap,
                until: None,
            },
            next_change: self.next_change,
        }
    }
}

/// The posture of a staging with schedule `sleep` and `requests` at `now`.
#[cfg(test)]
pub fn posture(sleep: Option<&Sleep>, requests: &Requests, now: DateTime<Utc>) -> Posture {
    posture_in(sleep, requests, now, &schedule::Windows::default())
}

/// [`posture`], with the schedule's window taken from `windows`.
pub fn posture_in(
    sleep: Option<&Sleep>,
    requests: &Requests,
    now: DateTime<Utc>,
    windows: &schedule::Windows,
) -> Posture {
    match requests.wake {
        Some(Wake {
            until: Some(until), ..
        }) if until > now => {
            return Posture::awake(WakeCause::Request, Some(until));
        }
        Some(Wake { at, until: None }) => {
            // Until the schedule's first sleep time after the request.
            let ends = sleep.and_then(|s| schedule::next_sleep(s, at));
            if ends.map_or(true, |e| e > now) {
                return Posture::awake(WakeCause::Request, ends);
            }
        }
        _ => {}
    }
    if requests.sleep.is_some() {
        return Posture::asleep(SleepCause::Manual, None);
    }
    match sleep {
        None => Posture::awake(WakeCause::Schedule, None),
        Some(s) => {
            let w = windows.get(s, now);
            if w.asleep {
                Posture::asleep(SleepCause::Schedule, w.next)
            } else {
                Posture::awake(WakeCause::Schedule, w.next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::parse_cron;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn nights() -> Sleep {
        Sleep {
            at: parse_cron("0 20 * * *").unwrap(),
            wake: parse_cron("0 7 * * *").unwrap(),
            timezone: chrono_tz::UTC,
        }
    }

    #[test]
    fn the_schedule_alone() {
        let p = posture(
            Some(&nights()),
            &Requests::default(),
            t("2026-11-26T21:00:00Z"),
        );
        assert_eq!(p.asleep, Some(SleepCause::Schedule));
        assert_eq!(p.next_change, Some(t("2026-11-27T07:00:00Z")));
        let p = posture(None, &Requests::default(), t("2026-11-26T21:00:00Z"));
        assert_eq!((p.asleep, p.next_change), (None, None));
    }

    #[test]
    fn wake_for_a_while_then_the_schedule_again() {
        let r = Requests {
            wake: Some(Wake {
                at: t("2026-11-26T21:00:00Z"),
                until: Some(t("2026-11-26T22:00:00Z")),
            }),
            ..Requests::default()
        };
        let p = posture(Some(&nights()), &r, t("2026-11-26T21:30:00Z"));
        assert_eq!(p.asleep, None);
        assert_eq!(p.next_change, Some(t("2026-11-26T22:00:00Z")));
        let p = posture(Some(&nights()), &r, t("2026-11-26T22:00:00Z"));
        assert_eq!(p.asleep, Some(SleepCause::Schedule));
    }

    #[test]
    fn wake_without_a_duration_lasts_until_the_next_sleep_time() {
        let r = Requests {
            wake: Some(Wake {
                at: t("2026-11-26T21:00:00Z"),
                until: None,
            }),
            ..Requests::default()
        };
        let p = posture(Some(&nights()), &r, t("2026-11-27T19:00:00Z"));
        assert_eq!(
            (p.asleep, p.next_change),
            (None, Some(t("2026-11-27T20:00:00Z")))
        );
        let p = posture(Some(&nights()), &r, t("2026-11-27T20:00:00Z"));
        assert_eq!(p.asleep, Some(SleepCause::Schedule));
    }

    #[test]
    fn a_manual_sleep_holds_through_wake_times() {
        let mut r = Requests {
            sleep: Some(t("2026-11-26T10:00:00Z")),
            ..Requests::default()
        };
        let p = posture(Some(&nights()), &r, t("2026-11-27T08:00:00Z"));
        assert_eq!((p.asleep, p.next_change), (Some(SleepCause::Manual), None));
        // Woken for an hour, then asleep again by hand.
        let at = t("2026-11-27T09:00:00Z");
        r.wake = Some(Wake {
            at,
            until: Some(t("2026-11-27T10:00:00Z")),
        });
        assert_eq!(posture(Some(&nights()), &r, at).asleep, None);
        let p = posture(Some(&nights()), &r, t("2026-11-27T10:00:00Z"));
        assert_eq!(p.asleep, Some(SleepCause::Manual));
    }
}
