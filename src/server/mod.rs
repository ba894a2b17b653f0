//! The HTTP server of `octostage run`: the dashboard, the JSON API, webhooks, metrics and
//! probes. It reads the controller's state (no second source of truth); it writes only
//! requests on stagings, and only on the replica that leads (others forward actions to it).

mod actions;
mod body;
mod dashboard;
mod forward;
mod hooks;
mod listener;
mod perform;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as Ax;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::controller::Handle;

pub use hooks::{normalize_repository, HookSecrets};

/// A secret given by the operator: compared in constant time, never shown.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// A secret, unless empty.
    pub fn new(s: impl Into<String>) -> Option<Secret> {
        let s: String = s.into();
        (!s.trim().is_empty()).then(|| Secret(Arc::from(s.trim())))
    }

    /// Whether `given` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(given).into()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How the server is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The token actions need; without it the server is read-only.
    pub token: Option<Secret>,
    /// The webhook secrets.
    pub hooks: HookSecrets,
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct App {
    handle: Handle,
    opts: Arc<Options>,
    forward: reqwest::Client,
    deliveries: Arc<hooks::Deliveries>,
    live_views: Arc<tokio::sync::Semaphore>,
    bodies: Arc<body::Pools>,
    nonces: Arc<forward::Nonces>,
}

/// The routes.
pub fn router(handle: Handle, opts: Options) -> Router {
    let app = App {
        handle,
        opts: Arc::new(opts),
        deliveries: Arc::default(),
        bodies: Arc::default(),
        nonces: Arc::default(),
        live_views: Arc::new(tokio::sync::Semaphore::new(dashboard::LIVE_VIEWS)),
        forward: reqwest::Client::builder()
            .timeout(forward::TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default(),
    };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/stagings/{name}", get(dashboard::staging))
        .route("/stagings/{name}/{action}", post(actions::form))
        .route("/actions/{action}", post(actions::form_global))
        .route("/events", get(dashboard::events))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/stagings", get(api_stagings))
        .route("/api/v1/stagings/{name}", get(api_staging))
        .route("/api/v1/plan", get(api_plan))
        .route("/api/v1/stagings/{name}/{action}", post(actions::api))
        .route("/api/v1/forwarded", post(forward::receive))
        .route("/api/v1/{action}", post(actions::api_global))
        .route("/hooks/{provider}", post(hooks::receive))
        // Also here for a load balancer that checks the port it sends traffic to; the
        // kubelet's probes use the probe listener, which no client can crowd out.
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn(guard))
        .with_state(app)
}

/// The JSON API's routes (method, path as the OpenAPI document writes it): what
/// [`OPENAPI`] describes, checked against it and against the running server by a test.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/stagings"),
    ("get", "/api/v1/stagings/{name}"),
    ("get", "/api/v1/plan"),
    ("post", "/api/v1/stagings/{name}/{action}"),
    ("post", "/api/v1/forwarded"),
    ("post", "/api/v1/{action}"),
];

/// The OpenAPI 3.0 document of the JSON API (`GET /api/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The routes of the probe listener: health, readiness and metrics, nothing a client acts on.
pub fn probe_router(handle: Handle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(probe_readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(guard))
        .with_state(handle)
}

pub use listener::Limits;

/// Serve the public routes until `stop` on `listener`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: Handle,
    opts: Options,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    listener::serve(listener, router(handle, opts), limits, stop).await
}

/// Serve the probes and metrics until `stop` on `listener`.
pub async fn serve_probes(
    listener: tokio::net::TcpListener,
    handle: Handle,
    stop: CancellationToken,
) -> std::io::Result<()> {
    listener::serve(listener, probe_router(handle), Limits::PROBES, stop).await
}

/// Longest a request may take to be answered, its body read included (an event stream's life
/// is not counted: its answer starts at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every answer: bounded in time, not framed by other sites, its type not sniffed.
async fn guard(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response(),
    };
    let h = resp.headers_mut();
    for (k, v) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        h.insert(k, axum::http::HeaderValue::from_static(v));
    }
    resp
}

/// Bind `addr` for `flag`, naming both in the error.
pub async fn bind(addr: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener, std::io::Error> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e} (see {flag})"),
        )
    })
}

pub(crate) fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = crate::redact::text(&message.into()).into_owned();
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn api_stagings(Ax(app): Ax<App>) -> Response {
    let leadership = app.handle.leadership();
    let o = view::overview(&app.handle.state(), leadership, chrono::Utc::now());
    axum::Json(o).into_response()
}

async fn api_staging(
    Ax(app): Ax<App>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match view::detail(&app.handle.state(), &name, chrono::Utc::now()) {
        Some(d) => axum::Json(d).into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            format!("no staging {name:?} in the last pass"),
        ),
    }
}

async fn api_plan(Ax(app): Ax<App>) -> Response {
    let report = app.handle.state().report.clone();
    match report {
        Some(r) => axum::Json(crate::report::json(&r)).into_response(),
        None => json_error(StatusCode::SERVICE_UNAVAILABLE, "no pass has finished yet"),
    }
}

async fn readyz(Ax(app): Ax<App>) -> Response {
    probe_readyz(Ax(app.handle)).await
}

async fn probe_readyz(Ax(handle): Ax<Handle>) -> Response {
    let state = handle.state();
    if state.ready {
        // Ready (it serves), and what is frozen says so: an environment whose part of
        // environments.yaml is invalid, or a whole file that is.
        let mut body = String::from("ready\n");
        if let Some(r) = &state.report {
            for (environment, problems) in &r.config.frozen {
                body.push_str(&format!(
                    "environment {environment} frozen: {}\n",
                    crate::redact::text(problems)
                ));
            }
        }
        if let Some(e) = state.last_pass.as_ref().and_then(|p| p.error.as_ref()) {
            body.push_str(&format!(
                "the last pass failed: {}\n",
                crate::redact::text(e)
            ));
        }
        (StatusCode::OK, body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no pass has finished yet\n",
        )
            .into_response()
    }
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::get().encode(),
    )
        .into_response()
}
