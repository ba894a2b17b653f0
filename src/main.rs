//! The `octostage` binary: parse flags, start telemetry and one runtime, run the command the
//! library names, map the result to an exit code (0 ok, 1 invalid input or failed pass, 2
//! usage). Everything else is in the library (`octostage::commands`).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use octostage::cli::Cli;
use octostage::commands;

/// mimalloc gives freed memory back to the system and keeps threads out of each other's way:
/// with glibc's allocator, the first pass's burst (rendering and listing every staging) stayed
/// resident for the life of `run`, and allocation was a third of a steady pass's CPU.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = commands::internal(&cli) {
        return code;
    }
    commands::logs(&cli);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(commands::dispatch(cli.command));
    // A listing or render abandoned at shutdown must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // Every cause in the chain, redacted.
            eprintln!("error: {}", octostage::redact::error_chain(&e));
            ExitCode::from(1)
        }
    }
}
