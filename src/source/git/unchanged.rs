//! The last listing of each mirror, by what its remote advertised: a remote that advertises the
//! same refs as last time has the same branches at the same commits, so a listing then neither
//! syncs the mirror nor reads it (at 1,000 branches that was most of a quiet interval's CPU).
//! The mirror must be as it was left, too (its refs and packs untouched: a damaged mirror is
//! found by reading it), and a listing is made in full at least every [`MAX_AGE`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::sync::Refs;
use super::{RepoListing, Skipped};

/// Longest a listing is reused.
const MAX_AGE: Duration = Duration::from_secs(600);

/// A listing, the digest of what it was made from, and when.
type Entry = (u64, Instant, RepoListing);

/// Listings by mirror directory.
#[derive(Debug, Clone, Default)]
pub(super) struct Listed(Arc<Mutex<HashMap<PathBuf, Entry>>>);

/// A digest of everything a listing of the mirror `dir` is made from: what the remote
/// advertised, what was asked, and when the mirror's refs and packs last changed.
pub(super) fn key(
    dir: &Path,
    refs: &Refs,
    skipped: &[Skipped],
    tags: &[String],
    pins: &[String],
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for part in [
        "packed-refs",
        "refs/heads",
        "refs/tags",
        "objects",
        "objects/pack",
    ] {
        let changed = std::fs::metadata(dir.join(part)).and_then(|m| m.modified());
        changed
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .hash(&mut h);
    }
    for (name, oid) in refs {
        name.hash(&mut h);
        oid.as_bytes().hash(&mut h);
    }
    for s in skipped {
        (&s.name, s.why).hash(&mut h);
    }
    (tags, pins).hash(&mut h);
    h.finish()
}

impl Listed {
    /// The listing of `dir` made from `key`, if it is the last one.
    pub(super) fn get(&self, dir: &Path, key: u64) -> Option<RepoListing> {
        let listed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        listed
            .get(dir)
            .filter(|(k, at, _)| *k == key && at.elapsed() < MAX_AGE)
            .map(|(_, _, l)| l.clone())
    }

    /// Remember `listing` of `dir`, made from `key`; a listing with a pin that did not resolve
    /// is not remembered (fetching it may work next time).
    pub(super) fn put(&self, dir: &Path, key: u64, listing: &RepoListing) {
        let mut listed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if listing.pins.values().all(Result::is_ok) {
            listed.insert(dir.to_path_buf(), (key, Instant::now(), listing.clone()));
        } else {
            listed.remove(dir);
        }
    }
}
