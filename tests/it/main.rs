//! Integration tests: one binary (ripgrep style), real git repositories, the real `octostage`
//! binary. Shared helpers live in `util`.

mod app_manifests;
mod apps;
mod attacks;
mod browser;
mod cli;
mod cluster;
mod config_source;
mod controller;
mod copies;
mod dashboard;
mod deploy;
mod dir_target;
mod example;
mod flood;
mod forges;
mod fuzz_corpus;
mod git_source;
mod hostile;
mod http;
mod images;
mod leader;
mod lifecycle;
mod notify;
mod ownership;
mod render_limits;
mod run_loop;
mod schedule;
mod secrets;
mod server;
mod signals;
mod steer;
mod util;
mod watch_cache;
mod waves;
mod webhook;
