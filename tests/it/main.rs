//! Integration tests: one binary (ripgrep style), real git repositories, the real `octostage`
//! binary. Shared helpers live in `util`.

mod cli;
mod cluster;
mod config_source;
mod example;
mod git_source;
mod run_loop;
mod util;
