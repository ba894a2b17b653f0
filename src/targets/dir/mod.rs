//! The `dir` target: one folder per staging with one YAML file per rendered object and a status
//! file. Useful without a cluster (review, GitOps hand-off to another tool, the demo), and the
//! simplest full implementation of the target contract.
//!
//! Crash safety (against a kill at any instant): the status file is written first and last. The
//! first write lists every file the staging may hold during the update (old and new), so the
//! status file always names a superset of what octostage put in the folder; a deletion removes
//! exactly those files and the status file last. A folder without a status file is never
//! octostage's to write into or delete, unless it holds nothing but octostage's own temporary
//! files. Files octostage did not write are never removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Change, ChangeKind, Clash, StagingStatus, Status, Target, TargetError, Unwritable};
use crate::consts;
use crate::plan::{Foreign, Observed, Planned, Requests, StagingRecord};
use crate::render::{object_id, Object};

mod files;

use files::{file_name, only_tmp_files, read_requests, remove_tmp_files, safe_file_name};

/// The status file in each staging folder; its presence marks the folder as octostage's.
pub const STATUS_FILE: &str = "octostage-status.yaml";
/// What people asked of the staging (`octostage sleep | wake | extend`); passes only read it.
pub const REQUESTS_FILE: &str = "octostage-requests.yaml";
/// Temporary files octostage writes before renaming them into place start with this.
const TMP_PREFIX: &str = ".octostage-";
/// A status file larger than this is not one octostage wrote.
const MAX_STATUS_FILE: u64 = 1 << 20;
/// A temporary file older than this is a leftover of a killed write, not another octostage's
/// write in progress.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(60);

/// Stagings as folders under one directory.
pub struct DirTarget {
    root: PathBuf,
    writes: AtomicU64,
}

/// What the status file records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    #[serde(rename = "managed-by")]
    managed_by: String,
    #[serde(flatten)]
    staging: StagingRecord,
    /// Files of the folder octostage wrote (object files), by file name.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

/// What one folder under the root is.
enum Folder {
    Staging(Box<Record>),
    /// Not octostage's (or unreadable): why.
    Foreign(Foreign),
    /// Holds nothing but octostage's temporary files: an interrupted first write.
    Interrupted,
}

fn io(path: &Path, e: impl Into<std::io::Error>) -> TargetError {
    TargetError::Io {
        path: path.display().to_string(),
        cause: crate::targets::Cause::io(&e.into()),
    }
}

impl DirTarget {
    /// A target rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirTarget {
            root: root.into(),
            writes: AtomicU64::new(0),
        }
    }

    /// The folder of a staging; the name is checked before any file operation, so a status
    /// file or plan can never point outside the root.
    fn folder(&self, name: &str) -> Result<PathBuf, TargetError> {
        crate::naming::check_label(name).map_err(|e| TargetError::Corrupt {
            what: format!("staging name {name:?}"),
            why: Unwritable::Name(e),
        })?;
        Ok(self.root.join(name))
    }

    /// Write `bytes` to `path` unless it already holds them, through a temporary file and a
    /// rename so no reader sees half a file. Whether it was written, and how.
    fn write_if_changed(
        &self,
        path: &Path,
        bytes: &[u8],
        dry_run: bool,
    ) -> Result<Option<ChangeKind>, TargetError> {
        let kind = match std::fs::read(path) {
            Ok(old) if old == bytes => return Ok(None),
            Ok(_) => ChangeKind::Update,
            Err(_) => ChangeKind::Create,
        };
        if !dry_run {
            let dir = path.parent().expect("files live in a staging folder");
            // Per process: two octostages writing one target never share a temporary file.
            let tmp = dir.join(format!(
                "{TMP_PREFIX}{}-{}.tmp",
                std::process::id(),
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(kind))
    }

    fn write_record(
        &self,
        folder: &Path,
        record: &Record,
        dry_run: bool,
    ) -> Result<(), TargetError> {
        let text = format!(
            "# Written by octostage; do not edit.\n{}",
            crate::yaml::to_string(record).map_err(|e| TargetError::Corrupt {
                what: STATUS_FILE.into(),
                why: e.into(),
            })?
        );
        self.write_if_changed(&folder.join(STATUS_FILE), text.as_bytes(), dry_run)?;
        Ok(())
    }

    /// What the folder `name` under the root is.
    fn classify(&self, name: &str, path: &Path) -> Folder {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Folder::Foreign(Foreign::SymbolicLink);
        }
        let status_path = path.join(STATUS_FILE);
        match std::fs::symlink_metadata(&status_path) {
            Ok(m) if !m.is_file() => {
                return Folder::Foreign(Foreign::Unreadable(format!(
                    "{STATUS_FILE} is not a regular file"
                )))
            }
            Ok(m) if m.len() > MAX_STATUS_FILE => {
                return Folder::Foreign(Foreign::Unreadable(format!(
                    "{STATUS_FILE} is larger than {MAX_STATUS_FILE} bytes"
                )))
            }
            _ => {}
        }
        let text = match std::fs::read_to_string(&status_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if only_tmp_files(path) {
                    Folder::Interrupted
                } else {
                    Folder::Foreign(Foreign::NotCreated)
                };
            }
            Err(e) => return Folder::Foreign(Foreign::Unreadable(e.to_string())),
        };
        let record: Record = match crate::yaml::from_str(&text) {
            Ok(r) => r,
            Err(e) => return Folder::Foreign(Foreign::Unreadable(format!("{STATUS_FILE}: {e}"))),
        };
        if record.managed_by != consts::MANAGER {
            return Folder::Foreign(Foreign::NotCreated);
        }
        if record.staging.name != name {
            return Folder::Foreign(Foreign::Unreadable(format!(
                "{STATUS_FILE} names staging {:?}, not the folder's name",
                record.staging.name
            )));
        }
        if let Some(bad) = record.files.keys().find(|f| !safe_file_name(f)) {
            return Folder::Foreign(Foreign::Unreadable(format!(
                "{STATUS_FILE} lists the file {bad:?}, which is not a plain file name"
            )));
        }
        let mut record = record;
        record.staging.requests = read_requests(path);
        Folder::Staging(Box::new(record))
    }

    /// Record `requests` for staging `name`, if it is this target's and holds `expected`.
    pub fn write_requests(
        &self,
        name: &str,
        expected: &Requests,
        requests: &Requests,
    ) -> Result<bool, TargetError> {
        let folder = self.folder(name)?;
        // Commands on one target take turns: the lock makes the comparison and the write one.
        let lock_path = self.root.join(format!("{TMP_PREFIX}requests.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io(&lock_path, e))
            .and_then(|_held| self.swap_requests(name, &folder, expected, requests))
    }

    fn swap_requests(
        &self,
        name: &str,
        folder: &Path,
        expected: &Requests,
        requests: &Requests,
    ) -> Result<bool, TargetError> {
        match self.classify(name, folder) {
            Folder::Staging(_) => {}
            Folder::Foreign(f) => {
                return Err(TargetError::Conflict {
                    what: format!("folder {}", folder.display()),
                    whose: Clash::Foreign(f),
                })
            }
            Folder::Interrupted => {
                return Err(TargetError::Io {
                    path: folder.display().to_string(),
                    cause: crate::targets::Cause::other(
                        "holds only an interrupted first write; try again after the next pass",
                    ),
                })
            }
        }
        if read_requests(folder) != *expected {
            return Ok(false);
        }
        let text = crate::yaml::to_string(requests).map_err(|e| TargetError::Corrupt {
            what: REQUESTS_FILE.into(),
            why: e.into(),
        })?;
        self.write_if_changed(&folder.join(REQUESTS_FILE), text.as_bytes(), false)?;
        Ok(true)
    }

    /// Every folder under the root, by name.
    fn folders(&self) -> Result<BTreeMap<String, Folder>, TargetError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io(&self.root, e)),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.root, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // Only a DNS label can be a staging's folder; anything else is not in the way.
            let ty = entry.file_type();
            if crate::naming::check_label(&name).is_err()
                || !ty.as_ref().is_ok_and(|t| t.is_dir() || t.is_symlink())
            {
                continue;
            }
            let folder = self.classify(&name, &entry.path());
            out.insert(name, folder);
        }
        Ok(out)
    }

    fn record(
        staging: &Planned,
        usage: crate::plan::Usage,
        files: BTreeMap<String, String>,
    ) -> Record {
        Record {
            managed_by: consts::MANAGER.into(),
            staging: StagingRecord::applied(staging, usage),
            files,
        }
    }
}

/// Each object's file name, with its id and text; an object that would overwrite another's
/// file, or octostage's own, is refused.
fn files_of(objects: &[Object]) -> Result<BTreeMap<String, (String, String)>, TargetError> {
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    for o in objects {
        let yaml = crate::yaml::to_string(o).map_err(|e| TargetError::Corrupt {
            what: object_id(o),
            why: e.into(),
        })?;
        let f = file_name(o);
        if f == STATUS_FILE || f == REQUESTS_FILE || f.starts_with(TMP_PREFIX) {
            return Err(TargetError::Corrupt {
                what: object_id(o),
                why: Unwritable::OwnFile { file: f },
            });
        }
        if let Some((other, _)) = files.get(&f) {
            return Err(TargetError::Corrupt {
                what: object_id(o),
                why: Unwritable::SameFile {
                    other: other.clone(),
                    file: f,
                },
            });
        }
        files.insert(f, (object_id(o), yaml));
    }
    Ok(files)
}

#[async_trait]
impl Target for DirTarget {
    async fn current(&self, staging: &Planned, object: &Object) -> Option<Object> {
        let file = self.folder(&staging.name).ok()?.join(file_name(object));
        let text = std::fs::read_to_string(file).ok()?;
        match crate::yaml::document(&text) {
            Ok(serde_json::Value::Object(o)) => Some(o),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    async fn observe(&self) -> Result<Observed, TargetError> {
        let mut out = Observed::default();
        for (name, folder) in self.folders()? {
            match folder {
                Folder::Staging(r) => out.stagings.push(std::sync::Arc::new(r.staging)),
                Folder::Foreign(f) => {
                    out.foreign_names.insert(name, f);
                }
                Folder::Interrupted => {}
            }
        }
        Ok(out)
    }

    async fn status(&self) -> Result<Status, TargetError> {
        let mut out = Status::default();
        for (name, folder) in self.folders()? {
            match folder {
                Folder::Staging(r) => out.stagings.push(StagingStatus {
                    staging: r.staging,
                    created: None,
                    deleting: None,
                }),
                Folder::Foreign(f) => out.foreign.push((name, f.to_string())),
                Folder::Interrupted => out.foreign.push((
                    name,
                    "holds only temporary files of an interrupted write; the next pass cleans it up".into(),
                )),
            }
        }
        Ok(out)
    }

    async fn apply(
        &self,
        staging: &Planned,
        rendered: &super::Rendered<'_>,
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError> {
        let folder = self.folder(&staging.name)?;
        let old = match self.classify(&staging.name, &folder) {
            Folder::Staging(r) => r.files,
            Folder::Interrupted => BTreeMap::new(),
            Folder::Foreign(f) if std::fs::symlink_metadata(&folder).is_ok() => {
                return Err(TargetError::Conflict {
                    what: format!("folder {}", folder.display()),
                    whose: Clash::Foreign(f),
                })
            }
            Folder::Foreign(_) => BTreeMap::new(),
        };
        let files = files_of(rendered.objects)?;
        let new: BTreeMap<String, String> = files
            .iter()
            .map(|(f, (id, _))| (f.clone(), id.clone()))
            .collect();
        if !dry_run {
            std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
            remove_tmp_files(&folder);
            // First: the record names every file this update may leave behind if it is killed.
            let mut intent = old.clone();
            intent.extend(new.clone());
            if intent != old || !folder.join(STATUS_FILE).exists() {
                self.write_record(
                    &folder,
                    &Self::record(staging, rendered.usage, intent),
                    false,
                )?;
            }
        }
        let mut changes = Vec::new();
        for (f, (id, yaml)) in &files {
            if let Some(kind) = self.write_if_changed(&folder.join(f), yaml.as_bytes(), dry_run)? {
                changes.push(Change::new(kind, id.clone()));
            }
        }
        for (f, id) in old.iter().filter(|(f, _)| !new.contains_key(*f)) {
            let path = folder.join(f);
            if !dry_run {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        self.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path, e)),
                }
            }
            changes.push(Change::new(ChangeKind::Prune, id.clone()));
        }
        // Last: the record as it now is.
        self.write_record(
            &folder,
            &Self::record(staging, rendered.usage, new),
            dry_run,
        )?;
        Ok(changes)
    }

    async fn delete(&self, staging: &Planned, dry_run: bool) -> Result<(), TargetError> {
        let folder = self.folder(&staging.name)?;
        let record = match self.classify(&staging.name, &folder) {
            Folder::Staging(r) => r,
            // Not ours, unreadable or already gone: never removed.
            _ => return Ok(()),
        };
        if dry_run {
            return Ok(());
        }
        for f in record.files.keys() {
            let path = folder.join(f);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        remove_tmp_files(&folder);
        let requests = folder.join(REQUESTS_FILE);
        match std::fs::remove_file(&requests) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&requests, e)),
        }
        // The status file goes last: until then a later pass still sees the staging and
        // finishes the deletion.
        let status = folder.join(STATUS_FILE);
        std::fs::remove_file(&status).map_err(|e| io(&status, e))?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = std::fs::remove_dir(&folder) {
            let left: BTreeSet<String> = std::fs::read_dir(&folder)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            warn!(folder = %folder.display(), ?left, "staging deleted, but its folder holds files octostage did not write and is kept: {e}");
        }
        Ok(())
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    async fn request(
        &self,
        name: &str,
        expected: &Requests,
        requests: &Requests,
    ) -> Result<bool, TargetError> {
        self.write_requests(name, expected, requests)
    }
}
