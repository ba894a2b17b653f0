//! Files of an application repository at one commit, exported for rendering: only the paths an
//! environment declares, read from the mirror (under its lock), written once per commit and set
//! of paths into the cache, read-only, bounded in files and bytes, without symbolic links (a
//! link could point anywhere on the host) or submodules. Old exports are removed, oldest first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::mirror::{self, FileLock};
use super::RepoCache;
use crate::source::SourceError;

/// Most files one export may hold.
pub const MAX_FILES: usize = 20_000;
/// Most bytes one export may hold.
pub const MAX_BYTES: u64 = 256 << 20;
/// Exports kept in the cache, and the bytes all of them may hold; the least recently used go
/// first, but never one used in the last [`IN_USE`] (a render may be reading it).
const KEEP: usize = 64;
const MAX_TOTAL: u64 = 1 << 30;
const IN_USE: Duration = Duration::from_secs(300);
/// Written last: an export without it was cut short and is made again.
const COMPLETE: &str = ".octostage-complete";

impl RepoCache {
    /// The directory holding `paths` of `url` at commit `sha`, exported on first use.
    pub fn export(&self, url: &str, sha: &str, paths: &[String]) -> Result<PathBuf, SourceError> {
        let paths = outermost(paths);
        let key = format!("{}\0{sha}\0{}", url, paths.join("\0"));
        // Absolute: commands and tools run in the config repository, not here.
        let root =
            std::path::absolute(self.dir.join("trees")).unwrap_or_else(|_| self.dir.join("trees"));
        let dir = root.join(format!(
            "{}-{}",
            &sha[..sha.len().min(12)],
            crate::naming::short_hash(&key, 12)
        ));
        if dir.join(COMPLETE).exists() {
            touch(&dir);
            return Ok(dir);
        }
        let local = |message: String| SourceError::Local {
            path: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&root).map_err(|e| local(format!("cannot create: {e}")))?;
        let mirror_dir = self.mirror_dir(url);
        let _lock = FileLock::acquire(&mirror::lock_path(&mirror_dir), self.timeout())?;
        if dir.join(COMPLETE).exists() {
            return Ok(dir);
        }
        let work = tempfile::Builder::new()
            .prefix(".export-")
            .tempdir_in(&root)
            .map_err(|e| local(format!("cannot create: {e}")))?;
        let repo = Repository::open_bare(&mirror_dir).map_err(|e| {
            local(format!(
                "the repository's mirror cannot be opened: {}",
                e.message()
            ))
        })?;
        let bytes = write_paths(&repo, sha, &paths, work.path())?;
        // The marker holds the export's size, for pruning by bytes.
        std::fs::write(work.path().join(COMPLETE), bytes.to_string())
            .map_err(|e| local(format!("cannot write: {e}")))?;
        read_only(work.path());
        let _ = remove(&dir);
        let tmp = work.keep();
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = remove(&tmp);
            if !dir.join(COMPLETE).exists() {
                return Err(local(format!("cannot move the export into place: {e}")));
            }
        }
        prune(&root, &dir);
        Ok(dir)
    }
}

/// Paths without those inside another (`deploy` holds `deploy/base`), sorted.
fn outermost(paths: &[String]) -> Vec<String> {
    let mut sorted: Vec<String> = paths
        .iter()
        .map(|p| p.trim_end_matches('/').to_string())
        .collect();
    sorted.sort();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in sorted {
        if !out.iter().any(|o| p.starts_with(&format!("{o}/"))) {
            out.push(p);
        }
    }
    out
}

/// Why the application repository's files could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An export path that is not relative.
    #[error("{0:?} must be a relative path inside the application repository")]
    NotRelative(String),
    /// An export path that is not normalized.
    #[error("{0:?} must not contain `.`, `..`, `.git` or empty segments")]
    Segments(String),
    /// An export path the commit does not hold.
    #[error("path {0:?} does not exist in the application repository at this commit")]
    Missing(String),
    /// An export path that names a submodule.
    #[error("path {0:?} is a submodule; only files and directories are exported")]
    Submodule(String),
    /// The commit is gone from the mirror.
    #[error("the commit is not in the mirror (the branch moved on)")]
    Gone,
    /// A tree entry whose name is not a file name.
    #[error("an entry under {0:?} has a name that is not a file name")]
    Name(String),
    /// A symbolic link.
    #[error(
        "is a symbolic link; links are not exported (they could point outside the repository)"
    )]
    Link,
    /// Too many files and directories.
    #[error("more than {MAX_FILES} files and directories; declare narrower paths")]
    Files,
    /// Too many bytes.
    #[error("more than {} MiB; declare narrower paths", MAX_BYTES >> 20)]
    Bytes,
    /// Too long.
    #[error("not exported within {}s; declare narrower paths", MAX_TIME.as_secs())]
    Time,
    /// Writing the export failed.
    #[error("cannot write: {0}")]
    Write(std::io::Error),
    /// libgit2 failed reading an object.
    #[error("{}", .0.message())]
    Git(git2::Error),
    /// One of the above, at a path.
    #[error("{at}: {error}")]
    At {
        /// The path.
        at: String,
        /// What happened there.
        error: Box<ExportError>,
    },
}

impl ExportError {
    fn at(self, at: String) -> ExportError {
        ExportError::At {
            at,
            error: Box::new(self),
        }
    }
}

/// Check an export path as written in the configuration: relative, normalized, inside.
pub fn check_path(p: &str) -> Result<(), ExportError> {
    if p.is_empty() || p.starts_with('/') || p.contains('\\') {
        return Err(ExportError::NotRelative(p.into()));
    }
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.eq_ignore_ascii_case(".git"))
    {
        return Err(ExportError::Segments(p.into()));
    }
    Ok(())
}

fn write_paths(
    repo: &Repository,
    sha: &str,
    paths: &[String],
    out: &Path,
) -> Result<u64, SourceError> {
    let fail = |error: ExportError| SourceError::Export {
        commit: sha[..sha.len().min(7)].to_string(),
        error,
    };
    let oid = Oid::from_str(sha).map_err(|e| fail(ExportError::Git(e)))?;
    let commit = repo.find_commit(oid).map_err(|_| fail(ExportError::Gone))?;
    let tree = commit.tree().map_err(|e| fail(ExportError::Git(e)))?;
    let mut budget = Budget {
        files: 0,
        bytes: 0,
        started: std::time::Instant::now(),
    };
    for p in paths {
        check_path(p).map_err(fail)?;
        let entry = tree
            .get_path(Path::new(p))
            .map_err(|_| fail(ExportError::Missing(p.clone())))?;
        let target = out.join(p);
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo
                    .find_tree(entry.id())
                    .map_err(|e| fail(ExportError::Git(e)))?;
                std::fs::create_dir_all(&target).map_err(|e| fail(ExportError::Write(e)))?;
                walk(repo, &sub, &target, &mut budget).map_err(|e| fail(e.at(p.clone())))?;
            }
            Some(ObjectType::Blob) => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| fail(ExportError::Write(e)))?;
                }
                write_blob(repo, entry.id(), entry.filemode(), &target, &mut budget)
                    .map_err(|e| fail(e.at(p.clone())))?;
            }
            _ => return Err(fail(ExportError::Submodule(p.clone()))),
        }
    }
    Ok(budget.bytes)
}

struct Budget {
    files: usize,
    bytes: u64,
    started: std::time::Instant,
}

/// Longest one export may take.
const MAX_TIME: Duration = Duration::from_secs(60);

fn walk(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    out: &Path,
    budget: &mut Budget,
) -> Result<(), ExportError> {
    let mut failure = None;
    let walked = tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
        let Some(name) = entry
            .name()
            .ok()
            .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains('/'))
        else {
            failure = Some(ExportError::Name(parent.to_string()));
            return TreeWalkResult::Abort;
        };
        // A repository's own metadata (hooks, fsmonitor) is never handed to a tool.
        if name.eq_ignore_ascii_case(".git") {
            return TreeWalkResult::Skip;
        }
        let target = out.join(parent).join(name);
        let r = match entry.kind() {
            Some(ObjectType::Tree) => count(budget)
                .and_then(|()| std::fs::create_dir_all(&target).map_err(ExportError::Write)),
            Some(ObjectType::Blob) => {
                write_blob(repo, entry.id(), entry.filemode(), &target, budget)
            }
            // A submodule's commit: nothing to export.
            _ => Ok(()),
        };
        match r {
            Ok(()) => TreeWalkResult::Ok,
            Err(e) => {
                failure = Some(e.at(format!("{parent}{name}")));
                TreeWalkResult::Abort
            }
        }
    });
    match (failure, walked) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(ExportError::Git(e)),
        (None, Ok(())) => Ok(()),
    }
}

/// One more entry (file or directory), within the count and the time.
fn count(budget: &mut Budget) -> Result<(), ExportError> {
    budget.files += 1;
    if budget.files > MAX_FILES {
        return Err(ExportError::Files);
    }
    if budget.started.elapsed() > MAX_TIME {
        return Err(ExportError::Time);
    }
    Ok(())
}

fn write_blob(
    repo: &Repository,
    id: Oid,
    mode: i32,
    target: &Path,
    budget: &mut Budget,
) -> Result<(), ExportError> {
    if mode == 0o120000 {
        return Err(ExportError::Link);
    }
    // Its size from the object's header: a huge blob is refused before it is read.
    let (size, _) = repo
        .odb()
        .and_then(|o| o.read_header(id))
        .map_err(ExportError::Git)?;
    if budget.bytes + size as u64 > MAX_BYTES {
        return Err(ExportError::Bytes);
    }
    count(budget)?;
    budget.bytes += size as u64;
    let blob = repo.find_blob(id).map_err(ExportError::Git)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(ExportError::Write)?;
    f.write_all(blob.content()).map_err(ExportError::Write)?;
    let perm = if mode == 0o100755 { 0o555 } else { 0o444 };
    set_mode(target, perm);
    Ok(())
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

/// Directories read-only too: a render command cannot change what the next one reads.
fn read_only(dir: &Path) {
    for e in walkdirs(dir) {
        set_mode(&e, 0o555);
    }
}

fn walkdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// Remove an export (its directories made writable first, for a non-root process).
fn remove(dir: &Path) -> std::io::Result<()> {
    for d in walkdirs(dir) {
        set_mode(&d, 0o755);
    }
    std::fs::remove_dir_all(dir)
}

/// Mark an export used now.
fn touch(dir: &Path) {
    let _ = std::fs::File::open(dir).and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

/// Keep the most recently used exports, at most [`KEEP`] holding at most [`MAX_TOTAL`] bytes
/// with `keep` among them; leftovers of exports cut short go after an hour.
fn prune(root: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let now = std::time::SystemTime::now();
    let age = |t: std::time::SystemTime| now.duration_since(t).unwrap_or_default();
    let mut all: Vec<(std::time::SystemTime, PathBuf, u64)> = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let used = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".export-"))
        {
            if age(used) > Duration::from_secs(3600) {
                let _ = remove(&p);
            }
            continue;
        }
        let size = std::fs::read_to_string(p.join(COMPLETE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(MAX_BYTES);
        all.push((used, p, size));
    }
    // Newest first, the export just made before all.
    all.sort_by_key(|x| std::cmp::Reverse((x.1 == keep, x.0)));
    let (mut count, mut total) = (0usize, 0u64);
    for (used, p, size) in all {
        count += 1;
        total += size;
        let over = count > KEEP || total > MAX_TOTAL;
        if over && p != keep && age(used) > IN_USE {
            let _ = remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_paths_stay_inside() {
        assert!(check_path("deploy/k8s").is_ok());
        assert!(check_path("deploy/").is_ok());
        assert_eq!(
            outermost(&["deploy/base".into(), "deploy".into(), "charts".into()]),
            ["charts", "deploy"]
        );
        for bad in [
            "",
            "/etc",
            "../x",
            "deploy/../../x",
            "./deploy",
            "a\\b",
            "deploy//k8s",
            "deploy/.",
            "x/.git/hooks",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
