//! Single values: durations, times, sleep schedules, sizes.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::model::*;
use super::super::raw::*;
use super::Validator;
use crate::consts;

/// Why a sleep schedule's cron expression is refused. Each holds the expression as written.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// Not five fields.
    #[error("invalid cron expression {text:?}: it has {fields} fields; octostage takes five, as crontab does (minute hour day-of-month month weekday), such as \"0 20 * * Mon-Fri\"")]
    Fields {
        #[allow(missing_docs)]
        text: String,
        /// How many it has.
        fields: usize,
    },
    /// One field is wrong.
    #[error("invalid cron expression {text:?}: {why}")]
    Field {
        #[allow(missing_docs)]
        text: String,
        /// What is wrong with it.
        why: FieldError,
    },
    /// Both the day of the month and the weekday are restricted.
    #[error("cron expression {text:?} restricts both the day of the month and the weekday, which cron implementations read differently; restrict one of them")]
    BothDays {
        #[allow(missing_docs)]
        text: String,
    },
    /// The cron crate refused it. Its message repeats the expression with a caret line; the
    /// last line says why.
    #[error("invalid cron expression {text:?}: {}", last_line(source))]
    Crate {
        #[allow(missing_docs)]
        text: String,
        #[allow(missing_docs)]
        source: cron::error::Error,
    },
    /// It names no date that exists.
    #[error("cron expression {text:?} never fires (no such date)")]
    Never {
        #[allow(missing_docs)]
        text: String,
    },
}

fn last_line(e: &cron::error::Error) -> String {
    let text = e.to_string();
    let why = text.lines().rev().find(|l| !l.trim().is_empty());
    why.unwrap_or("invalid").trim().to_string()
}

/// What is wrong with one field of a cron expression.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    /// A step is not a number of at least 1.
    #[error("the step {step:?} of the {name} is not a number of at least 1")]
    Step {
        /// The field.
        name: &'static str,
        #[allow(missing_docs)]
        step: String,
    },
    /// A number is out of the field's range.
    #[error("{name} {value} is not {low}-{high}")]
    Range {
        /// The field.
        name: &'static str,
        #[allow(missing_docs)]
        value: String,
        #[allow(missing_docs)]
        low: u32,
        #[allow(missing_docs)]
        high: u32,
    },
    /// A weekday that is not 0-7 or a name.
    #[error("weekday {0:?} is not 0-7 (0 and 7 are Sunday) or a name such as Mon")]
    Weekday(String),
    /// A range of weekdays that runs backwards.
    #[error("weekday range {0:?} runs backwards")]
    Backwards(String),
}

/// Why a size is refused; each holds the size as written.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// An unknown unit.
    #[error("invalid size {0:?}: write it like 500KiB, 32MiB or 1GiB")]
    Unit(String),
    /// Not a positive number, or too large.
    #[error("invalid size {0:?}: write a positive size like 500KiB, 32MiB or 1GiB")]
    Number(String),
}

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
        let (at, wake) = (at?, wake?);
        // A wake at every sleep time, however written (`00 20 * * *` for `0 20 * * *`, or a
        // wider `wake`), keeps stagings awake for good.
        let covered = at.upcoming(chrono::Utc).take(50).all(|t| wake.includes(t));
        if covered {
            self.err(
                &format!("{ptr}/wake"),
                "sleep.wake fires at every time sleep.at does: stagings would never sleep",
            );
            return None;
        }
        Some(Sleep {
            at,
            wake,
            timezone: timezone?,
        })
    }

    pub(super) fn cron(&mut self, text: &str, ptr: &str) -> Option<cron::Schedule> {
        match parse_cron(text) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(ptr, e.to_string());
                None
            }
        }
    }
}

/// Parse a cron expression of exactly five fields (minute hour day month weekday), as crontab
/// reads them. Six are refused: `0 19 * * 1-5 *` looks like crontab with a trailing field but
/// would read as seconds-first, sleeping at :19 every hour January to May. Weekdays are read as crontab reads them: 0 and 7 are Sunday, 1 is Monday (the cron
/// crate alone would read 1 as Sunday, and `1-5` would sleep on Sunday but not on Friday).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, CronError> {
    let text_ = || text.to_string();
    let mut fields: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    match fields.len() {
        5 => fields.insert(0, "0".into()),
        fields => {
            return Err(CronError::Fields {
                text: text_(),
                fields,
            })
        }
    }
    for (i, (name, low, high)) in [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of the month", 1, 31),
        ("month", 1, 12),
    ]
    .into_iter()
    .enumerate()
    {
        in_range(&fields[i + 1], name, low, high)
            .map_err(|why| CronError::Field { text: text_(), why })?;
    }
    if fields[3] != "*" && fields[3] != "?" && fields[5] != "*" && fields[5] != "?" {
        // crontab fires when either matches; the cron crate when both do. Neither reading
        // may be taken silently.
        return Err(CronError::BothDays { text: text_() });
    }
    fields[5] =
        crontab_weekdays(&fields[5]).map_err(|why| CronError::Field { text: text_(), why })?;
    let schedule =
        cron::Schedule::from_str(&fields.join(" ")).map_err(|source| CronError::Crate {
            text: text_(),
            source,
        })?;
    if schedule.upcoming(chrono::Utc).next().is_none() {
        return Err(CronError::Never { text: text_() });
    }
    Ok(schedule)
}

/// Every number of a crontab field (lists, ranges, steps) within `low..=high`; names (`Jan`)
/// are left to the cron crate, whose own range messages are off by one ("less than 23").
fn in_range(field: &str, name: &'static str, low: u32, high: u32) -> Result<(), FieldError> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(s) = step {
            if !s.parse::<u32>().is_ok_and(|n| n >= 1) {
                return Err(FieldError::Step {
                    name,
                    step: s.into(),
                });
            }
        }
        for n in range.split('-').filter(|n| *n != "*" && *n != "?") {
            if let Ok(v) = n.parse::<u32>() {
                if !(low..=high).contains(&v) {
                    return Err(FieldError::Range {
                        name,
                        value: v.to_string(),
                        low,
                        high,
                    });
                }
            } else if n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FieldError::Range {
                    name,
                    value: format!("{n:?}"),
                    low,
                    high,
                });
            }
        }
    }
    Ok(())
}

/// The next `n` times `s` fires after `now`, in `tz`, as people read them
/// (`Mon 2026-12-07 19:00 CET`).
pub fn next_times(
    s: &cron::Schedule,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
    n: usize,
) -> Vec<String> {
    s.after(&now.with_timezone(&tz))
        .take(n)
        .map(|t| t.format("%a %Y-%m-%d %H:%M %Z").to_string())
        .collect()
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A crontab weekday field with numbers (0-7, Sunday 0 or 7; ranges, lists, steps) as the
/// names the cron crate reads without doubt; names and `*` alone pass as they are.
fn crontab_weekdays(field: &str) -> Result<String, FieldError> {
    if !field.bytes().any(|b| b.is_ascii_digit()) {
        return Ok(field.to_string());
    }
    let day = |t: &str| -> Result<usize, FieldError> {
        match t.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(n % 7),
            _ => Err(FieldError::Weekday(t.into())),
        }
    };
    let mut out: Vec<String> = Vec::new();
    for part in field.split(',') {
        if part.bytes().any(|b| b.is_ascii_alphabetic()) {
            out.push(part.to_string());
            continue;
        }
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => match s.parse::<usize>() {
                Ok(n) if n >= 1 => (b, n),
                _ => {
                    return Err(FieldError::Step {
                        name: "weekday",
                        step: s.into(),
                    })
                }
            },
            None => (part, 1),
        };
        let (from, to) = match base {
            "*" => (0, 6),
            b => match b.split_once('-') {
                // A range is read before 7 becomes 0: `5-7` is Friday to Sunday.
                Some((a, z)) => (
                    day(a)?.max(usize::from(a == "7") * 7),
                    day(z)?.max(usize::from(z == "7") * 7),
                ),
                // `N/S` runs from N to the end of the week (Sunday as 7).
                None if part.contains('/') => (day(b)?, 7),
                None => (day(b)?, day(b)?),
            },
        };
        if from > to {
            return Err(FieldError::Backwards(base.into()));
        }
        for d in (from..=to).step_by(step) {
            let name = DAYS[d % 7].to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out.join(","))
}

/// Parse a size such as `32MiB`, `500KiB`, `1GiB` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(SizeError::Unit(text.into())),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(SizeError::Number(text.into())),
    }
}
