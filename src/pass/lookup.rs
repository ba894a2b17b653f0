//! Rendering one staging outside a pass (`octostage render`), named and set up exactly as a
//! pass would.

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::plan;
use crate::render::{self, RenderError};

/// Why `render_staging` could not render.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No such environment, branch or static staging, or its source failed.
    #[error("{0}")]
    NotFound(String),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Render one staging (by branch or static name) as a pass would, whatever its lifecycle, and
/// named as the pass names it: the planner decides the name and context.
pub fn render_staging(
    config: &Config,
    cache: &crate::source::RepoCache,
    listings: &plan::Listings,
    observed: &plan::Observed,
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
    if let Some(b) = branch {
        if !listing.branches.iter().any(|x| x.name == b) {
            return Err(nf(format!(
                "branch {b:?} does not exist in {}",
                crate::redact::url(&env.repository.url)
            )));
        }
    }
    // Plan with the staging's lifecycle set aside (it is rendered even when expired or capped),
    // so its name and context are exactly what a pass gives it.
    let plan = sample_plan(config, listings, observed);
    let p = plan
        .stagings
        .iter()
        .find(|p| {
            p.environment == environment
                && match (static_name, branch) {
                    (Some(s), _) => p.static_name.as_deref() == Some(s),
                    (None, Some(b)) => p.static_name.is_none() && p.branch == b,
                    (None, None) => false,
                }
        })
        .ok_or_else(|| match static_name {
            Some(s) => nf(format!("environment {environment:?} has no static staging {s:?}, or its pin does not resolve")),
            None => nf(format!("branch {:?} gets no staging in {environment:?} (not included, or excluded)", branch.unwrap_or_default())),
        })?;
    if let Some(e) = &p.error {
        return Err(nf(format!("{}: {e}", p.name)));
    }
    let ctx = p
        .context
        .as_ref()
        .ok_or_else(|| nf(format!("{}: {}", p.name, p.reason())))?;
    let settings = p
        .settings
        .as_ref()
        .expect("stagings with a context have settings");
    let app_dir = render::export_app(cache, config, environment, settings, ctx)?;
    Ok(render::render(
        config,
        settings,
        ctx,
        app_dir.as_deref(),
        None,
    )?)
}

/// What rendering one sample staging per environment found: problems a pass would fail on,
/// and warnings.
#[derive(Debug, Default)]
pub struct Samples {
    /// What a pass would fail on.
    pub findings: Vec<crate::check::Finding>,
    /// What a pass would not fail on, but a user would want to know.
    pub warnings: Vec<crate::check::Finding>,
}

/// The stagings a pass would have from `listings` and `observed`, their lifecycle set aside
/// (the plan of the earliest time: nothing has expired, slept or been capped yet).
fn sample_plan(
    config: &Config,
    listings: &plan::Listings,
    observed: &plan::Observed,
) -> plan::Plan {
    plan::plan(
        config,
        &plan::Inputs {
            listings,
            observed,
            now: DateTime::<Utc>::MIN_UTC,
            confirm_deletions: false,
            previous: None,
            images: None,
        },
    )
}

/// For `validate`: render, as a pass would, the first staging of every environment that runs
/// kustomize or helm or reads templates from the application repository, so that what only
/// the tool or the repository's files can tell (an overlay naming `../../base` outside the
/// exported paths, a missing chart) shows before a pass fails every staging on it.
pub fn render_samples(
    config: &Config,
    cache: &crate::source::RepoCache,
    listings: &plan::Listings,
) -> Samples {
    use crate::check::Finding;
    let observed = plan::Observed::default();
    let plan = sample_plan(config, listings, &observed);
    let mut out = Samples::default();
    for env in &config.environments {
        let tool = matches!(
            env.settings.render,
            crate::config::Render::Kustomize(_)
                | crate::config::Render::Helm(_)
                | crate::config::Render::AppTemplates(_)
        );
        if !tool {
            continue;
        }
        let repo = crate::redact::url(&env.repository.url);
        if let Some(Err(e)) = listings.get(&env.name) {
            out.warnings.push(Finding {
                what: format!("environment {}", env.name),
                message: format!(
                    "not rendered against the application repository: {e}; `validate --offline` skips this"
                ),
            });
            continue;
        }
        let Some(p) = plan.stagings.iter().find(|p| p.environment == env.name) else {
            out.warnings.push(Finding {
                what: format!("environment {}", env.name),
                message: format!("no branch of {repo} gets a staging, so none was rendered"),
            });
            continue;
        };
        let what = match &p.static_name {
            Some(s) => format!("environment {}, static staging {s:?} (rendered)", env.name),
            None => format!(
                "environment {} (rendered as branch {:?} of {repo})",
                env.name, p.branch
            ),
        };
        let branch = p.static_name.is_none().then_some(p.branch.as_str());
        match render_staging(
            config,
            cache,
            listings,
            &observed,
            &env.name,
            branch,
            p.static_name.as_deref(),
        ) {
            Ok(objects) => {
                for (at, host) in crate::check::hosts::of_objects(&objects) {
                    if let Some(message) = crate::check::hosts::label_problem(&host) {
                        out.warnings.push(Finding {
                            what: format!("{what}, {at}"),
                            message,
                        });
                    }
                }
            }
            Err(e) => out.findings.push(Finding {
                what,
                message: e.to_string(),
            }),
        }
    }
    out
}
