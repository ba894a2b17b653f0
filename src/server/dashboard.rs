//! The dashboard: server-rendered HTML (complete without JavaScript; a few lines of script
//! refresh it when a pass finishes, told by server-sent events), escaped by the template
//! engine. Links are shown as links only when they are http(s).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::LazyLock;

use axum::extract::{Path, Query, State as Ax};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Deserialize;

use super::{view, App};

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("index.html", include_str!("templates/index.html")),
        ("staging.html", include_str!("templates/staging.html")),
        ("status.html", include_str!("templates/status.html")),
        ("message.html", include_str!("templates/message.html")),
    ] {
        env.add_template(name, text)
            .expect("the dashboard's templates parse (tested)");
    }
    // Text from git (branch names, commit subjects) is shown as the CLI shows it: control
    // characters and bidirectional overrides escaped (`feature/\u{202e}gnp.exe` must not read
    // as `feature/exe.png`), then HTML-escaped.
    env.set_formatter(|out, state, value| {
        if let Some(s) = value.as_str().filter(|_| !value.is_safe()) {
            let shown = minijinja::Value::from(crate::text::printable(s).into_owned());
            return minijinja::escape_formatter(out, state, &shown);
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
});

fn page(name: &str, ctx: minijinja::Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("dashboard template {name}: {e}"),
        )
            .into_response(),
    }
}

/// A page with one message and a link back.
pub(crate) fn message(back: &str, message: &str) -> Html<String> {
    let html = TEMPLATES
        .get_template("message.html")
        .and_then(|t| t.render(minijinja::context! { back, message }))
        .unwrap_or_else(|_| "octostage".into());
    Html(html)
}

/// The dashboard's filters.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub(crate) struct Filters {
    #[serde(default)]
    env: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    q: String,
}

fn keeps(f: &Filters, s: &view::StagingView) -> bool {
    let q = f.q.trim().to_lowercase();
    (f.env.is_empty() || s.environment == f.env)
        && (f.state.is_empty() || s.state_group == f.state || s.state == f.state)
        && (q.is_empty()
            || [&s.name, &s.branch, &s.environment]
                .iter()
                .any(|t| t.to_lowercase().contains(&q))
            || s.commit.as_ref().is_some_and(|c| {
                c.author.to_lowercase().contains(&q)
                    || c.subject.to_lowercase().contains(&q)
                    || c.sha.starts_with(&q)
            }))
}

/// Links that are not http(s) (`javascript:`) are not made clickable.
fn safe_links(links: &mut [view::LinkView]) {
    for l in links {
        let lower = l.url.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            l.url = "#".into();
        }
    }
}

/// `GET /`.
pub(crate) async fn index(Ax(app): Ax<App>, Query(f): Query<Filters>) -> Response {
    let leadership = app.handle.leadership();
    let mut o = view::overview(&app.handle.state(), leadership, chrono::Utc::now());
    let environments: BTreeSet<String> = o.stagings.iter().map(|s| s.environment.clone()).collect();
    let states: BTreeSet<String> = o.stagings.iter().map(|s| s.state_group.clone()).collect();
    let total = o.stagings.len();
    o.stagings.retain(|s| keeps(&f, s));
    for s in &mut o.stagings {
        safe_links(&mut s.links);
    }
    page(
        "index.html",
        minijinja::context! {
            stagings => o.stagings,
            total,
            environments,
            states,
            filters => f,
            failed_sources => o.failed_sources,
            leadership => o.leadership,
            last_pass => o.last_pass,
            held => o.held,
            token => app.opts.token.is_some(),
        },
    )
}

/// `GET /stagings/{name}`.
pub(crate) async fn staging(Ax(app): Ax<App>, Path(name): Path<String>) -> Response {
    let leadership = app.handle.leadership();
    let (detail, last_pass) = {
        let state = app.handle.state();
        (
            view::detail(&state, &name, chrono::Utc::now()),
            view::last_pass(&state),
        )
    };
    let Some(mut d) = detail else {
        return (
            StatusCode::NOT_FOUND,
            message("/", &format!("No staging {name:?} in the last pass.")),
        )
            .into_response();
    };
    safe_links(&mut d.staging.links);
    let objects = d
        .staging
        .namespace
        .as_deref()
        .map(|ns| app.handle.target().objects(ns))
        .unwrap_or_default();
    page(
        "staging.html",
        minijinja::context! {
            s => d.staging,
            health => d.health,
            history => d.history,
            events => d.events,
            timeline => d.timeline,
            objects,
            leadership,
            last_pass,
            token => app.opts.token.is_some(),
        },
    )
}

/// `GET /events`: an event `pass` each time a pass finishes.
/// At most [`LIVE_VIEWS`] at once, so that open pages never take every connection the server
/// holds: past it, 503, and the page stays as served (a reload shows what is new).
pub(crate) async fn events(Ax(app): Ax<App>) -> Response {
    let Ok(permit) = app.live_views.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live pages open; this one is complete without updates\n",
        )
            .into_response();
    };
    let rx = app.handle.passes();
    let stream = futures::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        rx.changed().await.ok()?;
        let n = *rx.borrow_and_update();
        let event = Event::default().event("pass").data(n.to_string());
        Some((Ok::<_, Infallible>(event), (rx, permit)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Most live pages (event streams) served at once.
pub(crate) const LIVE_VIEWS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_what_it_shows() {
        for name in ["index.html", "staging.html", "message.html", "status.html"] {
            TEMPLATES.get_template(name).unwrap();
        }
        let Html(html) = message("/", "<script>alert(1)</script>");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(!html.contains("<script>alert(1)"));
    }

    #[test]
    fn only_http_links_stay_clickable() {
        let mut links = vec![
            view::LinkView {
                name: "a".into(),
                url: "https://a.example".into(),
            },
            view::LinkView {
                name: "b".into(),
                url: "javascript:alert(1)".into(),
            },
            view::LinkView {
                name: "c".into(),
                url: " JAVASCRIPT:x".into(),
            },
        ];
        safe_links(&mut links);
        assert_eq!(links[0].url, "https://a.example");
        assert_eq!(links[1].url, "#");
        assert_eq!(links[2].url, "#");
    }
}
