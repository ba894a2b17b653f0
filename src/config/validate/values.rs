//! Single values: durations, times, sleep schedules, sizes.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::model::*;
use super::super::raw::*;
use super::Validator;
use crate::consts;

impl Validator<'_> {
    pub(super) fn duration(&mut self, text: &str, ptr: &str) -> Option<Duration> {
        if text.trim() == "0" {
            return Some(Duration::ZERO);
        }
        match humantime::parse_duration(text) {
            // Longer would overflow time arithmetic and quietly mean "never".
            Ok(d) if d > consts::MAX_DURATION => {
                self.err(
                    ptr,
                    format!("duration {text:?} is longer than 100 years; for a staging that never expires write `never`"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    ptr,
                    format!("invalid duration {text:?}: {e}; write it like 90m, 36h, 7d or 1h30m"),
                );
                None
            }
        }
    }

    pub(super) fn time(&mut self, text: &str, ptr: &str) -> Option<DateTime<Utc>> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.err(
                    ptr,
                    format!(
                        "invalid time {text:?}: {e}; write RFC 3339 such as 2026-12-24T18:00:00Z"
                    ),
                );
                None
            }
        }
    }

    pub(super) fn sleep(&mut self, raw: &RawSleep, ptr: &str) -> Option<Sleep> {
        let at = self.cron(&raw.at, &format!("{ptr}/at"));
        let wake = self.cron(&raw.wake, &format!("{ptr}/wake"));
        let tz = raw.timezone.as_deref().unwrap_or("UTC");
        let timezone = match chrono_tz::Tz::from_str(tz) {
            Ok(t) => Some(t),
            Err(_) => {
                self.err(
                    &format!("{ptr}/timezone"),
                    format!(
                        "unknown time zone {tz:?}: use an IANA name such as Europe/Berlin or UTC"
                    ),
                );
                None
            }
        };
        if raw.at.split_whitespace().eq(raw.wake.split_whitespace()) {
            self.err(
                &format!("{ptr}/wake"),
                "sleep.wake is the same as sleep.at: stagings would never sleep",
            );
            return None;
        }
        Some(Sleep {
            at: at?,
            wake: wake?,
            timezone: timezone?,
        })
    }

    pub(super) fn cron(&mut self, text: &str, ptr: &str) -> Option<cron::Schedule> {
        match parse_cron(text) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(ptr, e);
                None
            }
        }
    }
}

/// Parse a cron expression of five fields (minute first) or six/seven (seconds first).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {text}"),
        6 | 7 => text.to_string(),
        n => return Err(format!("invalid cron expression {text:?}: it has {n} fields; write five (minute hour day month weekday), such as \"0 20 * * Mon-Fri\"")),
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        // The crate's message repeats the expression with a caret line; its last line says why.
        let why = e
            .to_string()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .to_string();
        format!("invalid cron expression {text:?}: {why}")
    })
}

/// Parse a size such as `32MiB`, `500KiB`, `1GiB` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {text:?}: write it like 500KiB, 32MiB or 1GiB"
            ))
        }
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid size {text:?}: write a positive size like 500KiB, 32MiB or 1GiB"
        )),
    }
}
