//! The `dir` target: one folder per staging with one YAML file per rendered object and a status
//! file. Useful without a cluster (review, GitOps hand-off to another tool, the demo), and the
//! simplest full implementation of the target contract.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{Change, ChangeKind, StagingStatus, Target, TargetError};
use crate::consts;
use crate::plan::{ObservedStaging, Planned, State};
use crate::render::{object_id, Object};

/// The status file in each staging folder; its presence marks the folder as octostage's.
pub const STATUS_FILE: &str = "octostage-status.yaml";

/// Stagings as folders under one directory.
pub struct DirTarget {
    root: PathBuf,
    writes: AtomicU64,
}

/// What the status file records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Status {
    #[serde(rename = "managed-by")]
    managed_by: String,
    #[serde(flatten)]
    staging: ObservedStaging,
    #[serde(default)]
    links: IndexMap<String, String>,
    #[serde(default)]
    objects: Vec<String>,
}

impl DirTarget {
    /// A target rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirTarget {
            root: root.into(),
            writes: AtomicU64::new(0),
        }
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> TargetError {
        TargetError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Write `bytes` to `path` unless it already holds them; true when written.
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
            std::fs::create_dir_all(dir).map_err(|e| Self::io(dir, e))?;
            // Write then rename, so a reader never sees half a manifest.
            let tmp = dir.join(format!(
                ".{}.tmp",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::write(&tmp, bytes).map_err(|e| Self::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| Self::io(path, e))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(kind))
    }

    /// The status files of every staging folder, sorted by staging name.
    fn statuses(&self) -> Result<Vec<Status>, TargetError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.root, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Self::io(&self.root, e))?;
            let status_path = entry.path().join(STATUS_FILE);
            let Ok(text) = std::fs::read_to_string(&status_path) else {
                continue;
            };
            let status: Status = serde_yaml::from_str(&text).map_err(|e| TargetError::Corrupt {
                what: status_path.display().to_string(),
                message: format!(
                    "{e}; fix or remove the file (octostage never deletes a folder it cannot read)"
                ),
            })?;
            if status.managed_by == consts::MANAGER {
                out.push(status);
            }
        }
        out.sort_by(|a, b| a.staging.name.cmp(&b.staging.name));
        Ok(out)
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// File name of an object: `deployment-web.yaml`.
fn file_name(o: &Object) -> String {
    let id = object_id(o);
    let (kind, name) = id.split_once('/').unwrap_or(("object", &id));
    format!(
        "{}-{}.yaml",
        kind.to_ascii_lowercase(),
        name.replace('/', "_")
    )
}

impl Target for DirTarget {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn observe(&self) -> Result<Vec<ObservedStaging>, TargetError> {
        Ok(self.statuses()?.into_iter().map(|s| s.staging).collect())
    }

    fn status(&self) -> Result<Vec<StagingStatus>, TargetError> {
        Ok(self
            .statuses()?
            .into_iter()
            .map(|s| StagingStatus {
                staging: s.staging,
                created: None,
                links: s.links,
                deleting: None,
            })
            .collect())
    }

    fn apply(
        &self,
        staging: &Planned,
        objects: &[Object],
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError> {
        let folder = self.folder(&staging.name);
        let mut changes = Vec::new();
        let mut wanted = BTreeSet::new();
        let mut files = BTreeMap::new();
        for o in objects {
            let f = file_name(o);
            let yaml = serde_yaml::to_string(o).map_err(|e| TargetError::Corrupt {
                what: object_id(o),
                message: e.to_string(),
            })?;
            files.insert(f.clone(), (object_id(o), yaml));
            wanted.insert(f);
        }
        for (f, (id, yaml)) in &files {
            if let Some(kind) = self.write_if_changed(&folder.join(f), yaml.as_bytes(), dry_run)? {
                changes.push(Change {
                    kind,
                    object: id.clone(),
                });
            }
        }
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".yaml") && name != STATUS_FILE && !wanted.contains(&name) {
                    if !dry_run {
                        std::fs::remove_file(entry.path())
                            .map_err(|e| Self::io(&entry.path(), e))?;
                        self.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    changes.push(Change {
                        kind: ChangeKind::Prune,
                        object: name,
                    });
                }
            }
        }
        let ctx = staging.context.as_ref();
        let status = Status {
            managed_by: consts::MANAGER.into(),
            staging: ObservedStaging {
                name: staging.name.clone(),
                environment: staging.environment.clone(),
                branch: staging.branch.clone(),
                static_name: staging.static_name.clone(),
                namespace: staging.namespace.clone().unwrap_or_default(),
                commit: staging
                    .commit
                    .as_ref()
                    .map(|c| c.sha.clone())
                    .unwrap_or_default(),
                first_seen: staging.first_seen,
                expires_at: staging.expires_at,
                state: staging.state.unwrap_or(State::Active),
            },
            links: ctx.map(|c| c.links.clone()).unwrap_or_default(),
            objects: files.values().map(|(id, _)| id.clone()).collect(),
        };
        let text = format!(
            "# Written by octostage; do not edit.\n{}",
            serde_yaml::to_string(&status).expect("status serializes")
        );
        self.write_if_changed(&folder.join(STATUS_FILE), text.as_bytes(), dry_run)?;
        Ok(changes)
    }

    fn delete(&self, staging: &Planned, dry_run: bool) -> Result<(), TargetError> {
        let folder = self.folder(&staging.name);
        if !folder.join(STATUS_FILE).is_file() {
            // Not ours (or already gone): never remove a folder octostage did not write.
            return Ok(());
        }
        if !dry_run {
            std::fs::remove_dir_all(&folder).map_err(|e| Self::io(&folder, e))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}
