//! Retrying requests: which failures are worth repeating, and the backoff between attempts.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::warn;

/// Whether a failed request is worth repeating: write conflicts, throttling, server errors,
/// transport. An object that already exists, or whose UID is not the one octostage saw, is an
/// answer, not a hiccup.
pub(super) fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) if s.code == 409 => !precondition(e) && !already_exists(e),
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        // A write the lease gate refused is final: trying again is the next leader's job.
        kube::Error::Service(_) if super::gating::refused(e) => false,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A 409 for an object that already exists.
pub(super) fn already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// A UID precondition that failed: the object is gone, or it is another object now.
pub(super) fn precondition(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if (s.code == 409 || s.code == 422)
        && (s.message.to_ascii_lowercase().contains("uid")
            || s.message.contains("Precondition failed")))
}

/// Attempts per request, and the first pause between them (doubling after each).
const RETRY_ATTEMPTS: u32 = 5;
pub(super) const RETRY_FIRST_DELAY: Duration = Duration::from_millis(200);

/// Call `f` until it succeeds, fails in a way `retry` rejects, or has been tried
/// [`RETRY_ATTEMPTS`] times, pausing `delay`, then twice that, and so on; counts every attempt.
pub(super) async fn with_retries<T, F, Fut>(
    attempts: &AtomicU64,
    mut delay: Duration,
    f: F,
    retry: impl Fn(&kube::Error) -> bool,
) -> Result<T, kube::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    for attempt in 1..=RETRY_ATTEMPTS {
        attempts.fetch_add(1, Ordering::Relaxed);
        match f().await {
            Err(e) if attempt < RETRY_ATTEMPTS && retry(&e) => {
                warn!(attempt, error = %e, "request failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            r => return r,
        }
    }
    unreachable!("the last attempt returns")
}

pub(super) fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: format!("status {code}"),
            ..Default::default()
        }))
    }

    /// Fails with `codes` in turn, then succeeds.
    async fn run(
        codes: &[u16],
        retry: impl Fn(&kube::Error) -> bool,
    ) -> (Result<u32, kube::Error>, u64) {
        let calls = AtomicU32::new(0);
        let attempts = AtomicU64::new(0);
        let r = with_retries(
            &attempts,
            Duration::from_millis(1),
            || async {
                let n = calls.fetch_add(1, Ordering::Relaxed) as usize;
                match codes.get(n) {
                    Some(&c) => Err(status(c)),
                    None => Ok(n as u32),
                }
            },
            retry,
        )
        .await;
        (r, attempts.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn existing_objects_and_failed_preconditions_are_answers() {
        let exists = kube::Error::Api(Box::new(kube::core::Status {
            code: 409,
            reason: "AlreadyExists".into(),
            ..Default::default()
        }));
        assert!(!retryable(&exists) && already_exists(&exists));
        let uid = kube::Error::Api(Box::new(kube::core::Status {
            code: 409,
            reason: "Conflict".into(),
            message: "uid mismatch: the provided object specified uid x, and no existing object was found".into(),
            ..Default::default()
        }));
        assert!(!retryable(&uid) && precondition(&uid));
    }

    #[tokio::test]
    async fn conflicts_throttling_and_server_errors_are_retried() {
        let (r, attempts) = run(&[409, 429, 503], retryable).await;
        assert_eq!((r.unwrap(), attempts), (3, 4));
    }

    #[tokio::test]
    async fn client_errors_fail_at_once_and_retries_stop() {
        let (r, attempts) = run(&[403], retryable).await;
        assert!(r.is_err() && attempts == 1);
        let (r, attempts) = run(&[404], retryable).await;
        assert!(r.is_err() && attempts == 1, "a plain 404 is an answer");
        let (r, attempts) = run(&[404, 404], |e| retryable(e) || not_found(e)).await;
        assert_eq!(
            (r.unwrap(), attempts),
            (2, 3),
            "applies into a new namespace retry 404"
        );
        let (r, attempts) = run(&[500; 9], retryable).await;
        assert!(r.is_err());
        assert_eq!(attempts, u64::from(RETRY_ATTEMPTS));
    }
}
