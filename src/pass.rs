//! One pass: read the sources, validate, plan, render and converge the target. Passes are
//! idempotent: a second pass over unchanged input writes nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Timelike, Utc};
use tracing::{info, info_span, warn};

use crate::config::{self, Config, LoadOptions};
use crate::plan::{self, Action, Plan, Planned};
use crate::render;
use crate::source::{ConfigSource, RepoCache, RepoListing};
use crate::target::{Change, Target};

/// Why a pass could not run at all. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The config repository could not be read.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The target could not be read.
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
}

/// How a pass behaves.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Load options (repository overrides).
    pub load: LoadOptions,
    /// Only report what would change.
    pub dry_run: bool,
    /// Believe listings that lost many branches at once.
    pub confirm_deletions: bool,
    /// Most stagings converged at once.
    pub concurrency: usize,
}

/// What happened to one staging.
#[derive(Debug)]
pub struct Outcome {
    /// Index into the plan's stagings.
    pub index: usize,
    /// Object changes made (or that would be made).
    pub changes: Vec<Change>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The result of a pass.
#[derive(Debug)]
pub struct Report {
    /// The configuration used.
    pub config: Config,
    /// The plan.
    pub plan: Plan,
    /// One outcome per planned staging that needed work.
    pub outcomes: Vec<Outcome>,
    /// Writes the target performed in this pass.
    pub writes: u64,
    /// Requests the pass sent to the target (reads and writes).
    pub requests: u64,
}

impl Report {
    /// Stagings that failed.
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
            + self
                .plan
                .stagings
                .iter()
                .filter(|s| s.error.is_some())
                .count()
    }

    /// The outcome of the staging at `index`, if it needed work.
    pub fn outcome(&self, index: usize) -> Option<&Outcome> {
        // Outcomes are sorted by index (see `converge`).
        self.outcomes
            .binary_search_by_key(&index, |o| o.index)
            .ok()
            .map(|i| &self.outcomes[i])
    }

    /// The effective action of a staging: a planned noop whose rendered objects changed is an update.
    pub fn effective(&self, index: usize) -> (Action, String) {
        let p = &self.plan.stagings[index];
        let changes = self
            .outcome(index)
            .map(|o| o.changes.as_slice())
            .unwrap_or(&[]);
        if p.action == Action::Noop && !changes.is_empty() {
            let list: Vec<String> = changes.iter().take(3).map(|c| c.to_string()).collect();
            let more = if changes.len() > 3 {
                format!(" and {} more", changes.len() - 3)
            } else {
                String::new()
            };
            return (
                Action::Update,
                format!("rendered objects changed: {}{more}", list.join(", ")),
            );
        }
        (p.action, p.reason.clone())
    }
}

/// Load the configuration from a snapshot of `source`.
pub fn load_config(source: &ConfigSource, opts: &LoadOptions) -> Result<Config, PassError> {
    let snapshot = source.snapshot()?;
    let opts = LoadOptions {
        commit: snapshot.commit.clone(),
        ..opts.clone()
    };
    Ok(config::load(&snapshot.root, &opts)?)
}

/// List every environment's repository, in parallel; failures are per environment.
pub fn list_branches(
    config: &Config,
    cache: &RepoCache,
) -> HashMap<String, Result<RepoListing, String>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = config
            .environments
            .iter()
            .map(|env| {
                let pins: Vec<String> = env
                    .statics
                    .iter()
                    .filter_map(|st| match &st.pin {
                        config::Pin::Commit(c) => Some(c.clone()),
                        config::Pin::Branch(_) => None,
                    })
                    .collect();
                let handle = s.spawn(move || {
                    cache.list(&env.repository.url, &env.repository.credentials, &pins)
                });
                (env.name.clone(), handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let r = h.join().unwrap_or_else(|_| {
                    Err(crate::source::SourceError::Local { path: name.clone(), message: "listing panicked".into() })
                });
                if let Err(e) = &r {
                    warn!(environment = %name, error = %e, "branch listing failed; this environment's stagings are kept as they are");
                }
                (name, r.map_err(|e| e.to_string()))
            })
            .collect()
    })
}

/// Run one pass at time `now`.
pub fn run(
    source: &ConfigSource,
    cache: &RepoCache,
    target: &dyn Target,
    now: DateTime<Utc>,
    opts: &PassOptions,
) -> Result<Report, PassError> {
    let span = info_span!("pass", target = %target.describe(), dry_run = opts.dry_run);
    let _enter = span.enter();
    // Whole seconds: recorded times stay readable and a pass at the same second is byte-stable.
    let now = now.with_nanosecond(0).unwrap_or(now);
    let (writes_before, requests_before) = (target.writes(), target.requests());
    let config = load_config(source, &opts.load)?;
    let listings = list_branches(&config, cache);
    let observed = target.observe()?;
    let plan = plan::plan(
        &config,
        &plan::Inputs {
            listings: &listings,
            observed: &observed,
            now,
            confirm_deletions: opts.confirm_deletions,
        },
    );
    let outcomes = converge(&config, &plan, target, opts);
    let report = Report {
        writes: target.writes() - writes_before,
        requests: target.requests() - requests_before,
        config,
        plan,
        outcomes,
    };
    info!(
        stagings = report
            .plan
            .stagings
            .iter()
            .filter(|s| s.exists_after())
            .count(),
        writes = report.writes,
        failures = report.failures(),
        "pass finished"
    );
    Ok(report)
}

/// Apply every staging of the plan, a bounded number at once; one failure never stops the others.
fn converge(config: &Config, plan: &Plan, target: &dyn Target, opts: &PassOptions) -> Vec<Outcome> {
    let work: Vec<usize> = (0..plan.stagings.len())
        .filter(|&i| {
            let s = &plan.stagings[i];
            s.error.is_none()
                && (s.action == Action::Delete || (s.exists_after() && s.context.is_some()))
        })
        .collect();
    let next = Mutex::new(work.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.concurrency.max(1) {
            s.spawn(|| loop {
                let Some(i) = next.lock().expect("work queue").next() else {
                    break;
                };
                let outcome = converge_one(config, &plan.stagings[i], target, opts.dry_run);
                let outcome = Outcome {
                    index: i,
                    ..outcome
                };
                results.lock().expect("results").push(outcome);
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|o| o.index);
    results
}

fn converge_one(config: &Config, p: &Planned, target: &dyn Target, dry_run: bool) -> Outcome {
    let span = info_span!("staging", name = %p.name, action = %p.action);
    let _enter = span.enter();
    let result = if p.action == Action::Delete {
        target
            .delete(p, dry_run)
            .map(|_| Vec::new())
            .map_err(|e| e.to_string())
    } else {
        let ctx = p
            .context
            .as_ref()
            .expect("filtered to stagings with a context");
        let settings = p
            .settings
            .as_ref()
            .expect("stagings that exist have settings");
        render::render(config, settings, ctx)
            .map_err(|e| e.to_string())
            .and_then(|objects| {
                target
                    .apply(p, &objects, dry_run)
                    .map_err(|e| e.to_string())
            })
    };
    match result {
        Ok(changes) => {
            if p.action != Action::Noop || !changes.is_empty() {
                info!(reason = %p.reason, changes = changes.len(), "{}", if dry_run { "would converge" } else { "converged" });
            }
            Outcome {
                index: 0,
                changes,
                error: None,
            }
        }
        Err(e) => {
            warn!(error = %e, "staging failed; the others go on");
            Outcome {
                index: 0,
                changes: Vec::new(),
                error: Some(e),
            }
        }
    }
}

/// Why `render_staging` could not render.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No such environment, branch or static staging, or its source failed.
    #[error("{0}")]
    NotFound(String),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] render::RenderError),
}

/// Render one staging (by branch or static name) as a pass would, whatever its lifecycle.
pub fn render_staging(
    config: &Config,
    listings: &HashMap<String, Result<RepoListing, String>>,
    environment: &str,
    branch: Option<&str>,
    static_name: Option<&str>,
) -> Result<Vec<render::Object>, LookupError> {
    let nf = |m: String| LookupError::NotFound(m);
    let env = config.environment(environment).ok_or_else(|| {
        nf(format!(
            "no environment {environment:?} in the configuration"
        ))
    })?;
    let listing = listings
        .get(environment)
        .ok_or_else(|| nf(format!("environment {environment:?} was not listed")))?
        .as_ref()
        .map_err(|e| nf(format!("cannot list branches of {environment:?}: {e}")))?;
    let reserved: std::collections::HashSet<String> = env
        .statics
        .iter()
        .map(|s| crate::naming::static_name(&env.name, &s.name))
        .collect();
    let (name, branch, commit, settings) = if let Some(s) = static_name {
        let st = env.statics.iter().find(|x| x.name == s).ok_or_else(|| {
            nf(format!(
                "environment {environment:?} has no static staging {s:?}"
            ))
        })?;
        let (label, commit) = match &st.pin {
            config::Pin::Branch(b) => (
                b.clone(),
                listing
                    .branches
                    .iter()
                    .find(|x| &x.name == b)
                    .map(|x| x.commit.clone())
                    .ok_or_else(|| nf(format!("pinned branch {b:?} does not exist")))?,
            ),
            config::Pin::Commit(c) => (
                c.clone(),
                listing
                    .pins
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| Err(format!("pin {c:?} not resolved")))
                    .map_err(nf)?,
            ),
        };
        (
            crate::naming::static_name(&env.name, s),
            label,
            commit,
            st.settings.clone(),
        )
    } else {
        let b = branch.expect("clap requires --branch or --static");
        let found = listing
            .branches
            .iter()
            .find(|x| x.name == b)
            .ok_or_else(|| {
                nf(format!(
                    "branch {b:?} does not exist in {}",
                    env.repository.url
                ))
            })?;
        // Name it among the branches a pass would see, so collisions resolve the same way.
        let names: Vec<&str> = listing
            .branches
            .iter()
            .map(|x| x.name.as_str())
            .filter(|n| {
                *n == b || (env.include.matches(n).is_some() && env.exclude.matches(n).is_none())
            })
            .collect();
        let name = crate::naming::assign(&env.name, names, &reserved, &HashMap::new())[b].clone();
        (
            name,
            b.to_string(),
            found.commit.clone(),
            env.settings_for(b),
        )
    };
    let ctx = render::Context::build(
        &config.templates,
        &env.name,
        &name,
        &branch,
        &commit,
        &settings,
        config.commit.as_deref(),
    )?;
    Ok(render::render(config, &settings, &ctx)?)
}
