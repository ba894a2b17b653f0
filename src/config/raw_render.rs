//! The file format of the render and copy settings of `environments.yaml`: templates from
//! either repository, kustomize, helm, objects copied into stagings, images waited for.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A templates directory: a path in the config repository, or `{from, path}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawTemplates {
    /// A directory in the config repository.
    Dir(String),
    /// A directory in the config or the application repository.
    From(RawFrom),
}

/// Which repository a path is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawOrigin {
    /// The config repository (at its current commit).
    #[default]
    Config,
    /// The application repository, at the staging's commit.
    App,
}

/// A path in one of the repositories.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawFrom {
    /// `config` (default) or `app`.
    #[serde(default)]
    pub from: RawOrigin,
    /// The directory, relative to the repository's root.
    pub path: String,
}

/// `kustomize:` a kustomization directory and what the generated overlay sets.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawKustomize {
    /// The kustomization directory (with its `kustomization.yaml`).
    pub path: String,
    /// `config` (default) or `app`: the application repository at the staging's commit.
    #[serde(default)]
    pub from: RawOrigin,
    /// Whether the overlay sets every object's namespace to the staging's (default `true`).
    #[serde(default = "yes")]
    pub namespace: bool,
    /// Image overrides, as kustomize's `images`: `{name, new_name, new_tag, digest}`, each a
    /// template (`new_tag: "{{ commit.sha }}"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<RawKustomizeImage>,
    /// Patches (strategic merge or JSON 6902 with a target), each a template of YAML, as
    /// kustomize's `patches: [{patch: ..., target: ...}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<RawKustomizePatch>,
}

/// One image override of a kustomize overlay.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawKustomizeImage {
    /// The image name as the base writes it.
    pub name: String,
    /// Another image name (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Another tag (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// A digest instead of a tag (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One patch of a kustomize overlay.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawKustomizePatch {
    /// The patch, YAML (a template).
    pub patch: String,
    /// Which objects it applies to, as kustomize's `target` (`{kind: Ingress, name: web}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `helm:` a chart and its values.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawHelm {
    /// The chart directory.
    pub chart: String,
    /// `config` (default) or `app`: the application repository at the staging's commit.
    #[serde(default)]
    pub from: RawOrigin,
    /// The release name (a template; default the staging's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Values handed to `helm template` (strings inside are templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One object to copy into every staging: `{secret: platform/wildcard-tls}` or
/// `{config_map: platform/ca-bundle, as: ca}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawCopy {
    /// `namespace/name` of a Secret to copy (exclusive with `config_map`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `namespace/name` of a ConfigMap to copy (exclusive with `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Its name in the staging (default: the source's name).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
}

/// `wait_for`: images a staging waits for.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawWaitFor {
    /// One image reference or several, each a template
    /// (`registry.example.com/shop/web:{{ commit.sha }}`).
    pub image: RawImages,
    /// How long after the commit's time to keep asking before giving up (default `1h`); after
    /// it the staging stays as it is, with the reason, until a new commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up: Option<String>,
    /// Credentials for the registry: basic auth, or the token endpoint a registry's
    /// `WWW-Authenticate: Bearer` names (Docker Hub, GHCR, Harbor, GitLab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RawRegistryCredentials>,
}

/// One image reference or a list.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawImages {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Registry credentials, referenced (never written here).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRegistryCredentials {
    /// The user name.
    pub username: String,
    /// Environment variable holding the password or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// File holding the password or token (exclusive with `password_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

pub(super) fn yes() -> bool {
    true
}
