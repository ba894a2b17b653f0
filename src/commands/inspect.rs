//! The commands that read and show, writing nothing: `validate`, `render`, `plan`.

use std::process::ExitCode;

use super::{colored, out, sources, warn_about, CommandError};
use crate::cli::{Format, PlanArgs, RenderArgs, ValidateArgs};
use crate::controller::shutdown_on_signals;
use crate::pass::{self, PassOptions};
use crate::{check, redact, report, targets};

/// `validate`: the configuration, and unless `--offline` a sample render of each environment
/// against its application repository.
pub(super) async fn validate(v: ValidateArgs) -> Result<ExitCode, CommandError> {
    let a = &v.config;
    let s = sources(a);
    let config = pass::load_config(&s.source, &s.load).await?;
    warn_about(&config);
    let (mut findings, mut warnings) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || (check::check(&config), check::host_warnings(&config))
    })
    .await?;
    if !v.offline {
        let listings = pass::list_branches(&config, &s.cache).await;
        let cache = s.cache.clone();
        let config = config.clone();
        let samples =
            tokio::task::spawn_blocking(move || pass::render_samples(&config, &cache, &listings))
                .await?;
        // The sample render meets the configuration's own template errors again: said once.
        let known: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
        findings.extend(
            samples
                .findings
                .into_iter()
                .filter(|f| !known.contains(&f.message)),
        );
        warnings.extend(samples.warnings);
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if !findings.is_empty() {
        return Err(CommandError::Findings(findings));
    }
    let statics: usize = config.environments.iter().map(|e| e.statics.len()).sum();
    out(&format!(
        "{}: valid ({} environments, {statics} static stagings)\n",
        redact::url(&a.config),
        config.environments.len()
    ))?;
    out(&check::sleep_schedules(&config, chrono::Utc::now()))?;
    Ok(ExitCode::SUCCESS)
}

/// `render`: one staging's objects as YAML.
pub(super) async fn render(a: RenderArgs) -> Result<ExitCode, CommandError> {
    let s = sources(&a.config);
    let config = pass::load_config(&s.source, &s.load).await?;
    let listings = pass::list_branches(&config, &s.cache).await;
    let target = targets::open_for_plan(&a.target, &a.instance).await?;
    let observed = target.observe().await?;
    let cache = s.cache.clone();
    let objects = tokio::task::spawn_blocking(move || {
        pass::render_staging(
            &config,
            &cache,
            &listings,
            &observed,
            &a.environment,
            a.branch.as_deref(),
            a.static_name.as_deref(),
        )
    })
    .await??;
    let mut text = String::new();
    for o in objects {
        text.push_str("---\n");
        text.push_str(&crate::yaml::to_string(&o)?);
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `plan`: a pass that writes nothing, as a table, JSON or field changes.
pub(super) async fn plan(a: PlanArgs) -> Result<ExitCode, CommandError> {
    let s = sources(&a.config);
    let target = targets::open_for_plan(&a.target.select.target, &a.target.select.instance).await?;
    let opts = PassOptions {
        load: s.load,
        dry_run: true,
        confirm_deletions: a.target.confirm_deletions,
        approved: None,
        concurrency: a.target.concurrency,
        progress: crate::progress::Progress::on_terminal(),
        diff: a.diff,
        images: Default::default(),
    };
    let cancel = shutdown_on_signals()?;
    let at = a.at.unwrap_or_else(chrono::Utc::now);
    let r = pass::run(&s.source, &s.cache, target.as_ref(), at, &opts, &cancel).await?;
    warn_about(&r.config);
    match a.format {
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report::json(&r))?
        ))?,
        Format::Text if a.diff => out(&report::diff_text(&r))?,
        Format::Text => out(&colored(report::text(&r, true)))?,
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
