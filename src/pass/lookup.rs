//! Rendering one staging outside a pass (`octostage render`), named and set up exactly as a
//! pass would.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::plan;
use crate::render::{self, RenderError};
use crate::source::RepoListing;

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
    listings: &HashMap<String, Result<RepoListing, String>>,
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
    let plan = plan::plan(
        config,
        &plan::Inputs {
            listings,
            observed,
            now: DateTime::<Utc>::MIN_UTC,
            confirm_deletions: false,
        },
    );
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
