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
    /// Commit statuses on the staging's commit, if set.
    pub commit_status: Option<CommitStatus>,
}

/// Which forge's API sets commit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// GitHub (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    Github,
    /// GitLab (`POST /projects/{id}/statuses/{sha}`).
    Gitlab,
    /// Gitea and Forgejo (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    Gitea,
}

impl Provider {
    /// Its name in environments.yaml.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Gitea => "gitea",
        }
    }
}

/// Where a token is read when sending (never stored).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A file (its contents, trimmed).
    File(std::path::PathBuf),
}

/// Pull requests as the source of an environment's branches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PullRequests {
    /// The forge.
    pub provider: Provider,
    /// API base URL, without a trailing slash.
    pub api_url: String,
    /// `owner/repo` (GitLab: the project's path); `None`: from the repository URL.
    pub repository: Option<String>,
    /// The token.
    pub token: TokenSource,
    /// Labels that opt a pull request in; empty: every open pull request.
    pub labels: Vec<String>,
}

impl TokenSource {
    /// The secret, read now: one line, at most 64 KiB read (a file named by mistake, or a
    /// device, costs nothing). Errors name where it should be, never a value.
    pub fn read(&self) -> Result<String, TokenError> {
        use std::io::Read;
        let value = match self {
            TokenSource::Env(name) => {
                std::env::var(name).map_err(|_| TokenError::Unset(name.clone()))?
            }
            TokenSource::File(path) => {
                let mut buf = String::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(64 << 10).read_to_string(&mut buf))
                    .map_err(|e| TokenError::Unreadable(path.clone(), e.kind()))?;
                buf
            }
        };
        let value = value.trim().to_string();
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(TokenError::NotOneLine);
        }
        Ok(value)
    }
}

/// Why a token could not be read. Names where it should be, never a value: an I/O error is
/// kept as its kind alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// The file cannot be read.
    #[error("cannot read {}: {kind}", .0.display(), kind = .1)]
    Unreadable(std::path::PathBuf, std::io::ErrorKind),
    /// Empty, or more than one line.
    #[error("the secret is empty or not one line")]
    NotOneLine,
}

/// Commit statuses: the staging's state and first link on its commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitStatus {
    /// The forge.
    pub provider: Provider,
    /// API base URL, without a trailing slash (`https://api.github.com`,
    /// `https://gitlab.example.com/api/v4`, `https://gitea.example.com/api/v1`).
    pub api_url: String,
    /// `owner/repo` (GitLab: the project's path); `None`: from the repository URL.
    pub repository: Option<String>,
    /// The token.
    pub token: TokenSource,
    /// The status's name (`context`), a prefix: the environment is added (`octostage/shop`).
    pub context: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_one_line_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t");
        std::fs::write(&f, "tok\n").unwrap();
        assert_eq!(TokenSource::File(f.clone()).read().unwrap(), "tok");
        std::fs::write(&f, "a\nb").unwrap();
        assert!(TokenSource::File(f).read().is_err());
        // A device never ends: at most 64 KiB is read, then refused (not one line).
        let e = TokenSource::File("/dev/zero".into())
            .read()
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\0'), "{e}");
        let e = TokenSource::Env("OCTOSTAGE_NO_SUCH_VARIABLE_X".into())
            .read()
            .unwrap_err()
            .to_string();
        assert!(e.contains("OCTOSTAGE_NO_SUCH_VARIABLE_X"));
    }
}
