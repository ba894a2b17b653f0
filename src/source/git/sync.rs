//! Bringing the mirror's refs up to the remote's with as little transfer as the remote allows:
//! the remote's refs are listed first (one round trip, like `git ls-remote`), and only the refs
//! that moved to a commit the mirror lacks are fetched. A fetch with a depth would otherwise
//! send every head again (libgit2 wants every ref of a shallow fetch, changed or not).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Instant;

use git2::{Direction, Oid, Repository};

use super::fetch::{callbacks, fetch, Fetched, Want};
use super::Skipped;
use crate::config::Credentials;
use crate::source::SourceError;

/// Refs by full name and the object each points at.
pub(super) type Refs = Vec<(String, Oid)>;

/// Above this many refs to fetch, one glob refspec is cheaper to match than one each.
const EXACT_REFSPECS: usize = 256;
/// Longest part of a ref name (between slashes) kept: the mirror stores refs as files (with a
/// `.lock` beside them while written), and a file name longer than the file system allows (255
/// bytes) would fail every fetch that brings the ref.
const MAX_NAME_PART: usize = 250;

/// Why a ref whose name is too long to store is skipped.
pub(super) const TOO_LONG: &str = "is not a name git can store here (a part longer than 250 bytes)";

/// What the remote advertised that a listing needs.
pub(super) struct Advertised<'a> {
    /// Heads and the named tags, by full ref name.
    pub refs: Refs,
    /// The tags pins name.
    pub tags: &'a [String],
    /// Whether one glob refspec may fetch every head (none was skipped as too long to store).
    pub glob_ok: bool,
}

/// Whether a ref can be written into the mirror (and so be a refspec).
fn storable(name: &str) -> bool {
    git2::Reference::is_valid_name(name) && name.split('/').all(|p| p.len() <= MAX_NAME_PART)
}

/// The remote's heads and the tags named in `tags`, by full ref name, and the refs whose names
/// cannot be carried.
pub(super) fn advertised(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
    deadline: Instant,
    tags: &[String],
) -> Result<(Refs, Vec<Skipped>), SourceError> {
    let shown = crate::redact::url(url);
    let err = |action| super::super::git_err(&shown, action);
    let mut remote = repo.remote_anonymous(url).map_err(err("opening"))?;
    let (cb, refusal) = callbacks(url, credentials, deadline);
    let conn = remote
        .connect_auth(Direction::Fetch, Some(cb), None)
        .map_err(|e| err("listing refs")(refusal.explain(e)))?;
    let wanted_tags: HashSet<String> = tags.iter().map(|t| format!("refs/tags/{t}")).collect();
    let mut refs = Vec::new();
    let mut skipped = Vec::new();
    for head in conn.list().map_err(err("listing refs"))? {
        // git2 unwraps the name as UTF-8 (and gives no bytes); a pushed ref name may be any.
        let Ok(name) = quietly(|| head.name().to_string()) else {
            skipped.push(Skipped {
                name: "?".into(),
                why: "is not UTF-8",
            });
            continue;
        };
        if !name.starts_with("refs/heads/") && !wanted_tags.contains(&name) {
            continue;
        }
        if storable(&name) {
            refs.push((name, head.oid()));
        } else {
            skipped.push(Skipped {
                name: name
                    .trim_start_matches("refs/heads/")
                    .chars()
                    .take(80)
                    .collect(),
                why: TOO_LONG,
            });
        }
    }
    Ok((refs, skipped))
}

/// Make the mirror's heads (and the tags named in `tags`) what the remote advertised: vanished
/// ones deleted first (a new `a/b` cannot be written beside an old `a`), refs at commits the
/// mirror has set directly, the others fetched (depth `depth`).
pub(super) fn sync(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
    deadline: Instant,
    depth: Option<i32>,
    remote: &Advertised,
) -> Result<Fetched, SourceError> {
    let Advertised {
        refs: remote,
        tags,
        glob_ok,
    } = remote;
    let glob_ok = *glob_ok;
    let shown = crate::redact::url(url);
    let err = |action| super::super::git_err(&shown, action);
    let mut local = local_refs(repo, tags).map_err(err("reading refs"))?;
    let advertised: HashSet<&str> = remote.iter().map(|(n, _)| n.as_str()).collect();
    let mut moved = false;
    local.retain(|name, _| {
        if advertised.contains(name.as_str()) {
            return true;
        }
        if let Ok(mut r) = repo.find_reference(name) {
            moved |= r.delete().is_ok();
        }
        false
    });
    let mut specs = Vec::new();
    let mut set = Vec::new();
    for (name, oid) in remote {
        if local.get(name) == Some(oid) {
            continue;
        }
        if repo.find_commit(*oid).is_ok() || repo.find_tag(*oid).is_ok() {
            set.push((name, *oid));
        } else {
            specs.push(format!("+{name}:{name}"));
        }
    }
    // A glob would also bring the refs that were skipped as too long to store.
    if glob_ok && (specs.len() > EXACT_REFSPECS || local.is_empty() && !specs.is_empty()) {
        specs.retain(|s| !s.starts_with("+refs/heads/"));
        specs.push("+refs/heads/*:refs/heads/*".into());
    }
    let mut fetched = Fetched::default();
    if !specs.is_empty() {
        let want = Want {
            specs: &specs,
            depth,
        };
        fetched = fetch(repo, url, credentials, deadline, &want)?.1;
    }
    moved |= !specs.is_empty() || !set.is_empty();
    // A glob fetch copies refs whose names are not UTF-8; nothing downstream can carry them,
    // and they are reported from the advertisement. Exact refspecs never bring one.
    if specs.iter().any(|s| s.ends_with("/*")) {
        moved |= drop_unreadable_heads(repo).map_err(err("deleting refs"))?;
    }
    for (name, oid) in set {
        repo.reference(
            name,
            oid,
            true,
            "octostage: the remote moved it to a known commit",
        )
        .map_err(err("updating refs"))?;
    }
    if moved {
        // Refs written here are loose files; one packed file reads much faster.
        repo.refdb_compress().map_err(err("packing refs"))?;
    }
    Ok(fetched)
}

/// Delete the heads whose names are not UTF-8 (a glob fetch copies them); whether any was.
fn drop_unreadable_heads(repo: &Repository) -> Result<bool, git2::Error> {
    let mut dropped = false;
    for mut r in repo.references_glob("refs/heads/*")?.flatten() {
        if std::str::from_utf8(r.name_bytes()).is_err() {
            r.delete()?;
            dropped = true;
        }
    }
    Ok(dropped)
}

/// The mirror's heads and its tags named in `tags`, by name.
fn local_refs(repo: &Repository, tags: &[String]) -> Result<HashMap<String, Oid>, git2::Error> {
    let mut out = HashMap::new();
    for r in repo.references_glob("refs/heads/*")?.flatten() {
        if let (Ok(name), Some(oid)) = (std::str::from_utf8(r.name_bytes()), r.target()) {
            out.insert(name.to_string(), oid);
        }
    }
    for t in tags {
        let name = format!("refs/tags/{t}");
        if let Ok(oid) = repo.refname_to_id(&name) {
            out.insert(name, oid);
        }
    }
    Ok(out)
}

thread_local! {
    /// Set while [`quietly`] runs on this thread: its panic is expected and handled.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, turning a panic into an error without the panic message the default hook prints
/// (a hostile branch name must not fill the log with backtraces). Other panics print as ever.
fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r
}
