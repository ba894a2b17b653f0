//! The config repository's template files, read from a checkout or held in memory.

use std::path::{Path, PathBuf};

/// Why the template files under a directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The directory is not in the repository.
    #[error("directory {dir:?} does not exist in the config repository")]
    NoDirectory {
        /// The directory, relative to the repository root.
        dir: String,
    },
    /// Reading failed.
    #[error("cannot read {rel:?}: {source}")]
    Read {
        /// The path, relative to the repository root.
        rel: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A symbolic link leads out of the repository.
    #[error("{rel:?} is a symbolic link to {}, outside the config repository; octostage reads only files inside it", real.display())]
    Outside {
        /// The link, relative to the repository root.
        rel: String,
        /// Where it leads.
        real: PathBuf,
    },
    /// A FIFO or a device, which would block the read forever.
    #[error("{rel:?} is not a regular file")]
    NotRegular {
        /// The path, relative to the repository root.
        rel: String,
    },
}

/// Read access to the config repository's files, so validation can load templates without
/// touching the disk in tests.
pub trait Files {
    /// Every template file (`*.yaml`, `*.yml`, `*.j2`) under `dir`, recursively, as
    /// (path relative to the repository root, contents), sorted by path.
    fn template_files(&self, dir: &str) -> Result<Vec<(String, String)>, FilesError>;
    /// Whether `dir` is a directory inside the repository.
    fn has_dir(&self, dir: &str) -> bool;
}

/// [`Files`] on a directory.
pub struct DiskFiles<'a>(pub &'a Path);

impl Files for DiskFiles<'_> {
    fn has_dir(&self, dir: &str) -> bool {
        let base = self.0.join(dir);
        match (self.0.canonicalize(), base.is_dir()) {
            (Ok(root), true) => inside(&root, &base, dir).is_ok(),
            _ => false,
        }
    }

    fn template_files(&self, dir: &str) -> Result<Vec<(String, String)>, FilesError> {
        let mut out = Vec::new();
        let base = self.0.join(dir);
        if !base.is_dir() {
            return Err(FilesError::NoDirectory { dir: dir.into() });
        }
        let root = self.0.canonicalize().map_err(|source| FilesError::Read {
            rel: ".".into(),
            source,
        })?;
        inside(&root, &base, dir)?;
        collect(&root, &base, dir, &mut out)?;
        out.sort();
        Ok(out)
    }
}

/// Refuse `path` (shown as `rel`) when it resolves outside `root`: a symbolic link in the
/// config repository must not make octostage read files the repository does not hold.
fn inside(root: &Path, path: &Path, rel: &str) -> Result<(), FilesError> {
    let real = path.canonicalize().map_err(|source| FilesError::Read {
        rel: rel.into(),
        source,
    })?;
    if real.starts_with(root) {
        Ok(())
    } else {
        Err(FilesError::Outside {
            rel: rel.into(),
            real,
        })
    }
}

/// [`Files`] held in memory, by path relative to the repository root: for configurations read
/// from somewhere other than a checkout (a git tree, a test fixture, a benchmark).
#[derive(Debug, Clone, Default)]
pub struct MemFiles(pub std::collections::BTreeMap<String, String>);

impl MemFiles {
    /// Files from (path, contents) pairs.
    pub fn new<P: Into<String>, C: Into<String>>(files: impl IntoIterator<Item = (P, C)>) -> Self {
        MemFiles(
            files
                .into_iter()
                .map(|(p, c)| (p.into(), c.into()))
                .collect(),
        )
    }
}

impl Files for MemFiles {
    fn has_dir(&self, dir: &str) -> bool {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.0.keys().any(|p| p.starts_with(&prefix))
    }

    fn template_files(&self, dir: &str) -> Result<Vec<(String, String)>, FilesError> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        if !self.0.keys().any(|p| p.starts_with(&prefix)) {
            return Err(FilesError::NoDirectory { dir: dir.into() });
        }
        Ok(self
            .0
            .iter()
            .filter(|(p, _)| {
                p.starts_with(&prefix) && [".yaml", ".yml", ".j2"].iter().any(|e| p.ends_with(e))
            })
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect())
    }
}

fn collect(
    root: &Path,
    path: &Path,
    rel: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), FilesError> {
    let io = |source| FilesError::Read {
        rel: rel.into(),
        source,
    };
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{rel}/{name}");
        let ty = entry.file_type().map_err(io)?;
        let wanted = [".yaml", ".yml", ".j2"].iter().any(|e| name.ends_with(e));
        let path = entry.path();
        if wanted && !path.is_dir() && !path.is_file() {
            // A FIFO or device would block the read forever.
            return Err(FilesError::NotRegular { rel });
        }
        if ty.is_symlink() && (wanted || entry.path().is_dir()) {
            inside(root, &entry.path(), &rel)?;
        }
        if entry.path().is_dir() {
            if !ty.is_symlink() {
                collect(root, &entry.path(), &rel, out)?;
            }
        } else if wanted {
            let text =
                std::fs::read_to_string(entry.path()).map_err(|source| FilesError::Read {
                    rel: rel.clone(),
                    source,
                })?;
            out.push((rel, crate::text::strip_bom(&text).to_string()));
        }
    }
    Ok(())
}
