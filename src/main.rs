//! The `octostage` binary: parse flags, start telemetry, call the library on one runtime, map
//! errors to exit codes (0 ok, 1 invalid input or failed pass, 2 usage).
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;

use octostage::cli::{
    Cli, Command, ConfigArgs, ExtendArgs, Format, Listen, LogFormat, PlanArgs, RenderArgs, RunArgs,
    StatusArgs, TargetSelect, ValidateArgs, WakeArgs,
};
use octostage::config::LoadOptions;
use octostage::controller::{shutdown_on_signals, Controller, Election, Trigger};
use octostage::pass::{self, PassOptions};
use octostage::redact;
use octostage::requests::{self, Ask};
use octostage::source::{default_cache_dir, ConfigSource, RepoCache};
use octostage::{report, server, targets};

/// mimalloc gives freed memory back to the system and keeps threads out of each other's way:
/// with glibc's allocator, the first pass's burst (rendering and listing every staging) stayed
/// resident for the life of `run`, and allocation was a third of a steady pass's CPU.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Longest `run --once` waits for its notifications (five attempts with backoff fit).
const NOTIFY_AT_EXIT_ONCE: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::InternalLimitMemory(a) => {
            // Only returns when the program could not be started.
            let e = octostage::render::sandbox::exec_limited(a.bytes, a.no_network, &a.argv);
            eprintln!("error: {e}");
            return ExitCode::from(127);
        }
        Command::InternalRenderTemplates => {
            return served(octostage::render::sandbox::serve_templates(
                std::io::stdin(),
                std::io::stdout(),
            ));
        }
        Command::InternalParseYaml(a) => {
            return served(octostage::render::sandbox::serve_yaml(
                a.nodes,
                a.text,
                std::io::stdin(),
                std::io::stdout(),
            ));
        }
        _ => octostage::render::sandbox::enable(match cli.render_network {
            octostage::cli::RenderNetwork::None => octostage::render::sandbox::Network::None,
            octostage::cli::RenderNetwork::Host => octostage::render::sandbox::Network::Host,
        }),
    }
    logs(&cli);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(dispatch(cli.command));
    // A listing or render abandoned at shutdown must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", redact::text(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// The exit of a child that served a render request.
fn served(r: Result<(), octostage::render::sandbox::SandboxError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs on stderr: the filter from `--log`, else `RUST_LOG`, else `warn` (and one line per
/// pass for a long-running `run`); text or JSON.
fn logs(cli: &Cli) {
    let daemon = matches!(&cli.command, Command::Run(a) if !a.once);
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| {
            // kube's watcher warns at every retry of a failing watch; octostage says it once.
            if daemon {
                "warn,octostage=info,kube_runtime::watcher=error"
            } else {
                "warn,kube_runtime::watcher=error"
            }
            .into()
        });
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "warn".into());
    let ansi = octostage::text::styled(&std::io::stderr());
    // Logs are redacted as a second line of defence: a library may put a URL in a message.
    let writer = move || redact::RedactingWriter {
        out: std::io::stderr(),
        raw: ansi,
    };
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Json => fmt.json().with_current_span(true).init(),
        LogFormat::Text => fmt.with_ansi(ansi).init(),
    }
}

/// A plan table with colored actions when stdout is a terminal and `NO_COLOR` is not set.
fn colored(table: String) -> String {
    if !octostage::text::styled(&std::io::stdout()) {
        return table;
    }
    report::colorize(&table)
}

/// `octostage plan | head` closes stdout early: that is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print to stdout, failing (not panicking) when it is closed.
fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

struct Sources {
    source: ConfigSource,
    cache: RepoCache,
    load: LoadOptions,
}

fn sources(a: &ConfigArgs) -> Sources {
    let cache_dir = a.cache_dir.clone().unwrap_or_else(default_cache_dir);
    Sources {
        source: ConfigSource::parse(&a.config, a.config_ref.clone(), cache_dir.clone())
            .with_credentials(a.config_credentials.credentials()),
        cache: RepoCache::new(cache_dir).with_timeout(a.fetch_timeout),
        load: LoadOptions {
            commit: None,
            repository_overrides: a.repositories.clone(),
        },
    }
}

fn warn_about(config: &octostage::config::Config) {
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Schema => {
            out(&octostage::config::schema::json())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(a) => {
            let mut script = Vec::new();
            clap_complete::generate(
                a.shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "octostage",
                &mut script,
            );
            out(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(a) => validate(a).await,
        Command::Render(a) => render(a).await,
        Command::Plan(a) => plan(a).await,
        Command::Run(a) => run(a).await,
        Command::Status(a) => status(a).await,
        Command::Sleep(a) => ask(&a.select, &a.staging, |_| Ok(Ask::Sleep)).await,
        Command::Wake(a) => wake(a).await,
        Command::Extend(a) => extend(a).await,
        Command::InternalLimitMemory(_)
        | Command::InternalRenderTemplates
        | Command::InternalParseYaml(_) => {
            unreachable!("served before the runtime starts")
        }
        Command::Demo(a) => {
            let mut text = Vec::new();
            octostage::demo::run(a.dir, &mut text).await?;
            out(&String::from_utf8_lossy(&text))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn validate(v: ValidateArgs) -> anyhow::Result<ExitCode> {
    let a = &v.config;
    let s = sources(a);
    let config = pass::load_config(&s.source, &s.load).await?;
    warn_about(&config);
    let (mut findings, mut warnings) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            (
                octostage::check::check(&config),
                octostage::check::host_warnings(&config),
            )
        }
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
        let mut msg = format!(
            "{} problem{} a pass would meet (rendered against a sample branch):",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
        for f in &findings {
            msg.push_str(&format!("\n  {f}"));
        }
        bail!(msg);
    }
    let statics: usize = config.environments.iter().map(|e| e.statics.len()).sum();
    out(&format!(
        "{}: valid ({} environments, {statics} static stagings)\n",
        redact::url(&a.config),
        config.environments.len()
    ))?;
    out(&octostage::check::sleep_schedules(
        &config,
        chrono::Utc::now(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn render(a: RenderArgs) -> anyhow::Result<ExitCode> {
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
        text.push_str(&serde_yaml::to_string(&o)?);
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

async fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let s = sources(&a.config);
    let target = targets::open_for_plan(&a.target.select.target, &a.target.select.instance).await?;
    let opts = PassOptions {
        load: s.load,
        dry_run: true,
        confirm_deletions: a.target.confirm_deletions,
        approved: None,
        concurrency: a.target.concurrency,
        progress: octostage::progress::Progress::on_terminal(),
        diff: a.diff,
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

async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.target.confirm_deletions && !a.once {
        // For a daemon it would approve whatever every future pass holds back: no guard left.
        bail!("--confirm-deletions approves one pass (`plan`, `run --once`); a running octostage carries out held deletions when the held set the plan shows is approved: POST /api/v1/approve {{\"held\": DIGEST}} or the dashboard's button");
    }
    let s = sources(&a.config);
    let cancel = shutdown_on_signals().context("installing signal handlers")?;
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
            octostage::progress::Progress::on_terminal()
        } else {
            octostage::progress::Progress::hidden()
        },
        diff: false,
    };
    let controller = Controller::new(s.source, s.cache, target, opts, a.interval, cancel.clone())
        .with_resync(a.resync);
    if !a.once {
        return daemon(controller, &a, cancel).await;
    }
    let r = match controller.pass(Trigger::Startup).await {
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
        bail!("{} stagings failed", r.failures());
    }
    if !r.plan.failed_sources.is_empty() {
        bail!(
            "{} environments could not be read (their stagings were kept as they are)",
            r.plan.failed_sources.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `run` without `--once`: the controller, its election and its HTTP server.
async fn daemon(
    controller: Controller,
    a: &RunArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<ExitCode> {
    let controller = if a.no_leader_election {
        controller
    } else {
        controller.with_election(Election::new(
            a.lease
                .clone()
                .unwrap_or_else(|| format!("octostage-{}", a.target.select.instance)),
            &a.identity.clone().unwrap_or_else(identity),
            a.advertise_url.clone(),
        ))
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

async fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
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
                progress: octostage::progress::Progress::hidden(),
                diff: false,
            };
            let cancel = shutdown_on_signals()?;
            match pass::run(&s.source, &s.cache, target.as_ref(), now, &opts, &cancel).await {
                Ok(r) => report::failures(&r),
                Err(e) => {
                    eprintln!(
                        "warning: without the stagings that fail before they are created: {e:#}"
                    );
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    if a.cost {
        let c = octostage::cost::report(st.stagings.iter().map(|s| &s.staging), now);
        match a.format {
            Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(&c)?))?,
            Format::Text => out(&octostage::cost::text(&c))?,
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
async fn ask(
    select: &TargetSelect,
    name: &str,
    what: impl FnOnce(&octostage::plan::StagingRecord) -> Result<Ask, requests::AskError>,
) -> anyhow::Result<ExitCode> {
    let target = targets::open(&select.target, &select.instance).await?;
    let said = requests::record(target.as_ref(), name, what, chrono::Utc::now()).await?;
    out(&format!("{said}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `wake`: with `--config`, also says when an awake cap of 0 keeps the staging asleep.
async fn wake(a: WakeArgs) -> anyhow::Result<ExitCode> {
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

async fn extend(a: ExtendArgs) -> anyhow::Result<ExitCode> {
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
