//! The subcommands, as the binary calls them: each reads its flags, calls the library and
//! prints. `main` only parses, starts telemetry and the runtime, and maps the result to an
//! exit code (0 ok, 1 invalid input or a failed pass, 2 usage).

mod inspect;
mod request;
mod run;

use std::io::Write;
use std::process::ExitCode;

use crate::check::Finding;
use crate::cli::{Cli, Command, ConfigArgs, LogFormat};
use crate::config::LoadOptions;
use crate::pass::{LookupError, PassError};
use crate::redact;
use crate::requests::AskError;
use crate::source::{default_cache_dir, ConfigSource, RepoCache};
use crate::targets::TargetError;

pub use crate::demo::DemoError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A pass (or the configuration it read) failed.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// The target could not be opened or read.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A staging could not be found or rendered.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// A request on a staging was refused.
    #[error(transparent)]
    Ask(#[from] AskError),
    /// The demo could not be set up.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// Writing the answer, binding a listener or installing signal handlers failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The answer could not be printed as JSON.
    #[error("printing the answer as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The answer could not be printed as YAML.
    #[error("printing the answer as YAML: {0}")]
    Yaml(#[from] crate::yaml::WriteError),
    /// A blocking task of the command panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// `validate` found problems a pass would meet.
    #[error("{}", findings_text(.0))]
    Findings(Vec<Finding>),
    /// `--confirm-deletions` on a daemon.
    #[error("--confirm-deletions approves one pass (`plan`, `run --once`); a running octostage carries out held deletions when the held set the plan shows is approved: POST /api/v1/approve {{\"held\": DIGEST}} or the dashboard's button")]
    ConfirmInDaemon,
    /// `run --once`: a running replica of this instance leads.
    #[error(transparent)]
    LeaseHeld(#[from] crate::controller::LeaseHeld),
    /// `run --once`: stagings failed.
    #[error("{0} stagings failed")]
    StagingsFailed(usize),
    /// `run --once`: sources could not be read.
    #[error("{0} environments could not be read (their stagings were kept as they are)")]
    SourcesFailed(usize),
}

impl CommandError {
    /// `octostage plan | head` closes stdout early: that is not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CommandError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

fn findings_text(findings: &[Finding]) -> String {
    let mut msg = format!(
        "{} problem{} a pass would meet (rendered against a sample branch):",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    );
    for f in findings {
        msg.push_str(&format!("\n  {f}"));
    }
    msg
}

/// The internal subcommands a render child runs (before any runtime or telemetry), or `None`
/// for every other one; sets the render network for those.
pub fn internal(cli: &Cli) -> Option<ExitCode> {
    use crate::render::sandbox;
    match &cli.command {
        Command::InternalLimitMemory(a) => {
            // Only returns when the program could not be started.
            let e = sandbox::exec_limited(a.bytes, a.no_network, &a.argv);
            eprintln!("error: {e}");
            Some(ExitCode::from(127))
        }
        Command::InternalRenderTemplates => Some(served(crate::render::isolated::serve_templates(
            std::io::stdin(),
            std::io::stdout(),
        ))),
        _ => {
            sandbox::enable(match cli.render_network {
                crate::cli::RenderNetwork::None => sandbox::Network::None,
                crate::cli::RenderNetwork::Host => sandbox::Network::Host,
            });
            None
        }
    }
}

/// The exit of a child that served a render request.
fn served(r: Result<(), crate::render::sandbox::SandboxError>) -> ExitCode {
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
pub fn logs(cli: &Cli) {
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
    let ansi = crate::text::styled(&std::io::stderr());
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

/// Run `command` (any but the internal ones, which [`internal`] serves).
pub async fn dispatch(command: Command) -> Result<ExitCode, CommandError> {
    match command {
        Command::Schema => {
            out(&crate::config::schema::json())?;
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
        Command::Validate(a) => inspect::validate(a).await,
        Command::Render(a) => inspect::render(a).await,
        Command::Plan(a) => inspect::plan(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Status(a) => request::status(a).await,
        Command::Sleep(a) => {
            request::ask(&a.select, &a.staging, |_| Ok(crate::requests::Ask::Sleep)).await
        }
        Command::Wake(a) => request::wake(a).await,
        Command::Extend(a) => request::extend(a).await,
        Command::InternalLimitMemory(_) | Command::InternalRenderTemplates => Ok(internal_late()),
        Command::Demo(a) => {
            let mut text = Vec::new();
            crate::demo::run(a.dir, &mut text).await?;
            out(&String::from_utf8_lossy(&text))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An internal subcommand reached the runtime: `main` serves those before it starts one.
fn internal_late() -> ExitCode {
    eprintln!("error: internal subcommands are served before the runtime starts");
    ExitCode::from(2)
}

/// Print to stdout, failing (not panicking) when it is closed.
fn out(text: &str) -> Result<(), CommandError> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// A plan table with colored actions when stdout is a terminal and `NO_COLOR` is not set.
fn colored(table: String) -> String {
    if !crate::text::styled(&std::io::stdout()) {
        return table;
    }
    crate::report::colorize(&table)
}

/// Where a command reads its configuration and application repositories.
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

fn warn_about(config: &crate::config::Config) {
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
}
