//! Targets: where stagings land. A target reports what it holds ([`Observed`]: this instance's
//! stagings, and what stands where a staging would go but is not octostage's) and applies one
//! staging's objects or deletes a staging, writing only what differs and only what it created.

mod cause;
pub mod dir;
pub mod gate;
pub mod kube;
pub mod lease;
mod refusal;
mod spec;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::plan::{Observed, Planned, Requests, StagingRecord};
use crate::render::Object;
pub use cause::{Cause, CauseKind};
pub use gate::{is_lapsed, Lapsed, WriteGate};
pub use lease::{LeaseRecord, Leases, StagingNotice};
pub use refusal::{Clash, Unusable, Unwritable};
pub use spec::{SpecError, TargetSpec};

/// Why a target operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The target specification is wrong.
    #[error("invalid target {spec:?}: {why}")]
    Spec {
        /// What was given.
        spec: String,
        /// What is wrong.
        #[source]
        why: Unusable,
    },
    /// A file or API operation failed.
    #[error("{path}: {cause}")]
    Io {
        /// The path or object.
        path: String,
        /// What happened, typed, its text redacted.
        #[source]
        cause: Cause,
    },
    /// What the target holds is unreadable.
    #[error("{what}: {why}")]
    Corrupt {
        /// The staging or object.
        what: String,
        /// What is wrong and what to do.
        #[source]
        why: Unwritable,
    },
    /// Something octostage did not create stands where it would write: reported, never
    /// adopted or overwritten.
    #[error("{what} {whose}")]
    Conflict {
        /// The namespace, folder or object.
        what: String,
        /// Whose it is (the text says what to do).
        whose: Clash,
    },
}

impl TargetError {
    /// A stable name of the kind of error, for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetError::Spec { .. } => "spec",
            TargetError::Io { .. } => "io",
            TargetError::Corrupt { .. } => "corrupt",
            TargetError::Conflict { .. } => "conflict",
        }
    }
}

/// One change a target made or would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What kind of change.
    pub kind: ChangeKind,
    /// `Kind/name` or a file.
    pub object: String,
    /// Why, when it is not plain from the kind (drift: which field, changed by whom).
    pub detail: Option<String>,
}

impl Change {
    /// A change without detail.
    pub fn new(kind: ChangeKind, object: impl Into<String>) -> Change {
        Change {
            kind,
            object: object.into(),
            detail: None,
        }
    }
}

/// Kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Written anew.
    Create,
    /// Written over something different.
    Update,
    /// Written again because someone changed fields octostage applies.
    Restore,
    /// Removed because it is no longer rendered.
    Prune,
    /// Not applied yet: the wave before it is not healthy (the detail says what it waits for).
    Wait,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Restore => "restore",
            ChangeKind::Prune => "prune",
            ChangeKind::Wait => "wait for",
        };
        write!(f, "{k} {}", self.object)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// A staging as `octostage status` shows it.
#[derive(Debug, Clone)]
pub struct StagingStatus {
    /// What the target records.
    pub staging: StagingRecord,
    /// When it was created, when the target knows.
    pub created: Option<DateTime<Utc>>,
    /// The recorded reason, when it is being deleted.
    pub deleting: Option<String>,
}

/// What `octostage status` shows: the stagings, and what stands in the target that octostage
/// will not touch (left behind by an interrupted write, or someone else's).
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// This instance's stagings.
    pub stagings: Vec<StagingStatus>,
    /// Places octostage leaves alone, with why.
    pub foreign: Vec<(String, String)>,
}

/// One object of a staging as the target last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectHealth {
    /// `Deployment/web`.
    pub object: String,
    /// `ready`, what is missing (`1 of 2 ready`), `failed: ...`, or `-` when it has no
    /// readiness of its own.
    pub health: String,
}

/// What changed in the watched objects since the controller last took it: the stagings whose
/// objects or requests changed (by someone else), those whose workloads' readiness changed, or
/// everything (after a watch listed again and may have missed events).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Every staging must be looked at.
    pub all: bool,
    /// These stagings must be looked at.
    pub stagings: std::collections::BTreeSet<String>,
    /// The workloads of these changed their readiness: they are looked at when what the target
    /// shows differs from what the last pass saw (a readiness that went and came back between
    /// two passes is no change).
    pub health: std::collections::BTreeSet<String>,
}

/// What a staging's render gave, to apply.
#[derive(Debug, Clone, Copy)]
pub struct Rendered<'a> {
    /// The objects, in the order they are applied.
    pub objects: &'a [Object],
    /// A digest of what they were rendered from (see [`Target::holds`]), when it can be made.
    pub fingerprint: Option<&'a str>,
    /// What its workloads request when awake, as rendered: recorded for the cost report.
    pub usage: crate::plan::Usage,
}

/// A place stagings are converged into.
#[async_trait]
pub trait Target: Send + Sync {
    /// A short description for logs (`dir:/srv/stagings`).
    fn describe(&self) -> String;
    /// The stagings the target holds, and what is in the way of others.
    async fn observe(&self) -> Result<Observed, TargetError>;
    /// Keep a live view of what the target holds from now on, so that later passes need not
    /// read it again (for a long-running `run`). Nothing where reading is cheap.
    fn watch(&self) {}
    /// Stop watching, before the process goes: a watch that meets its connection closing on
    /// the way out says nothing.
    fn unwatch(&self) {}
    /// Told when what the target watches changed in a way a pass acts on (a workload's
    /// readiness, a request on a staging): the controller then asks for a pass.
    fn changes(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// Which stagings changed since the last call, as far as the target follows them; `None`
    /// when it does not (then every pass looks at every staging).
    fn take_dirty(&self) -> Option<Dirty> {
        None
    }
    /// Make `staging` hold exactly what was rendered for it (and its recorded state, with the
    /// rendered usage); `dry_run` only reports.
    async fn apply(
        &self,
        staging: &Planned,
        rendered: &Rendered<'_>,
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError>;
    /// Whether `staging` holds, as of the last observation, exactly what this process applied
    /// from render inputs `fingerprint`: then rendering it again would change nothing and the
    /// pass skips it. Only a target that remembers its applies says yes.
    fn holds(&self, _staging: &Planned, _fingerprint: &str) -> bool {
        false
    }
    /// Remove `staging` and everything octostage put in it; `dry_run` only reports.
    async fn delete(&self, staging: &Planned, dry_run: bool) -> Result<(), TargetError>;
    /// Writes performed since the target was made (files, requests), for idempotence checks.
    fn writes(&self) -> u64;
    /// Requests sent to the target so far (reads and writes); 0 where the notion does not apply.
    fn requests(&self) -> u64 {
        0
    }
    /// What `octostage status` shows.
    async fn status(&self) -> Result<Status, TargetError>;
    /// Record `requests` on staging `name` (`octostage sleep | wake | extend`), where passes
    /// read them, if it still holds `expected` (compare and swap: two commands at once never
    /// lose one another's request); `Ok(false)` when it does not. Only on a staging of this
    /// instance, and nothing else of it is changed.
    async fn request(
        &self,
        name: &str,
        expected: &Requests,
        requests: &Requests,
    ) -> Result<bool, TargetError>;
    /// Leases, where the target can hold one (a cluster): several `run` replicas then take
    /// turns writing. `None`: one writer is all there can be, and it needs no lease.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }
    /// The Secret or ConfigMap `copy` names, as the body a staging's copy gets (its data and
    /// type, none of its metadata). Only a cluster has them to copy.
    async fn read_copy(&self, copy: &crate::config::Copy) -> Result<Object, TargetError> {
        Err(TargetError::Io {
            path: copy.source(),
            cause: Cause::new(
                CauseKind::Unsupported,
                format_args!(
                    "only a kube target can copy it; {} has nothing to copy from",
                    self.describe()
                ),
            ),
        })
    }
    /// What the target holds now where `object` of `staging` goes, for `plan --diff`; `None`
    /// when nothing is there or the target cannot say.
    async fn current(&self, _staging: &Planned, _object: &Object) -> Option<Object> {
        None
    }
    /// The objects in `namespace` as last seen, with their health where the target knows it
    /// (for the dashboard); none where it keeps no view.
    fn objects(&self, _namespace: &str) -> Vec<ObjectHealth> {
        Vec::new()
    }
    /// Post notices where people look (Kubernetes Events on a staging's namespace); best
    /// effort, never failing a pass. Nothing where there is no such place.
    async fn publish(&self, _notices: &[StagingNotice]) {}
}

/// Open the target `spec` names. `none` is refused here: it is a plan-only target (see
/// [`open_for_plan`]).
///
/// `instance` names this octostage among others sharing a cluster: a kube target sees only the
/// stagings of its own instance.
pub async fn open(spec: &TargetSpec, instance: &str) -> Result<Box<dyn Target>, TargetError> {
    match spec {
        TargetSpec::Auto if kube_configured() => {
            Box::pin(open(&TargetSpec::Kube(None), instance)).await
        }
        TargetSpec::Auto => Err(TargetError::Spec {
            spec: spec.to_string(),
            why: Unusable::NoCluster,
        }),
        TargetSpec::Kube(kubeconfig) => {
            crate::naming::check_label(instance).map_err(|e| TargetError::Spec {
                spec: instance.into(),
                why: Unusable::Instance(e),
            })?;
            Ok(Box::new(
                kube::KubeTarget::connect(kubeconfig.as_deref(), instance).await?,
            ))
        }
        TargetSpec::Dir(path) => Ok(Box::new(dir::DirTarget::new(path))),
        TargetSpec::None => Err(TargetError::Spec {
            spec: spec.to_string(),
            why: Unusable::PlanOnly,
        }),
    }
}

/// [`open`] for `plan`, which also takes `none` (and `auto` without a cluster): an empty
/// target, so the plan shows what a fresh one would get.
pub async fn open_for_plan(
    spec: &TargetSpec,
    instance: &str,
) -> Result<Box<dyn Target>, TargetError> {
    match spec {
        TargetSpec::None => Ok(Box::new(Empty)),
        TargetSpec::Auto if !kube_configured() => Ok(Box::new(Empty)),
        _ => open(spec, instance).await,
    }
}

/// A target that holds nothing and changes nothing: plans against it show what a fresh target
/// would get.
pub struct Empty;

#[async_trait]
impl Target for Empty {
    fn describe(&self) -> String {
        "none (an empty target)".into()
    }
    async fn observe(&self) -> Result<Observed, TargetError> {
        Ok(Observed::default())
    }
    async fn apply(
        &self,
        _: &Planned,
        rendered: &Rendered<'_>,
        _: bool,
    ) -> Result<Vec<Change>, TargetError> {
        Ok(rendered
            .objects
            .iter()
            .map(|o| Change::new(ChangeKind::Create, crate::render::object_id(o)))
            .collect())
    }
    async fn delete(&self, _: &Planned, _: bool) -> Result<(), TargetError> {
        Ok(())
    }
    fn writes(&self) -> u64 {
        0
    }
    async fn status(&self) -> Result<Status, TargetError> {
        Ok(Status::default())
    }
    async fn request(&self, name: &str, _: &Requests, _: &Requests) -> Result<bool, TargetError> {
        Err(TargetError::Spec {
            spec: "none".into(),
            why: Unusable::HoldsNothing {
                staging: name.into(),
            },
        })
    }
}

/// Whether a cluster is configured: `KUBECONFIG`, `~/.kube/config` or a service account.
pub fn kube_configured() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME")
            .is_some_and(|h| std::path::Path::new(&h).join(".kube/config").is_file())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}
