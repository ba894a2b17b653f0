//! `wait_for` in the plan: before a staging is created on a commit or moved to one, the images
//! that commit needs must be in their registry. A missing one keeps the staging as it is: a new
//! staging is not created, a running one keeps its commit, with the image as the reason.
//!
//! The planner only reads what is known of each image ([`ImageFacts`], an input); an image it
//! needs the registry's word on becomes an [`ImageAsk`] of the plan, and the pass asks and plans
//! again with the answers. So the plan a pass converges is the planner's own, never edited.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Action, PlanError, Planned, Unrendered, Why};
use crate::config::{Config, RegistryCredentials};
use crate::source::registry;

/// What is known of one image, as its registry last answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFact {
    /// Present for good (a tag that exists is not asked for again).
    pub present: bool,
    /// Missing or failing: why.
    pub detail: String,
    /// When to ask again.
    pub next: DateTime<Utc>,
    /// The wait that led to `next` (it doubles with every answer that is not "present").
    pub wait: Duration,
}

/// What is known of images, by reference.
pub type ImageFacts = HashMap<String, ImageFact>;

/// An image the plan needs the registry's word on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAsk {
    /// The image reference.
    pub image: String,
    /// The credentials of the first staging that wants it.
    pub credentials: Option<RegistryCredentials>,
    /// Whether every staging that wants it is past `give_up` (asked once, never again).
    pub gave_up: bool,
}

/// What is wanted of the registries after the planner held back what it had to.
#[derive(Debug, Default)]
pub(super) struct Wanted {
    pub asks: Vec<ImageAsk>,
    /// When to look again at the images still missing.
    pub recheck: Option<DateTime<Utc>>,
}

/// How an image stands for one staging.
enum Standing<'a> {
    Present,
    /// Known missing (or failing), and not to be asked for now.
    Missing(&'a ImageFact),
    /// Not known, or due to be asked again.
    Ask,
}

fn standing(fact: Option<&ImageFact>, gave_up: bool, now: DateTime<Utc>) -> Standing<'_> {
    match fact {
        Some(f) if f.present => Standing::Present,
        // Past `give_up`, what is known stands for good: asked once per process.
        Some(f) if gave_up || now < f.next => Standing::Missing(f),
        _ => Standing::Ask,
    }
}

/// Whether `p` moves to a commit the target does not run yet.
fn new_commit(p: &Planned) -> bool {
    matches!(p.action, Action::Create | Action::Update)
        && p.commit.as_ref().map(|c| c.sha.as_str())
            != p.present.as_ref().map(|h| h.commit.as_str())
}

/// Hold back the stagings whose images are not known to be there; say which images to ask.
pub(super) fn hold_missing(
    config: &Config,
    stagings: &mut [Planned],
    facts: &ImageFacts,
    now: DateTime<Utc>,
) -> Wanted {
    let mut wanted = Wanted::default();
    let mut asks: HashMap<String, usize> = HashMap::new();
    for p in stagings.iter_mut() {
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
        let mut missing: Option<(String, String)> = None;
        for image in images {
            let detail = match standing(facts.get(&image), gave_up, now) {
                Standing::Present => continue,
                Standing::Missing(f) => {
                    if !gave_up {
                        wanted.recheck = Some(wanted.recheck.map_or(f.next, |r| r.min(f.next)));
                    }
                    f.detail.clone()
                }
                Standing::Ask => {
                    let i = *asks.entry(image.clone()).or_insert_with(|| {
                        wanted.asks.push(ImageAsk {
                            image: image.clone(),
                            credentials: w.credentials.clone(),
                            gave_up,
                        });
                        wanted.asks.len() - 1
                    });
                    // Asked as the most patient staging that wants it.
                    wanted.asks[i].gave_up &= gave_up;
                    "not asked yet".to_string()
                }
            };
            missing.get_or_insert((image, detail));
        }
        if let Some((image, detail)) = missing {
            hold(
                p,
                Why::WaitingForImage {
                    image,
                    detail,
                    gave_up,
                },
            );
        }
    }
    wanted
}

/// The registry host a template writes out (validation refuses others), for a last check
/// that what it rendered still names it.
fn literal_host(template: &str) -> String {
    registry::canonical_registry(template.split('/').next().unwrap_or(""))
}

/// A staging's images, rendered; an error blocks it.
fn images_of(config: &Config, p: &Planned, templates: &[String]) -> Result<Vec<String>, PlanError> {
    let Some(ctx) = p.context.as_deref() else {
        return Ok(Vec::new());
    };
    let view = minijinja::Value::from_serialize(ctx);
    let mut out = Vec::new();
    for t in templates {
        let image = config.templates.render_str(t, &view).map_err(|e| {
            let e = crate::render::inline_error(&config.templates, t, "wait_for.image", &e, ctx);
            PlanError::Render(e.into())
        })?;
        let parsed = registry::ImageRef::parse(&image).map_err(|e| PlanError::Render(e.into()))?;
        if parsed.registry != literal_host(t) {
            return Err(PlanError::Render(Unrendered::Registry {
                named: parsed.registry,
                written: literal_host(t),
                image,
            }));
        }
        out.push(image);
    }
    Ok(out)
}

/// Keep `p` as the target holds it: not created, or at its commit. Runs before this pass's
/// transitions are recorded, so none is.
fn hold(p: &mut Planned, why: Why) {
    p.action = Action::Noop;
    p.context = None;
    p.state = p.present_state();
    match p.present.as_ref().map(|h| &h.commit) {
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
