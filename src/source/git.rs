//! Application repositories: their branch heads mirrored into a bare repository per URL in the
//! cache directory, incrementally after the first fetch.
//!
//! Branch names are attacker-controlled (anyone who can push chooses them): a name that is not
//! UTF-8 or that git itself refuses as a branch name is skipped and reported, never a reason for
//! the listing, let alone the process, to fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use git2::{
    AutotagOption, Cred, CredentialType, FetchOptions, FetchPrune, Oid, RemoteCallbacks, Repository,
};

use super::{Branch, Commit, SourceError};
use crate::config::Credentials;
use crate::redact;

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

/// A branch the listing left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The name, with bytes that are not UTF-8 shown as `\xNN`.
    pub name: String,
    /// Why it gets no staging.
    pub why: &'static str,
}

/// What one fetch of an application repository saw.
#[derive(Debug, Clone, Default)]
pub struct RepoListing {
    /// Branch heads, sorted by name.
    pub branches: Vec<Branch>,
    /// Pinned commits (sha, short sha or tag) resolved, or why not.
    pub pins: HashMap<String, Result<Commit, String>>,
    /// Branches that get no staging because of their name.
    pub skipped: Vec<Skipped>,
}

/// Mirrors of application repositories under one directory.
#[derive(Debug, Clone)]
pub struct RepoCache {
    dir: PathBuf,
    /// Commit metadata of each repository's current heads, by sha: commits never change, so
    /// later passes read only new ones. Replaced on each listing, so it holds only live heads.
    commits: Arc<Mutex<HashMap<String, HashMap<Oid, Commit>>>>,
    /// One lock per mirror: two listings of one repository in this process take turns.
    locks: Arc<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>>,
    /// Longest a listing may take, from connecting to the last commit read.
    timeout: Duration,
}

/// Default limit of one listing.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(120);

impl RepoCache {
    /// A cache rooted at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RepoCache {
            dir: dir.into(),
            commits: Arc::default(),
            locks: Arc::default(),
            timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }

    /// The same cache with another limit per listing.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The limit per listing.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The mirror directory of `url`: a hash of the URL and the last segment of its path (never
    /// a query, a fragment or user information).
    pub fn mirror_dir(&self, url: &str) -> PathBuf {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let path = path.rsplit_once('@').map_or(path, |(_, p)| p);
        let tail = path
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo");
        let mut tail = crate::naming::slug(tail);
        tail.truncate(40);
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
        let shown = redact::url(url);
        let err = |action| super::git_err(&shown, action);
        check_local(url, &shown)?;
        let dir = self.mirror_dir(url);
        let local = self.lock_for(&dir);
        let _local = local.lock().unwrap_or_else(|p| p.into_inner());
        std::fs::create_dir_all(&dir).map_err(|e| SourceError::Local {
            path: dir.display().to_string(),
            message: format!("cannot create cache directory: {e}"),
        })?;
        // Another octostage sharing the cache may fetch into the same mirror.
        let _shared = FileLock::acquire(&dir.join("octostage.lock"), self.timeout)?;
        // Holding the lock, any git lock file in the mirror is a leftover of a process killed
        // half-way: it would block every later fetch.
        clear_stale_locks(&dir);
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir).map_err(err("opening the cache"))?
        } else {
            Repository::init_bare(&dir).map_err(err("creating the cache"))?
        };
        let deadline = Instant::now() + self.timeout;
        tracing::info!(url = %shown, "fetching");
        fetch_mirror(&repo, url, credentials, deadline)?;
        let (branches, skipped) = self.branches(url, &repo).map_err(err("reading branches"))?;
        let pins = pins
            .iter()
            .map(|p| {
                let c = repo
                    .revparse_single(p)
                    .and_then(|o| o.peel_to_commit())
                    .map(|c| commit_of(&c))
                    .map_err(|e| {
                        format!(
                            "{p:?} is not a commit, tag or branch of {shown}: {}",
                            e.message()
                        )
                    });
                (p.clone(), c)
            })
            .collect();
        Ok(RepoListing {
            branches,
            pins,
            skipped,
        })
    }

    fn lock_for(&self, dir: &Path) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(dir.to_path_buf())
            .or_default()
            .clone()
    }

    /// Branches from the mirror's heads; commit metadata from the memo, else the mirror.
    fn branches(
        &self,
        url: &str,
        repo: &Repository,
    ) -> Result<(Vec<Branch>, Vec<Skipped>), git2::Error> {
        let mut heads = Vec::new();
        let mut skipped = Vec::new();
        for r in repo.references_glob("refs/heads/*")? {
            // One unreadable ref (a name git itself would refuse) must not hide the others.
            let Ok(r) = r else {
                skipped.push(Skipped {
                    name: "?".into(),
                    why: "is a ref git cannot read",
                });
                continue;
            };
            let Some(oid) = r.target() else { continue };
            let raw = &r.name_bytes()["refs/heads/".len()..];
            match branch_name(raw) {
                Ok(name) => heads.push((name, oid)),
                Err(s) => skipped.push(s),
            }
        }
        heads.sort();
        let mut memos = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        let memo = memos.entry(url.to_string()).or_default();
        // Entries move from the old memo to the new one, which keeps only current heads.
        let mut old = std::mem::take(memo);
        let mut live = HashMap::with_capacity(heads.len());
        let mut unreadable = Vec::new();
        let mut read = || -> Result<Vec<Branch>, git2::Error> {
            let mut out = Vec::with_capacity(heads.len());
            for (name, oid) in &heads {
                let commit = match old.remove(oid).or_else(|| live.get(oid).cloned()) {
                    Some(c) => c,
                    None => match read_commit(repo, *oid) {
                        Ok(c) => c,
                        Err(_) => {
                            // Its staging is kept (see the planner), the other branches go on.
                            unreadable.push(Skipped {
                                name: name.clone(),
                                why: "points at a commit that cannot be read (a malformed date or object)",
                            });
                            continue;
                        }
                    },
                };
                out.push(Branch {
                    name: name.clone(),
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
        skipped.extend(unreadable);
        Ok((result?, skipped))
    }
}

/// A branch name octostage can carry, or why not. git accepts any bytes in a pushed ref, but
/// octostage writes branch names into annotations, JSON and render commands: they must be
/// UTF-8, and a leading `-` (which `git branch` itself refuses) would read as an option to the
/// programs a render command runs.
fn branch_name(raw: &[u8]) -> Result<String, Skipped> {
    match std::str::from_utf8(raw) {
        Ok(name) if name.starts_with('-') => Err(Skipped {
            name: name.to_string(),
            why: "starts with '-', which git refuses in branch names and render commands would read as an option",
        }),
        Ok(name) if name.chars().any(char::is_control) => Err(Skipped {
            name: name.escape_default().to_string(),
            why: "contains control characters",
        }),
        Ok(name) => Ok(name.to_string()),
        Err(_) => Err(Skipped {
            name: raw.escape_ascii().to_string(),
            why: "is not UTF-8",
        }),
    }
}

/// Remove `*.lock` files git leaves when killed mid-write (octostage's own lock excepted).
fn clear_stale_locks(dir: &Path) {
    fn walk(d: &Path, depth: usize) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if depth < 8 {
                    walk(&p, depth + 1);
                }
            } else if name.ends_with(".lock") && name != "octostage.lock" {
                tracing::warn!(file = %p.display(), "removing a lock file left by an interrupted fetch");
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    for f in [
        "packed-refs.lock",
        "HEAD.lock",
        "config.lock",
        "shallow.lock",
        "index.lock",
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    walk(&dir.join("refs"), 0);
}

/// A missing local repository is named as such (libgit2 would say "unsupported URL protocol").
fn check_local(url: &str, shown: &str) -> Result<(), SourceError> {
    let path = if let Some(p) = url.strip_prefix("file://") {
        Path::new(p)
    } else if redact::is_remote(url) {
        return Ok(());
    } else {
        Path::new(url)
    };
    if path.is_dir() {
        return Ok(());
    }
    Err(SourceError::Git {
        url: shown.to_string(),
        action: "opening",
        message: if path.exists() {
            "cannot open the repository: it is not a directory".into()
        } else {
            "cannot open the repository: no such directory".into()
        },
    })
}

/// Make `repo`'s `refs/heads/*` and `refs/tags/*` equal to the remote's: fetch what is new and
/// prune what the remote no longer has, then pack the refs into one file (10,000 loose ref
/// files cost seconds to write and read). Local refs are what the next fetch negotiates with,
/// so later fetches transfer only new objects. Returns the remote's default branch, when it
/// names one.
pub(super) fn fetch_mirror(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Option<String>, SourceError> {
    let shown = redact::url(url);
    let err = |action| super::git_err(&shown, action);
    let mut remote = repo.remote_anonymous(url).map_err(err("opening"))?;
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(url, credentials, deadline))
        .download_tags(AutotagOption::None)
        .prune(FetchPrune::On)
        .update_fetchhead(false);
    let specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
    remote.fetch(&specs, Some(&mut opts), None).map_err(|e| {
        if Instant::now() >= deadline {
            SourceError::Git {
                url: shown.clone(),
                action: "fetching",
                message: "did not finish within the fetch timeout and was stopped".into(),
            }
        } else {
            err("fetching")(e)
        }
    })?;
    let default_branch = remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string));
    let _ = remote.disconnect();
    // Refs the fetch created or moved are loose files; one packed file reads much faster.
    if has_loose_refs(&repo.path().join("refs")) {
        repo.refdb_compress().map_err(err("packing refs"))?;
    }
    Ok(default_branch)
}

/// Whether any ref under `dir` is a loose file (directories left empty by packing are not).
fn has_loose_refs(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| match e.file_type() {
            Ok(t) if t.is_dir() => has_loose_refs(&e.path()),
            Ok(_) => true,
            Err(_) => false,
        })
    })
}

/// The commit `oid` points at, with a committer date that must be a real time.
fn read_commit(repo: &Repository, oid: Oid) -> Result<Commit, git2::Error> {
    let c = repo.find_object(oid, None)?.peel_to_commit()?;
    Utc.timestamp_opt(c.committer().when().seconds(), 0)
        .single()
        .ok_or_else(|| git2::Error::from_str("committer date out of range"))?;
    Ok(commit_of(&c))
}

pub(super) fn commit_of(c: &git2::Commit<'_>) -> Commit {
    Commit {
        sha: c.id().to_string(),
        time: Utc
            .timestamp_opt(c.committer().when().seconds(), 0)
            .single()
            .unwrap_or_default(),
        author: String::from_utf8_lossy(c.author().name_bytes()).into_owned(),
        subject: c
            .summary_bytes()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default(),
    }
}

/// Credentials from the references in the config, for `url`'s own scheme and host only (a
/// server that redirects elsewhere, or from https to http, gets none); libgit2 asks again after
/// a refusal, so each kind is offered once and then the fetch fails with the server's answer.
/// The transfer stops at `deadline`.
fn callbacks(url: &str, creds: &Credentials, deadline: Instant) -> RemoteCallbacks<'static> {
    let creds = creds.clone();
    let configured = redact::origin(url);
    let mut tried = 0u32;
    let mut cb = RemoteCallbacks::new();
    cb.transfer_progress(move |_| Instant::now() < deadline);
    cb.sideband_progress(move |_| Instant::now() < deadline);
    cb.credentials(move |asked, user_from_url, allowed| {
        if redact::origin(asked) != configured {
            return Err(git2::Error::from_str(&format!(
                "the server sent octostage to {}; credentials go only to the configured repository's host",
                redact::url(asked)
            )));
        }
        tried += 1;
        if tried > 2 {
            return Err(git2::Error::from_str(
                "authentication failed with the configured credentials",
            ));
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
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    git2::Error::from_str(&format!(
                        "credentials.token_env names {var}, which is not set"
                    ))
                })?,
                (None, Some(file)) => read_token(file)?,
                (None, None) => {
                    return Err(git2::Error::from_str(
                        "the server asks for credentials; set credentials.token_env or credentials.token_file",
                    ))
                }
            };
            let user = creds
                .username
                .as_deref()
                .or(user_from_url)
                .unwrap_or("x-access-token");
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
            git2::Error::from_str(&format!(
                "credentials.token_file {}: {}",
                file.display(),
                e.kind()
            ))
        })
}

/// An exclusive `flock` on a file, held until dropped; waits at most `timeout`.
struct FileLock {
    /// Held, not read: dropping it unlocks.
    _held: nix::fcntl::Flock<std::fs::File>,
}

impl FileLock {
    fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, SourceError> {
        let io = |e: String| SourceError::Local {
            path: path.display().to_string(),
            message: e,
        };
        let deadline = Instant::now() + timeout;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io(e.to_string()))?;
        loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Ok(FileLock { _held: l }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    return Err(io(format!(
                        "cannot lock the mirror ({e}); another fetch of this repository is still running"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_branch_names_are_skipped_not_fatal() {
        assert_eq!(branch_name(b"feature/a").unwrap(), "feature/a");
        assert_eq!(
            branch_name(b"feature/$(touch pwned)").unwrap(),
            "feature/$(touch pwned)"
        );
        assert!(branch_name(b"--upload-pack=x").is_err());
        let s = branch_name(b"bad\xff").unwrap_err();
        assert_eq!((s.name.as_str(), s.why), ("bad\\xff", "is not UTF-8"));
        assert!(branch_name(b"a\nb").is_err());
    }

    #[test]
    fn mirror_folders_never_carry_a_query_or_user() {
        let c = RepoCache::new("/c");
        let d = c.mirror_dir("https://tok@host/a/shop.git?access_token=SECRET");
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with("-shop") && !name.contains("SECRET") && !name.contains("tok"));
    }
}
