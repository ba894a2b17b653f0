//! octostage: one staging environment per git branch, declared in `environments.yaml` and
//! converged safely.
//!
//! A pass flows through pure stages between thin I/O edges:
//! [`source`] (config repository, branch listings) → [`config`] (validated configuration) →
//! [`plan`] (desired stagings and actions, given `now` and what the target holds) → [`render`]
//! (objects per staging) → [`targets`] (apply the difference). [`pass`] ties one pass together;
//! [`controller`] runs passes on triggers and keeps what others read. [`check`] renders a configuration against sample stagings
//! for `validate`; [`redact`] keeps credentials out of every message.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod consts;
pub mod controller;
pub mod cost;
mod demo;
pub mod diff;
/// Entry points of the fuzz targets (`fuzz/`), which build the library with `fuzzing`.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod metrics;
pub mod naming;
pub mod notify;
pub mod pass;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod render;
pub mod report;
pub mod requests;
pub mod server;
pub mod signing;
pub mod source;
pub mod targets;
pub mod templating;
pub mod text;
pub mod yaml;
