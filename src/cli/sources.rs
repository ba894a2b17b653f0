//! Where the configuration and the application repositories come from.

use std::path::PathBuf;

use clap::Args;

/// `validate`: the configuration, and whether to render samples against the application
/// repositories.
#[derive(Debug, Args, Clone)]
pub struct ValidateArgs {
    /// The configuration and the repositories.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check only the configuration: do not fetch application repositories to render one
    /// sample staging of each environment that runs kustomize or helm or reads its templates
    /// from the application repository.
    #[arg(long)]
    pub offline: bool,
}

/// Where the configuration comes from.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Config repository: a directory, or a git URL (https, ssh, file://).
    #[arg(long, short, env = "OCTOSTAGE_CONFIG")]
    pub config: String,
    /// Branch, tag or commit of a git config repository (default: the remote's HEAD).
    #[arg(long, env = "OCTOSTAGE_CONFIG_REF")]
    pub config_ref: Option<String>,
    /// Use URL instead of the environment's repository (a local mirror, a fixture): ENV=URL.
    /// A relative path is taken from the current directory. Repeatable.
    #[arg(long = "repository", value_name = "ENV=URL", value_parser = parse_pair)]
    pub repositories: Vec<(String, String)>,
    /// Cache directory for fetched repositories [default: $XDG_CACHE_HOME/octostage].
    #[arg(long, env = "OCTOSTAGE_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// Longest a branch listing (fetch included) may take; past it the listing is abandoned and
    /// its environments keep their stagings as they are.
    #[arg(long, default_value = "2m", value_parser = parse_positive_duration)]
    pub fetch_timeout: std::time::Duration,
    /// How a git config repository is read when it is private.
    #[command(flatten)]
    pub config_credentials: ConfigCredentials,
}

/// Credentials of a git config repository: where they are, never the secrets themselves (a
/// flag shows in `ps`). The https token comes from OCTOSTAGE_CONFIG_TOKEN or a file.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigCredentials {
    /// User name for an https config repository (default `x-access-token`, which GitHub and
    /// Gitea accept with a token; GitLab takes any name with a token).
    #[arg(long, env = "OCTOSTAGE_CONFIG_USERNAME", value_name = "NAME")]
    pub config_username: Option<String>,
    /// File holding the https token or password of the config repository (else the
    /// environment variable OCTOSTAGE_CONFIG_TOKEN, when set).
    #[arg(long, env = "OCTOSTAGE_CONFIG_TOKEN_FILE", value_name = "PATH")]
    pub config_token_file: Option<PathBuf>,
    /// SSH private key file for an ssh config repository (else the SSH agent).
    #[arg(long, env = "OCTOSTAGE_CONFIG_SSH_KEY_FILE", value_name = "PATH")]
    pub config_ssh_key_file: Option<PathBuf>,
    /// known_hosts file that must list the config repository's SSH server key (else
    /// ~/.ssh/known_hosts).
    #[arg(long, env = "OCTOSTAGE_CONFIG_KNOWN_HOSTS", value_name = "PATH")]
    pub config_known_hosts: Option<PathBuf>,
}

/// The environment variable holding the config repository's https token.
pub const CONFIG_TOKEN_ENV: &str = "OCTOSTAGE_CONFIG_TOKEN";

impl ConfigCredentials {
    /// As the credentials of a repository.
    pub fn credentials(&self) -> crate::config::Credentials {
        let from_env = std::env::var_os(CONFIG_TOKEN_ENV).is_some_and(|v| !v.is_empty());
        crate::config::Credentials {
            username: self.config_username.clone(),
            token_env: (from_env && self.config_token_file.is_none())
                .then(|| CONFIG_TOKEN_ENV.to_string()),
            token_file: self.config_token_file.clone(),
            ssh_key_file: self.config_ssh_key_file.clone(),
            known_hosts_file: self.config_known_hosts.clone(),
            allow_plain_http: false,
        }
    }
}

/// The source arguments of the commands that read the target (`sleep`, `wake`, `status`):
/// taken so that one set of arguments (a shell alias) works for every command; `status` and
/// `wake` say more with a configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct IgnoredConfigArgs {
    /// Config repository: optional here (taken so one alias works for all commands). With
    /// it, `status` also shows stagings that failed before they were ever created, and
    /// `wake` says when an awake cap of 0 keeps the staging asleep.
    #[arg(long, short)]
    pub config: Option<String>,
    /// As for `plan`.
    #[arg(long, hide = true)]
    pub config_ref: Option<String>,
    /// As for `plan`.
    #[arg(long = "repository", hide = true, value_parser = parse_pair)]
    pub repositories: Vec<(String, String)>,
    /// As for `plan`.
    #[arg(long, hide = true)]
    pub cache_dir: Option<PathBuf>,
    /// As for `plan`.
    #[arg(long, hide = true, value_parser = parse_positive_duration)]
    pub fetch_timeout: Option<std::time::Duration>,
    /// As for `plan`.
    #[command(flatten)]
    pub config_credentials: ConfigCredentials,
}

impl IgnoredConfigArgs {
    /// The configuration's arguments, when a configuration was named.
    pub fn config_args(&self) -> Option<ConfigArgs> {
        Some(ConfigArgs {
            config: self.config.clone()?,
            config_ref: self.config_ref.clone(),
            repositories: self.repositories.clone(),
            cache_dir: self.cache_dir.clone(),
            fetch_timeout: self
                .fetch_timeout
                .unwrap_or(std::time::Duration::from_secs(120)),
            config_credentials: self.config_credentials.clone(),
        })
    }
}

pub(super) fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (env, url) = s
        .split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected ENV=URL, got {:?}", crate::redact::url(s)))?;
    let url = if crate::redact::is_remote(url) || std::path::Path::new(url).is_absolute() {
        url.to_string()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(url)
            .to_string_lossy()
            .into_owned()
    };
    Ok((env.to_string(), url))
}

pub(super) fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

pub(super) fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < crate::consts::MIN_INTERVAL {
        return Err(format!(
            "must be at least {} (a shorter interval would only keep the sources and the cluster busy)",
            humantime::format_duration(crate::consts::MIN_INTERVAL)
        ));
    }
    Ok(d)
}
