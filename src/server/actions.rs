//! Actions: extend, wake, sleep, request a pass, approve held deletions. POST only, with the
//! token (a bearer header for the API, a form field for the dashboard, which a page of another
//! site cannot know: CSRF-safe without a session). Read-only without a configured token. A
//! replica that does not lead forwards the action to the one that does.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State as Ax};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::Sender;
pub(crate) use super::perform::Act;
use super::{json_error, App};

/// Parameters of an action, as JSON or form fields.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    /// `extend`: how long from now (`3d`).
    #[serde(default)]
    duration: Option<String>,
    /// `wake`: for how long (`2h`); empty: until the next sleep time.
    #[serde(default, rename = "for")]
    for_: Option<String>,
    /// `approve`: the digest of the held set approved.
    #[serde(default)]
    held: Option<String>,
    /// `extend`: replace a longer extension (shorten it).
    #[serde(default)]
    replace: Option<bool>,
    /// The token (forms only).
    #[serde(default)]
    token: Option<String>,
}

/// Why an action request is refused (400).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActionError {
    #[error("{0} must be at least 1s")]
    Short(&'static str),
    #[error("{field} {value:?}: {source} (write 3d, 12h or 90m)")]
    Duration {
        field: &'static str,
        value: String,
        source: humantime::DurationError,
    },
    #[error("extend needs a duration, such as 3d")]
    NoDuration,
    #[error("approve names the held set it approves: {{\"held\": DIGEST}}, the `held_digest` of GET /api/v1/plan (or the plan's text)")]
    NoHeld,
    #[error("no action {0:?} on a staging; there are extend, wake and sleep")]
    OnStaging(String),
    #[error("no action {0:?}; there are pass and approve")]
    OnController(String),
}

fn duration(field: &'static str, v: Option<&str>) -> Result<Option<Duration>, ActionError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match humantime::parse_duration(v) {
            // Whole seconds, as every time octostage records.
            Ok(d) if d.as_secs() >= 1 => Ok(Some(Duration::from_secs(d.as_secs()))),
            Ok(_) => Err(ActionError::Short(field)),
            Err(source) => Err(ActionError::Duration {
                field,
                value: v.to_string(),
                source,
            }),
        },
    }
}

/// The action named `action` on a staging (`staging: true`) or on the controller.
pub(crate) fn parse(action: &str, staging: bool, p: &Params) -> Result<Act, ActionError> {
    Ok(match (action, staging) {
        ("extend", true) => Act::Extend(
            duration("duration", p.duration.as_deref())?.ok_or(ActionError::NoDuration)?,
            p.replace.unwrap_or(false),
        ),
        ("wake", true) => Act::Wake(duration("for", p.for_.as_deref())?),
        ("sleep", true) => Act::Sleep,
        ("pass", false) => Act::Pass,
        ("approve", false) => Act::Approve(
            p.held
                .clone()
                .filter(|h| !h.trim().is_empty())
                .ok_or(ActionError::NoHeld)?,
        ),
        (a, true) => return Err(ActionError::OnStaging(a.to_string())),
        (a, false) => return Err(ActionError::OnController(a.to_string())),
    })
}

/// Whether the request may act: a token is configured and given.
fn authorized(app: &App, given: Option<&str>) -> Result<(), (StatusCode, String)> {
    let Some(token) = &app.opts.token else {
        return Err((
            StatusCode::FORBIDDEN,
            "read-only: this octostage has no API token (set OCTOSTAGE_API_TOKEN)".into(),
        ));
    };
    match given {
        Some(g) if token.matches(g.trim().as_bytes()) => Ok(()),
        _ => Err((StatusCode::UNAUTHORIZED, "missing or wrong token".into())),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    // The scheme is case-insensitive (RFC 7235).
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// `POST /api/v1/stagings/{name}/{action}`.
pub(crate) async fn api(
    Ax(app): Ax<App>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    api_act(app, Some(name), action, headers, body).await
}

/// `POST /api/v1/{action}`.
pub(crate) async fn api_global(
    Ax(app): Ax<App>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    api_act(app, None, action, headers, body).await
}

async fn api_act(
    app: App,
    name: Option<String>,
    action: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err((s, m)) = authorized(&app, bearer(&headers)) {
        return json_error(s, m);
    }
    let body = match app
        .bodies
        .read(
            Sender::Authenticated,
            &headers,
            body,
            super::body::ACTION,
            |_| {},
        )
        .await
    {
        Ok(b) => b,
        Err(e) => return json_error(e.status(), e.to_string()),
    };
    let body = body.bytes();
    let params: Params = if body.iter().all(u8::is_ascii_whitespace) {
        Params::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let act = match parse(&action, name.is_some(), &params) {
        Ok(a) => a,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, m.to_string()),
    };
    match super::forward::act(&app, name.as_deref(), act).await {
        Ok(said) => axum::Json(serde_json::json!({ "result": said })).into_response(),
        Err((s, m)) => json_error(s, m),
    }
}

/// `POST /stagings/{name}/{action}` from the dashboard's forms.
pub(crate) async fn form(
    Ax(app): Ax<App>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    form_act(app, Some(name), action, headers, body).await
}

/// `POST /actions/{action}` from the dashboard's forms.
pub(crate) async fn form_global(
    Ax(app): Ax<App>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    form_act(app, None, action, headers, body).await
}

async fn form_act(
    app: App,
    name: Option<String>,
    action: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let back = name
        .as_ref()
        .map(|n| format!("/stagings/{n}"))
        .unwrap_or_else(|| "/".into());
    let page = |status: StatusCode, msg: String| {
        (status, super::dashboard::message(&back, &msg)).into_response()
    };
    // A browser says where a form was sent from: only this page (or a typed request) may
    // act; a staging's app on a sibling host is `same-site`, and refused too.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
    {
        return page(
            StatusCode::FORBIDDEN,
            "refused: sent from another site".into(),
        );
    }
    let body = match app
        .bodies
        .read(Sender::Unknown, &headers, body, super::body::FORM, |_| {})
        .await
    {
        Ok(b) => b,
        Err(e) => return page(e.status(), e.to_string()),
    };
    let params: Params = match serde_urlencoded::from_bytes(&body.bytes()) {
        Ok(p) => p,
        Err(e) => return page(StatusCode::BAD_REQUEST, format!("form: {e}")),
    };
    if let Err((s, m)) = authorized(&app, params.token.as_deref()) {
        return page(s, m);
    }
    let act = match parse(&action, name.is_some(), &params) {
        Ok(a) => a,
        Err(m) => return page(StatusCode::BAD_REQUEST, m.to_string()),
    };
    match super::forward::act(&app, name.as_deref(), act).await {
        Ok(said) => page(StatusCode::OK, said),
        Err((s, m)) => page(s, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(duration: Option<&str>, for_: Option<&str>) -> Params {
        Params {
            duration: duration.map(Into::into),
            for_: for_.map(Into::into),
            replace: None,
            held: None,
            token: None,
        }
    }

    #[test]
    fn actions_are_parsed_with_their_durations_and_unknown_ones_are_named() {
        assert_eq!(
            parse("extend", true, &p(Some("3d"), None)).ok(),
            Some(Act::Extend(Duration::from_secs(3 * 86400), false))
        );
        assert!(parse("extend", true, &p(None, None))
            .unwrap_err()
            .to_string()
            .contains("needs a duration"));
        assert!(parse("extend", true, &p(Some("0s"), None)).is_err());
        assert!(parse("extend", true, &p(Some("soon"), None))
            .unwrap_err()
            .to_string()
            .contains("soon"));
        assert_eq!(
            parse("wake", true, &p(None, Some(""))).ok(),
            Some(Act::Wake(None))
        );
        assert!(parse("approve", false, &p(None, None))
            .unwrap_err()
            .to_string()
            .contains("held"));
        assert!(parse("delete", true, &p(None, None))
            .unwrap_err()
            .to_string()
            .contains("delete"));
        assert!(parse("extend", false, &p(Some("1d"), None)).is_err());
    }
}
