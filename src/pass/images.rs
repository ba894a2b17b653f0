//! The registries' word on the images stagings wait for (`wait_for`). The planner holds back
//! what it does not know to be there and names the images to ask ([`crate::plan::ImageAsk`]);
//! the pass asks here and plans again with the answers.
//!
//! Each image is asked for again with backoff (10 s doubling to 5 min), the controller woken for
//! it by the plan's `recheck`, until `give_up` after the commit's time; past it, the registry is
//! asked once per store (a process, a `run --once`) and never again. What the registry said is
//! kept by the store, so passes in between ask nothing.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::plan::{ImageAsk, ImageFact, ImageFacts};
use crate::source::registry::{self, Presence};

const FIRST_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// How many images are asked for at once, and how long all of a pass's asking may take.
const PARALLEL: usize = 8;
const ALL_CHECKS: Duration = Duration::from_secs(60);

/// Bounded: forgetting costs only a question to the registry.
const MAX_KNOWN: usize = 4096;

/// What a controller's passes know of images.
#[derive(Debug, Default)]
pub struct Images {
    known: Mutex<ImageFacts>,
}

impl Images {
    /// What is known now, for the planner.
    pub fn facts(&self) -> ImageFacts {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Ask for every image of `asks`, a few at a time, within [`ALL_CHECKS`]: one slow
    /// registry delays the pass by that much at most, and the others' images are asked all the
    /// same. An image not answered in time is remembered as unanswered.
    pub async fn ask(&self, asks: &[ImageAsk], now: DateTime<Utc>) {
        let checks = futures::stream::iter(asks)
            .map(|a| async move {
                let answer = registry::check(&a.image, a.credentials.as_ref()).await;
                (a.image.as_str(), answer)
            })
            .buffer_unordered(PARALLEL)
            .collect::<Vec<_>>();
        let answers: std::collections::HashMap<&str, _> = tokio::time::timeout(ALL_CHECKS, checks)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() + asks.len() > MAX_KNOWN {
            known.clear();
        }
        for a in asks {
            let answer = answers
                .get(a.image.as_str())
                .cloned()
                .unwrap_or(Err(registry::RegistryError::Unanswered(ALL_CHECKS)));
            let fact = remember(known.get(&a.image), answer, now);
            known.insert(a.image.clone(), fact);
        }
    }
}

/// What to know of an image after its registry answered `r`, given what was known before.
fn remember(
    before: Option<&ImageFact>,
    r: Result<Presence, registry::RegistryError>,
    now: DateTime<Utc>,
) -> ImageFact {
    let wait = before.map_or(FIRST_WAIT, |k| (k.wait * 2).min(MAX_WAIT));
    let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
    let (present, detail) = match r {
        Ok(Presence::Present) => (true, String::new()),
        Ok(Presence::Missing) => (false, "not in the registry yet".to_string()),
        Err(e) => (false, e.to_string()),
    };
    ImageFact {
        present,
        detail,
        next: if present { now } else { next },
        wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_not_there_is_asked_again_later_and_later_up_to_five_minutes() {
        let now = Utc::now();
        let mut fact: Option<ImageFact> = None;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let f = remember(fact.as_ref(), Ok(Presence::Missing), now);
            waits.push(f.wait.as_secs());
            assert_eq!(f.next, now + chrono::Duration::from_std(f.wait).unwrap());
            fact = Some(f);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        let present = remember(fact.as_ref(), Ok(Presence::Present), now);
        assert!(present.present && present.detail.is_empty());
    }
}
