//! Notification settings: webhooks, a command, which events, the warning's lead.

use super::super::model::*;
use super::super::raw::*;
use super::Validator;
use crate::consts;

/// `owner/repo` or a GitLab path: segments of letters, digits, `-`, `_` and `.`, not `.`/`..`.
pub fn repo_path(r: &str) -> bool {
    let segments: Vec<&str> = r.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

fn env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: &RawNotify, ptr: &str) -> Option<Notify> {
        let before = self.problems.len();
        let mut webhooks = Vec::new();
        for (i, w) in raw.webhooks.iter().enumerate() {
            if let Some(h) = self.webhook(w, &format!("{ptr}/webhooks/{i}")) {
                webhooks.push(h);
            }
        }
        if raw.command.as_ref().is_some_and(Vec::is_empty) {
            self.err(
                &format!("{ptr}/command"),
                "command is empty: give the program and its arguments",
            );
        }
        let events = match &raw.events {
            None => EventKind::ALL.to_vec(),
            Some(names) => {
                let mut out = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    match EventKind::ALL.iter().find(|k| k.name() == n) {
                        Some(k) => out.push(*k),
                        None => self.err(
                            &format!("{ptr}/events/{i}"),
                            format!(
                                "unknown event {n:?}; known: {}",
                                EventKind::ALL.map(EventKind::name).join(", ")
                            ),
                        ),
                    }
                }
                out
            }
        };
        let warn_before = raw
            .warn_before
            .as_deref()
            .and_then(|d| self.duration(d, &format!("{ptr}/warn_before")))
            .unwrap_or(consts::DEFAULT_WARN_BEFORE);
        let commit_status = raw
            .commit_status
            .as_ref()
            .and_then(|c| self.commit_status(c, &format!("{ptr}/commit_status")));
        if webhooks.is_empty()
            && raw.command.is_none()
            && raw.commit_status.is_none()
            && self.problems.len() == before
        {
            self.warn(
                ptr,
                "notify has no webhooks and no command, so nothing is sent (a notify block replaces the inherited one as a whole)",
            );
        }
        (self.problems.len() == before).then(|| Notify {
            webhooks,
            command: raw.command.clone(),
            events,
            warn_before,
            commit_status,
        })
    }

    /// A forge's API: its provider, base URL and token source, and a repository path if given.
    pub(super) fn forge(
        &mut self,
        raw: &RawForge,
        ptr: &str,
    ) -> Option<(Provider, String, TokenSource)> {
        let (api_url, token_env, token_file, repository) = (
            raw.api_url.as_deref(),
            raw.token_env.as_deref(),
            raw.token_file.as_deref(),
            raw.repository.as_deref(),
        );
        let provider = match raw.provider.as_str() {
            "github" => Provider::Github,
            "gitlab" => Provider::Gitlab,
            "gitea" | "forgejo" => Provider::Gitea,
            other => {
                self.err(
                    &format!("{ptr}/provider"),
                    format!("unknown provider {other:?}; known: github, gitlab, gitea"),
                );
                return None;
            }
        };
        let api_url = match (api_url, provider) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Provider::Github) => "https://api.github.com".into(),
            (None, Provider::Gitlab) => "https://gitlab.com/api/v4".into(),
            (None, Provider::Gitea) => {
                self.err(
                    ptr,
                    "Gitea has no default API: give `api_url` (https://HOST/api/v1)",
                );
                return None;
            }
        };
        if let Err(why) = check_url(&api_url) {
            let shown = crate::redact::url(&api_url);
            self.err(
                &format!("{ptr}/api_url"),
                format!("api_url {shown:?} {why}"),
            );
            return None;
        }
        // The token travels with every request: in clear only to this very machine.
        if api_url.starts_with("http://")
            && crate::config::endpoint::credential_endpoint(&api_url).is_err()
        {
            self.err(
                &format!("{ptr}/api_url"),
                format!("{api_url:?} is plain http: the API token would travel unencrypted; use https (plain http only to 127.0.0.1, ::1 or localhost)"),
            );
            return None;
        }
        let token = match (token_env, token_file) {
            (Some(name), None) if env_name(name) => TokenSource::Env(name.to_string()),
            (Some(name), None) => {
                self.err(
                    &format!("{ptr}/token_env"),
                    format!("{name:?} is not an environment variable name"),
                );
                return None;
            }
            (None, Some(f)) => TokenSource::File(f.into()),
            _ => {
                self.err(ptr, "give exactly one of `token_env` and `token_file`");
                return None;
            }
        };
        if let Some(r) = repository.filter(|r| !repo_path(r)) {
            self.err(
                &format!("{ptr}/repository"),
                format!("{r:?} is not `owner/repo` (or a GitLab project path)"),
            );
            return None;
        }
        Some((provider, api_url, token))
    }

    /// `wait_for`: image templates, the give-up time, credentials.
    pub(super) fn wait_for(
        &mut self,
        raw: &RawWaitFor,
        ptr: &str,
    ) -> Option<std::sync::Arc<WaitFor>> {
        let before = self.problems.len();
        let images = match &raw.image {
            RawImages::One(i) => vec![i.clone()],
            RawImages::Many(v) => v.clone(),
        };
        if images.is_empty() {
            self.err(&format!("{ptr}/image"), "give at least one image");
        }
        for (i, img) in images.iter().enumerate() {
            let p = format!("{ptr}/image/{i}");
            self.template_str(img, &p);
            // Where octostage asks (and sends credentials) is the file's choice, never git's.
            let host = img.split('/').next().unwrap_or("");
            let literal = !host.contains("{{") && !host.contains("{%") && img.contains('/');
            if !(literal && (host.contains('.') || host.contains(':') || host == "localhost")) {
                self.err(&p, format!("{img:?} must start with its registry host written out (`registry.example.com/...`, `docker.io/...`): a value from git must not choose where octostage asks"));
            }
        }
        let give_up = raw
            .give_up
            .as_deref()
            .and_then(|d| self.duration(d, &format!("{ptr}/give_up")))
            .unwrap_or(consts::DEFAULT_IMAGE_GIVE_UP);
        let credentials = raw.credentials.as_ref().and_then(|c| {
            let password = match (&c.password_env, &c.password_file) {
                (Some(n), None) if env_name(n) => TokenSource::Env(n.clone()),
                (None, Some(f)) => TokenSource::File(f.into()),
                _ => {
                    self.err(
                        &format!("{ptr}/credentials"),
                        "give exactly one of `password_env` (a variable name) and `password_file`",
                    );
                    return None;
                }
            };
            Some(RegistryCredentials {
                username: c.username.clone(),
                password,
            })
        });
        (self.problems.len() == before).then(|| {
            std::sync::Arc::new(WaitFor {
                images,
                give_up,
                credentials,
            })
        })
    }

    /// `branches.from` and `branches.pull_requests`.
    pub(super) fn pull_requests(
        &mut self,
        raw: &RawBranches,
        ptr: &str,
    ) -> Option<std::sync::Arc<PullRequests>> {
        match (raw.from.as_deref(), &raw.pull_requests) {
            (None | Some("git"), None) => None,
            (Some("pull_requests"), Some(p)) => {
                let (provider, api_url, token) =
                    self.forge(&p.forge, &format!("{ptr}/pull_requests"))?;
                Some(std::sync::Arc::new(PullRequests {
                    provider,
                    api_url,
                    repository: p.forge.repository.clone(),
                    token,
                    labels: p.labels.clone(),
                }))
            }
            (Some("pull_requests"), None) => {
                self.err(
                    ptr,
                    "`from: pull_requests` needs `pull_requests: {provider, ...}`",
                );
                None
            }
            (None | Some("git"), Some(_)) => {
                self.err(
                    ptr,
                    "`pull_requests` is set but `from` is not `pull_requests`",
                );
                None
            }
            (Some(other), _) => {
                self.err(
                    &format!("{ptr}/from"),
                    format!("unknown branch source {other:?}; known: git, pull_requests"),
                );
                None
            }
        }
    }

    fn commit_status(&mut self, raw: &RawCommitStatus, ptr: &str) -> Option<CommitStatus> {
        let (provider, api_url, token) = self.forge(&raw.forge, ptr)?;
        Some(CommitStatus {
            provider,
            api_url,
            repository: raw.forge.repository.clone(),
            token,
            context: raw.context.clone().unwrap_or_else(|| "octostage".into()),
        })
    }

    fn webhook(&mut self, raw: &RawWebhook, ptr: &str) -> Option<Webhook> {
        if let Some(name) = raw.secret_env.as_deref().filter(|n| !env_name(n)) {
            self.err(
                &format!("{ptr}/secret_env"),
                format!("{name:?} is not an environment variable name"),
            );
        }
        let url = match (&raw.url, &raw.url_env) {
            (Some(_), Some(_)) | (None, None) => {
                self.err(ptr, "give exactly one of `url` and `url_env`");
                return None;
            }
            (None, Some(name)) if !env_name(name) => {
                self.err(
                    &format!("{ptr}/url_env"),
                    format!("{name:?} is not an environment variable name"),
                );
                return None;
            }
            (None, Some(name)) => UrlSource::Env(name.clone()),
            (Some(url), None) => {
                if let Err(why) = check_url(url) {
                    let shown = crate::redact::url(url);
                    self.err(
                        &format!("{ptr}/url"),
                        format!("webhook URL {shown:?} {why}"),
                    );
                    return None;
                }
                if let Some(why) = plain_http_elsewhere(url) {
                    self.warn(&format!("{ptr}/url"), why);
                }
                UrlSource::Literal(url.clone())
            }
        };
        Some(Webhook {
            url,
            secret_env: raw.secret_env.clone(),
        })
    }
}

/// Names of environment variables holding notification secrets (webhook URLs and HMAC keys)
/// anywhere in the file: never handed to render commands.
pub(super) fn secret_envs(raw: &RawFile) -> Vec<String> {
    let mut layers: Vec<&RawSettings> = vec![&raw.defaults];
    for e in raw.environments.values() {
        layers.push(&e.settings);
        layers.extend(e.overrides.values());
        layers.extend(e.statics.values().map(|s| &s.settings));
    }
    let mut out = Vec::new();
    for n in layers.into_iter().filter_map(|l| l.notify.as_ref()) {
        for w in &n.webhooks {
            out.extend(w.url_env.iter().chain(&w.secret_env).cloned());
        }
        if let Some(c) = &n.commit_status {
            out.extend(c.forge.token_env.iter().cloned());
        }
    }
    for e in raw.environments.values() {
        if let Some(p) = &e.branches.pull_requests {
            out.extend(p.forge.token_env.iter().cloned());
        }
    }
    let mut layers: Vec<&RawSettings> = vec![&raw.defaults];
    for e in raw.environments.values() {
        layers.push(&e.settings);
        layers.extend(e.overrides.values());
        layers.extend(e.statics.values().map(|s| &s.settings));
    }
    for w in layers.into_iter().filter_map(|l| l.wait_for.as_ref()) {
        if let Some(c) = &w.credentials {
            out.extend(c.password_env.iter().cloned());
        }
    }
    out
}

/// A warning for `http://` to a host that is not loopback nor inside the cluster: what a
/// notification says (branch names, commits, links) and its signature cross the network in
/// the clear.
pub fn plain_http_elsewhere(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
    .to_ascii_lowercase();
    let inside = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host.ends_with(".svc")
        || host.ends_with(".svc.cluster.local")
        || host.ends_with(".cluster.local")
        || !host.contains('.');
    (!inside).then(|| format!(
        "webhook URL {:?} is plain http:// to {host}: notifications and their signatures cross the network unencrypted; use https://",
        crate::redact::url(url)
    ))
}

/// Why a URL octostage sends to is refused; reads after the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Another scheme.
    #[error("must start with https:// or http://")]
    Scheme,
    /// No host.
    #[error("names no host")]
    NoHost,
    /// User information in the URL.
    #[error("carries credentials; put the whole URL in an environment variable and name it in `url_env`")]
    Credentials,
}

/// An `http(s)://` URL without credentials in it (those belong in `url_env`).
pub fn check_url(url: &str) -> Result<(), UrlError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(UrlError::Scheme)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(UrlError::NoHost);
    }
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_warned_about_only_beyond_loopback_and_the_cluster() {
        for quiet in [
            "https://hooks.example.com/x",
            "http://127.0.0.1:9000/x",
            "http://[::1]:9000/x",
            "http://localhost/x",
            "http://receiver.team.svc:8080/x",
            "http://receiver.team.svc.cluster.local/x",
            "http://receiver/x",
        ] {
            assert_eq!(plain_http_elsewhere(quiet), None, "{quiet}");
        }
        let w = plain_http_elsewhere("http://hooks.example.com/x").unwrap();
        assert!(
            w.contains("hooks.example.com") && w.contains("https://"),
            "{w}"
        );
    }
}
