//! `wait_for` in a pass: before a staging is created on a commit or moved to one, the images
//! that commit needs must be in their registry. A missing one keeps the staging as it is: a new
//! staging is not created, a running one keeps its commit, with the image as the reason. Each
//! image is asked for again with backoff (10 s doubling to 5 min), the controller woken for it,
//! until `give_up` after the commit's time; then the staging stays as it is until a new commit.
//! What the registry said is remembered by the process, so passes in between ask nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Config, RegistryCredentials};
use crate::plan::{Action, Plan, PlanError, Planned, Why};
use crate::source::registry::{self, Presence};

const FIRST_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// What is known of one image.
#[derive(Debug, Clone)]
struct Known {
    /// Present for good (a tag that exists is not asked for again).
    present: bool,
    /// Missing or failing: why, and when to ask again.
    detail: String,
    next: DateTime<Utc>,
    wait: Duration,
}

static KNOWN: std::sync::LazyLock<Mutex<HashMap<String, Known>>> =
    std::sync::LazyLock::new(Mutex::default);

/// Ask for `image` unless what is known of it is still good; `Ok(())` when it is present.
async fn ask(
    image: &str,
    creds: Option<&RegistryCredentials>,
    now: DateTime<Utc>,
) -> Result<(), Known> {
    let known = KNOWN.lock().expect("known").get(image).cloned();
    match known {
        Some(k) if k.present => return Ok(()),
        Some(k) if now < k.next => return Err(k),
        _ => {}
    }
    let r = registry::check(image, creds).await;
    let mut map = KNOWN.lock().expect("known");
    // Bounded: an image that is there or given up on is dropped first when it grows.
    if map.len() > 4096 {
        map.clear();
    }
    let wait = known.map_or(FIRST_WAIT, |k| (k.wait * 2).min(MAX_WAIT));
    let entry = match r {
        Ok(Presence::Present) => Known {
            present: true,
            detail: String::new(),
            next: now,
            wait,
        },
        Ok(Presence::Missing) => Known {
            present: false,
            detail: "not in the registry yet".into(),
            next: now + chrono::Duration::from_std(wait).unwrap_or_default(),
            wait,
        },
        Err(e) => Known {
            present: false,
            detail: e,
            next: now + chrono::Duration::from_std(wait).unwrap_or_default(),
            wait,
        },
    };
    map.insert(image.to_string(), entry.clone());
    if entry.present {
        Ok(())
    } else {
        Err(entry)
    }
}

/// Whether `p` moves to a commit the target does not run yet.
fn new_commit(p: &Planned) -> bool {
    matches!(p.action, Action::Create | Action::Update)
        && p.commit.as_ref().map(|c| c.sha.as_str()) != p.observed_commit.as_deref()
}

/// Hold back the stagings whose images are not there yet.
pub async fn gate(config: &Config, plan: &mut Plan, now: DateTime<Utc>) {
    let mut recheck: Option<DateTime<Utc>> = None;
    for p in plan.stagings.iter_mut() {
        let Some(w) = p.settings.as_ref().and_then(|s| s.wait_for.clone()) else {
            continue;
        };
        if p.error.is_some() || !new_commit(p) {
            continue;
        }
        let Some(ctx) = p.context.as_deref() else {
            continue;
        };
        let view = minijinja::Value::from_serialize(ctx);
        let mut images = Vec::new();
        for t in &w.images {
            match config.templates.render_str(t, &view) {
                Ok(i) => images.push(i),
                Err(e) => {
                    p.block(PlanError::Render(
                        crate::render::inline_error(
                            &config.templates,
                            t,
                            "wait_for.image",
                            &e,
                            ctx,
                        )
                        .to_string(),
                    ));
                    break;
                }
            }
        }
        if p.error.is_some() {
            continue;
        }
        let commit_time = p.commit.as_ref().map_or(now, |c| c.time);
        let gave_up = chrono::Duration::from_std(w.give_up).is_ok_and(|g| now - commit_time > g);
        let mut missing = None;
        for image in &images {
            let known = if gave_up {
                // No more asking; what was last known stands.
                KNOWN
                    .lock()
                    .expect("known")
                    .get(image)
                    .cloned()
                    .filter(|k| !k.present)
                    .map_or(Ok(()), Err)
            } else {
                ask(image, w.credentials.as_ref(), now).await
            };
            if let Err(k) = known {
                missing = Some((image.clone(), k));
                break;
            }
        }
        let Some((image, k)) = missing else {
            continue;
        };
        if !gave_up {
            recheck = Some(recheck.map_or(k.next, |r| r.min(k.next)));
        }
        hold(
            p,
            Why::WaitingForImage {
                image,
                detail: k.detail,
                gave_up,
            },
        );
    }
    plan.recheck = recheck;
}

/// Keep `p` as the target holds it: not created, or at its commit.
fn hold(p: &mut Planned, why: Why) {
    p.action = Action::Noop;
    p.context = None;
    // This pass's transitions did not happen.
    let kept = p.history.len().saturating_sub(p.added);
    p.history.truncate(kept);
    p.added = 0;
    p.state = p.observed_state;
    match &p.observed_commit {
        None => {
            p.why = Why::NotCreated {
                cause: Box::new(why),
            }
        }
        Some(sha) => {
            p.why = why;
            p.commit = Some(crate::source::Commit {
                sha: sha.clone(),
                time: p.first_seen,
                author: String::new(),
                subject: String::new(),
                steer: None,
            });
        }
    }
}
