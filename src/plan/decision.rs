//! Why a staging gets what the plan gives it, as types: [`Why`] says what led to the action,
//! [`Hold`] which safety rule holds a deletion back. Text is made only at the edges (tables,
//! logs); the JSON of a plan and the record on a staging carry the types, in a stable
//! machine-readable form (`{"code": "new-commit", "commit": "1a2b3c4"}`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::text::{human, human_std, rfc3339};

/// What led to a staging's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Why {
    /// A branch without a staging.
    NewBranch {
        /// Its head, short.
        commit: String,
    },
    /// A static staging without one.
    Static {
        /// Its commit, short.
        commit: String,
    },
    /// The branch moved.
    NewCommit {
        /// The new head, short.
        commit: String,
    },
    /// An expired staging's branch is active again.
    ActiveAgain {
        /// The new head that woke it, short, when a commit did (else an extension).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
    },
    /// Its namespace template now gives another namespace.
    NamespaceMove {
        /// Where it lives.
        from: String,
        /// Where it goes.
        to: String,
    },
    /// Nothing to do.
    UpToDate,
    /// No activity for longer than its time to live.
    Idle {
        /// Seconds since the last activity.
        idle_seconds: i64,
        /// Its time to live, seconds.
        ttl_seconds: u64,
    },
    /// A static staging's `until` has passed.
    UntilPassed {
        /// The `until` time.
        until: DateTime<Utc>,
    },
    /// Expired and kept through its retention.
    Retained {
        /// Why it expired.
        cause: Box<Why>,
        /// Its retention, seconds.
        retention_seconds: u64,
        /// When it is deleted.
        delete_at: Option<DateTime<Utc>>,
        /// Whether it expires in this pass (else it already had).
        now: bool,
    },
    /// Put to sleep.
    Asleep {
        /// Why.
        cause: crate::plan::SleepCause,
        /// Until when, if known (the schedule's wake time, never for a manual sleep).
        until: Option<DateTime<Utc>>,
    },
    /// Woken.
    Awake {
        /// Why: its schedule's wake time, or `octostage wake`.
        by: WakeCause,
        /// Until when, if it sleeps again.
        until: Option<DateTime<Utc>>,
    },
    /// Every workload is ready.
    Healthy,
    /// Not ready any more (or again after a change).
    NotReady,
    /// A Job failed, or not ready past its health deadline.
    Unhealthy {
        /// What is wrong.
        reason: String,
    },
    /// A branch that gets no staging.
    NotCreated {
        /// Why not.
        cause: Box<Why>,
    },
    /// Beyond `max_stagings`.
    OverCap {
        /// The cap.
        max: u32,
    },
    /// Beyond a cap over all environments (`limits.max_stagings` or `limits.max_awake`).
    OverLimit {
        /// Which: `max_stagings` or `max_awake`.
        cap: String,
        /// The cap.
        max: u32,
    },
    /// Its branch is gone.
    BranchDeleted,
    /// Its branch is excluded.
    Excluded {
        /// The matching exclude pattern.
        pattern: String,
    },
    /// Its branch is no longer included.
    NotIncluded,
    /// The branch's head commit has a `Staging: skip` trailer.
    TrailerSkip,
    /// No open pull request (with the labels asked for) has this branch as its head any more.
    PullRequestClosed,
    /// An image of `wait_for` is not in its registry yet (or could not be asked for).
    WaitingForImage {
        /// The image.
        image: String,
        /// Why it is not known to be there: missing, or the registry's error.
        detail: String,
        /// Given up: asked for longer than `give_up` after the commit's time.
        gave_up: bool,
    },
    /// Its static staging is gone from the configuration.
    StaticRemoved {
        /// The static staging's name.
        name: String,
    },
    /// Its environment is gone from the configuration.
    EnvironmentRemoved {
        /// The environment.
        environment: String,
    },
    /// Its environment's repository could not be listed.
    SourceFailed {
        /// Why.
        error: String,
    },
    /// Its static pin does not resolve.
    PinMissing {
        /// Why.
        error: String,
    },
    /// Its branch is listed but cannot be read.
    BranchUnreadable {
        /// The branch.
        branch: String,
    },
    /// A rule of the plan blocks it (see its error).
    Blocked,
    /// Planned as up to date, but rendering changed objects (a template, a value, a render
    /// command's output): known only once rendered, so the pass's outcome says it.
    Rendered {
        /// The first changed objects (`Kind/name`).
        changes: Vec<String>,
        /// How many more changed.
        more: usize,
    },
    /// Planned as up to date, but objects were changed by hand and put back.
    Restored {
        /// The first restored objects.
        changes: Vec<String>,
        /// How many more.
        more: usize,
    },
}

/// What woke a staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeCause {
    /// Its schedule's wake time (or its schedule was removed).
    Schedule,
    /// `octostage wake`.
    Request,
    /// Room under `max_awake`.
    Room,
}

/// `a, b, c and 2 more`.
fn listed(changes: &[String], more: usize) -> String {
    let list = changes.join(", ");
    if more > 0 {
        format!("{list} and {more} more")
    } else {
        list
    }
}

impl Why {
    /// The reasons of the lifecycle: kept after expiry, asleep, awake.
    fn fmt_lifecycle(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let until = |u: &Option<DateTime<Utc>>| {
            u.map(|u| format!(" until {}", rfc3339(u)))
                .unwrap_or_default()
        };
        match self {
            Why::Retained {
                cause,
                retention_seconds,
                delete_at,
                now,
            } => {
                let when = delete_at
                    .map(|d| format!("; deleted at {}", rfc3339(d)))
                    .unwrap_or_default();
                if *now {
                    let r = human_std(std::time::Duration::from_secs(*retention_seconds));
                    write!(f, "{cause}; kept until deletion (retention {r}){when}")
                } else {
                    write!(f, "expired, kept: {cause}{when}")
                }
            }
            Why::Asleep { cause, until: u } => {
                let until = until(u);
                match cause {
                    crate::plan::SleepCause::Schedule => write!(f, "sleep schedule{until}"),
                    crate::plan::SleepCause::Manual => {
                        f.write_str("put to sleep by `octostage sleep`; `octostage wake` wakes it")
                    }
                    crate::plan::SleepCause::Cap => {
                        write!(f, "over max_awake: the least recently active sleep{until}")
                    }
                    crate::plan::SleepCause::Trailer => f.write_str(
                        "head commit says `Staging: sleep`; a new commit or `octostage wake` wakes it",
                    ),
                }
            }
            Why::Awake { by, until: u } => {
                let until = until(u);
                match by {
                    WakeCause::Schedule => write!(f, "sleep schedule: awake{until}"),
                    WakeCause::Request => write!(f, "woken by `octostage wake`{until}"),
                    WakeCause::Room => write!(f, "room under max_awake{until}"),
                }
            }
            // Only the three above are passed here (see `fmt`).
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::NewBranch { commit } => write!(f, "new branch at {commit}"),
            Why::Static { commit } => write!(f, "static staging at {commit}"),
            Why::NewCommit { commit } => write!(f, "new commit {commit}"),
            Why::ActiveAgain { commit: None } => f.write_str("active again"),
            Why::ActiveAgain { commit: Some(c) } => write!(f, "active again: new commit {c}"),
            Why::NamespaceMove { from, to } => write!(f, "namespace changes from {from} to {to}"),
            Why::UpToDate => f.write_str("up to date"),
            Why::Idle {
                idle_seconds,
                ttl_seconds,
            } => write!(
                f,
                "no activity for {} (ttl {})",
                human(chrono::Duration::seconds(*idle_seconds)),
                human_std(std::time::Duration::from_secs(*ttl_seconds))
            ),
            Why::UntilPassed { until } => {
                write!(f, "its until time {} has passed", rfc3339(*until))
            }
            Why::Retained { .. } | Why::Asleep { .. } | Why::Awake { .. } => self.fmt_lifecycle(f),
            Why::Healthy => f.write_str("every workload is ready"),
            Why::NotReady => f.write_str("not every workload is ready"),
            Why::Unhealthy { reason } => write!(f, "failing: {reason}"),
            Why::NotCreated { cause } => write!(f, "not created: {cause}"),
            Why::OverCap { max } => write!(f, "over max_stagings ({max}); least recently active"),
            Why::OverLimit { cap, max } => write!(
                f,
                "over limits.{cap} ({max}) of all environments; least recently active"
            ),
            Why::BranchDeleted => f.write_str("branch deleted"),
            Why::Excluded { pattern } => write!(f, "excluded by pattern {pattern:?}"),
            Why::NotIncluded => f.write_str("no longer matched by branches.include"),
            Why::TrailerSkip => f.write_str("head commit says `Staging: skip`"),
            Why::WaitingForImage {
                image,
                detail,
                gave_up,
            } => {
                let what = if *gave_up {
                    "gave up waiting for"
                } else {
                    "waiting for"
                };
                write!(f, "{what} image {image} ({detail})")
            }
            Why::PullRequestClosed => {
                f.write_str("no open pull request (with the labels asked for) for this branch")
            }
            Why::StaticRemoved { name } => {
                write!(f, "static staging {name:?} removed from the configuration")
            }
            Why::EnvironmentRemoved { environment } => {
                write!(
                    f,
                    "environment {environment:?} removed from the configuration"
                )
            }
            Why::SourceFailed { error } => {
                write!(f, "source failed, staging kept as it is: {error}")
            }
            Why::PinMissing { error } => write!(f, "{error}; static staging kept as it is"),
            Why::BranchUnreadable { branch } => write!(
                f,
                "branch {branch:?} is listed but cannot be read; staging kept as it is"
            ),
            Why::Blocked => f.write_str("blocked"),
            Why::Rendered { changes, more } => {
                write!(f, "rendered objects changed: {}", listed(changes, *more))
            }
            Why::Restored { changes, more } => {
                write!(f, "changed by hand, restored: {}", listed(changes, *more))
            }
        }
    }
}

/// A safety rule that holds a deletion back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Hold {
    /// The listing lost more than `safety.max_branch_loss_percent` at once.
    MassLoss {
        /// Branch stagings that lost their branch.
        lost: usize,
        /// Branch stagings of the environment.
        total: usize,
        /// The limit, percent.
        limit: u32,
    },
    /// The repository listed no branches at all.
    EmptyListing,
    /// The environment is not in the configuration.
    EnvironmentGone {
        /// The environment.
        environment: String,
    },
    /// `safety.max_deletions_per_pass` was reached in this pass.
    Deferred {
        /// The limit.
        max: u32,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::MassLoss { lost, total, limit } => write!(
                f,
                "{lost} of {total} branch stagings lost their branch at once (more than safety.max_branch_loss_percent, {limit}%)"
            ),
            Hold::EmptyListing => f.write_str("the repository listed no branches at all"),
            Hold::EnvironmentGone { environment } => {
                write!(f, "environment {environment:?} is not in the configuration")
            }
            Hold::Deferred { max } => write!(
                f,
                "deferred to a later pass (safety.max_deletions_per_pass is {max})"
            ),
        }
    }
}

impl Hold {
    /// The whole sentence for a deletion this rule holds, with what to do.
    pub fn explain(&self, why: &Why) -> String {
        match self {
            Hold::Deferred { max } => format!(
                "deletion deferred to a later pass (safety.max_deletions_per_pass is {max}): {why}"
            ),
            other => format!(
                "{why}, but deletion held: {other}; if that is right, run once with --confirm-deletions"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before_and_serialize_by_code() {
        let w = Why::Idle {
            idle_seconds: 9 * 86_400,
            ttl_seconds: 7 * 86_400,
        };
        assert_eq!(w.to_string(), "no activity for 9d (ttl 7d)");
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({"code": "idle", "idle_seconds": 777600, "ttl_seconds": 604800})
        );
        let held = Hold::EmptyListing.explain(&Why::BranchDeleted);
        assert_eq!(held, "branch deleted, but deletion held: the repository listed no branches at all; if that is right, run once with --confirm-deletions");
        let back: Why =
            serde_json::from_str(r#"{"code":"new-commit","commit":"1a2b3c4"}"#).unwrap();
        assert_eq!(
            back,
            Why::NewCommit {
                commit: "1a2b3c4".into()
            }
        );
    }
}
