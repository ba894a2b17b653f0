//! One pass: read the sources, validate, plan, render and converge the target. Passes are
//! idempotent: a second pass over unchanged input writes nothing.
//!
//! The pure core (validation, planning, rendering) runs on blocking threads beside the async
//! I/O of targets; stagings converge as a bounded number of concurrent tasks, and a pass can be
//! cancelled between stagings (SIGTERM): what started finishes, the rest waits for the next run.

use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::config::{self, Config, LoadOptions};
use crate::plan::{self, Action, Plan, Planned};
use crate::render::{self, Object, RenderError};
use crate::source::{ConfigSource, RepoCache};
use crate::targets::{Change, ChangeKind, Target, TargetError};

mod copies;
mod images;
mod listing;
mod lookup;
mod outcome;
mod scope;
mod sources;

pub use images::Images;
pub use listing::list_branches;
pub use outcome::{Outcome, Report, StagingError};
pub use scope::Scope;
pub use sources::{load_config, read_sources, Sources};

pub use lookup::{render_samples, render_staging, LookupError, Samples};

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
    Target(#[from] TargetError),
    /// Shutdown was requested before the pass wrote anything.
    #[error("the pass was cancelled before it changed anything")]
    Cancelled,
}

/// `f`, unless `cancel` fires first.
async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    f: impl std::future::Future<Output = T>,
) -> Result<T, PassError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(PassError::Cancelled),
        r = f => Ok(r),
    }
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
    /// Carry out the deletions held back if they are exactly the set of this digest (an
    /// approval of the held set a plan showed); a different set stays held.
    pub approved: Option<String>,
    /// Most stagings converged at once.
    pub concurrency: usize,
    /// Where progress is shown (a terminal), if anywhere.
    pub progress: crate::progress::Progress,
    /// With `dry_run`: read what the target holds of each changed object and name the fields
    /// that differ (`plan --diff`).
    pub diff: bool,
    /// What the registries said of the images stagings wait for, kept across passes.
    pub images: Arc<Images>,
}

/// Run one pass at time `now`; `cancel` stops it between stagings.
pub async fn run(
    source: &ConfigSource,
    cache: &RepoCache,
    target: &dyn Target,
    now: DateTime<Utc>,
    opts: &PassOptions,
    cancel: &CancellationToken,
) -> Result<Report, PassError> {
    let sources = read_sources(source, cache, opts, None, cancel).await?;
    let observed = observe(target, cancel).await?;
    run_observed(
        &sources,
        &observed,
        cache,
        target,
        now,
        opts,
        &Scope::All,
        cancel,
    )
    .await
}

/// Run one pass at time `now` on sources and a view of the target already read, converging
/// the stagings of `scope`.
#[allow(clippy::too_many_arguments)]
pub async fn run_observed(
    sources: &Sources,
    observed: &plan::Observed,
    cache: &RepoCache,
    target: &dyn Target,
    now: DateTime<Utc>,
    opts: &PassOptions,
    scope: &Scope,
    cancel: &CancellationToken,
) -> Result<Report, PassError> {
    let span = info_span!("pass", target = %target.describe(), dry_run = opts.dry_run);
    async move {
        // Whole seconds: recorded times stay readable and a pass at the same second is
        // byte-stable.
        let now = now.with_nanosecond(0).unwrap_or(now);
        let (writes_before, requests_before) = (target.writes(), target.requests());
        let (config, listings) = (sources.config.clone(), &*sources.listings);
        let inputs = |images| plan::Inputs {
            listings,
            observed,
            now,
            confirm_deletions: opts.confirm_deletions,
            previous: scope.last().map(|r| &r.plan),
            images: Some(images),
        };
        let facts = opts.images.facts();
        let mut plan = approved(&config, inputs(&facts), opts);
        let answered;
        if !plan.asks.is_empty() {
            // The registries' word on what the plan waits for, then the plan made with it.
            unless_cancelled(cancel, opts.images.ask(&plan.asks, now)).await?;
            answered = opts.images.facts();
            plan = approved(&config, inputs(&answered), opts);
        }
        let selected = scope.select(&plan);
        let copied = unless_cancelled(
            cancel,
            copies::read(&plan, target, crate::consts::OBSERVE_TIMEOUT),
        )
        .await?;
        let outcomes = converge(
            &config, cache, &plan, &selected, &copied, target, opts, cancel,
        )
        .await;
        opts.progress.finish();
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
            looked_at = selected.iter().filter(|s| **s).count(),
            writes = report.writes,
            requests = report.requests,
            failures = report.failures(),
            skipped = report.skipped(),
            "pass finished"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

/// The plan, with the deletions it holds back carried out when `opts` approves exactly them.
fn approved(config: &Config, inputs: plan::Inputs<'_>, opts: &PassOptions) -> Plan {
    let plan = plan::plan(config, &inputs);
    let (false, Some(approved)) = (opts.confirm_deletions, &opts.approved) else {
        return plan;
    };
    match plan.held() {
        Some((_, digest)) if &digest == approved => {
            info!(held = %digest, "the held deletions were approved: carrying them out");
            let inputs = plan::Inputs {
                confirm_deletions: true,
                ..inputs
            };
            plan::plan(config, &inputs)
        }
        now_held => {
            warn!(
                approved = %approved,
                held = now_held.map(|(_, d)| d).unwrap_or_default(),
                "an approval for another held set than this pass's: nothing approved; approve the set the plan shows now"
            );
            plan
        }
    }
}

/// What the target holds, within [`crate::consts::OBSERVE_TIMEOUT`], unless `cancel` fires.
pub async fn observe(
    target: &dyn Target,
    cancel: &CancellationToken,
) -> Result<plan::Observed, PassError> {
    let observe = tokio::time::timeout(crate::consts::OBSERVE_TIMEOUT, target.observe());
    Ok(unless_cancelled(cancel, observe)
        .await?
        .map_err(|_| TargetError::Io {
            path: target.describe(),
            cause: crate::targets::Cause::new(
                crate::targets::CauseKind::Timeout,
                format_args!(
                    "reading what the target holds did not finish within {}",
                    humantime::format_duration(crate::consts::OBSERVE_TIMEOUT)
                ),
            ),
        })??)
}

/// Apply every staging of the plan, a bounded number at once; one failure never stops the
/// others. Once `cancel` fires, stagings not yet started are skipped.
#[allow(clippy::too_many_arguments)]
async fn converge(
    config: &Arc<Config>,
    cache: &RepoCache,
    plan: &Plan,
    selected: &[bool],
    copied: &copies::Copied,
    target: &dyn Target,
    opts: &PassOptions,
    cancel: &CancellationToken,
) -> Vec<Outcome> {
    let work: Vec<usize> = (0..plan.stagings.len())
        .filter(|&i| {
            let s = &plan.stagings[i];
            selected[i]
                && s.error.is_none()
                && (s.action == Action::Delete || (s.exists_after() && s.context.is_some()))
        })
        .collect();
    opts.progress.stagings(work.len());
    let mut results: Vec<Outcome> = futures::stream::iter(work)
        .map(|i| async move {
            if cancel.is_cancelled() {
                return Outcome {
                    index: i,
                    changes: Vec::new(),
                    error: None,
                    skipped: true,
                };
            }
            let p = &plan.stagings[i];
            let span = info_span!("staging", name = %p.name, action = %p.action);
            let r = converge_one(config, cache, p, copied, target, opts, cancel)
                .instrument(span)
                .await;
            opts.progress.done_one();
            match r {
                Ok(changes) => {
                    if p.action != Action::Noop || !changes.is_empty() {
                        // One line per pass at the default level; per staging at debug.
                        debug!(staging = %p.name, reason = %p.reason(), changes = changes.len(), "{}", if opts.dry_run { "would converge" } else { "converged" });
                    }
                    Outcome { index: i, changes, error: None, skipped: false }
                }
                Err(StagingError::Render(RenderError::Cancelled)) => {
                    Outcome { index: i, changes: Vec::new(), error: None, skipped: true }
                }
                Err(e) => {
                    warn!(staging = %p.name, error = %e, "staging failed; the others go on");
                    Outcome { index: i, changes: Vec::new(), error: Some(e), skipped: false }
                }
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|o| o.index);
    results
}

#[allow(clippy::too_many_arguments)]
async fn converge_one(
    config: &Arc<Config>,
    cache: &RepoCache,
    p: &Planned,
    copied: &copies::Copied,
    target: &dyn Target,
    opts: &PassOptions,
    cancel: &CancellationToken,
) -> Result<Vec<Change>, StagingError> {
    let dry_run = opts.dry_run;
    let limit = crate::consts::STAGING_WRITE_TIMEOUT;
    let late = || {
        StagingError::Target(TargetError::Io {
            path: p.name.clone(),
            cause: crate::targets::Cause::new(
                crate::targets::CauseKind::Timeout,
                format_args!(
                    "writing the staging did not finish within {} and was abandoned",
                    humantime::format_duration(limit)
                ),
            ),
        })
    };
    if p.action == Action::Delete {
        tokio::time::timeout(limit, target.delete(p, dry_run))
            .await
            .map_err(|_| late())??;
        return Ok(Vec::new());
    }
    // A staging that stays or comes has both; `converge` picks only such ones.
    let (Some(ctx), Some(settings)) = (p.context.clone(), p.settings.clone()) else {
        return Ok(Vec::new());
    };
    let asleep = p.state.is_some_and(|s| s.asleep());
    // What is copied counts in the fingerprint: a rotated source is a change.
    let (copies, copy_digest) = copies::collect(&settings, copied)?;
    let fingerprint = render::fingerprint(config, &settings, &ctx, asleep)
        .map(|f| f + copy_digest.as_deref().unwrap_or_default());
    if let Some(f) = &fingerprint {
        if target.holds(p, f) {
            return Ok(Vec::new());
        }
    }
    let (config, cancel, context) = (config.clone(), cancel.clone(), ctx.clone());
    let (cache, environment) = (cache.clone(), p.environment.clone());
    let mut objects = tokio::task::spawn_blocking(move || {
        let app_dir = render::export_app(&cache, &config, &environment, &settings, &ctx)?;
        render::render(&config, &settings, &ctx, app_dir.as_deref(), Some(cancel))
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    copies::add(&mut objects, copies, &context)?;
    // What it costs awake is known only now; the record carries it.
    let usage = render::sleep::usage(&objects);
    if asleep {
        render::sleep::put_to_sleep(&mut objects);
    }
    let rendered = crate::targets::Rendered {
        objects: &objects,
        fingerprint: fingerprint.as_deref(),
        usage,
    };
    // One bound over the writes and, for `plan --diff`, the reads of what the target holds.
    let work = async {
        let mut changes = target.apply(p, &rendered, dry_run).await?;
        if dry_run && opts.diff {
            field_changes(target, p, &objects, &mut changes).await;
        }
        Ok::<_, TargetError>(changes)
    };
    Ok(tokio::time::timeout(limit, work)
        .await
        .map_err(|_| late())??)
}

/// Each updated object's changed fields, one per line, after its detail (`plan --diff`).
async fn field_changes(
    target: &dyn Target,
    p: &Planned,
    objects: &[Object],
    changes: &mut [Change],
) {
    for c in changes.iter_mut() {
        if !matches!(c.kind, ChangeKind::Update | ChangeKind::Restore) {
            continue;
        }
        let Some(o) = objects.iter().find(|o| render::object_id(o) == c.object) else {
            continue;
        };
        let Some(live) = target.current(p, o).await else {
            continue;
        };
        let lines = crate::diff::fields(o, &live);
        if !lines.is_empty() {
            let mut detail = c.detail.take().map(|d| vec![d]).unwrap_or_default();
            detail.extend(lines);
            c.detail = Some(detail.join("\n"));
        }
    }
}
