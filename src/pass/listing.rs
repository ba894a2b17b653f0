//! Branch listings of a pass: every application repository fetched once, in parallel, each
//! bounded, a failure kept to the environments that use it.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::warn;

use crate::config::{self, Config};
use crate::source::{ListingError, RepoCache};

/// List every environment's repository, each repository once however many environments use
/// it, in parallel; failures are per environment. Each listing is bounded by the cache's
/// timeout: one that hangs is abandoned and reported, and its environment keeps its stagings.
pub async fn list_branches(config: &Config, cache: &RepoCache) -> crate::plan::Listings {
    // One fetch per repository (URL and credentials), with every pin of its environments.
    let mut repos: Vec<(config::Repository, Vec<String>, Vec<String>)> = Vec::new();
    for env in &config.environments {
        let pins = env.statics.iter().filter_map(|st| match &st.pin {
            config::Pin::Commit(c) => Some(c.clone()),
            config::Pin::Branch(_) => None,
        });
        match repos.iter_mut().find(|(r, _, _)| *r == env.repository) {
            Some((_, envs, p)) => {
                envs.push(env.name.clone());
                p.extend(pins);
            }
            None => repos.push((
                env.repository.clone(),
                vec![env.name.clone()],
                pins.collect(),
            )),
        }
    }
    let limit = cache.timeout() + std::time::Duration::from_secs(5);
    let listings = futures::future::join_all(repos.into_iter().map(|(repo, envs, mut pins)| {
        pins.sort();
        pins.dedup();
        let cache = cache.clone();
        async move {
            let url = repo.url.clone();
            let started = std::time::Instant::now();
            let task = tokio::task::spawn_blocking(move || {
                cache
                    .list(&repo.url, &repo.credentials, &pins)
                    .map_err(|e| ListingError::Source(Arc::new(e)))
            });
            let r = match tokio::time::timeout(limit, task).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(ListingError::Task(Arc::new(e))),
                Err(_) => Err(ListingError::Abandoned {
                    url: crate::redact::url(&url),
                    after: limit,
                }),
            };
            crate::metrics::get()
                .fetch_duration
                .observe(started.elapsed().as_secs_f64());
            (envs, r)
        }
    }))
    .await;
    let mut out = HashMap::new();
    for (envs, r) in listings {
        if let Err(e) = &r {
            warn!(environments = ?envs, error = %e, "branch listing failed; these environments' stagings are kept as they are");
            for env in &envs {
                crate::metrics::get()
                    .fetch_failures
                    .get_or_create(&crate::metrics::EnvLabel {
                        environment: env.clone(),
                    })
                    .inc();
            }
        }
        for env in envs {
            out.insert(env, r.clone());
        }
    }
    pull_requests(config, cache, &mut out).await;
    out
}

/// Environments whose branches come from pull requests: their listings kept to the head
/// branches of open pull requests (not from forks, with a label asked for). A poll that fails
/// fails the environment's listing, which keeps its stagings as they are; an empty or shrunken
/// list meets the same guards as a git listing.
async fn pull_requests(config: &Config, cache: &RepoCache, out: &mut crate::plan::Listings) {
    let polls = config.environments.iter().filter_map(|env| {
        let p = env.pull_requests.clone()?;
        if !matches!(out.get(&env.name), Some(Ok(_))) {
            return None;
        }
        let repository = p
            .repository
            .clone()
            .or_else(|| crate::source::repository_of(&env.repository.url));
        Some(async move {
            let r = match repository {
                None => Err(crate::source::pulls::PullsError::NoRepository),
                Some(repo) => crate::source::pulls::poll(cache.dir(), &p, &repo).await,
            };
            (env.name.clone(), p, r)
        })
    });
    for (env, p, r) in futures::future::join_all(polls).await {
        match r {
            Ok(polled) => {
                tracing::debug!(environment = %env, pulls = polled.pulls.len(), fetched = polled.fetched, not_modified = polled.not_modified, "pull requests polled");
                if let Some(Ok(listing)) = out.get_mut(&env) {
                    let wanted = crate::source::pulls::branches(&polled.pulls, &p.labels);
                    let listed: std::collections::HashSet<&str> =
                        listing.branches.iter().map(|b| b.name.as_str()).collect();
                    listing.pulls_left_out =
                        crate::source::pulls::left_out(&polled.pulls, &p.labels, |b| {
                            listed.contains(b)
                        });
                    // Static stagings and `always` branches follow git heads whatever the pull
                    // requests say: one environment can hold `main` and the labelled PRs.
                    let Some(e) = config.environment(&env) else {
                        continue;
                    };
                    let pinned: std::collections::HashSet<&str> = e
                        .statics
                        .iter()
                        .filter_map(|st| match &st.pin {
                            config::Pin::Branch(b) => Some(b.as_str()),
                            config::Pin::Commit(_) => None,
                        })
                        .collect();
                    let (kept, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut listing.branches)
                        .into_iter()
                        .partition(|b| {
                            wanted.contains(b.name.as_str()) || e.always.matches(&b.name).is_some()
                        });
                    listing.branches = kept;
                    listing.pinned_heads = rest
                        .into_iter()
                        .filter(|b| pinned.contains(b.name.as_str()))
                        .collect();
                    listing.pull_requests = true;
                }
            }
            Err(e) => {
                let e = ListingError::Pulls {
                    api: crate::redact::url(&p.api_url),
                    source: e,
                };
                warn!(environment = %env, error = %e, "pull request listing failed; this environment's stagings are kept as they are");
                out.insert(env, Err(e));
            }
        }
    }
}
