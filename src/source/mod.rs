//! Sources: the config repository (a directory or a git URL) and the application repositories'
//! branches (fetched with git2 into a local cache).

mod config_repo;
mod git;
pub mod pulls;
pub mod registry;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use config_repo::{ConfigSource, Snapshot};
pub use git::{check_app_path, default_cache_dir, ExportError, RepoCache, RepoListing};

/// A commit as octostage needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Full sha.
    pub sha: String,
    /// Committer time.
    pub time: DateTime<Utc>,
    /// Author name.
    pub author: String,
    /// First line of the message.
    pub subject: String,
    /// The value of the last `Staging:` trailer of the message, at most
    /// [`crate::consts::MAX_TRAILER`] bytes (longer ones are cut, and then refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steer: Option<String>,
}

impl Commit {
    /// A commit known only by the sha a staging records (and when it was first seen).
    pub fn recorded(sha: &str, seen: DateTime<Utc>) -> Commit {
        Commit {
            sha: sha.to_string(),
            time: seen,
            author: String::new(),
            subject: String::new(),
            steer: None,
        }
    }
}

/// A branch head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// Name without `refs/heads/`.
    pub name: String,
    /// Its head commit.
    pub commit: Commit,
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A git operation failed.
    #[error("{url}: {action} failed: {message}")]
    Git {
        /// The repository (never with credentials: they are not allowed in URLs).
        url: String,
        /// What was being done.
        action: &'static str,
        /// libgit2's message.
        message: String,
    },
    /// The application repository's files at a commit could not be exported.
    #[error("application repository at {commit}: {error}")]
    Export {
        /// The commit, short.
        commit: String,
        /// Why.
        error: git::ExportError,
    },
    /// A local file or directory problem.
    #[error("{path}: {message}")]
    Local {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a static staging's pin has no commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// No such branch in the listing.
    #[error("pinned branch {0:?} does not exist")]
    NoBranch(String),
    /// The listing did not look the commit up.
    #[error("pinned commit {0:?} was not looked up")]
    NotLookedUp(String),
    /// The mirror does not resolve it.
    #[error("{pin:?} is not a branch, a tag or a full commit sha of {repository} (a short sha resolves only where a branch points): {message}")]
    Unresolved {
        /// As written.
        pin: String,
        /// The repository (redacted).
        repository: String,
        /// libgit2's message, redacted.
        message: String,
    },
}

/// Why an environment's branches could not be listed: its stagings are kept as they are.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ListingError {
    /// The repository could not be read.
    #[error(transparent)]
    Source(std::sync::Arc<SourceError>),
    /// The listing's task failed.
    #[error("listing failed: {0}")]
    Task(std::sync::Arc<tokio::task::JoinError>),
    /// The listing took longer than the cache's timeout.
    #[error("{url}: listing did not finish within {} and was abandoned", humantime::format_duration(*after))]
    Abandoned {
        /// The repository (redacted).
        url: String,
        /// How long it was given.
        after: std::time::Duration,
    },
    /// The open pull requests could not be read.
    #[error("pull requests from {api}: {source}")]
    Pulls {
        /// The forge's API (redacted).
        api: String,
        /// Why.
        source: pulls::PullsError,
    },
}

/// Two failures are the same when they say the same: a pass that reads the sources again and
/// finds the same failure has nothing new to plan from.
impl PartialEq for ListingError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// A mapper of git2 errors for `action` on the repository shown as `shown` (already redacted);
/// the message is redacted too: libgit2 may quote the URL it was given.
pub(crate) fn git_err(shown: &str, action: &'static str) -> impl Fn(git2::Error) -> SourceError {
    let shown = shown.to_string();
    move |e: git2::Error| SourceError::Git {
        url: shown.clone(),
        action,
        message: crate::redact::url(e.message()),
    }
}

/// `owner/repo` (or a GitLab project path) from a repository URL (`https://host/a/b.git`,
/// `ssh://git@host/a/b`, `git@host:a/b.git`); `None` for a local path.
pub fn repository_of(url: &str) -> Option<String> {
    let rest = if let Some((_, r)) = url.split_once("://") {
        r.split_once('/')?.1
    } else if let Some((host, path)) = url.split_once(':') {
        if host.contains('/') {
            return None;
        }
        path
    } else {
        return None;
    };
    let path = rest
        .split(['?', '#'])
        .next()
        .unwrap_or(rest)
        .trim_matches('/')
        .trim_end_matches(".git");
    crate::config::validate::repo_path(path).then(|| path.to_string())
}
