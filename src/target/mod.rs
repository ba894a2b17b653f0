//! Targets: where stagings land. A target reports what it holds ([`ObservedStaging`]) and applies
//! one staging's objects or deletes a staging, writing only what differs.

pub mod dir;

use std::fmt;

use crate::plan::{ObservedStaging, Planned};
use crate::render::Object;

/// Why a target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target specification is wrong.
    #[error("invalid target {spec:?}: {message}")]
    Spec {
        /// What was given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// What happened.
        message: String,
    },
    /// What the target holds is unreadable.
    #[error("{what}: {message}")]
    Corrupt {
        /// The staging or object.
        what: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// One change a target made or would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What kind of change.
    pub kind: ChangeKind,
    /// `Kind/name` or a file.
    pub object: String,
}

/// Kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Written anew.
    Create,
    /// Written over something different.
    Update,
    /// Removed because it is no longer rendered.
    Prune,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Prune => "prune",
        };
        write!(f, "{k} {}", self.object)
    }
}

/// A place stagings are converged into.
pub trait Target: Send + Sync {
    /// A short description for logs (`dir:/srv/stagings`).
    fn describe(&self) -> String;
    /// The stagings the target holds.
    fn observe(&self) -> Result<Vec<ObservedStaging>, TargetError>;
    /// Make `staging` hold exactly `objects` (and its recorded state); `dry_run` only reports.
    fn apply(
        &self,
        staging: &Planned,
        objects: &[Object],
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError>;
    /// Remove `staging` and everything in it; `dry_run` only reports.
    fn delete(&self, staging: &Planned, dry_run: bool) -> Result<(), TargetError>;
    /// Writes performed since the target was made (files, requests), for idempotence checks.
    fn writes(&self) -> u64;
}

/// A target that holds nothing and changes nothing: plans against it show what a fresh target
/// would get.
pub struct Empty;

impl Target for Empty {
    fn describe(&self) -> String {
        "none (an empty target)".into()
    }
    fn observe(&self) -> Result<Vec<ObservedStaging>, TargetError> {
        Ok(Vec::new())
    }
    fn apply(&self, _: &Planned, objects: &[Object], _: bool) -> Result<Vec<Change>, TargetError> {
        Ok(objects
            .iter()
            .map(|o| Change {
                kind: ChangeKind::Create,
                object: crate::render::object_id(o),
            })
            .collect())
    }
    fn delete(&self, _: &Planned, _: bool) -> Result<(), TargetError> {
        Ok(())
    }
    fn writes(&self) -> u64 {
        0
    }
}

/// Open a target from its specification: `dir:PATH` or `none`.
pub fn open(spec: &str) -> Result<Box<dyn Target>, TargetError> {
    if let Some(path) = spec.strip_prefix("dir:") {
        if path.is_empty() {
            return Err(TargetError::Spec {
                spec: spec.into(),
                message: "give a directory: dir:PATH".into(),
            });
        }
        return Ok(Box::new(dir::DirTarget::new(path)));
    }
    if spec == "none" {
        return Ok(Box::new(Empty));
    }
    Err(TargetError::Spec {
        spec: spec.into(),
        message: "known targets are dir:PATH and none".into(),
    })
}
