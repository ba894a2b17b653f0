//! Why a notification did not arrive, and whether another attempt may be made.

use std::time::Duration;

/// Why an attempt failed: worth another (the receiver certainly did not take it), or not (it
/// may have: at most once wins over delivery).
pub(super) enum Fail {
    Retry(Undelivered),
    Final(Undelivered),
}

/// Why a notification did not arrive. Receivers are shown by host or by the variable that
/// holds their URL, never by a URL that may carry a secret.
#[derive(Debug, thiserror::Error)]
pub(super) enum Undelivered {
    /// A variable the configuration names is not set.
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// A webhook URL from the environment is unusable.
    #[error("the URL in {0} is not an http(s) URL without credentials or spaces")]
    BadUrl(String),
    /// The receiver answered with an error.
    #[error("{to} answered {status}{what}")]
    Answered {
        to: String,
        status: reqwest::StatusCode,
        /// What was asked, when it is not a notification (` to a commit status`).
        what: &'static str,
    },
    /// The receiver could not be reached.
    #[error("{0}: cannot connect")]
    Unreachable(String),
    /// No answer in time; the event may have arrived.
    #[error("{to}: no answer within {limit:?}; it may have arrived")]
    Late { to: String, limit: Duration },
    /// A commit status got no answer in time (setting it again is harmless).
    #[error("{0}: no answer in time")]
    LateStatus(String),
    /// Any other failure of the request, shown without its URL.
    #[error("{to}: {source}")]
    Request {
        to: String,
        #[source]
        source: reqwest::Error,
    },
    /// A commit status for an environment that names no repository.
    #[error("commit status: no repository for {0} (set `commit_status.repository`)")]
    NoRepository(String),
    /// The forge's token could not be read.
    #[error(transparent)]
    Token(#[from] crate::config::TokenError),
    /// The notification command is empty.
    #[error("empty command")]
    EmptyCommand,
    /// The notification command could not be started or waited for.
    #[error("{program}: {source}")]
    Command {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The notification command ran out of time; it was stopped with its processes.
    #[error("{program} did not finish within {limit:?} and was stopped with its processes")]
    CommandLate { program: String, limit: Duration },
    /// The notification command failed; the tail of its stderr, redacted.
    #[error("{program} exited with {status}: {said}")]
    CommandFailed {
        program: String,
        status: std::process::ExitStatus,
        said: String,
    },
}
