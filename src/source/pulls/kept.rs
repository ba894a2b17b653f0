//! Pages kept between polls in the cache directory, for conditional requests. The cache is
//! octostage's, but a file there is read as untrusted all the same: only a regular file (no
//! link, no FIFO), at most [`MAX_KEPT`] bytes, with an ETag that can be sent as a header; any
//! other is ignored (the next poll asks in full). Written through a new temporary file renamed
//! into place, never through a name someone may have planted.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PullRequest;

/// Largest kept page read.
pub const MAX_KEPT: u64 = 32 << 20;

/// A page as kept between polls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Kept {
    /// Its ETag.
    pub etag: Option<String>,
    /// Its pull requests.
    pub pulls: Vec<PullRequest>,
}

/// Where the page at `url` is kept.
pub fn path(cache: &Path, url: &str) -> PathBuf {
    cache
        .join("pulls")
        .join(format!("{}.json", crate::naming::short_hash(url, 24)))
}

/// Whether `etag` can be sent back as `If-None-Match`: visible ASCII, at most 256 bytes.
pub fn valid_etag(etag: &str) -> bool {
    !etag.is_empty() && etag.len() <= 256 && etag.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The page kept at `file`, if it is one to believe.
pub fn read(file: &Path) -> Option<Kept> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(file)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_KEPT {
        return None;
    }
    let mut buf = Vec::new();
    f.take(MAX_KEPT).read_to_end(&mut buf).ok()?;
    let k: Kept = serde_json::from_slice(&buf).ok()?;
    k.etag.as_deref().map_or(true, valid_etag).then_some(k)
}

/// Keep `k` at `file`; a failure only costs a full answer next time.
pub fn write(file: &Path, k: &Kept) {
    let Some(dir) = file.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    let Ok(mut tmp) = tempfile::Builder::new().prefix(".kept-").tempfile_in(dir) else {
        return;
    };
    use std::io::Write;
    if tmp
        .write_all(&serde_json::to_vec(k).unwrap_or_default())
        .is_ok()
    {
        let _ = tmp.persist(file);
    }
}

/// Forget the page kept at `file`.
pub fn forget(file: &Path) {
    let _ = std::fs::remove_file(file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_file_with_a_sendable_etag_is_believed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k.json");
        write(
            &f,
            &Kept {
                etag: Some("\"abc\"".into()),
                pulls: Vec::new(),
            },
        );
        assert!(read(&f).is_some());
        std::fs::write(&f, r#"{"etag": "a\r\nX-Evil: 1", "pulls": []}"#).unwrap();
        assert!(read(&f).is_none());
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(read(&link).is_none());
        let fifo = d.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(
            read(&fifo).is_none(),
            "a FIFO is neither read nor waited on"
        );
        // A name planted where the temporary file would go is not written through.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "mine").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("k.tmp")).unwrap();
        write(&f, &Kept::default());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine");
    }
}
