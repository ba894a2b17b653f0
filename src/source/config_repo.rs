//! The config repository: a local directory (used as it is) or a git URL checked out at a ref
//! into the cache directory.

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, Repository};

use super::git::fetch_mirror;
use super::SourceError;
use crate::config::Credentials;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A directory on this machine (its git HEAD, if any, is the config commit).
    Dir(PathBuf),
    /// A git repository checked out into the cache.
    Git {
        /// Its URL.
        url: String,
        /// Branch, tag or commit; the remote's default branch when `None`.
        reference: Option<String>,
        /// Cache directory.
        cache: PathBuf,
        /// How to authenticate (from the environment and files, never from the file it
        /// fetches).
        credentials: Credentials,
    },
}

/// A readable copy of the config repository.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Directory holding `environments.yaml`.
    pub root: PathBuf,
    /// Commit it was taken from, when it is a git checkout.
    pub commit: Option<String>,
}

impl ConfigSource {
    /// Interpret a `--config` argument: a git URL (`scheme://`, `user@host:path`, or ending in
    /// `.git` and not a local directory), else a directory.
    pub fn parse(arg: &str, reference: Option<String>, cache: PathBuf) -> ConfigSource {
        let p = Path::new(arg);
        let url = crate::redact::is_remote(arg) || (arg.ends_with(".git") && !p.is_dir());
        if url {
            ConfigSource::Git {
                url: arg.to_string(),
                reference,
                cache,
                credentials: Credentials::default(),
            }
        } else {
            ConfigSource::Dir(p.to_path_buf())
        }
    }

    /// The same source, fetched with `credentials` when it is a git URL.
    pub fn with_credentials(self, credentials: Credentials) -> ConfigSource {
        match self {
            ConfigSource::Git {
                url,
                reference,
                cache,
                ..
            } => ConfigSource::Git {
                url,
                reference,
                cache,
                credentials,
            },
            dir => dir,
        }
    }

    /// Whether changes show up on the local disk (so a file watcher can trigger passes).
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            ConfigSource::Dir(p) => Some(p),
            ConfigSource::Git { .. } => None,
        }
    }

    /// Read the current state of the config repository.
    pub fn snapshot(&self) -> Result<Snapshot, SourceError> {
        match self {
            ConfigSource::Dir(p) => {
                if !p.is_dir() {
                    return Err(SourceError::Local {
                        path: p.display().to_string(),
                        message: "is not a directory (nor a git URL): give the config repository's directory or URL".into(),
                    });
                }
                let commit = Repository::discover(p).ok().and_then(|r| {
                    r.head()
                        .ok()?
                        .peel_to_commit()
                        .ok()
                        .map(|c| c.id().to_string())
                });
                Ok(Snapshot {
                    root: p.clone(),
                    commit,
                })
            }
            ConfigSource::Git {
                url,
                reference,
                cache,
                credentials,
            } => checkout(url, reference.as_deref(), cache, credentials),
        }
    }
}

fn checkout(
    url: &str,
    reference: Option<&str>,
    cache: &Path,
    credentials: &Credentials,
) -> Result<Snapshot, SourceError> {
    let shown = crate::redact::url(url);
    let has_token = credentials.token_env.is_some() || credentials.token_file.is_some();
    crate::redact::check_url(url, has_token, credentials.allow_plain_http).map_err(|e| {
        SourceError::Git {
            url: shown.clone(),
            action: "checking the config repository URL",
            message: e.to_string(),
        }
    })?;
    let err = |action| super::git_err(&shown, action);
    let dir = cache
        .join("config")
        .join(crate::naming::short_hash(url, 16));
    let repo = match Repository::open(&dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(&dir).map_err(|e| SourceError::Local {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
            Repository::init(&dir).map_err(err("creating the cache"))?
        }
    };
    // The cache folder is named by a hash of the URL alone: no credential reaches a path.
    let deadline = std::time::Instant::now() + super::git::DEFAULT_FETCH_TIMEOUT;
    let default = fetch_mirror(&repo, url, credentials, deadline)?;
    let target = match reference {
        Some(r) => r.to_string(),
        None => default.ok_or_else(|| SourceError::Git {
            url: shown.clone(),
            action: "finding the default branch",
            message: "the remote names no HEAD; pass --config-ref".into(),
        })?,
    };
    let object = repo
        .revparse_single(&target)
        .or_else(|_| repo.revparse_single(&format!("refs/heads/{target}")))
        .and_then(|o| o.peel_to_commit())
        .map_err(err("resolving the config ref"))?;
    repo.checkout_tree(
        object.as_object(),
        Some(CheckoutBuilder::new().force().remove_untracked(true)),
    )
    .map_err(err("checking out"))?;
    repo.set_head_detached(object.id())
        .map_err(err("checking out"))?;
    Ok(Snapshot {
        root: dir,
        commit: Some(object.id().to_string()),
    })
}
