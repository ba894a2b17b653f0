//! What a load of the configuration read, so that a daemon can tell in a few file reads whether
//! loading again would give the same configuration, and skip the parse and validation (the
//! compiled globs and templates) when it would. Exact: the same reads are made again and their
//! answers compared by SHA-256, not by file times.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{config_text, salvage, Config, ConfigError, DiskFiles, Files, FilesError, LoadOptions};

/// The reads a load made, in order, and a digest of every answer and of the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSet {
    root: PathBuf,
    reads: Vec<Read>,
    digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Templates(String),
    HasDir(String),
}

impl ReadSet {
    /// Whether loading `root` with `opts` now would read exactly what this load read: the
    /// same `environments.yaml`, the same template files, the same directories.
    pub fn unchanged(&self, root: &Path, opts: &LoadOptions) -> bool {
        if root != self.root {
            return false;
        }
        let Ok(text) = config_text(root) else {
            return false;
        };
        let recorder = Recorder::new(root, &text, opts);
        for read in &self.reads {
            match read {
                Read::Templates(dir) => {
                    let _ = recorder.template_files(dir);
                }
                Read::HasDir(dir) => {
                    recorder.has_dir(dir);
                }
            }
        }
        recorder.finish().digest == self.digest
    }
}

/// The configuration at `root` for a pass: [`super::load`], but an environment whose own part
/// of `environments.yaml` is invalid is left out and named in [`Config::frozen`], the others
/// go on. With what it read when it loaded a configuration (a failed load is read again next
/// time: it is rare and its messages must stay current).
pub fn load_for_pass(
    root: &Path,
    opts: &LoadOptions,
) -> (Result<Config, ConfigError>, Option<ReadSet>) {
    let text = match config_text(root) {
        Ok(t) => t,
        Err(e) => return (Err(e), None),
    };
    let recorder = Recorder::new(root, &text, opts);
    let loaded = salvage::parse_salvaging(&text, root, &recorder, opts);
    let reads = loaded.is_ok().then(|| recorder.finish());
    (loaded, reads)
}

/// [`Files`] on the disk that feeds each question and its answer to a digest.
struct Recorder<'a> {
    disk: DiskFiles<'a>,
    seen: RefCell<(Vec<Read>, Sha256)>,
}

impl<'a> Recorder<'a> {
    fn new(root: &'a Path, text: &str, opts: &LoadOptions) -> Recorder<'a> {
        // Destructured, so that an option added later cannot be left out of the digest.
        let LoadOptions {
            commit,
            repository_overrides,
        } = opts;
        let mut h = Sha256::new();
        feed(&mut h, text.as_bytes());
        match commit {
            Some(c) => feed(&mut h, c.as_bytes()),
            None => feed(&mut h, b"no commit"),
        }
        count(&mut h, repository_overrides.len());
        for (env, url) in repository_overrides {
            feed(&mut h, env.as_bytes());
            feed(&mut h, url.as_bytes());
        }
        Recorder {
            disk: DiskFiles(root),
            seen: RefCell::new((Vec::new(), h)),
        }
    }

    fn finish(self) -> ReadSet {
        let (reads, h) = self.seen.into_inner();
        ReadSet {
            root: self.disk.0.to_path_buf(),
            reads,
            digest: h.finalize().into(),
        }
    }
}

/// Length first, so that two answers can never run together into the same bytes.
fn feed(h: &mut Sha256, bytes: &[u8]) {
    count(h, bytes.len());
    h.update(bytes);
}

fn count(h: &mut Sha256, n: usize) {
    h.update((n as u64).to_le_bytes());
}

impl Files for Recorder<'_> {
    fn template_files(&self, dir: &str) -> Result<Vec<(String, String)>, FilesError> {
        let answer = self.disk.template_files(dir);
        let (reads, h) = &mut *self.seen.borrow_mut();
        reads.push(Read::Templates(dir.to_string()));
        feed(h, b"templates");
        feed(h, dir.as_bytes());
        match &answer {
            Ok(files) => {
                feed(h, b"ok");
                count(h, files.len());
                for (path, text) in files {
                    feed(h, path.as_bytes());
                    feed(h, text.as_bytes());
                }
            }
            Err(e) => {
                feed(h, b"error");
                feed(h, e.to_string().as_bytes());
            }
        }
        answer
    }

    fn has_dir(&self, dir: &str) -> bool {
        let answer = self.disk.has_dir(dir);
        let (reads, h) = &mut *self.seen.borrow_mut();
        reads.push(Read::HasDir(dir.to_string()));
        feed(h, b"dir");
        feed(h, dir.as_bytes());
        feed(h, &[u8::from(answer)]);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("t")).unwrap();
        std::fs::write(
            d.path().join("environments.yaml"),
            "version: 1\nenvironments:\n  shop:\n    repository: /repo\n    templates: t\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("t/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn a_load_is_known_unchanged_until_any_file_it_read_changes() {
        let d = repo();
        let opts = LoadOptions::default();
        let (loaded, reads) = load_for_pass(d.path(), &opts);
        loaded.unwrap();
        let reads = reads.unwrap();
        assert!(reads.unchanged(d.path(), &opts));
        std::fs::write(d.path().join("README.md"), "not read by a load").unwrap();
        assert!(
            reads.unchanged(d.path(), &opts),
            "a file the load does not read"
        );
        // The same length, written at once: a change that file times can miss.
        std::fs::write(
            d.path().join("t/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        )
        .unwrap();
        assert!(!reads.unchanged(d.path(), &opts));
        let (_, reads) = load_for_pass(d.path(), &opts);
        let reads = reads.unwrap();
        std::fs::write(d.path().join("t/more.yaml"), "kind: Secret\n").unwrap();
        assert!(!reads.unchanged(d.path(), &opts), "a new template file");
        let (_, reads) = load_for_pass(d.path(), &opts);
        let reads = reads.unwrap();
        let other = LoadOptions {
            commit: Some("abc".into()),
            ..LoadOptions::default()
        };
        assert!(!reads.unchanged(d.path(), &other), "another commit");
        std::fs::write(d.path().join("environments.yaml"), "version: 1\n").unwrap();
        assert!(
            !reads.unchanged(d.path(), &opts),
            "another environments.yaml"
        );
    }

    #[test]
    fn a_failed_load_is_never_taken_as_unchanged() {
        let d = repo();
        std::fs::write(d.path().join("environments.yaml"), "version: [").unwrap();
        let (loaded, reads) = load_for_pass(d.path(), &LoadOptions::default());
        assert!(loaded.is_err());
        assert!(reads.is_none());
    }
}
