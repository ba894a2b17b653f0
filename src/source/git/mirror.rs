//! The shallow mirror of one application repository in the cache: only the commits the branch
//! heads (and pinned tags or shas) point at, with their trees, never the history. Each fetch adds
//! a pack of what changed; when the packs outgrow what a fresh mirror holds, the mirror is
//! rebuilt, which is how objects of heads that moved on are dropped (libgit2 has no gc).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::Repository;

use super::super::SourceError;

/// Written after a fresh fetch: the bytes of objects a fresh mirror holds. Its absence marks a
/// mirror to rebuild (a cache of an older octostage that mirrored all history, a first fetch
/// killed half-way, or a mirror that outgrew its bound).
const BASELINE: &str = "octostage-baseline";
/// More packs than this make every object lookup slower: rebuild.
const MAX_PACKS: usize = 50;
/// Growth allowed beyond twice the fresh size before rebuilding, so a small repository is not
/// rebuilt every few commits.
const SLACK: u64 = 32 << 20;

/// The lock file of the mirror at `dir`: beside it, since a rebuild removes the directory.
pub(super) fn lock_path(dir: &Path) -> PathBuf {
    dir.with_extension("lock")
}

/// Open the mirror at `dir` (its lock held), or make a fresh one when it is missing or marked
/// for a rebuild. Returns whether it is fresh.
pub(super) fn open(dir: &Path) -> Result<(Repository, bool), SourceError> {
    let local = |message: String| SourceError::Local {
        path: dir.display().to_string(),
        message,
    };
    if dir.join("HEAD").exists() && dir.join(BASELINE).exists() {
        // Holding the lock, any git lock file in the mirror is a leftover of a process killed
        // half-way: it would block every later fetch.
        clear_stale_locks(dir);
        let repo = Repository::open_bare(dir)
            .map_err(|e| local(format!("cannot open the cached mirror: {}", e.message())))?;
        return Ok((repo, false));
    }
    if dir.exists() {
        tracing::info!(dir = %dir.display(), "rebuilding the mirror");
        std::fs::remove_dir_all(dir)
            .map_err(|e| local(format!("cannot remove the old mirror: {e}")))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| local(format!("cannot create cache directory: {e}")))?;
    let repo = Repository::init_bare(dir)
        .map_err(|e| local(format!("cannot create the mirror: {}", e.message())))?;
    Ok((repo, true))
}

/// Written when bringing the mirror up to a reachable remote failed: a second failure in a row
/// rebuilds it, so a damaged mirror (a lost pack, a broken `packed-refs` or `shallow` file)
/// cannot fail every listing, while a single network hiccup costs no rebuild.
const FAILED: &str = "octostage-failed";

/// Bringing the mirror up to the remote failed (see [`FAILED`]).
pub(super) fn failed(dir: &Path) {
    if dir.join(FAILED).exists() {
        tracing::warn!(dir = %dir.display(), "the mirror failed twice in a row; it is rebuilt at the next listing");
        let _ = std::fs::remove_file(dir.join(BASELINE));
    } else {
        let _ = std::fs::write(dir.join(FAILED), b"");
    }
}

/// After a good fetch: record a fresh mirror's size, or mark a grown one for a rebuild at the
/// next listing (this one already has what it needs).
pub(super) fn settle(dir: &Path, fresh: bool) {
    let _ = std::fs::remove_file(dir.join(FAILED));
    let (bytes, packs) = objects(dir);
    let baseline = dir.join(BASELINE);
    if fresh {
        let _ = std::fs::write(&baseline, bytes.to_string());
        return;
    }
    let was: u64 = std::fs::read_to_string(&baseline)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if packs > MAX_PACKS || bytes > 2 * was + SLACK {
        tracing::info!(dir = %dir.display(), bytes, fresh_bytes = was, packs, "the mirror outgrew its bound; it is rebuilt at the next listing");
        let _ = std::fs::remove_file(&baseline);
    }
}

/// Bytes of objects and number of packs under `dir`.
fn objects(dir: &Path) -> (u64, usize) {
    fn walk(d: &Path, depth: usize, acc: &mut (u64, usize)) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() && depth < 3 => walk(&e.path(), depth + 1, acc),
                Ok(m) if m.is_file() => {
                    acc.0 += m.len();
                    if e.file_name().to_string_lossy().ends_with(".pack") {
                        acc.1 += 1;
                    }
                }
                _ => {}
            }
        }
    }
    let mut acc = (0, 0);
    walk(&dir.join("objects"), 0, &mut acc);
    acc
}

/// Remove `*.lock` files git leaves when killed mid-write (octostage's own lock is beside the mirror).
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
            } else if name.ends_with(".lock") {
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

/// An exclusive `flock` on a file, held until dropped; waits at most `timeout`.
pub(super) struct FileLock {
    /// Held, not read: dropping it unlocks.
    _held: nix::fcntl::Flock<std::fs::File>,
}

impl FileLock {
    pub(super) fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, SourceError> {
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
