//! Targets: where stagings land. A target reports what it holds ([`ObservedStaging`]) and applies
//! one staging's objects or deletes a staging, writing only what differs.

pub mod cluster;
pub mod dir;

use std::fmt;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

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

/// A staging as `octostage status` shows it.
#[derive(Debug, Clone)]
pub struct StagingStatus {
    /// What the target records.
    pub staging: ObservedStaging,
    /// When it was created, when the target knows.
    pub created: Option<DateTime<Utc>>,
    /// Its links.
    pub links: IndexMap<String, String>,
    /// The recorded reason, when it is being deleted.
    pub deleting: Option<String>,
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
    /// Requests sent to the target so far (reads and writes); 0 where the notion does not apply.
    fn requests(&self) -> u64 {
        0
    }
    /// The stagings with what `octostage status` shows.
    fn status(&self) -> Result<Vec<StagingStatus>, TargetError> {
        Ok(self
            .observe()?
            .into_iter()
            .map(|staging| StagingStatus {
                staging,
                created: None,
                links: IndexMap::new(),
                deleting: None,
            })
            .collect())
    }
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

/// Open a target from its specification: `kube` (kubeconfig inference), `kube:PATH` (a
/// kubeconfig file), `dir:PATH`, `none`, or `auto`: `kube` when a kubeconfig or in-cluster
/// configuration is found, else `none`.
///
/// `instance` names this octostage among others sharing a cluster: a kube target sees only the
/// stagings of its own instance.
pub fn open(spec: &str, instance: &str) -> Result<Box<dyn Target>, TargetError> {
    if spec == "auto" {
        return open(if kube_configured() { "kube" } else { "none" }, instance);
    }
    if spec == "kube" || spec.starts_with("kube:") {
        crate::naming::check_label(instance).map_err(|e| TargetError::Spec {
            spec: instance.into(),
            message: format!("instance name {e}"),
        })?;
        let kubeconfig = spec.strip_prefix("kube:").map(std::path::Path::new);
        return Ok(Box::new(cluster::KubeTarget::connect(
            kubeconfig, instance,
        )?));
    }
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
        message: "known targets are kube, kube:KUBECONFIG, dir:PATH, none and auto".into(),
    })
}

/// Whether a cluster is configured: `KUBECONFIG`, `~/.kube/config` or a service account.
pub fn kube_configured() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME")
            .is_some_and(|h| std::path::Path::new(&h).join(".kube/config").is_file())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}
