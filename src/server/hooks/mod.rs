//! Webhooks: a push, a branch deletion or a pull request change in a watched repository asks
//! for a pass at once (requests coalesce; replays only ask again). GitHub and Gitea are checked with HMAC-SHA256
//! of the raw body, GitLab with its token header, the generic hook with a bearer token; all in
//! constant time. Anything unsigned, wrongly signed or for a provider without a secret triggers
//! nothing.

use axum::body::Body;
use axum::extract::{Path, State as Ax};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::perform::Act;
use super::{body, json_error, App, Secret};

/// The secrets of each provider; a provider without one is not enabled.
#[derive(Debug, Clone, Default)]
pub struct HookSecrets {
    /// GitHub's webhook secret (HMAC-SHA256, `X-Hub-Signature-256`).
    pub github: Option<Secret>,
    /// Gitea's webhook secret (HMAC-SHA256, `X-Gitea-Signature`).
    pub gitea: Option<Secret>,
    /// GitLab's secret token (`X-Gitlab-Token`).
    pub gitlab: Option<Secret>,
    /// The generic hook's bearer token.
    pub generic: Option<Secret>,
}

/// Why a delivery is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// No such provider.
    #[error("no webhook {0:?}; there are github, gitlab, gitea and generic")]
    Unknown(String),
    /// The provider has no secret configured.
    #[error("the {0} webhook is not enabled: set its secret (see `octostage run --help`)")]
    Disabled(&'static str),
    /// Missing or wrong signature or token.
    #[error("missing or wrong signature")]
    Unauthorized,
    /// Not JSON, or not what the provider sends.
    #[error("unreadable payload: {0}")]
    Malformed(String),
}

/// What a verified delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A repository changed: its URLs as the provider gives them.
    Changed(Vec<String>),
    /// Something to answer and ignore (a ping, an event that is not a push).
    Ignore(String),
}

/// How a delivery proves who sent it, as far as its headers tell before the body is read.
pub(crate) enum Proof {
    /// A token in the headers, already checked.
    Token,
    /// An HMAC of the body: the body is fed to `mac`, and must end as `expected`.
    Signed {
        mac: Box<Hmac<Sha256>>,
        expected: Vec<u8>,
    },
}

impl Proof {
    /// Feed a piece of the body.
    pub(crate) fn update(&mut self, piece: &[u8]) {
        if let Proof::Signed { mac, .. } = self {
            mac.update(piece);
        }
    }

    /// Whether the body fed so far is what was signed.
    pub(crate) fn holds(self) -> bool {
        match self {
            Proof::Token => true,
            Proof::Signed { mac, expected } => mac.verify_slice(&expected).is_ok(),
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The provider's name, its secret, and how its delivery is proven: everything the headers
/// can tell, checked before a byte of the body is read. A request without a well-formed
/// signature or the right token is refused here, at the cost of its headers.
pub(crate) fn authenticate(
    provider: &str,
    secrets: &HookSecrets,
    headers: &HeaderMap,
) -> Result<(&'static str, Proof), HookError> {
    let (secret, name) = match provider {
        "github" => (&secrets.github, "github"),
        "gitea" => (&secrets.gitea, "gitea"),
        "gitlab" => (&secrets.gitlab, "gitlab"),
        "generic" => (&secrets.generic, "generic"),
        other => return Err(HookError::Unknown(other.chars().take(40).collect())),
    };
    let secret = secret.as_ref().ok_or(HookError::Disabled(name))?;
    let signature = match name {
        "github" => header(headers, "x-hub-signature-256").and_then(|s| s.strip_prefix("sha256=")),
        "gitea" => header(headers, "x-gitea-signature").or_else(|| {
            header(headers, "x-hub-signature-256").and_then(|s| s.strip_prefix("sha256="))
        }),
        "gitlab" => {
            let ok =
                header(headers, "x-gitlab-token").is_some_and(|t| secret.matches(t.as_bytes()));
            return if ok {
                Ok((name, Proof::Token))
            } else {
                Err(HookError::Unauthorized)
            };
        }
        _ => {
            // The scheme is case-insensitive (RFC 7235): `bearer` and `BEARER` are `Bearer`.
            let ok = header(headers, "authorization")
                .and_then(|a| a.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .is_some_and(|(_, t)| secret.matches(t.trim().as_bytes()));
            return if ok {
                Ok((name, Proof::Token))
            } else {
                Err(HookError::Unauthorized)
            };
        }
    };
    // HMAC-SHA256 is 32 bytes: anything else cannot be a signature.
    let expected = signature
        .and_then(|s| decode_hex(s.trim()))
        .filter(|s| s.len() == 32)
        .ok_or(HookError::Unauthorized)?;
    let mac =
        Hmac::<Sha256>::new_from_slice(secret.bytes()).map_err(|_| HookError::Unauthorized)?;
    Ok((
        name,
        Proof::Signed {
            mac: Box::new(mac),
            expected,
        },
    ))
}

/// What an authenticated delivery of `name` says.
pub(crate) fn payload(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, HookError> {
    let event = match name {
        "github" => header(headers, "x-github-event"),
        "gitea" => header(headers, "x-gitea-event").or_else(|| header(headers, "x-github-event")),
        "gitlab" => header(headers, "x-gitlab-event"),
        _ => Some("push"),
    }
    .unwrap_or("");
    let relevant = match name {
        // Pull requests too: opened, labelled, closed change `branches.from: pull_requests`.
        "github" | "gitea" => matches!(event, "push" | "create" | "delete" | "pull_request"),
        "gitlab" => matches!(event, "Push Hook" | "Merge Request Hook"),
        _ => true,
    };
    if !relevant {
        return Ok(Delivery::Ignore(format!(
            "event {:?} is not a push, branch change or pull request",
            event.chars().take(40).collect::<String>()
        )));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| HookError::Malformed(e.to_string()))?;
    let urls = repository_urls(name, &doc);
    if urls.is_empty() {
        return Err(HookError::Malformed("it names no repository".into()));
    }
    Ok(Delivery::Changed(urls))
}

/// Check a whole delivery and say what it means: [`authenticate`], the body through the
/// proof, then [`payload`]. Pure: the handler does the same while the body streams in.
#[cfg(test)]
fn verify(
    provider: &str,
    secrets: &HookSecrets,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Delivery, HookError> {
    let (name, mut proof) = authenticate(provider, secrets, headers)?;
    proof.update(body);
    if !proof.holds() {
        return Err(HookError::Unauthorized);
    }
    payload(name, headers, body)
}

/// The repository URLs a payload names.
fn repository_urls(provider: &str, doc: &serde_json::Value) -> Vec<String> {
    let fields: &[(&str, &str)] = match provider {
        "github" | "gitea" => &[
            ("repository", "clone_url"),
            ("repository", "ssh_url"),
            ("repository", "html_url"),
            ("repository", "git_url"),
        ],
        "gitlab" => &[
            ("project", "git_http_url"),
            ("project", "git_ssh_url"),
            ("project", "web_url"),
            ("repository", "git_http_url"),
            ("repository", "git_ssh_url"),
            ("repository", "homepage"),
        ],
        _ => &[],
    };
    let mut out: Vec<String> = fields
        .iter()
        .filter_map(|(o, f)| doc[o][f].as_str())
        .map(String::from)
        .collect();
    if provider == "generic" {
        out.extend(doc["repository"].as_str().map(String::from));
    }
    out.retain(|u| !u.is_empty() && u.len() <= 2048);
    out
}

/// The provider's id of a delivery, which a replay repeats.
fn delivery_id(headers: &HeaderMap) -> Option<String> {
    [
        "x-github-delivery",
        "x-gitea-delivery",
        "x-gitlab-event-uuid",
    ]
    .iter()
    .find_map(|h| header(headers, h))
    .filter(|id| !id.is_empty() && id.len() <= 100)
    .map(String::from)
}

/// The delivery ids seen lately (the last [`Deliveries::KEPT`]): a replayed delivery asks for
/// nothing.
#[derive(Default)]
pub(crate) struct Deliveries(std::sync::Mutex<std::collections::VecDeque<String>>);

impl Deliveries {
    const KEPT: usize = 1024;

    /// Whether `id` is new; remembers it.
    pub(crate) fn first_time(&self, id: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|s| s == id) {
            return false;
        }
        if seen.len() == Self::KEPT {
            seen.pop_front();
        }
        seen.push_back(id.to_string());
        true
    }
}

/// A repository URL reduced to `host/path` (lower-case host; no scheme, user, `.git` or
/// trailing slash), so that the https, ssh and scp forms of one repository compare equal.
pub fn normalize_repository(url: &str) -> String {
    let u = url.trim();
    // A local repository: one path however it is written (`file://`, `//`, `/./`, `/../`, a
    // trailing slash or `.git`).
    let local = u.strip_prefix("file://").unwrap_or(u);
    if local.starts_with('/') {
        let mut parts: Vec<&str> = vec![];
        for p in local.split('/') {
            match p {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        let path = format!("/{}", parts.join("/"));
        return path.strip_suffix(".git").unwrap_or(&path).to_string();
    }
    let (rest, scp) = match u.split_once("://") {
        Some((_, rest)) => (rest, false),
        None => (u, !u.starts_with('/')),
    };
    let rest = match rest.split_once('@') {
        Some((user, r)) if !user.contains('/') => r,
        _ => rest,
    };
    // `git@github.com:org/repo` is `github.com/org/repo`.
    let rest = if scp {
        rest.replacen(':', "/", 1)
    } else {
        rest.to_string()
    };
    let (host, path) = rest.split_once('/').unwrap_or((&rest, ""));
    // An explicit ssh port does not make another repository.
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

/// The environments that watch one of `urls` (none before a configuration loaded: the pass
/// will tell).
fn watching(config: Option<&crate::config::Config>, urls: &[String]) -> Vec<String> {
    let wanted: Vec<String> = urls.iter().map(|u| normalize_repository(u)).collect();
    config.map_or_else(Vec::new, |c| {
        c.environments
            .iter()
            .filter(|e| wanted.contains(&normalize_repository(&e.repository.url)))
            .map(|e| e.name.clone())
            .collect()
    })
}

/// `POST /hooks/{provider}`.
pub(crate) async fn receive(
    Ax(app): Ax<App>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    raw: Body,
) -> Response {
    let label = match provider.as_str() {
        p @ ("github" | "gitea" | "gitlab" | "generic") => p,
        _ => "unknown",
    };
    let refused = |result: &str, status: StatusCode, e: HookError| {
        crate::metrics::webhook(label, result);
        json_error(status, e.to_string())
    };
    let refusal = |e: HookError| match e {
        HookError::Unauthorized => refused("unauthorized", StatusCode::UNAUTHORIZED, e),
        HookError::Malformed(_) => refused("malformed", StatusCode::BAD_REQUEST, e),
        _ => refused("disabled", StatusCode::NOT_FOUND, e),
    };
    let ignored = |why: String| {
        crate::metrics::webhook(label, "ignored");
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "ignored": why })),
        )
            .into_response()
    };
    let (name, mut proof) = match authenticate(&provider, &app.opts.hooks, &headers) {
        Ok(p) => p,
        Err(e) => return refusal(e),
    };
    let sender = match proof {
        Proof::Token => body::Sender::Authenticated,
        Proof::Signed { .. } => body::Sender::Unknown,
    };
    let read = app
        .bodies
        .read(sender, &headers, raw, body::HOOK, |piece| {
            proof.update(piece)
        })
        .await;
    let read = match read {
        Ok(r) => r,
        Err(e) => {
            crate::metrics::webhook(label, "refused");
            return json_error(e.status(), e.to_string());
        }
    };
    if !proof.holds() {
        return refusal(HookError::Unauthorized);
    }
    let urls = match payload(name, &headers, &read.bytes()) {
        Ok(Delivery::Changed(urls)) => urls,
        Ok(Delivery::Ignore(why)) => return ignored(why),
        Err(e) => return refusal(e),
    };
    drop(read);
    let config = app.handle.state().config.clone();
    let environments = watching(config.as_deref(), &urls);
    if config.is_some() && environments.is_empty() {
        return ignored("no environment watches this repository".into());
    }
    if let Some(id) = delivery_id(&headers) {
        if !app.deliveries.first_time(&id) {
            return ignored("this delivery was taken already".into());
        }
    }
    let repository = crate::redact::url(urls.first().map(String::as_str).unwrap_or_default());
    if let Err((status, m)) = super::forward::act(&app, None, Act::Hook(repository)).await {
        return json_error(status, m);
    }
    crate::metrics::webhook(label, "accepted");
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "pass": "requested", "environments": environments })),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
