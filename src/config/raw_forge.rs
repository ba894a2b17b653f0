//! The file format of forge settings of `environments.yaml`: commit statuses and pull requests
//! as the source of branches.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which forge, where, and how octostage signs in: what commit statuses and pull requests
/// share.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct RawForge {
    /// `github`, `gitlab` or `gitea` (Forgejo too).
    pub provider: String,
    /// The API's base URL for a self-hosted forge (default `https://api.github.com` for GitHub,
    /// `https://gitlab.com/api/v4` for GitLab; required for Gitea, such as
    /// `https://gitea.example.com/api/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// `owner/repo` (GitLab: the project's path, `group/sub/project`); default: read from the
    /// environment's repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Environment variable holding the API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File holding the API token (exclusive with `token_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

/// Commit statuses on a forge.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawCommitStatus {
    /// The forge.
    #[serde(flatten)]
    pub forge: RawForge,
    /// The status's name, before `/<environment>` (default `octostage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Pull requests as the source of branches.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawPullRequests {
    /// The forge.
    #[serde(flatten)]
    pub forge: RawForge,
    /// Only pull requests with at least one of these labels get a staging (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}
