//! The files of a staging folder: names, requests, and octostage's temporary files.

use std::path::Path;

use tracing::warn;

use super::{MAX_STATUS_FILE, REQUESTS_FILE, STALE_TMP, STATUS_FILE, TMP_PREFIX};
use crate::plan::Requests;
use crate::render::{object_id, Object};

/// The requests file of a staging folder: none when missing; ignored, with a warning, when
/// unreadable (a hand edit gone wrong must not stop the staging's passes).
pub(super) fn read_requests(folder: &Path) -> Requests {
    let path = folder.join(REQUESTS_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= MAX_STATUS_FILE => {}
        Ok(_) => {
            warn!(file = %path.display(), "ignored: not a regular file of at most 1 MiB");
            return Requests::default();
        }
        Err(_) => return Requests::default(),
    }
    match std::fs::read_to_string(&path).map(|t| crate::yaml::from_str(&t)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            warn!(file = %path.display(), error = %e, "ignored: unreadable");
            Requests::default()
        }
        Err(_) => Requests::default(),
    }
}

/// Whether a folder holds nothing but octostage's temporary files (or nothing at all).
pub(super) fn only_tmp_files(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX) && n.ends_with(".tmp"))
        })
    })
}

/// A file name with no path in it.
pub(super) fn safe_file_name(f: &str) -> bool {
    !f.is_empty()
        && f != "."
        && f != ".."
        && !f.contains(['/', '\0'])
        && f != STATUS_FILE
        && f != REQUESTS_FILE
}

/// File name of an object: `deployment-web.yaml`.
pub(super) fn file_name(o: &Object) -> String {
    let id = object_id(o);
    let (kind, name) = id.split_once('/').unwrap_or(("object", &id));
    format!(
        "{}-{}.yaml",
        kind.to_ascii_lowercase(),
        name.replace(['/', '\0'], "_")
    )
}

/// Remove octostage's temporary files left by an interrupted write (older than a minute: a
/// younger one may be another octostage's write in progress).
pub(super) fn remove_tmp_files(folder: &Path) {
    if let Ok(entries) = std::fs::read_dir(folder) {
        for e in entries.flatten() {
            let tmp = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX) && n.ends_with(".tmp"));
            let stale = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if tmp && stale {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
