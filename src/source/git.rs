//! Application repositories: their branch heads mirrored into a bare repository per URL in the
//! cache directory, incrementally after the first fetch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use git2::{
    AutotagOption, Cred, CredentialType, Direction, FetchOptions, Oid, RemoteCallbacks, Repository,
};

use super::{Branch, Commit, SourceError};
use crate::config::Credentials;

/// The default cache directory: `$OCTOSTAGE_CACHE`, else `$XDG_CACHE_HOME/octostage`, else
/// `~/.cache/octostage`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("OCTOSTAGE_CACHE") {
        return p.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("octostage")
}

/// What one fetch of an application repository saw.
#[derive(Debug, Clone, Default)]
pub struct RepoListing {
    /// Branch heads, sorted by name.
    pub branches: Vec<Branch>,
    /// Pinned commits (sha, short sha or tag) resolved, or why not.
    pub pins: HashMap<String, Result<Commit, String>>,
}

/// Mirrors of application repositories under one directory.
#[derive(Debug, Clone)]
pub struct RepoCache {
    dir: PathBuf,
    /// Commit metadata of each repository's current heads, by sha: commits never change, so
    /// later passes read only new ones. Replaced on each listing, so it holds only live heads.
    commits: Arc<Mutex<HashMap<String, HashMap<Oid, Commit>>>>,
}

impl RepoCache {
    /// A cache rooted at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RepoCache {
            dir: dir.into(),
            commits: Arc::default(),
        }
    }

    /// The mirror directory of `url`.
    pub fn mirror_dir(&self, url: &str) -> PathBuf {
        let tail = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo");
        let tail = crate::naming::slug(tail);
        self.dir
            .join("repos")
            .join(format!("{}-{tail}", crate::naming::short_hash(url, 16)))
    }

    /// Fetch `url` into its mirror and list its branches; `pins` are resolved in the mirror.
    pub fn list(
        &self,
        url: &str,
        credentials: &Credentials,
        pins: &[String],
    ) -> Result<RepoListing, SourceError> {
        let err = |action: &'static str| {
            move |e: git2::Error| SourceError::Git {
                url: url.to_string(),
                action,
                message: e.message().to_string(),
            }
        };
        let dir = self.mirror_dir(url);
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir).map_err(err("opening the cache"))?
        } else {
            std::fs::create_dir_all(&dir).map_err(|e| SourceError::Local {
                path: dir.display().to_string(),
                message: format!("cannot create cache directory: {e}"),
            })?;
            Repository::init_bare(&dir).map_err(err("creating the cache"))?
        };
        let heads = fetch_mirror(&repo, url, credentials)?.heads;
        let branches = self
            .branches(url, &repo, &heads)
            .map_err(err("reading branches"))?;
        let pins = pins
            .iter()
            .map(|p| {
                let c = repo
                    .revparse_single(p)
                    .and_then(|o| o.peel_to_commit())
                    .map(|c| commit_of(&c))
                    .map_err(|e| {
                        format!(
                            "{p:?} is not a commit, tag or branch of {url}: {}",
                            e.message()
                        )
                    });
                (p.clone(), c)
            })
            .collect();
        Ok(RepoListing { branches, pins })
    }
}

/// What the remote advertised in a fetch.
pub(super) struct Fetched {
    /// `refs/heads/*` with their targets, sorted by name.
    pub heads: BTreeMap<String, Oid>,
    /// The remote's default branch, when it says.
    pub default_branch: Option<String>,
}

/// Make `repo`'s `refs/heads/*` and `refs/tags/*` equal to the remote's: fetch what is new and
/// drop what the remote no longer has. Local refs are what the next fetch negotiates with, so
/// later fetches transfer only new objects.
pub(super) fn fetch_mirror(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
) -> Result<Fetched, SourceError> {
    let err = |action: &'static str| {
        move |e: git2::Error| SourceError::Git {
            url: url.to_string(),
            action,
            message: e.message().to_string(),
        }
    };
    let mut remote = repo.remote_anonymous(url).map_err(err("opening"))?;
    let mut conn = remote
        .connect_auth(Direction::Fetch, Some(callbacks(credentials)), None)
        .map_err(err("connecting"))?;
    let advertised: BTreeMap<String, Oid> = conn
        .list()
        .map_err(err("listing refs"))?
        .iter()
        .filter(|h| {
            (h.name().starts_with("refs/heads/") || h.name().starts_with("refs/tags/"))
                && !h.name().ends_with("^{}")
        })
        .map(|h| (h.name().to_string(), h.oid()))
        .collect();
    let default_branch = conn
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().map(str::to_string));
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(credentials))
        .download_tags(AutotagOption::None);
    let specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
    conn.remote()
        .download(&specs, Some(&mut opts))
        .map_err(err("fetching"))?;
    drop(conn);
    let _ = remote.disconnect();
    // One scan of the local refs instead of a lookup per advertised ref.
    let mut current: BTreeMap<String, Oid> = BTreeMap::new();
    for r in repo.references().map_err(err("reading refs"))? {
        let r = r.map_err(err("reading refs"))?;
        if let Some(name) = r
            .name()
            .filter(|n| n.starts_with("refs/heads/") || n.starts_with("refs/tags/"))
        {
            if let Some(oid) = r.target() {
                current.insert(name.to_string(), oid);
            }
        }
    }
    if current != advertised {
        write_packed_refs(repo, &advertised).map_err(|e| SourceError::Local {
            path: repo.path().display().to_string(),
            message: format!("cannot write refs: {e}"),
        })?;
    }
    let heads = advertised
        .into_iter()
        .filter(|(n, _)| n.starts_with("refs/heads/"))
        .collect();
    Ok(Fetched {
        heads,
        default_branch,
    })
}

/// Replace every `refs/heads/*` and `refs/tags/*` of `repo` with `refs`, as one `packed-refs`
/// file (the format `git pack-refs` writes), swapped in atomically through git's `.lock`
/// protocol. One file instead of a file per ref: a mirror of 10,000 branches is written in
/// milliseconds rather than seconds, and read back as fast. git2 offers no safe way to pack refs.
fn write_packed_refs(repo: &Repository, refs: &BTreeMap<String, Oid>) -> std::io::Result<()> {
    use std::io::Write;
    let dir = repo.path();
    let lock = dir.join("packed-refs.lock");
    // A lock left by a crashed process would block the cache forever; a live writer holds it
    // for milliseconds.
    if let Ok(meta) = std::fs::metadata(&lock) {
        if meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(300))
        {
            let _ = std::fs::remove_file(&lock);
        }
    }
    let mut text = String::with_capacity(refs.len() * 64 + 32);
    text.push_str("# pack-refs with: sorted \n");
    for (name, oid) in refs {
        text.push_str(&format!("{oid} {name}\n"));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(&lock, dir.join("packed-refs"))?;
    // Loose refs shadow packed ones: there are none after the first write, but a cache made by
    // an older octostage has them.
    for sub in ["refs/heads", "refs/tags"] {
        match std::fs::remove_dir_all(dir.join(sub)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => std::fs::create_dir_all(dir.join(sub))?,
        }
    }
    Ok(())
}

impl RepoCache {
    /// Branches from the advertised heads; commit metadata from the memo, else the mirror.
    fn branches(
        &self,
        url: &str,
        repo: &Repository,
        heads: &BTreeMap<String, Oid>,
    ) -> Result<Vec<Branch>, git2::Error> {
        let mut memos = self.commits.lock().expect("commit memo");
        let memo = memos.entry(url.to_string()).or_default();
        // Entries move from the old memo to the new one, which keeps only current heads.
        let mut old = std::mem::take(memo);
        let mut live = HashMap::with_capacity(heads.len());
        let mut read = || -> Result<Vec<Branch>, git2::Error> {
            let mut out = Vec::with_capacity(heads.len());
            for (name, oid) in heads {
                let Some(name) = name.strip_prefix("refs/heads/") else {
                    continue;
                };
                let commit = match old.remove(oid).or_else(|| live.get(oid).cloned()) {
                    Some(c) => c,
                    None => commit_of(&repo.find_object(*oid, None)?.peel_to_commit()?),
                };
                out.push(Branch {
                    name: name.to_string(),
                    commit: commit.clone(),
                });
                live.insert(*oid, commit);
            }
            Ok(out)
        };
        let result = read();
        // A listing that failed half-way keeps everything it knew for the next try.
        *memo = live;
        if result.is_err() {
            memo.extend(old);
        }
        result
    }
}

pub(super) fn commit_of(c: &git2::Commit<'_>) -> Commit {
    Commit {
        sha: c.id().to_string(),
        time: Utc
            .timestamp_opt(c.committer().when().seconds(), 0)
            .single()
            .unwrap_or_default(),
        author: c.author().name().unwrap_or("").to_string(),
        subject: c.summary().unwrap_or("").to_string(),
    }
}

/// Credentials from the references in the config; libgit2 asks again after a refusal, so each
/// kind is offered once and then the fetch fails with the server's answer.
fn callbacks(creds: &Credentials) -> RemoteCallbacks<'static> {
    let creds = creds.clone();
    let mut tried = 0u32;
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, user_from_url, allowed| {
        tried += 1;
        if tried > 2 {
            return Err(git2::Error::from_str("authentication failed with the configured credentials"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user_from_url.unwrap_or("git");
            return match &creds.ssh_key_file {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let token = match (&creds.token_env, &creds.token_file) {
                (Some(var), _) => std::env::var(var).map_err(|_| git2::Error::from_str(&format!("credentials.token_env names {var}, which is not set")))?,
                (None, Some(file)) => read_token(file)?,
                (None, None) => return Err(git2::Error::from_str("the server asks for credentials; set credentials.token_env or credentials.token_file")),
            };
            let user = creds.username.as_deref().or(user_from_url).unwrap_or("x-access-token");
            return Cred::userpass_plaintext(user, &token);
        }
        Cred::default()
    });
    cb
}

fn read_token(file: &Path) -> Result<String, git2::Error> {
    std::fs::read_to_string(file)
        .map(|t| t.trim().to_string())
        .map_err(|e| {
            git2::Error::from_str(&format!("credentials.token_file {}: {e}", file.display()))
        })
}
