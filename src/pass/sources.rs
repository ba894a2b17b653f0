//! What a pass reads before it plans: the configuration (loaded again only when a file it
//! read changed) and every environment's branches.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{list_branches, unless_cancelled, PassError, PassOptions};
use crate::config::{self, Config, LoadOptions};
use crate::plan;
use crate::source::{ConfigSource, RepoCache};

/// Load the configuration from a snapshot of `source` (on a blocking thread: git); every
/// problem fails it (`validate`, `render`, `extend`).
pub async fn load_config(source: &ConfigSource, opts: &LoadOptions) -> Result<Config, PassError> {
    let (source, opts) = (source.clone(), opts.clone());
    tokio::task::spawn_blocking(move || {
        let snapshot = source.snapshot()?;
        Ok(config::load(&snapshot.root, &at_commit(&opts, &snapshot))?)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn at_commit(opts: &LoadOptions, snapshot: &crate::source::Snapshot) -> LoadOptions {
    LoadOptions {
        commit: snapshot.commit.clone(),
        ..opts.clone()
    }
}

/// What a pass's load of the configuration gave.
enum Loaded {
    /// The files it reads are those the last load read: its configuration stands.
    Unchanged(Arc<Config>, u64, Arc<config::ReadSet>),
    /// Loaded anew, with what the load read.
    New(Config, Option<Arc<config::ReadSet>>),
}

/// The configuration for a pass: environments whose own part of the file is invalid are left
/// out and frozen ([`Config::frozen`]), the others go on. Not loaded again when the files it
/// would read are those `previous`'s configuration was loaded from.
async fn load_unless_unchanged(
    source: &ConfigSource,
    opts: &LoadOptions,
    previous: Option<&Sources>,
) -> Result<Loaded, PassError> {
    let (source, opts) = (source.clone(), opts.clone());
    let last = previous.and_then(|p| Some((p.config.clone(), p.digest, p.reads.clone()?)));
    tokio::task::spawn_blocking(move || {
        let snapshot = source.snapshot()?;
        let opts = at_commit(&opts, &snapshot);
        if let Some((config, digest, reads)) = last {
            if reads.unchanged(&snapshot.root, &opts) {
                return Ok(Loaded::Unchanged(config, digest, reads));
            }
        }
        let (loaded, reads) = config::load_for_pass(&snapshot.root, &opts);
        Ok(Loaded::New(loaded?, reads.map(Arc::new)))
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// What a pass read from its sources. A later pass whose trigger cannot have changed them
/// (a workload became ready) reuses them; one that reads them again and finds them the same
/// has nothing new to plan from them.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The configuration.
    pub config: Arc<Config>,
    /// A digest of everything in the configuration (see [`Config::digest`]).
    pub digest: u64,
    /// Each environment's branch listing, or why it failed.
    pub listings: Arc<plan::Listings>,
    /// What loading the configuration read (`None`: load it again next time).
    pub reads: Option<Arc<config::ReadSet>>,
}

impl Sources {
    /// Whether `other` holds the same configuration and listings.
    pub fn same(&self, other: &Sources) -> bool {
        self.digest == other.digest && self.listings == other.listings
    }
}

/// Read the configuration and list every environment's branches; `previous`'s configuration
/// is kept when the new one is the same (so its settings stay the same objects, which lets a
/// pass tell an unchanged staging by identity).
pub async fn read_sources(
    source: &ConfigSource,
    cache: &RepoCache,
    opts: &PassOptions,
    previous: Option<&Sources>,
    cancel: &CancellationToken,
) -> Result<Sources, PassError> {
    opts.progress
        .phase("reading the config and listing branches");
    // Reading is abandoned at once on shutdown: nothing has been written yet.
    let loaded =
        unless_cancelled(cancel, load_unless_unchanged(source, &opts.load, previous)).await?;
    if let Err(PassError::Config(_)) = &loaded {
        crate::metrics::get().config_valid.set(0);
    }
    let (config, digest, reads) = match (loaded?, previous) {
        (Loaded::Unchanged(config, digest, reads), _) => (config, digest, Some(reads)),
        (Loaded::New(config, reads), previous) => {
            let digest = config.digest();
            let config = match previous {
                Some(p) if p.digest == digest => p.config.clone(),
                _ => Arc::new(config),
            };
            (config, digest, reads)
        }
    };
    crate::metrics::get()
        .config_valid
        .set(i64::from(config.frozen.is_empty()));
    for (environment, problems) in &config.frozen {
        warn!(environment = %environment, problems = %problems, "environment frozen: its part of environments.yaml is invalid; its stagings are kept as they are, the others go on");
    }
    let listings = unless_cancelled(cancel, list_branches(&config, cache)).await?;
    Ok(Sources {
        config,
        digest,
        listings: Arc::new(listings),
        reads,
    })
}
