//! The `octostage` binary: parse flags, start telemetry, call the library, map errors to exit
//! codes (0 ok, 1 invalid input or failed pass, 2 usage).
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser;

use octostage::cli::{Cli, Command, ConfigArgs, Format};
use octostage::config::LoadOptions;
use octostage::pass::{self, PassOptions};
use octostage::run::{RunOptions, Runner, SystemClock};
use octostage::source::{default_cache_dir, ConfigSource, RepoCache};
use octostage::{report, target};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

struct Sources {
    source: ConfigSource,
    cache: RepoCache,
    load: LoadOptions,
}

fn sources(a: &ConfigArgs) -> Sources {
    let cache_dir = a.cache_dir.clone().unwrap_or_else(default_cache_dir);
    Sources {
        source: ConfigSource::parse(&a.config, a.config_ref.clone(), cache_dir.clone()),
        cache: RepoCache::new(cache_dir),
        load: LoadOptions {
            commit: None,
            repository_overrides: a.repositories.clone(),
        },
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Schema => {
            print!("{}", octostage::config::schema::json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(a) => {
            let s = sources(&a);
            let config = pass::load_config(&s.source, &s.load)?;
            let statics: usize = config.environments.iter().map(|e| e.statics.len()).sum();
            println!(
                "{}: valid ({} environments, {statics} static stagings)",
                a.config,
                config.environments.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Render(a) => {
            let s = sources(&a.config);
            let config = pass::load_config(&s.source, &s.load)?;
            let listings = pass::list_branches(&config, &s.cache);
            let objects = pass::render_staging(
                &config,
                &listings,
                &a.environment,
                a.branch.as_deref(),
                a.static_name.as_deref(),
            )?;
            let mut out = std::io::stdout().lock();
            for o in objects {
                writeln!(out, "---")?;
                out.write_all(serde_yaml::to_string(&o)?.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(a) => {
            let s = sources(&a.config);
            let target = target::open(&a.target.select.target, &a.target.select.instance)?;
            let opts = PassOptions {
                load: s.load,
                dry_run: true,
                confirm_deletions: a.target.confirm_deletions,
                concurrency: a.target.concurrency,
            };
            let r = pass::run(
                &s.source,
                &s.cache,
                target.as_ref(),
                chrono::Utc::now(),
                &opts,
            )?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report::json(&r))?),
                Format::Text => print!("{}", report::text(&r, true)),
            }
            Ok(if r.failures() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run(a) => {
            let s = sources(&a.config);
            let target: Arc<dyn target::Target> = Arc::from(target::open(
                &a.target.select.target,
                &a.target.select.instance,
            )?);
            let opts = PassOptions {
                load: s.load,
                dry_run: false,
                confirm_deletions: a.target.confirm_deletions,
                concurrency: a.target.concurrency,
            };
            let runner = Arc::new(Runner {
                source: s.source,
                cache: s.cache,
                target,
                clock: Arc::new(SystemClock),
            });
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            if a.once {
                let r = rt.block_on(runner.pass(&opts))?;
                print!("{}", report::text(&r, false));
                eprintln!("{} requests", r.requests);
                eprintln!("{} writes", r.writes);
                if r.failures() > 0 {
                    bail!("{} stagings failed", r.failures());
                }
                return Ok(ExitCode::SUCCESS);
            }
            rt.block_on(runner.run(RunOptions {
                interval: a.interval,
                pass: opts,
            }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => {
            let target = target::open(&a.select.target, &a.select.instance)?;
            let rows = target.status()?;
            match a.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report::status_json(&rows, chrono::Utc::now()))?
                ),
                Format::Text => print!("{}", report::status_text(&rows, chrono::Utc::now())),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(a) => {
            octostage::demo::run(a.dir, &mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
