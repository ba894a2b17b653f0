//! Actions and webhooks that reach a replica which does not lead go on to the leader, already
//! checked here: as a typed action signed with a key both replicas derive from their shared
//! secrets (HMAC-SHA256 over a timestamp and the body), never with the caller's token or
//! signature, so a leader address planted in the Lease learns no secret. The leader's answer is
//! read as JSON, at most 64 KiB, and shown by this replica, never passed through.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State as Ax;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::perform::{perform, Act};
use super::{body, json_error, App};

/// A forwarded action older (or newer) than this is refused: a replay does nothing after it.
const FRESH: i64 = 60;
/// Most of a leader's answer read.
const MAX_ANSWER: usize = 64 << 10;
const SIGNATURE: &str = "x-octostage-forward-signature";
const SENT_AT: &str = "x-octostage-forwarded-at";

/// What is forwarded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub staging: Option<String>,
    pub act: Act,
    /// Unique per request: a replayed request (within [`FRESH`]) is refused.
    #[serde(default)]
    pub nonce: String,
}

/// The nonces of forwarded requests seen while they could still be replayed (sent within
/// [`FRESH`] either way): apart from webhook delivery ids, so that no flood of other requests
/// pushes one out early.
#[derive(Default)]
pub(crate) struct Nonces(std::sync::Mutex<std::collections::VecDeque<(String, i64)>>);

impl Nonces {
    /// Most nonces kept: past it, forwarded requests are refused until old ones expire.
    const MAX: usize = 100_000;

    /// `Some(true)` when `nonce` is new (and remembers it), `Some(false)` for a replay, `None`
    /// when too many are kept to tell.
    pub(crate) fn first_time(&self, nonce: &str, now: i64) -> Option<bool> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while seen.front().is_some_and(|(_, at)| now - at > 2 * FRESH) {
            seen.pop_front();
        }
        if seen.iter().any(|(n, _)| n == nonce) {
            return Some(false);
        }
        if seen.len() >= Self::MAX {
            return None;
        }
        seen.push_back((nonce.to_string(), now));
        Some(true)
    }
}

/// A nonce no other request of this process carries: the time, the process and a counter,
/// hashed (it needs to be unique, not secret; the body it is in is signed).
fn nonce() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    crate::naming::short_hash(&format!("{nanos} {} {n}", std::process::id()), 24)
}

/// The key of forwarded requests: derived from every secret this replica has, so only a
/// replica with the same Secret can sign; `None` without secrets (nothing to forward then).
fn key(app: &App) -> Option<[u8; 32]> {
    let o = &app.opts;
    let parts = [
        &o.token,
        &o.hooks.github,
        &o.hooks.gitea,
        &o.hooks.gitlab,
        &o.hooks.generic,
    ];
    if parts.iter().all(|p| p.is_none()) {
        return None;
    }
    let mut h = Sha256::new();
    h.update(b"octostage forwarding key v1");
    for p in parts {
        h.update([0]);
        if let Some(s) = p {
            h.update(s.bytes());
        }
    }
    Some(h.finalize().into())
}

fn sign(key: &[u8; 32], at: i64, body: &[u8]) -> String {
    crate::signing::hmac_sha256(key, &[format!("{at}\n").as_bytes(), body])
}

/// Whether `sig` signs `body` sent at `at` with `key`, and `at` is within [`FRESH`] of `now`.
fn verified(key: &[u8; 32], at: i64, sig: &str, body: &[u8], now: i64) -> bool {
    (now - at).abs() <= FRESH
        && super::Secret::new(sign(key, at, body)).is_some_and(|s| s.matches(sig.as_bytes()))
}

/// Do `act` here when this replica leads, else on the leader.
pub(crate) async fn act(
    app: &App,
    staging: Option<&str>,
    act: Act,
) -> Result<String, (StatusCode, String)> {
    let l = app.handle.leadership();
    if l.leading {
        return perform(app, staging, act).await;
    }
    let leader = l.leader.clone().unwrap_or_else(|| "unknown".into());
    let refuse = |why: &str| {
        Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("this replica does not lead (the leader is {leader}) and {why}; try again"),
        ))
    };
    let Some(url) = l.leader_url else {
        return refuse("the leader gave no address (--advertise-url)");
    };
    let Some(key) = key(app) else {
        return refuse("no secret is configured to sign a forwarded request");
    };
    let body = serde_json::to_vec(&Forwarded {
        staging: staging.map(String::from),
        act,
        nonce: nonce(),
    })
    .unwrap_or_default();
    let at = chrono::Utc::now().timestamp();
    let sent = app
        .forward
        .post(format!("{}/api/v1/forwarded", url.trim_end_matches('/')))
        .header(SENT_AT, at.to_string())
        .header(SIGNATURE, sign(&key, at, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let e = crate::redact::text(&e.to_string()).into_owned();
            return refuse(&format!("it could not be reached ({e})"));
        }
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut answer = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        answer.extend_from_slice(&chunk);
        if answer.len() > MAX_ANSWER {
            return refuse("its answer was too long");
        }
    }
    let doc: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    let text = |k: &str| {
        doc[k]
            .as_str()
            .map(|s| s.chars().take(2000).collect::<String>())
    };
    match (status.is_success(), text("result"), text("error")) {
        (true, Some(r), _) => Ok(r),
        (false, _, Some(e)) => Err((status, e)),
        _ => refuse("its answer was not understood"),
    }
}

/// `POST /api/v1/forwarded`: an action another replica checked and signed.
pub(crate) async fn receive(Ax(app): Ax<App>, headers: HeaderMap, raw: Body) -> Response {
    let Some(key) = key(&app) else {
        return json_error(StatusCode::NOT_FOUND, "forwarding needs a shared secret");
    };
    let at: Option<i64> = headers
        .get(SENT_AT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let signed = headers.get(SIGNATURE).and_then(|v| v.to_str().ok());
    // A stale or unsigned request is refused on its headers, before its body is read.
    let now = chrono::Utc::now().timestamp();
    if !(signed.is_some() && at.is_some_and(|at| (now - at).abs() <= FRESH)) {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "missing, wrong or stale forwarding signature",
        );
    }
    let body = match app
        .bodies
        .read(body::Sender::Unknown, &headers, raw, body::ACTION, |_| {})
        .await
    {
        Ok(b) => b,
        Err(e) => return json_error(e.status(), e.to_string()),
    };
    // At most a few kilobytes, from the pool: one piece to sign.
    let body = body.bytes();
    let ok = match (at, signed) {
        (Some(at), Some(sig)) => verified(&key, at, sig, &body, chrono::Utc::now().timestamp()),
        _ => false,
    };
    if !ok {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "missing, wrong or stale forwarding signature",
        );
    }
    if !app.handle.leadership().leading {
        // Never a second hop: the sender will try again.
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica does not lead either",
        );
    }
    let Ok(f) = serde_json::from_slice::<Forwarded>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "unreadable forwarded action");
    };
    // Signed and fresh, but seen: a replay of a request already carried out.
    match app.nonces.first_time(&f.nonce, now) {
        _ if f.nonce.is_empty() || f.nonce.len() > 64 => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "a forwarded request needs its nonce",
            )
        }
        Some(true) => {}
        Some(false) => {
            return json_error(
                StatusCode::CONFLICT,
                "this forwarded request was carried out already (a replay)",
            )
        }
        None => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many forwarded requests lately; try again in a minute",
            )
        }
    }
    match perform(&app, f.staging.as_deref(), f.act).await {
        Ok(result) => axum::Json(serde_json::json!({ "result": result })).into_response(),
        Err((s, m)) => json_error(s, m),
    }
}

/// How long a forwarded request may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_action_is_taken_only_signed_with_the_key_for_its_body_and_fresh() {
        let key = [7u8; 32];
        let body = br#"{"staging":"a","act":"sleep"}"#;
        let sig = sign(&key, 1000, body);
        assert!(verified(&key, 1000, &sig, body, 1030));
        assert!(!verified(&key, 1000, &sig, body, 1061), "stale");
        assert!(!verified(&key, 1001, &sig, body, 1001), "another time");
        assert!(!verified(
            &key,
            1000,
            &sig,
            br#"{"staging":"b","act":"sleep"}"#,
            1000
        ));
        assert!(!verified(&[8u8; 32], 1000, &sig, body, 1000), "another key");
        assert!(!verified(&key, 1000, "", body, 1000));
    }

    #[test]
    fn what_is_forwarded_carries_no_token() {
        let f = Forwarded {
            staging: Some("a".into()),
            act: Act::Extend(Duration::from_secs(60), false),
            nonce: "n1".into(),
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(
            text,
            r#"{"staging":"a","act":{"extend":[{"secs":60,"nanos":0},false]},"nonce":"n1"}"#
        );
        assert_ne!(nonce(), nonce());
    }

    #[test]
    fn a_nonce_is_remembered_while_its_request_is_fresh_whatever_else_arrives() {
        let n = Nonces::default();
        assert_eq!(n.first_time("a", 1000), Some(true));
        for i in 0..5000 {
            n.first_time(&format!("other {i}"), 1010);
        }
        assert_eq!(n.first_time("a", 1059), Some(false));
        // Past twice the freshness window it is forgotten (its signature is stale by then).
        assert_eq!(n.first_time("a", 1000 + 2 * FRESH + 1), Some(true));
    }
}
