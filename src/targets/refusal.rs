//! Why a target refuses: its specification is unusable, what it would write is wrong, or
//! something stands in the way. Typed, so that callers and tests match on the case and the
//! text is made once, at the edge.

use crate::naming::LabelError;
use crate::plan::Foreign;

/// Why a target specification cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// `auto` found no cluster.
    #[error("no cluster is configured (no KUBECONFIG, ~/.kube/config or in-cluster service account): pass --target kube:PATH or --target dir:PATH")]
    NoCluster,
    /// The instance name cannot be a label value.
    #[error("instance name {0}")]
    Instance(#[source] LabelError),
    /// `none` was given where stagings are written.
    #[error("`none` holds nothing and changes nothing, so nothing would be deployed; it is for `plan` only: pass --target kube, kube:PATH or dir:PATH")]
    PlanOnly,
    /// A request was made of a target that holds nothing.
    #[error("holds no staging, so not {staging:?}")]
    HoldsNothing {
        /// The staging asked for.
        staging: String,
    },
}

/// Why what a target would write is refused before anything is written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unwritable {
    /// A staging name that cannot be a folder or label.
    #[error("{0}; refusing to touch the file system with it")]
    Name(#[source] LabelError),
    /// A value does not serialize to YAML.
    #[error(transparent)]
    Yaml(#[from] std::sync::Arc<crate::yaml::WriteError>),
    /// An object would overwrite one of octostage's own files.
    #[error("would be written to {file}, which is octostage's own file; rename the object")]
    OwnFile {
        /// The file.
        file: String,
    },
    /// Two objects would be written to one file.
    #[error("and {other} would both be written to {file}; rename one")]
    SameFile {
        /// The other object.
        other: String,
        /// The file.
        file: String,
    },
}

impl From<crate::yaml::WriteError> for Unwritable {
    fn from(e: crate::yaml::WriteError) -> Unwritable {
        Unwritable::Yaml(std::sync::Arc::new(e))
    }
}

/// Whose the thing in the way is. octostage reports it and never adopts or overwrites it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Clash {
    /// A namespace or folder that is not this instance's.
    #[error("{0}")]
    Foreign(Foreign),
    /// A namespace of this instance that belongs to another staging.
    #[error(
        "belongs to staging {owner:?} of this instance, not to {wanted:?}; nothing was written"
    )]
    OtherStaging {
        /// The staging it belongs to (`?` when its label is missing).
        owner: String,
        /// The staging that would have written.
        wanted: String,
    },
    /// A request names a staging this instance does not hold.
    #[error("is not a staging of octostage instance {instance:?} on this cluster (see `octostage status`)")]
    NoSuchStaging {
        /// This instance.
        instance: String,
    },
    /// A Lease of the same name that this instance did not create.
    #[error("is not octostage's for this instance; it is never written")]
    ForeignLease,
    /// An object of a rendered name exists without octostage's ownership record.
    #[error("exists and octostage did not create it (it lacks octostage's ownership record); octostage never adopts what it did not create: remove or rename it, or stop rendering it")]
    NotCreated,
    /// The object was deleted or replaced since the pass looked.
    #[error("is no longer the one octostage created (deleted or replaced since this pass looked); nothing was written, the next pass looks again")]
    Replaced,
}
