//! Why a target operation failed, below octostage's words: what the API server, the client or
//! the file system said, kept as a typed value with its text redacted when it was made.
//!
//! A `kube::Error` or a transport error prints the request it failed on, and a request's URL
//! or headers can hold credentials. Keeping that error as a `#[source]` would let any printer
//! of the chain show them; so the cause keeps what callers decide on (the API's code and
//! reason, the file system's error kind, a timeout) and text that went through
//! [`crate::redact::text`], and ends the chain.

use std::fmt;

/// What kind of failure a [`Cause`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CauseKind {
    /// The API server answered with a Status: its HTTP code and reason (`NotFound`,
    /// `Forbidden`, ...).
    Api {
        /// HTTP status code.
        code: u16,
        /// The Status's reason.
        reason: String,
    },
    /// A file or directory of a dir target: the system's kind of error.
    File(std::io::ErrorKind),
    /// It did not finish within its bound.
    Timeout,
    /// A target that cannot do it (a dir target has no Secret to copy).
    Unsupported,
    /// Anything else (no connection, a client's configuration, a missing object): the text
    /// says.
    Other,
}

/// Why a target operation failed: its kind, and its redacted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    kind: CauseKind,
    text: String,
}

impl Cause {
    /// `text` (redacted) of `kind`.
    pub fn new(kind: CauseKind, text: impl fmt::Display) -> Cause {
        Cause {
            kind,
            text: crate::redact::text(&text.to_string()).into_owned(),
        }
    }

    /// A client error: the API server's own words and code for a Status, else the client's
    /// message.
    pub fn kube(e: &kube::Error) -> Cause {
        match e {
            kube::Error::Api(s) => Cause::new(
                CauseKind::Api {
                    code: s.code,
                    reason: s.reason.clone(),
                },
                format_args!("{} ({} {})", s.message, s.code, s.reason),
            ),
            _ => Cause::new(CauseKind::Other, e),
        }
    }

    /// A file system error.
    pub fn io(e: &std::io::Error) -> Cause {
        Cause::new(CauseKind::File(e.kind()), e)
    }

    /// Anything else that failed, in its words.
    pub fn other(text: impl fmt::Display) -> Cause {
        Cause::new(CauseKind::Other, text)
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> &CauseKind {
        &self.kind
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The end of the chain: what the cause came from is not kept (see the module).
impl std::error::Error for Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_keeps_the_api_code_and_never_a_credential() {
        let e = kube::Error::Api(
            kube::core::Status::failure("no access for https://u:s3cret@h/x", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let c = Cause::kube(&e);
        assert_eq!(
            c.kind(),
            &CauseKind::Api {
                code: 403,
                reason: "Forbidden".into()
            }
        );
        assert!(!c.to_string().contains("s3cret"), "{c}");
        assert!(c.to_string().contains("(403 Forbidden)"), "{c}");
        let io = Cause::io(&std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(
            io.kind(),
            &CauseKind::File(std::io::ErrorKind::PermissionDenied)
        );
        assert!(std::error::Error::source(&c).is_none());
    }
}
