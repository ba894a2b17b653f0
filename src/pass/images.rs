//! `wait_for` in a pass: before a staging is created on a commit or moved to one, the images
//! that commit needs must be in their registry. A missing one keeps the staging as it is: a new
//! staging is not created, a running one keeps its commit, with the image as the reason. Each
//! image is asked for again with backoff (10 s doubling to 5 min), the controller woken for it,
//! until `give_up` after the commit's time; past it, the registry is asked once per process
//! (a restart, a `run --once`) and never again, and the staging is never moved without the
//! image. What the registry said is remembered by the process, so passes in between ask
//! nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

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

/// How many images are asked for at once, and how long all of a pass's asking may take.
const PARALLEL: usize = 8;
const ALL_CHECKS: Duration = Duration::from_secs(60);

/// Ask for `image` unless what is known of it is still good; `Ok(())` when it is present.
/// Past `give_up`, what is known stands for good: the registry is asked once per process.
async fn ask(
    image: &str,
    creds: Option<&RegistryCredentials>,
    now: DateTime<Utc>,
    gave_up: bool,
) -> Result<(), Known> {
    let known = KNOWN.lock().expect("known").get(image).cloned();
    match known {
        Some(k) if k.present => return Ok(()),
        Some(k) if gave_up || now < k.next => return Err(k),
        _ => {}
    }
    let r = registry::check(image, creds).await;
    let k = remember(image, known, r, now);
    if k.present {
        Ok(())
    } else {
        Err(k)
    }
}

fn remember(
    image: &str,
    before: Option<Known>,
    r: Result<Presence, registry::RegistryError>,
    now: DateTime<Utc>,
) -> Known {
    let wait = before.map_or(FIRST_WAIT, |k| (k.wait * 2).min(MAX_WAIT));
    let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
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
            next,
            wait,
        },
        Err(e) => Known {
            present: false,
            detail: e.to_string(),
            next,
            wait,
        },
    };
    let mut map = KNOWN.lock().expect("known");
    // Bounded: forgetting costs only a question to the registry.
    if map.len() > 4096 {
        map.clear();
    }
    map.insert(image.to_string(), entry.clone());
    entry
}

/// Whether `p` moves to a commit the target does not run yet.
fn new_commit(p: &Planned) -> bool {
    matches!(p.action, Action::Create | Action::Update)
        && p.commit.as_ref().map(|c| c.sha.as_str()) != p.observed_commit.as_deref()
}

/// The registry host a template writes out (validation refuses others), for a last check
/// that what it rendered still names it.
fn literal_host(template: &str) -> String {
    registry::canonical_registry(template.split('/').next().unwrap_or(""))
}

/// A staging's images, rendered; an error blocks it.
fn images_of(config: &Config, p: &Planned, templates: &[String]) -> Result<Vec<String>, PlanError> {
    let ctx = p.context.as_deref().expect("checked by the caller");
    let view = minijinja::Value::from_serialize(ctx);
    let mut out = Vec::new();
    for t in templates {
        let image = config.templates.render_str(t, &view).map_err(|e| {
            PlanError::Render(
                crate::render::inline_error(&config.templates, t, "wait_for.image", &e, ctx)
                    .to_string(),
            )
        })?;
        let parsed =
            registry::ImageRef::parse(&image).map_err(|e| PlanError::Render(e.to_string()))?;
        if parsed.registry != literal_host(t) {
            return Err(PlanError::Render(format!(
                "wait_for.image {image:?} names registry {:?}, not {:?} as written",
                parsed.registry,
                literal_host(t)
            )));
        }
        out.push(image);
    }
    Ok(out)
}

/// Hold back the stagings whose images are not there yet. All of a pass's images are asked
/// for at once, a few at a time, within [`ALL_CHECKS`]: one slow registry delays the pass by
/// that much at most, and the others' images are asked all the same.
pub async fn gate(config: &Config, plan: &mut Plan, now: DateTime<Utc>) {
    let mut wanted: Vec<(usize, Vec<String>, bool)> = Vec::new();
    let mut asks: HashMap<String, (Option<RegistryCredentials>, bool)> = HashMap::new();
    for (i, p) in plan.stagings.iter_mut().enumerate() {
        let Some(w) = p.settings.as_ref().and_then(|s| s.wait_for.clone()) else {
            continue;
        };
        if p.error.is_some() || !new_commit(p) || p.context.is_none() {
            continue;
        }
        let images = match images_of(config, p, &w.images) {
            Ok(i) => i,
            Err(e) => {
                p.block(e);
                continue;
            }
        };
        let commit_time = p.commit.as_ref().map_or(now, |c| c.time);
        let gave_up = chrono::Duration::from_std(w.give_up).is_ok_and(|g| now - commit_time > g);
        for image in &images {
            let e = asks
                .entry(image.clone())
                .or_insert((w.credentials.clone(), gave_up));
            // Asked as the most patient staging that wants it.
            e.1 &= gave_up;
        }
        wanted.push((i, images, gave_up));
    }
    let checks = futures::stream::iter(asks.iter())
        .map(|(image, (creds, gave_up))| async move {
            (
                image.clone(),
                ask(image, creds.as_ref(), now, *gave_up).await,
            )
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>();
    let mut answers: HashMap<String, Result<(), Known>> =
        match tokio::time::timeout(ALL_CHECKS, checks).await {
            Ok(a) => a.into_iter().collect(),
            Err(_) => HashMap::new(),
        };
    let mut recheck: Option<DateTime<Utc>> = None;
    for (i, images, gave_up) in wanted {
        let missing = images.iter().find_map(|image| {
            let answer = answers.entry(image.clone()).or_insert_with(|| {
                let late = remember(
                    image,
                    KNOWN.lock().expect("known").get(image).cloned(),
                    Err(registry::RegistryError::Unanswered(ALL_CHECKS)),
                    now,
                );
                Err(late)
            });
            answer.clone().err().map(|k| (image.clone(), k))
        });
        let Some((image, k)) = missing else {
            continue;
        };
        if !gave_up {
            recheck = Some(recheck.map_or(k.next, |r| r.min(k.next)));
        }
        hold(
            &mut plan.stagings[i],
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
            p.commit = Some(crate::source::Commit::recorded(sha, p.first_seen));
        }
    }
}
