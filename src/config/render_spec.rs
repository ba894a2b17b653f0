//! Validated render specs and what a render needs besides: templates from either repository,
//! kustomize, helm, objects copied into stagings, images waited for.

use std::sync::Arc;
use std::time::Duration;

use super::TokenSource;

/// How a staging's objects are produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Render {
    /// A directory of minijinja templates in the config repository.
    Templates(String),
    /// A directory of minijinja templates in the application repository.
    AppTemplates(String),
    /// A program (argument templates) that prints multi-document YAML.
    Command(Vec<String>),
    /// A kustomization, through an overlay generated per staging.
    Kustomize(Arc<Kustomize>),
    /// A Helm chart.
    Helm(Arc<Helm>),
}

impl Render {
    /// The path of the application repository this render reads itself, if any.
    pub fn app_path(&self) -> Option<&str> {
        match self {
            Render::AppTemplates(p) => Some(p),
            Render::Kustomize(k) if k.from == Origin::App => Some(&k.path),
            Render::Helm(h) if h.from == Origin::App => Some(&h.chart),
            _ => None,
        }
    }
}

/// Which repository a path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config repository.
    Config,
    /// The application repository at the staging's commit.
    App,
}

/// `kustomize:` validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kustomize {
    /// The kustomization directory.
    pub path: String,
    /// Its repository.
    pub from: Origin,
    /// Whether the overlay sets the staging's namespace.
    pub namespace: bool,
    /// Image overrides (templates).
    pub images: Vec<KustomizeImage>,
    /// Patches: YAML (a template) and an optional target.
    pub patches: Vec<(String, Option<serde_json::Map<String, serde_json::Value>>)>,
}

/// An image override of a kustomize overlay (templates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeImage {
    /// The image as the base names it.
    pub name: String,
    /// Another name.
    pub new_name: Option<String>,
    /// Another tag.
    pub new_tag: Option<String>,
    /// A digest.
    pub digest: Option<String>,
}

/// `helm:` validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helm {
    /// The chart directory.
    pub chart: String,
    /// Its repository.
    pub from: Origin,
    /// The release name template.
    pub release: Option<String>,
    /// Values (strings are templates).
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// What kind of object a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CopyKind {
    /// A `v1` Secret.
    Secret,
    /// A `v1` ConfigMap.
    ConfigMap,
}

impl CopyKind {
    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            CopyKind::Secret => "Secret",
            CopyKind::ConfigMap => "ConfigMap",
        }
    }
}

/// A Secret or ConfigMap copied from `namespace/name` into each staging as `as_name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Copy {
    /// Secret or ConfigMap.
    pub kind: CopyKind,
    /// The source's namespace.
    pub namespace: String,
    /// The source's name.
    pub name: String,
    /// The name in the staging.
    pub as_name: String,
}

impl Copy {
    /// The source, as `Secret platform/wildcard-tls`.
    pub fn source(&self) -> String {
        format!("{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }
}

/// `wait_for`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    /// Image reference templates.
    pub images: Vec<String>,
    /// How long after the commit's time to keep asking.
    pub give_up: Duration,
    /// Registry credentials.
    pub credentials: Option<RegistryCredentials>,
}

/// Registry credentials: a user name and where its password is read when asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryCredentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: TokenSource,
}
