//! What an action does, on the replica that leads: record a request on a staging, or ask the
//! controller for a pass.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use super::App;
use crate::controller::Trigger;
use crate::requests::{self, Ask};

/// An action asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Act {
    Extend(Duration, bool),
    Wake(Option<Duration>),
    Sleep,
    Pass,
    /// Approve the held set of this digest.
    Approve(String),
    /// A checked webhook: a pass for this repository.
    Hook(String),
}

/// Do it here, on the leader.
pub(crate) async fn perform(
    app: &App,
    name: Option<&str>,
    act: Act,
) -> Result<String, (StatusCode, String)> {
    let now = chrono::Utc::now();
    let said = match (act, name) {
        (Act::Hook(repository), _) => {
            app.handle.request(Trigger::Webhook { repository });
            return Ok("a pass was requested".into());
        }
        (Act::Pass, _) => {
            app.handle.request(Trigger::Manual);
            return Ok("a pass was requested".into());
        }
        (Act::Approve(held), _) => return approve(app, held),
        (Act::Sleep, Some(n)) => {
            requests::record(app.handle.target().as_ref(), n, |_| Ok(Ask::Sleep), now).await
        }
        (Act::Wake(d), Some(n)) => {
            let config = app.handle.state().config.clone();
            requests::record_noting(
                app.handle.target().as_ref(),
                n,
                |_| Ok(Ask::Wake(d)),
                now,
                config.as_deref(),
            )
            .await
        }
        (Act::Extend(duration, replace), Some(n)) => {
            let config = app.handle.state().config.clone();
            let Some(config) = config else {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no configuration has loaded yet; try again after the first pass".into(),
                ));
            };
            requests::record(
                app.handle.target().as_ref(),
                n,
                |r| {
                    let max = requests::max_extension(&config, r)?;
                    Ok(Ask::Extend {
                        duration,
                        max,
                        replace,
                    })
                },
                now,
            )
            .await
        }
        (_, None) => return Err((StatusCode::NOT_FOUND, "no staging named".into())),
    };
    match said {
        Ok(said) => {
            // The dir target has no watch to notice the request: ask for the pass here.
            app.handle.request(Trigger::Manual);
            Ok(said)
        }
        Err(e) => Err((status_of(&e), e.to_string())),
    }
}

/// Approve the held set `held` if it is the one the last plan shows.
fn approve(app: &App, held: String) -> Result<String, (StatusCode, String)> {
    let now_held = {
        let state = app.handle.state();
        state
            .report
            .as_ref()
            .and_then(|r| r.plan.held())
            .map(|(names, digest)| (names.len(), digest))
    };
    match now_held {
        Some((n, digest)) if digest == held => {
            app.handle.approve(held);
            Ok(format!("approved: the next pass carries out the {n} deletions held back (set {digest}), if the set is still the same"))
        }
        Some((_, digest)) => Err((
            StatusCode::CONFLICT,
            format!("the held set is {digest} now, not {held}: review the plan again and approve what it shows"),
        )),
        None => Err((StatusCode::CONFLICT, "nothing is held back now".into())),
    }
}

fn status_of(e: &requests::AskError) -> StatusCode {
    use requests::AskError as E;
    match e {
        E::NotFound { .. } => StatusCode::NOT_FOUND,
        E::Ambiguous { .. } => StatusCode::CONFLICT,
        E::NotConfigured(_) | E::Expired { .. } | E::Busy(_) => StatusCode::CONFLICT,
        E::TooLong { .. } | E::Unreasonable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::Target(_) => StatusCode::BAD_GATEWAY,
    }
}
