//! Command-line interface (clap derive). Raw flags only; `commands` turns them into calls.

mod sources;
mod stagings;

pub use sources::*;
pub use stagings::*;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// One staging environment per git branch, declared in environments.yaml and converged safely.
///
/// octostage reads a config repository (environments.yaml), lists the branches of each
/// environment's application repository, computes which stagings should exist and whether they
/// are awake (TTL, retention, sleep schedules, caps, overrides, static stagings, requests) and
/// converges a target toward that set, notifying who asked to be told.
///
/// Exit codes: 0 ok, 1 invalid input or failed pass, 2 usage.
#[derive(Debug, Parser)]
#[command(name = "octostage", version, max_term_width = 100)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `octostage=debug` [default: `RUST_LOG`,
    /// else `warn`, and `octostage=info` for `run` without `--once`: one line per pass].
    #[arg(long, global = true, env = "OCTOSTAGE_LOG")]
    pub log: Option<String>,
    /// Log format: lines for people, or one JSON object per line for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "OCTOSTAGE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Network of render processes that read files from an application repository (kubectl
    /// kustomize, helm, a render command with `app_paths`): `none` runs each in a network
    /// namespace of its own with no interface up, so a file pushed to a branch cannot make a
    /// render fetch anything; `host` lets them use this host's network. `none` needs
    /// CAP_SYS_ADMIN or unprivileged user namespaces; where the kernel refuses both, such
    /// renders fail and say so.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "OCTOSTAGE_RENDER_NETWORK",
        default_value = "none"
    )]
    pub render_network: RenderNetwork,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The network of renders that read branch files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderNetwork {
    /// A network namespace of their own: no network at all.
    None,
    /// This host's network.
    Host,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check environments.yaml and its templates; print every problem with file:line:column.
    Validate(ValidateArgs),
    /// Render one staging's objects as multi-document YAML on stdout.
    Render(RenderArgs),
    /// Show what a pass would do to the target, changing nothing.
    Plan(PlanArgs),
    /// Converge the target: a pass at start, then at every interval, deadline, config file
    /// change, webhook and request; serve the dashboard, JSON API, webhooks and metrics.
    ///
    /// Replicas of one instance on a cluster take turns through a Lease: only the leader
    /// writes; the others plan without writing, serve what they see, and forward actions and
    /// webhooks to the leader.
    ///
    /// Secrets come from the environment only (flags show in `ps`): OCTOSTAGE_API_TOKEN
    /// (actions; without it the server is read-only), OCTOSTAGE_GITHUB_SECRET,
    /// OCTOSTAGE_GITEA_SECRET, OCTOSTAGE_GITLAB_TOKEN, and OCTOSTAGE_WEBHOOK_TOKEN (the bearer
    /// token of /hooks/generic). A webhook without its secret is off.
    Run(RunArgs),
    /// List the stagings the target holds: environment, branch, commit, state, age, next sleep
    /// or wake, expiry, deletion, links; with `--cost`, what they request and what sleep saved.
    Status(StatusArgs),
    /// Put a staging to sleep (scaled to zero) until `octostage wake`; from the next pass.
    Sleep(SleepArgs),
    /// Wake a sleeping staging, whatever its schedule says, for a while (`--for 2h`) or until
    /// the schedule's next sleep time; from the next pass.
    Wake(WakeArgs),
    /// Keep a staging for DURATION from now however idle, at most the environment's
    /// `max_extension`; from the next pass.
    Extend(ExtendArgs),
    /// Print the JSON Schema of environments.yaml.
    Schema,
    /// Print a completion script for SHELL: `octostage completions bash >
    /// /etc/bash_completion.d/octostage`, `octostage completions zsh > ~/.zfunc/_octostage`.
    Completions(CompletionsArgs),
    /// Show octostage at work on a demo application repository made locally (no cluster, no
    /// network): stagings appear, follow new commits, and expire.
    Demo(DemoArgs),
    /// Run a render program under a memory limit (octostage starts render processes so).
    #[command(hide = true)]
    InternalLimitMemory(LimitMemoryArgs),
    /// Render templates of the application repository read from stdin (octostage starts this
    /// under the memory limit).
    #[command(hide = true)]
    InternalRenderTemplates,
}

/// `internal-limit-memory` arguments.
#[derive(Debug, Args)]
pub struct LimitMemoryArgs {
    /// Most data memory, bytes.
    pub bytes: u64,
    /// Also leave the network: run in a network namespace of its own.
    #[arg(long)]
    pub no_network: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub argv: Vec<std::ffi::OsString>,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, with the span (pass, staging) of each event.
    Json,
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Text,
    /// `{"stagings": [...]}` for programs; times in RFC 3339.
    Json,
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's repositories and stagings [default: a new temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
