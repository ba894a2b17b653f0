//! Application repositories: their branch heads fetched into a shallow mirror per URL in the
//! cache directory (the commits the heads point at, never the history), incrementally after the
//! first fetch.
//!
//! Branch names are attacker-controlled (anyone who can push chooses them): a name that is not
//! UTF-8 or that git itself refuses as a branch name is skipped and reported, never a reason for
//! the listing, let alone the process, to fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use git2::{Oid, Repository};

use super::{Branch, Commit, SourceError};
use crate::config::Credentials;
use crate::redact;

mod fetch;
mod known_hosts;
mod mirror;
mod sync;
mod tree;
mod unchanged;

pub use tree::{check_path as check_app_path, ExportError};

pub(crate) use fetch::fetch_mirror;
use fetch::{fetch, Want};
use mirror::FileLock;

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoListing {
    /// Branch heads, sorted by name.
    pub branches: Vec<Branch>,
    /// Pinned commits (sha, short sha or tag) resolved, or why not.
    pub pins: HashMap<String, Result<Commit, super::PinError>>,
    /// Branches that get no staging because of their name.
    pub skipped: Vec<Skipped>,
    /// Whether `branches` are those of open pull requests (`branches.from: pull_requests`).
    pub pull_requests: bool,
    /// Labelled open pull requests that get no staging: (number, branch, why).
    pub pulls_left_out: Vec<(u64, String, crate::source::pulls::LeftOut)>,
    /// With `pull_requests`: heads no open pull request names that static stagings pin, kept
    /// apart from `branches` (they get no staging of their own).
    pub pinned_heads: Vec<Branch>,
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
    /// The last listing of each mirror, while its remote advertises the same.
    listed: unchanged::Listed,
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
            listed: unchanged::Listed::default(),
            timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }

    /// The same cache with another limit per listing.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Fetch the heads of `url` into its shallow mirror and list its branches; `pins` are
    /// resolved in the mirror, fetched by name (a tag) or full sha when it lacks them.
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
        // A listing stuck in libgit2 (a server that never answers; libgit2 has no read timeout)
        // keeps this lock: later listings give up after the timeout instead of piling up.
        let _local = wait_for(&local, self.timeout).ok_or_else(|| SourceError::Local {
            path: dir.display().to_string(),
            message: format!(
                "an earlier listing of this repository is still running after {}; the server may not be answering",
                humantime::format_duration(self.timeout)
            ),
        })?;
        let repos = dir.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(repos).map_err(|e| SourceError::Local {
            path: repos.display().to_string(),
            message: format!("cannot create cache directory: {e}"),
        })?;
        // Another octostage sharing the cache may fetch into the same mirror.
        let _shared = FileLock::acquire(&mirror::lock_path(&dir), self.timeout)?;
        let (repo, fresh) = mirror::open(&dir)?;
        let deadline = Instant::now() + self.timeout;
        let started = Instant::now();
        // libgit2's local transport cannot fetch shallow; a repository on this machine's disk
        // costs no transfer, only a copy of its history in the cache.
        let depth = (redact::is_remote(url) && !url.starts_with("file://")).then_some(1);
        let tags: Vec<String> = pins.iter().filter(|p| !is_full_sha(p)).cloned().collect();
        let (remote, mut skipped_refs) =
            sync::advertised(&repo, url, credentials, deadline, &tags)?;
        let key = unchanged::key(&dir, &remote, &skipped_refs, &tags, pins);
        let advertised_skipped = skipped_refs.clone();
        // A mirror made afresh (deleted, or new) is filled whatever was listed before.
        if let Some(listing) = self.listed.get(&dir, key).filter(|_| !fresh) {
            return Ok(listing);
        }
        let remote = sync::Advertised {
            refs: remote,
            tags: &tags,
            glob_ok: !skipped_refs.iter().any(|s| s.why == sync::TOO_LONG),
        };
        let synced = sync::sync(&repo, url, credentials, deadline, depth, &remote);
        let fetched = synced.inspect_err(|_| mirror::failed(&dir))?;
        fetch_pinned_shas(&repo, url, credentials, deadline, depth, pins);
        tracing::debug!(
            url = %shown,
            fresh,
            bytes = fetched.bytes,
            objects = fetched.objects,
            ms = started.elapsed().as_millis() as u64,
            "fetched"
        );
        mirror::settle(&dir, fresh);
        let (branches, skipped) = self.branches(url, &repo).map_err(err("reading branches"))?;
        skipped_refs.extend(skipped);
        let skipped = skipped_refs;
        let resolved = pins
            .iter()
            .map(|p| (p.clone(), resolve(&repo, p, &shown)))
            .collect();
        let listing = RepoListing {
            pull_requests: false,
            pulls_left_out: Vec::new(),
            pinned_heads: Vec::new(),
            branches,
            pins: resolved,
            skipped,
        };
        // Made after this listing's own writes to the mirror, so that the next one compares.
        let key = unchanged::key(&dir, &remote.refs, &advertised_skipped, &tags, pins);
        self.listed.put(&dir, key, &listing);
        Ok(listing)
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

/// Lock `m`, waiting at most `timeout`.
fn wait_for(m: &Mutex<()>, timeout: Duration) -> Option<std::sync::MutexGuard<'_, ()>> {
    let deadline = Instant::now() + timeout;
    loop {
        match m.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

fn is_full_sha(p: &str) -> bool {
    p.len() == 40 && p.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Fetch each pinned full sha the mirror lacks (commits never change, so once is enough), one
/// at a time: a sha the remote does not have fails its pin alone.
fn fetch_pinned_shas(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
    deadline: Instant,
    depth: Option<i32>,
    pins: &[String],
) {
    for p in pins.iter().filter(|p| is_full_sha(p)) {
        if Oid::from_str(p).is_ok_and(|o| repo.find_commit(o).is_ok()) {
            continue;
        }
        let specs = [format!("+{p}:refs/pins/{p}")];
        let want = Want {
            specs: &specs,
            depth,
        };
        if let Err(e) = fetch(repo, url, credentials, deadline, &want) {
            tracing::info!(pin = %p, error = %e, "cannot fetch a pinned commit");
        }
    }
}

/// The commit a pin names in the mirror.
fn resolve(repo: &Repository, pin: &str, shown: &str) -> Result<Commit, super::PinError> {
    repo.revparse_single(pin)
        .and_then(|o| o.peel_to_commit())
        .map(|c| commit_of(&c))
        .map_err(|e| super::PinError::Unresolved {
            pin: pin.to_string(),
            repository: shown.to_string(),
            message: crate::redact::url(e.message()),
        })
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
        author: cut(
            &String::from_utf8_lossy(c.author().name_bytes()),
            crate::consts::MAX_AUTHOR,
        ),
        subject: cut(
            &String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()),
            crate::consts::MAX_SUBJECT,
        ),
        steer: steer_trailer(c.message_bytes()),
    }
}

/// `s` cut to at most `max` bytes, at a character boundary, marked with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The last `Staging:` trailer of a message, as git itself finds trailers.
fn steer_trailer(message: &[u8]) -> Option<String> {
    let trailers = git2::message_trailers_bytes(message).ok()?;
    let value = trailers
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"staging"))?
        .1;
    let mut v = String::from_utf8_lossy(value).into_owned();
    if v.len() > crate::consts::MAX_TRAILER {
        let mut end = crate::consts::MAX_TRAILER;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
        v.push('…');
    }
    Some(v)
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
    fn subjects_and_authors_are_cut_to_their_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let long = "é".repeat(100_000);
        let sig = git2::Signature::now(&"a".repeat(10_000), "a@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let oid = repo
            .commit(None, &sig, &sig, &format!("{long}\n\nbody"), &tree, &[])
            .unwrap();
        let c = commit_of(&repo.find_commit(oid).unwrap());
        assert!(c.subject.len() <= crate::consts::MAX_SUBJECT && c.subject.ends_with('…'));
        assert!(c.subject.starts_with("éé"));
        assert!(c.author.len() <= crate::consts::MAX_AUTHOR);
        assert_eq!(cut("short", 10), "short");
    }

    #[test]
    fn mirror_folders_never_carry_a_query_or_user() {
        let c = RepoCache::new("/c");
        let d = c.mirror_dir("https://tok@host/a/shop.git?access_token=SECRET");
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with("-shop") && !name.contains("SECRET") && !name.contains("tok"));
    }
}
