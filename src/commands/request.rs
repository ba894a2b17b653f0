//! The commands on stagings the target holds: `status`, and the requests `sleep`, `wake` and
//! `extend`, which record what the next pass acts on.

use std::process::ExitCode;

use super::{out, sources, CommandError};
use crate::cli::{ExtendArgs, Format, StatusArgs, TargetSelect, WakeArgs};
use crate::controller::shutdown_on_signals;
use crate::pass::{self, PassOptions};
use crate::requests::{self, Ask, AskError};
use crate::{report, targets};

/// `status`: what the target holds, with `--config` also the stagings that fail before they
/// are created; with `--cost`, what they cost.
pub(super) async fn status(a: StatusArgs) -> Result<ExitCode, CommandError> {
    let target = targets::open(&a.select.target, &a.select.instance).await?;
    let st = target.status().await?;
    let now = chrono::Utc::now();
    // The target holds only what was created: with the configuration, a plan tells which
    // stagings fail, created or not.
    let failed = match a.ignored.config_args() {
        Some(args) if !a.cost => {
            let s = sources(&args);
            let opts = PassOptions {
                load: s.load,
                dry_run: true,
                confirm_deletions: false,
                approved: None,
                concurrency: 4,
                progress: crate::progress::Progress::hidden(),
                diff: false,
                images: Default::default(),
            };
            let cancel = shutdown_on_signals()?;
            match pass::run(&s.source, &s.cache, target.as_ref(), now, &opts, &cancel).await {
                Ok(r) => report::failures(&r),
                Err(e) => {
                    eprintln!(
                        "warning: without the stagings that fail before they are created: {}",
                        crate::redact::error_chain(&e)
                    );
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    if a.cost {
        let c = crate::cost::report(st.stagings.iter().map(|s| &s.staging), now);
        match a.format {
            Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(&c)?))?,
            Format::Text => out(&crate::cost::text(&c))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format {
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report::status_json(&st, &failed, now))?
        ))?,
        Format::Text => out(&report::status_text(&st, &failed, now))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `sleep` and `wake`: record the request on the staging; the next pass acts on it.
pub(super) async fn ask(
    select: &TargetSelect,
    name: &str,
    what: impl FnOnce(&crate::plan::StagingRecord) -> Result<Ask, AskError>,
) -> Result<ExitCode, CommandError> {
    let target = targets::open(&select.target, &select.instance).await?;
    let said = requests::record(target.as_ref(), name, what, chrono::Utc::now()).await?;
    out(&format!("{said}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `wake`: with `--config`, also says when an awake cap of 0 keeps the staging asleep.
pub(super) async fn wake(a: WakeArgs) -> Result<ExitCode, CommandError> {
    let config = match a.ignored.config_args() {
        Some(args) => {
            let s = sources(&args);
            pass::load_config(&s.source, &s.load).await.ok()
        }
        None => None,
    };
    let target = targets::open(&a.select.target, &a.select.instance).await?;
    let d = a.duration;
    let said = requests::record_noting(
        target.as_ref(),
        &a.staging,
        |_| Ok(Ask::Wake(d)),
        chrono::Utc::now(),
        config.as_ref(),
    )
    .await?;
    out(&format!("{said}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `extend`: keep a staging longer, within the configuration's `max_extension`.
pub(super) async fn extend(a: ExtendArgs) -> Result<ExitCode, CommandError> {
    let s = sources(&a.config);
    let config = pass::load_config(&s.source, &s.load).await?;
    let (duration, replace) = (a.duration, a.replace);
    ask(&a.select, &a.staging, |r| {
        let max = requests::max_extension(&config, r)?;
        Ok(Ask::Extend {
            duration,
            max,
            replace,
        })
    })
    .await
}
