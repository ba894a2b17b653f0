//! `run`: one pass, or the controller with its election, HTTP server and probes.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::{colored, out, sources, warn_about, CommandError};
use crate::cli::{Listen, RunArgs};
use crate::controller::{shutdown_on_signals, Controller, Election, Trigger};
use crate::pass::{self, PassOptions};
use crate::{report, server, targets};

/// Longest `run --once` waits for its notifications (five attempts with backoff fit).
const NOTIFY_AT_EXIT_ONCE: Duration = Duration::from_secs(60);

/// `run`: one pass (`--once`), or the controller until a signal stops it.
pub(super) async fn run(a: RunArgs) -> Result<ExitCode, CommandError> {
    if a.target.confirm_deletions && !a.once {
        // For a daemon it would approve whatever every future pass holds back: no guard left.
        return Err(CommandError::ConfirmInDaemon);
    }
    let s = sources(&a.config);
    let cancel = shutdown_on_signals()?;
    let target: Arc<dyn targets::Target> =
        Arc::from(targets::open(&a.target.select.target, &a.target.select.instance).await?);
    // The first line names where stagings land: a run that deploys nowhere must be obvious.
    out(&format!("octostage run: target {}\n", target.describe()))?;
    let opts = PassOptions {
        load: s.load,
        dry_run: false,
        confirm_deletions: a.target.confirm_deletions,
        approved: None,
        concurrency: a.target.concurrency,
        // A daemon logs; a one-off run on a terminal shows how far it is.
        progress: if a.once {
            crate::progress::Progress::on_terminal()
        } else {
            crate::progress::Progress::hidden()
        },
        diff: false,
        images: Default::default(),
    };
    let controller = Controller::new(s.source, s.cache, target, opts, a.interval, cancel.clone())
        .with_resync(a.resync);
    if !a.once {
        return daemon(controller, &a, cancel).await;
    }
    once(controller, &a).await
}

/// `run --once`: one pass, holding the instance's lease while it writes.
async fn once(mut controller: Controller, a: &RunArgs) -> Result<ExitCode, CommandError> {
    if !a.no_leader_election {
        controller = controller.with_election(election(a));
    }
    // A stale lease of a stopped replica is taken once unchanged for its duration.
    let wait = crate::consts::LEASE_DURATION + crate::consts::LEASE_RETRY * 2;
    let lead = controller.lead(wait).await?;
    let r = controller.pass(Trigger::Startup).await;
    // Its Events are written under the lease too.
    controller.published(NOTIFY_AT_EXIT_ONCE).await;
    if let Some(l) = lead {
        l.release().await;
    }
    let r = match r {
        Err(pass::PassError::Cancelled) => {
            eprintln!("stopped before the pass changed anything");
            return Ok(ExitCode::SUCCESS);
        }
        r => r?,
    };
    let abandoned = controller.finish(NOTIFY_AT_EXIT_ONCE).await;
    warn_about(&r.config);
    out(&colored(report::text(&r, false)))?;
    for (receiver, staging) in abandoned {
        eprintln!(
            "notification to {receiver} for {staging} abandoned: not delivered within {}",
            humantime::format_duration(NOTIFY_AT_EXIT_ONCE)
        );
    }
    eprintln!("{} requests", r.requests);
    eprintln!("{} writes", r.writes);
    if r.skipped() > 0 {
        eprintln!(
            "stopped: {} stagings were left for the next pass",
            r.skipped()
        );
    }
    if r.failures() > 0 {
        return Err(CommandError::StagingsFailed(r.failures()));
    }
    if !r.plan.failed_sources.is_empty() {
        return Err(CommandError::SourcesFailed(r.plan.failed_sources.len()));
    }
    Ok(ExitCode::SUCCESS)
}

/// `run` without `--once`: the controller, its election and its HTTP server.
async fn daemon(
    controller: Controller,
    a: &RunArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<ExitCode, CommandError> {
    let controller = if a.no_leader_election {
        controller
    } else {
        controller.with_election(election(a))
    };
    let probes = match a.probe_listen {
        Listen::Off => None,
        Listen::At(addr) => {
            let listener = server::bind(addr, "--probe-listen").await?;
            out(&format!(
                "octostage run: probes on http://{}\n",
                listener.local_addr()?
            ))?;
            Some(tokio::spawn(server::serve_probes(
                listener,
                controller.handle(),
                cancel.clone(),
            )))
        }
    };
    let server = match a.listen {
        Listen::Off => None,
        Listen::At(addr) => {
            let listener = server::bind(addr, "--listen").await?;
            let at = listener.local_addr()?;
            out(&format!("octostage run: serving on http://{at}\n"))?;
            let opts = server_options();
            if opts.token.is_none() {
                eprintln!("note: no OCTOSTAGE_API_TOKEN: the dashboard and API are read-only");
            }
            let limits = server::Limits {
                per_client: usize::from(a.max_connections_per_client),
                ..server::Limits::PUBLIC
            };
            Some(tokio::spawn(server::serve(
                listener,
                controller.handle(),
                opts,
                limits,
                cancel.clone(),
            )))
        }
    };
    controller.run().await;
    if let Some(s) = server {
        // Open event streams would hold a graceful shutdown forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    if let Some(p) = probes {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The election of this instance's replicas.
fn election(a: &RunArgs) -> Election {
    Election::new(
        a.lease
            .clone()
            .unwrap_or_else(|| format!("octostage-{}", a.target.select.instance)),
        &a.identity.clone().unwrap_or_else(identity),
        a.advertise_url.clone(),
    )
}

/// This process's name in leader election: its pod, else its host and pid.
fn identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()) {
        return pod;
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "octostage".into());
    format!("{host}-{}", std::process::id())
}

/// Tokens and webhook secrets, from the environment only.
fn server_options() -> server::Options {
    let secret = |name: &str| std::env::var(name).ok().and_then(server::Secret::new);
    server::Options {
        token: secret("OCTOSTAGE_API_TOKEN"),
        hooks: server::HookSecrets {
            github: secret("OCTOSTAGE_GITHUB_SECRET"),
            gitea: secret("OCTOSTAGE_GITEA_SECRET"),
            gitlab: secret("OCTOSTAGE_GITLAB_TOKEN"),
            generic: secret("OCTOSTAGE_WEBHOOK_TOKEN"),
        },
    }
}
