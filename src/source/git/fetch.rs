//! One fetch from a remote, bounded in time, with credentials only for the configured host.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use git2::{
    AutotagOption, Cred, CredentialType, FetchOptions, FetchPrune, RemoteCallbacks, Repository,
};

use super::super::SourceError;
use crate::config::Credentials;
use crate::redact;

/// What to fetch.
pub(crate) struct Want<'a> {
    /// Refspecs, e.g. `+refs/heads/*:refs/heads/*`.
    pub specs: &'a [String],
    /// `Some(1)`: only the commits the refs point at, with their trees, no history.
    pub depth: Option<i32>,
}

/// What one fetch did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fetched {
    /// Bytes received from the remote.
    pub bytes: usize,
    /// Objects received.
    pub objects: usize,
}

/// Fetch `want` into `repo`, pruning refs under the refspecs' destinations that the remote no
/// longer has, then pack the refs into one file (10,000 loose ref files cost seconds to write
/// and read). Local refs are what the next fetch negotiates with, so later fetches transfer
/// only new objects. Returns the remote's default branch, when it names one.
pub(crate) fn fetch(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
    deadline: Instant,
    want: &Want<'_>,
) -> Result<(Option<String>, Fetched), SourceError> {
    let shown = redact::url(url);
    let err = |action| super::super::git_err(&shown, action);
    let mut remote = repo.remote_anonymous(url).map_err(err("opening"))?;
    let bytes = Arc::new(AtomicUsize::new(0));
    let objects = Arc::new(AtomicUsize::new(0));
    let (mut cb, refusal) = callbacks(url, credentials, deadline);
    let (b, o) = (bytes.clone(), objects.clone());
    cb.transfer_progress(move |p| {
        b.store(p.received_bytes(), Ordering::Relaxed);
        o.store(p.received_objects(), Ordering::Relaxed);
        Instant::now() < deadline
    });
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(cb)
        .download_tags(AutotagOption::None)
        .prune(FetchPrune::On)
        .update_fetchhead(false);
    if let Some(d) = want.depth {
        opts.depth(d);
    }
    remote
        .fetch(want.specs, Some(&mut opts), None)
        .map_err(|e| {
            if Instant::now() >= deadline {
                SourceError::Git {
                    url: shown.clone(),
                    action: "fetching",
                    message: "did not finish within the fetch timeout and was stopped".into(),
                }
            } else {
                err("fetching")(refusal.explain(e))
            }
        })?;
    let default_branch = remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string));
    let _ = remote.disconnect();
    // Refs the fetch created or moved are loose files; one packed file reads much faster.
    if has_loose_refs(&repo.path().join("refs")) {
        repo.refdb_compress().map_err(err("packing refs"))?;
    }
    let fetched = Fetched {
        bytes: bytes.load(Ordering::Relaxed),
        objects: objects.load(Ordering::Relaxed),
    };
    Ok((default_branch, fetched))
}

/// Make `repo`'s `refs/heads/*` and `refs/tags/*` equal to the remote's, with history (the
/// config repository, which is small and checked out).
pub(crate) fn fetch_mirror(
    repo: &Repository,
    url: &str,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Option<String>, SourceError> {
    let specs = [
        "+refs/heads/*:refs/heads/*".to_string(),
        "+refs/tags/*:refs/tags/*".to_string(),
    ];
    let want = Want {
        specs: &specs,
        depth: None,
    };
    Ok(fetch(repo, url, credentials, deadline, &want)?.0)
}

/// Whether any ref under `dir` is a loose file (directories left empty by packing are not).
fn has_loose_refs(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| match e.file_type() {
            Ok(t) if t.is_dir() => has_loose_refs(&e.path()),
            Ok(_) => true,
            Err(_) => false,
        })
    })
}

/// Credentials from the references in the config, for `url`'s own scheme and host only (a
/// server that redirects elsewhere, or from https to http, gets none); libgit2 asks again after
/// a refusal, so each kind is offered once and then the fetch fails with the server's answer.
/// The transfer stops at `deadline`.
pub(super) fn callbacks(
    url: &str,
    creds: &Credentials,
    deadline: Instant,
) -> (RemoteCallbacks<'static>, Refusal) {
    let refusal = Refusal::default();
    let refused = refusal.0.clone();
    let creds = creds.clone();
    let configured = redact::origin(url);
    let mut tried = 0u32;
    let mut cb = RemoteCallbacks::new();
    cb.sideband_progress(move |_| Instant::now() < deadline);
    if let Some(file) = creds.known_hosts_file.clone() {
        let port = ssh_port(url);
        cb.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: the system's trust store decides, as without a known_hosts file.
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            let key = hostkey.hostkey().unwrap_or_default();
            let kind = hostkey
                .hostkey_type()
                .map(|t| t.name())
                .unwrap_or("unknown");
            let entry = super::known_hosts::host_entry(host, port);
            super::known_hosts::check(&file, &entry, key, kind)
                .map(|()| git2::CertificateCheckStatus::CertificateOk)
                .map_err(|e| {
                    let said = e.to_string();
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(said.clone());
                    git2::Error::from_str(&said)
                })
        });
    }
    cb.credentials(move |asked, user_from_url, allowed| {
        if redact::origin(asked) != configured {
            return Err(git2::Error::from_str(&format!(
                "the server sent octostage to {}; credentials go only to the configured repository's host",
                redact::url(asked)
            )));
        }
        tried += 1;
        if tried > 2 {
            return Err(git2::Error::from_str(
                "authentication failed with the configured credentials",
            ));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user_from_url.unwrap_or("git");
            return match &creds.ssh_key_file {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let token = match (&creds.token_env, &creds.token_file) {
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    git2::Error::from_str(&format!(
                        "credentials.token_env names {var}, which is not set"
                    ))
                })?,
                (None, Some(file)) => read_token(file)?,
                (None, None) => {
                    return Err(git2::Error::from_str(
                        "the server asks for credentials; set credentials.token_env or credentials.token_file (for the config repository: the environment variable OCTOSTAGE_CONFIG_TOKEN or --config-token-file)",
                    ))
                }
            };
            let user = creds
                .username
                .as_deref()
                .or(user_from_url)
                .unwrap_or("x-access-token");
            return Cred::userpass_plaintext(user, &token);
        }
        Cred::default()
    });
    (cb, refusal)
}

/// Why a callback refused, kept aside: libgit2 replaces a host key callback's message with
/// its own ("invalid or unknown remote ssh hostkey"), which says nothing of what to do.
#[derive(Debug, Default, Clone)]
pub(super) struct Refusal(Arc<std::sync::Mutex<Option<String>>>);

impl Refusal {
    /// `e`, or the refusal that caused it.
    pub(super) fn explain(&self, e: git2::Error) -> git2::Error {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(said) => git2::Error::from_str(&said),
            None => e,
        }
    }
}

/// The port of an `ssh://` URL, when it names one (scp-like `user@host:path` is port 22).
fn ssh_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (_, port) = host.rsplit_once(':')?;
    port.parse().ok()
}

fn read_token(file: &Path) -> Result<String, git2::Error> {
    std::fs::read_to_string(file)
        .map(|t| t.trim().to_string())
        .map_err(|e| {
            git2::Error::from_str(&format!(
                "credentials.token_file {}: {}",
                file.display(),
                e.kind()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_of_an_ssh_url() {
        assert_eq!(
            ssh_port("ssh://git@127.0.0.1:2222/srv/config.git"),
            Some(2222)
        );
        assert_eq!(ssh_port("ssh://git@example.com/config.git"), None);
        assert_eq!(ssh_port("git@example.com:acme/config.git"), None);
    }
}
