//! What people ask of one staging (`octostage sleep`, `wake`, `extend`): checked here, recorded
//! on the staging by its target, and acted on by the next pass like every other input, so a
//! request survives restarts, shows in `status` and never bypasses the planner's rules.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use crate::config::Config;
use crate::plan::{Extension, Requests, StagingRecord, State, Wake};
use crate::targets::{Target, TargetError};
use crate::text::{human_std, rfc3339};

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Sleep until woken.
    Sleep,
    /// Wake, for a while or until the schedule's next sleep time.
    Wake(Option<Duration>),
    /// Keep for this long from now, at most `max` (the staging's `max_extension`). A longer
    /// extension already recorded stands unless `replace`.
    Extend {
        /// How long.
        duration: Duration,
        /// Its `max_extension`.
        max: Duration,
        /// Replace a longer extension (shorten it).
        replace: bool,
    },
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No such staging of this instance.
    #[error("staging {name:?} is not in the target{}; see `octostage status`", suggest(.near))]
    NotFound {
        /// What was asked for.
        name: String,
        /// The closest names there are.
        near: Vec<String>,
    },
    /// A branch or prefix that names several stagings.
    #[error("{name:?} names {} stagings: {}; give one of them", .matches.len(), .matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        name: String,
        /// The stagings it names.
        matches: Vec<String>,
    },
    /// Its environment or static staging is not in the configuration any more.
    #[error("staging {0:?} is not in the configuration any more, so it has no max_extension; it will be deleted")]
    NotConfigured(String),
    /// Longer than `max_extension`.
    #[error("staging {name:?} cannot be extended by {asked}: its max_extension is {max}; ask for at most {max}, or raise max_extension in environments.yaml")]
    TooLong {
        /// The staging.
        name: String,
        /// What was asked.
        asked: String,
        /// The limit.
        max: String,
    },
    /// Waking an expired staging does not keep it.
    #[error("staging {name:?} has expired and is asleep until it is deleted{when}; `octostage extend {name} DURATION` keeps and wakes it")]
    Expired {
        /// The staging.
        name: String,
        /// `; deleted at ...`.
        when: String,
    },
    /// A duration past any date there is.
    #[error("{0} is longer than octostage keeps anything (100 years); ask for less")]
    Unreasonable(String),
    /// Others kept changing the staging's requests.
    #[error("staging {0:?} kept changing while its request was written; try again")]
    Busy(String),
    /// The target refused or failed.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// When a wake for `d` from `now` ends, if that is a time at all.
fn wake_until(now: DateTime<Utc>, d: std::time::Duration) -> Result<DateTime<Utc>, AskError> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .filter(|_| d <= crate::consts::MAX_DURATION)
        .filter(|u| u.year() < 10_000)
        .ok_or_else(|| AskError::Unreasonable(human_std(d)))
}

/// The requests of `record` after `ask` at `now`, and what the next pass will do, as a sentence.
pub fn apply(
    record: &StagingRecord,
    ask: Ask,
    now: DateTime<Utc>,
) -> Result<(Requests, String), AskError> {
    let name = &record.name;
    let mut r = record.requests.clone();
    let said = match ask {
        Ask::Sleep => {
            r.sleep = Some(now);
            r.wake = None;
            format!("{name}: asleep from the next pass, until `octostage wake {name}`")
        }
        Ask::Wake(_) if record.state == State::Expired => {
            return Err(AskError::Expired {
                name: name.clone(),
                when: record
                    .delete_at
                    .map(|d| format!(" at {}", rfc3339(d)))
                    .unwrap_or_default(),
            })
        }
        Ask::Wake(d) => {
            let until = d.map(|d| wake_until(now, d)).transpose()?;
            r.wake = Some(Wake { at: now, until });
            match until {
                Some(u) if r.sleep.is_some() => format!(
                    "{name}: awake from the next pass until {}, then asleep again until `octostage wake {name}`",
                    rfc3339(u)
                ),
                Some(u) => format!("{name}: awake from the next pass until {}", rfc3339(u)),
                None => {
                    // A wake without a duration lifts a manual sleep.
                    r.sleep = None;
                    format!("{name}: awake from the next pass until its schedule's next sleep time, if it has one")
                }
            }
        }
        Ask::Extend {
            duration,
            max,
            replace,
        } => {
            if duration > max {
                return Err(AskError::TooLong {
                    name: name.clone(),
                    asked: human_std(duration),
                    max: human_std(max),
                });
            }
            let until = chrono::Duration::from_std(duration)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| AskError::Unreasonable(human_std(duration)))?;
            match r.keep_until {
                // Extending never shortens by surprise: 2d, then 1s, keeps the 2d.
                Some(longer) if longer.until > until && !replace => format!(
                    "{name}: already kept until {}, later than {} from now; nothing changed (`--replace` shortens it)",
                    rfc3339(longer.until),
                    human_std(duration)
                ),
                _ => {
                    r.keep_until = Some(Extension { at: now, until });
                    format!(
                        "{name}: kept at least until {} from the next pass",
                        rfc3339(until)
                    )
                }
            }
        }
    };
    Ok((r, said))
}

/// What keeps a staging asleep though it was woken: an awake cap of 0 for its environment or
/// for all environments (a cap above 0 depends on the others, which the next pass weighs).
pub fn kept_asleep_by(config: &Config, record: &StagingRecord) -> Option<String> {
    let env = config.environment(&record.environment)?;
    match (env.max_awake, config.limits.max_awake) {
        (Some(0), _) => Some(format!(
            "environment {} has max_awake: 0, which keeps it asleep whatever is asked",
            record.environment
        )),
        (_, Some(0)) => {
            Some("limits.max_awake is 0, which keeps it asleep whatever is asked".into())
        }
        _ => None,
    }
}

/// The `max_extension` of a staging, from the configuration it was made from.
pub fn max_extension(config: &Config, record: &StagingRecord) -> Result<Duration, AskError> {
    let gone = || AskError::NotConfigured(record.name.clone());
    let env = config.environment(&record.environment).ok_or_else(gone)?;
    let settings = match &record.static_name {
        Some(s) => env
            .statics
            .iter()
            .find(|st| &st.name == s)
            .ok_or_else(gone)?
            .settings
            .clone(),
        None => env.settings_for(&record.branch),
    };
    Ok(settings.max_extension)
}

fn suggest(near: &[String]) -> String {
    match near {
        [] => String::new(),
        [one] => format!(" (did you mean {one}?)"),
        many => format!(" (did you mean one of {}?)", many.join(", ")),
    }
}

/// The staging `asked` names among `live` stagings (name, branch): its name, else its branch
/// (`feature/login`), else a unique prefix of a name; else what is closest to it.
pub fn resolve(asked: &str, live: &[(String, String)]) -> Result<String, AskError> {
    if live.iter().any(|(n, _)| n == asked) {
        return Ok(asked.to_string());
    }
    let pick = |matches: Vec<String>| match matches.len() {
        0 => None,
        1 => Some(Ok(matches[0].clone())),
        _ => Some(Err(AskError::Ambiguous {
            name: asked.to_string(),
            matches,
        })),
    };
    let by_branch = live
        .iter()
        .filter(|(_, b)| b == asked)
        .map(|(n, _)| n.clone())
        .collect();
    if let Some(r) = pick(by_branch) {
        return r;
    }
    let by_prefix = live
        .iter()
        .filter(|(n, _)| n.starts_with(asked))
        .map(|(n, _)| n.clone())
        .collect();
    if let Some(r) = pick(by_prefix) {
        return r;
    }
    let mut near: Vec<(f64, String)> = live
        .iter()
        .flat_map(|(n, b)| {
            let score = strsim::jaro_winkler(asked, n).max(strsim::jaro_winkler(asked, b));
            (score > 0.8).then(|| (score, n.clone()))
        })
        .collect();
    near.sort_by(|a, b| b.0.total_cmp(&a.0));
    Err(AskError::NotFound {
        name: asked.to_string(),
        near: near.into_iter().take(3).map(|(_, n)| n).collect(),
    })
}

/// Attempts at writing a request while others change it.
const SWAP_ATTEMPTS: usize = 8;

/// Find staging `name` in `target`, apply `ask` and record the result.
pub async fn record(
    target: &dyn Target,
    name: &str,
    ask: impl FnOnce(&StagingRecord) -> Result<Ask, AskError>,
    now: DateTime<Utc>,
) -> Result<String, AskError> {
    record_noting(target, name, ask, now, None).await
}

/// [`record`], and when `config` is known, a wake that a cap of 0 undoes says so.
pub async fn record_noting(
    target: &dyn Target,
    name: &str,
    ask: impl FnOnce(&StagingRecord) -> Result<Ask, AskError>,
    now: DateTime<Utc>,
    config: Option<&Config>,
) -> Result<String, AskError> {
    // Whole seconds, as every time octostage records.
    let now = chrono::Timelike::with_nanosecond(&now, 0).unwrap_or(now);
    let mut ask = Some(ask);
    let mut chosen = None;
    // Compare and swap: another request (or a pass) in between means read again.
    let mut name = name.to_string();
    for _ in 0..SWAP_ATTEMPTS {
        let status = target.status().await?;
        let live: Vec<(String, String)> = status
            .stagings
            .iter()
            .filter(|s| s.deleting.is_none())
            .map(|s| (s.staging.name.clone(), s.staging.branch.clone()))
            .collect();
        name = resolve(&name, &live)?;
        let record = status
            .stagings
            .into_iter()
            .find(|s| s.staging.name == name && s.deleting.is_none())
            .ok_or_else(|| AskError::NotFound {
                name: name.clone(),
                near: vec![],
            })?
            .staging;
        let what = match (chosen, ask.take()) {
            (Some(a), _) => a,
            (None, Some(f)) => f(&record)?,
            (None, None) => unreachable!("the first attempt chooses"),
        };
        chosen = Some(what);
        let (requests, said) = apply(&record, what, now)?;
        if target.request(&name, &record.requests, &requests).await? {
            let cap = match (what, config) {
                (Ask::Wake(_), Some(c)) => kept_asleep_by(c, &record),
                _ => None,
            };
            return Ok(match cap {
                Some(why) => format!("{said}; but it stays asleep: {why}"),
                None => said,
            });
        }
    }
    Err(AskError::Busy(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: State) -> StagingRecord {
        serde_json::from_value(serde_json::json!({
            "name": "shop-a", "environment": "shop", "branch": "a", "namespace": "shop-a",
            "commit": "0", "first_seen": "2026-11-26T00:00:00Z", "state": state,
        }))
        .unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn an_extension_beyond_max_extension_is_refused_and_within_it_recorded() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let r = record(State::Active);
        let e = apply(
            &r,
            Ask::Extend {
                duration: 8 * DAY,
                max: 7 * DAY,
                replace: false,
            },
            now,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "staging \"shop-a\" cannot be extended by 8d: its max_extension is 7d; ask for at most 7d, or raise max_extension in environments.yaml");
        let (q, _) = apply(
            &r,
            Ask::Extend {
                duration: 3 * DAY,
                max: 7 * DAY,
                replace: false,
            },
            now,
        )
        .unwrap();
        assert_eq!(
            q.keep_until.unwrap().until,
            "2026-11-29T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn a_shorter_extension_never_replaces_a_longer_one_unless_asked() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ext = |d: Duration, replace| Ask::Extend {
            duration: d,
            max: 7 * DAY,
            replace,
        };
        let mut r = record(State::Active);
        (r.requests, _) = apply(&r, ext(2 * DAY, false), now).unwrap();
        let (q, said) = apply(&r, ext(Duration::from_secs(1), false), now).unwrap();
        assert_eq!(q.keep_until, r.requests.keep_until, "{said}");
        assert!(
            said.contains("already kept until 2026-11-28T12:00:00Z"),
            "{said}"
        );
        assert!(said.contains("--replace"), "{said}");
        let (q, said) = apply(&r, ext(Duration::from_secs(1), true), now).unwrap();
        assert_eq!(
            q.keep_until.unwrap().until,
            "2026-11-26T12:00:01Z".parse::<DateTime<Utc>>().unwrap(),
            "{said}"
        );
        // A longer one replaces a shorter one.
        let (q, _) = apply(&r, ext(3 * DAY, false), now).unwrap();
        assert_eq!(
            q.keep_until.unwrap().until,
            "2026-11-29T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // A hundred years, as humantime writes them, is taken for a wake.
        let hundred = humantime::parse_duration("100y").unwrap();
        assert!(apply(&r, Ask::Wake(Some(hundred)), now).is_ok());
    }

    #[test]
    fn a_staging_is_named_by_its_name_its_branch_or_a_unique_prefix() {
        let live: Vec<(String, String)> = [
            ("shop-feature-login", "feature/login"),
            ("shop-feature-logout", "feature/logout"),
            ("api-feature-login", "feature/login"),
            ("shop-main", "main"),
        ]
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_string()))
        .collect();
        assert_eq!(resolve("shop-main", &live).unwrap(), "shop-main");
        assert_eq!(resolve("main", &live).unwrap(), "shop-main");
        assert_eq!(
            resolve("shop-feature-logo", &live).unwrap(),
            "shop-feature-logout"
        );
        // Two environments build feature/login: both are named, and neither is chosen.
        let e = resolve("feature/login", &live).unwrap_err().to_string();
        assert!(
            e.contains("shop-feature-login") && e.contains("api-feature-login"),
            "{e}"
        );
        let e = resolve("shop-feature-lgin", &live).unwrap_err().to_string();
        assert!(e.contains("did you mean one of shop-feature-login,"), "{e}");
        let e = resolve("nothing-like-it", &live).unwrap_err().to_string();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn sleep_and_wake_replace_each_other_and_an_expired_staging_is_not_woken() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let mut r = record(State::Active);
        (r.requests, _) = apply(&r, Ask::Sleep, now).unwrap();
        assert_eq!((r.requests.sleep, r.requests.wake), (Some(now), None));
        (r.requests, _) = apply(&r, Ask::Wake(Some(Duration::from_secs(3600))), now).unwrap();
        assert!(matches!(r.requests.wake, Some(Wake { until: Some(_), .. })));
        assert!(matches!(
            apply(&record(State::Expired), Ask::Wake(None), now),
            Err(AskError::Expired { .. })
        ));
    }
}
