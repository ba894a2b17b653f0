//! Sleep schedules read in wall-clock time: whether a schedule has stagings asleep at an
//! instant, and when that next changes.
//!
//! A cron expression names wall-clock times, and twice a year in most zones some of them do not
//! exist (spring forward) or exist twice (fall back). cron on a time zone skips the first kind,
//! which would leave stagings asleep for a whole day when a wake time falls in the gap. So the
//! expression is evaluated on the naive wall clock, which has no gaps, and each firing is then
//! placed in the zone as Vixie cron does: a time the clock skips fires when the clock jumps
//! over it, a time that happens twice fires once, the first time.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::Sleep;

/// Most firings looked at in one search: bounds the work for an expression that fires every
/// second, far more than a real schedule needs to find its neighbours.
const MAX_STEPS: usize = 10_000;

/// Where a schedule stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Whether the schedule has stagings asleep.
    pub asleep: bool,
    /// When that changes next (a wake time while asleep, a sleep time while awake), if ever.
    pub next: Option<DateTime<Utc>>,
}

/// Where `sleep` stands at `now`. Asleep when the latest sleep time at or before `now` is later
/// than the latest wake time; a sleep and a wake at the same instant leave stagings awake.
pub fn window(sleep: &Sleep, now: DateTime<Utc>) -> Window {
    if !within_reason(now) {
        return Window {
            asleep: false,
            next: None,
        };
    }
    let tz = sleep.timezone;
    let last_sleep = last_at_or_before(&sleep.at, tz, now);
    let last_wake = last_at_or_before(&sleep.wake, tz, now);
    let asleep = match (last_sleep, last_wake) {
        (Some(s), Some(w)) => s > w,
        (Some(_), None) => true,
        _ => false,
    };
    let next = if asleep {
        first_after(&sleep.wake, tz, now)
    } else {
        next_sleep(sleep, now)
    };
    Window { asleep, next }
}

/// [`window`] of each schedule at one instant, worked out once per plan: stagings of an
/// environment share their settings, and walking a cron schedule was the largest part of
/// planning a thousand stagings.
#[derive(Debug, Default)]
pub struct Windows {
    /// By the schedule's address: the configuration outlives the plan, so an address names
    /// one schedule for as long as this memo lives.
    at: std::cell::RefCell<std::collections::HashMap<usize, (DateTime<Utc>, Window)>>,
}

impl Windows {
    /// [`window`]`(sleep, now)`.
    pub fn get(&self, sleep: &Sleep, now: DateTime<Utc>) -> Window {
        let key = std::ptr::from_ref(sleep) as usize;
        if let Some((at, w)) = self.at.borrow().get(&key) {
            if *at == now {
                return *w;
            }
        }
        let w = window(sleep, now);
        self.at.borrow_mut().insert(key, (now, w));
        w
    }
}

/// Whether `t` is a time a schedule can be read at: `render` plans at the earliest time there
/// is (so that nothing is expired), where no wall clock can be read.
fn within_reason(t: DateTime<Utc>) -> bool {
    (1900..=9000).contains(&chrono::Datelike::year(&t))
}

/// The first sleep time of `sleep` after `t` that is not also a wake time.
pub fn next_sleep(sleep: &Sleep, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !within_reason(t) {
        return None;
    }
    let tz = sleep.timezone;
    let mut from = t;
    for _ in 0..64 {
        let s = first_after(&sleep.at, tz, from)?;
        let before = s.checked_sub_signed(Duration::seconds(1))?;
        if first_after(&sleep.wake, tz, before) != Some(s) {
            return Some(s);
        }
        from = s;
    }
    None
}

/// The instant a wall-clock time of `tz` happens: the first of two at fall back, the jump at
/// spring forward.
fn instant(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Read with the offset in force a day before, the wall time lands after the jump
            // by as much as it lies inside the gap; walk back to the jump itself.
            let day_before = wall.checked_sub_signed(Duration::days(1))?;
            let before = tz.offset_from_utc_datetime(&day_before).fix();
            let offset = Duration::seconds(before.local_minus_utc().into());
            let mut t = wall.checked_sub_signed(offset)?.and_utc();
            for _ in 0..24 * 60 {
                let earlier = t.checked_sub_signed(Duration::minutes(1))?;
                if tz.from_utc_datetime(&earlier.naive_utc()).naive_local() < wall {
                    break;
                }
                t = earlier;
            }
            Some(t)
        }
    }
}

fn wall(tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    // The naive wall clock, carried as UTC because UTC has no gaps.
    tz.from_utc_datetime(&t.naive_utc()).naive_local().and_utc()
}

/// The latest firing at or before `now`.
fn last_at_or_before(s: &cron::Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Start a little after now on the wall clock: in a repeated hour the wall clock reads
    // earlier than its instants, and in a gap later.
    let start = wall(tz, now).checked_add_signed(Duration::hours(3))?;
    s.after(&start)
        .rev()
        .take(MAX_STEPS)
        .filter_map(|w| instant(tz, w.naive_utc()))
        .find(|t| *t <= now)
}

/// The first firing after `now`.
fn first_after(s: &cron::Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = wall(tz, now).checked_sub_signed(Duration::hours(3))?;
    s.after(&start)
        .take(MAX_STEPS)
        .filter_map(|w| instant(tz, w.naive_utc()))
        .find(|t| *t > now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::parse_cron;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn sleep(at: &str, wake: &str, tz: &str) -> Sleep {
        Sleep {
            at: parse_cron(at).unwrap(),
            wake: parse_cron(wake).unwrap(),
            timezone: tz.parse().unwrap(),
        }
    }

    fn office_hours(tz: &str) -> Sleep {
        sleep("0 20 * * Mon-Fri", "0 7 * * Mon-Fri", tz)
    }

    #[test]
    fn nights_and_weekends_in_berlin_across_spring_forward() {
        // 2026-03-29 is the spring-forward Sunday in Europe/Berlin (CET+1 → CEST+2).
        let s = office_hours("Europe/Berlin");
        // Friday 19:59 CET awake, 20:00 CET asleep until Monday 07:00 CEST (05:00Z).
        let w = window(&s, t("2026-03-27T18:59:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: false,
                next: Some(t("2026-03-27T19:00:00Z"))
            }
        );
        let w = window(&s, t("2026-03-27T19:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-03-30T05:00:00Z"))
            }
        );
        let w = window(&s, t("2026-03-29T12:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-03-30T05:00:00Z"))
            }
        );
        // Monday 07:00 CEST awake; asleep again at 20:00 CEST (18:00Z).
        let w = window(&s, t("2026-03-30T05:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: false,
                next: Some(t("2026-03-30T18:00:00Z"))
            }
        );
    }

    #[test]
    fn berlin_fall_back_keeps_wall_clock_times() {
        // 2026-10-25: CEST+2 → CET+1. Friday 20:00 CEST is 18:00Z, Monday 07:00 CET is 06:00Z.
        let s = office_hours("Europe/Berlin");
        let w = window(&s, t("2026-10-24T00:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-10-26T06:00:00Z"))
            }
        );
        assert!(!window(&s, t("2026-10-26T06:00:00Z")).asleep);
        assert!(window(&s, t("2026-10-26T05:59:59Z")).asleep);
    }

    #[test]
    fn new_york_office_hours_across_both_changes() {
        // 2026-03-08 spring forward (EST-5 → EDT-4); 2026-11-01 fall back.
        let s = office_hours("America/New_York");
        // Friday 2026-03-06 20:00 EST = 01:00Z Saturday; Monday 07:00 EDT = 11:00Z.
        let w = window(&s, t("2026-03-07T12:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-03-09T11:00:00Z"))
            }
        );
        // Friday 2026-10-30 20:00 EDT = 00:00Z; Monday 07:00 EST = 12:00Z.
        let w = window(&s, t("2026-10-31T00:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-11-02T12:00:00Z"))
            }
        );
    }

    #[test]
    fn a_time_the_clock_skips_fires_at_the_jump() {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z; 02:30 never happens.
        let s = sleep("0 22 * * *", "30 2 * * *", "Europe/Berlin");
        let w = window(&s, t("2026-03-28T23:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-03-29T01:00:00Z"))
            }
        );
        assert!(!window(&s, t("2026-03-29T01:00:00Z")).asleep);
        // New York 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00Z.
        let s = sleep("0 22 * * *", "30 2 * * *", "America/New_York");
        let w = window(&s, t("2026-03-08T06:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-03-08T07:00:00Z"))
            }
        );
    }

    #[test]
    fn a_time_that_happens_twice_fires_once() {
        // New York 2026-11-01: 01:00–02:00 happens twice (EDT 05:00Z–06:00Z, EST 06:00Z–07:00Z).
        let s = sleep("0 1 * * *", "30 1 * * *", "America/New_York");
        assert!(window(&s, t("2026-11-01T05:10:00Z")).asleep);
        let w = window(&s, t("2026-11-01T05:30:00Z"));
        assert!(!w.asleep);
        // The second 01:00 and 01:30 do not fire again: awake until 01:00 EST the next day.
        let w = window(&s, t("2026-11-01T06:15:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: false,
                next: Some(t("2026-11-02T06:00:00Z"))
            }
        );
        // Berlin 2026-10-25: 02:00–03:00 happens twice (00:00Z–01:00Z CEST, 01:00Z–02:00Z CET).
        let s = sleep("30 2 * * *", "0 9 * * *", "Europe/Berlin");
        let w = window(&s, t("2026-10-25T00:00:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: false,
                next: Some(t("2026-10-25T00:30:00Z"))
            }
        );
        let w = window(&s, t("2026-10-25T01:45:00Z"));
        assert_eq!(
            w,
            Window {
                asleep: true,
                next: Some(t("2026-10-25T08:00:00Z"))
            }
        );
    }

    #[test]
    fn crontab_weekday_numbers_mean_what_crontab_says() {
        // 1-5 is Monday to Friday, 0 and 7 are Sunday.
        let now = t("2026-11-27T12:00:00Z"); // a Friday
        let numbers = window(&sleep("0 20 * * 1-5", "0 7 * * 1-5", "UTC"), now);
        let names = window(&sleep("0 20 * * Mon-Fri", "0 7 * * Mon-Fri", "UTC"), now);
        assert_eq!(numbers, names);
        assert_eq!(
            numbers,
            Window {
                asleep: false,
                next: Some(t("2026-11-27T20:00:00Z"))
            }
        );
        for (a, b) in [
            ("0", "Sun"),
            ("7", "Sun"),
            ("5-7", "Fri,Sat,Sun"),
            ("*/2", "Sun,Tue,Thu,Sat"),
            ("1-5/2", "Mon,Wed,Fri"),
            ("1,3", "Mon,Wed"),
            ("1/2", "Mon,Wed,Fri,Sun"),
            ("1/1", "*"),
        ] {
            let x = parse_cron(&format!("0 7 * * {a}")).unwrap();
            let y = parse_cron(&format!("0 7 * * {b}")).unwrap();
            let soon = |s: &cron::Schedule| s.after(&now).take(10).collect::<Vec<_>>();
            assert_eq!(soon(&x), soon(&y), "{a} vs {b}");
        }
        for bad in [
            "0 7 * * 8",
            "0 7 * * 5-1",
            "0 7 * * 1/0",
            "0 7 31 2 *",
            "0 0 7 * * * 2030",
            "0 7 13 * 5",
            // Six fields: seconds first would read this as :19 every hour, January to May.
            "0 19 * * 1-5 *",
            "0 0 20 * * *",
            "0 24 * * *",
            "60 7 * * *",
            "0 7 0 * *",
            "0 7 * 13 *",
            "0 7 * * */0",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
        // 23 is an hour; the message for 24 says which range, not "less than 23".
        assert!(parse_cron("59 23 31 12 *").is_ok());
        assert!(parse_cron("59 23 * * 7").is_ok());
        let e = parse_cron("0 24 * * *").unwrap_err().to_string();
        assert!(e.contains("hour 24 is not 0-23"), "{e}");
        let e = parse_cron("0 19 * * 1-5 *").unwrap_err().to_string();
        assert!(e.contains("it has 6 fields; octostage takes five"), "{e}");
    }

    #[test]
    fn the_ends_of_time_are_no_panic() {
        // `render` plans at the earliest time there is, so that nothing is expired.
        let s = office_hours("Europe/Berlin");
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let w = window(&s, now);
            assert!(!w.asleep || w.next.is_none() || w.next > Some(now));
            let _ = next_sleep(&s, now);
        }
    }

    #[test]
    fn utc_and_equal_times() {
        let s = sleep("0 20 * * *", "0 7 * * *", "UTC");
        let w = window(&s, t("2026-11-26T19:59:29Z"));
        assert_eq!(
            w,
            Window {
                asleep: false,
                next: Some(t("2026-11-26T20:00:00Z"))
            }
        );
        // Sleep and wake at once: never asleep, and no change to wait for.
        let s = sleep("0 7 * * *", "0 7 * * *", "UTC");
        assert_eq!(
            window(&s, t("2026-11-26T08:00:00Z")),
            Window {
                asleep: false,
                next: None
            }
        );
    }
}
