//! Open pull (merge) requests from a forge's API, as the source of an environment's branches:
//! GitHub, GitLab and Gitea, every page, with conditional requests. Each page's ETag and items
//! are kept in the cache directory, so a poll that finds nothing changed is answered
//! `304 Not Modified` (which GitHub does not count against the rate limit) and reads the kept
//! items, across restarts too. Bounded: at most [`MAX_PAGES`] pages, [`MAX_BODY`] bytes a
//! page, [`POLL_TIMEOUT`] for the whole poll. Errors name the API's host, never the token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Provider, PullRequests};

mod answer;
mod kept;

pub use answer::parse;

/// Why a poll of the open pull requests failed. Names the API's host at most, never the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullsError {
    /// No `pull_requests.repository`, and none in the repository URL.
    #[error("no `pull_requests.repository`, and none in the repository URL")]
    NoRepository,
    /// The whole poll took longer than [`POLL_TIMEOUT`].
    #[error("no complete answer within {POLL_TIMEOUT:?}")]
    Timeout,
    /// The token could not be read.
    #[error(transparent)]
    Token(#[from] crate::config::TokenError),
    /// A request failed (its URL left out).
    #[error("{}", said(.0))]
    Request(std::sync::Arc<reqwest::Error>),
    /// A page was larger than [`MAX_BODY`].
    #[error("a page of the answer is larger than {} MiB", MAX_BODY >> 20)]
    TooLarge,
    /// `304 Not Modified` for a page never kept.
    #[error("304 Not Modified without a kept answer")]
    NotModifiedUnkept,
    /// The forge refused the listing.
    #[error("answered {0} to the pull request listing")]
    Status(reqwest::StatusCode),
    /// More pages than [`MAX_PAGES`].
    #[error("more than {MAX_PAGES} pages of open pull requests; refusing a partial list")]
    TooManyPages,
    /// A page is not a list of pull requests, or breaks a bound.
    #[error("the answer is not a list of pull requests: {0}")]
    NotAList(std::sync::Arc<serde_json::Error>),
    /// A pull request lacks what octostage needs.
    #[error("a pull request in the answer lacks its number, head branch or head sha")]
    Incomplete,
}

impl From<reqwest::Error> for PullsError {
    fn from(e: reqwest::Error) -> Self {
        PullsError::Request(std::sync::Arc::new(e.without_url()))
    }
}

/// Pages read at most (100 pull requests each; Gitea 50).
pub const MAX_PAGES: usize = 20;
/// Bytes of one page read at most.
pub const MAX_BODY: usize = 16 << 20;
/// The whole poll.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// One open pull request, as much as octostage needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Its number (GitLab: `iid`).
    pub number: u64,
    /// Its head branch.
    pub branch: String,
    /// Its head commit.
    pub sha: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Whether its head is in another repository (a fork).
    pub fork: bool,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// The open pull requests.
    pub pulls: Vec<PullRequest>,
    /// Pages answered in full.
    pub fetched: usize,
    /// Pages answered `304 Not Modified`.
    pub not_modified: usize,
}

fn page_url(p: &PullRequests, repository: &str, page: usize) -> (String, usize) {
    match p.provider {
        Provider::Github => (
            format!(
                "{}/repos/{repository}/pulls?state=open&per_page=100&page={page}",
                p.api_url
            ),
            100,
        ),
        Provider::Gitlab => (
            format!(
                "{}/projects/{}/merge_requests?state=opened&per_page=100&page={page}",
                p.api_url,
                repository.replace('/', "%2F")
            ),
            100,
        ),
        Provider::Gitea => (
            format!(
                "{}/repos/{repository}/pulls?state=open&limit=50&page={page}",
                p.api_url
            ),
            50,
        ),
    }
}

/// One client for every poll, made on first use (loading the system's root certificates costs
/// memory a configuration without pull requests should not pay).
static CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client without custom TLS builds")
});

/// Poll the open pull requests of `repository`.
pub async fn poll(cache: &Path, p: &PullRequests, repository: &str) -> Result<Polled, PullsError> {
    let client = &*CLIENT;
    match tokio::time::timeout(POLL_TIMEOUT, poll_pages(client, cache, p, repository)).await {
        Ok(r) => r,
        Err(_) => Err(PullsError::Timeout),
    }
}

/// A request for one page of the listing, authenticated as `provider` wants.
fn listing_request(
    client: &reqwest::Client,
    url: &str,
    provider: Provider,
    token: &str,
) -> reqwest::RequestBuilder {
    let req = client.get(url).header(
        "user-agent",
        concat!("octostage/", env!("CARGO_PKG_VERSION")),
    );
    match provider {
        Provider::Github => req
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28"),
        Provider::Gitlab => req.header("private-token", token),
        Provider::Gitea => req.header("authorization", format!("token {token}")),
    }
}

async fn poll_pages(
    client: &reqwest::Client,
    cache: &Path,
    p: &PullRequests,
    repository: &str,
) -> Result<Polled, PullsError> {
    let token = p.token.read()?;
    let mut out = Polled::default();
    // Kept only once the whole listing was read: a refused poll leaves nothing behind.
    let mut keep: Vec<(PathBuf, kept::Kept)> = Vec::new();
    for page in 1..=MAX_PAGES {
        let (url, per_page) = page_url(p, repository, page);
        let file = kept::path(cache, &url);
        let mut before = kept::read(&file);
        let (status, etag, body) = loop {
            let mut req = listing_request(client, &url, p.provider, &token);
            let conditional = before.as_ref().and_then(|k| k.etag.clone());
            if let Some(etag) = &conditional {
                req = req.header("if-none-match", etag);
            }
            let resp = req.send().await?;
            let status = resp.status();
            // A kept ETag the forge (or a proxy) will not take: ask once in full, forget it.
            if conditional.is_some() && status.is_client_error() {
                kept::forget(&file);
                before = None;
                continue;
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .filter(|e| kept::valid_etag(e))
                .map(str::to_string);
            let body = if status.is_success() && status != reqwest::StatusCode::NOT_MODIFIED {
                read_capped(resp).await?
            } else {
                Vec::new()
            };
            break (status, etag, body);
        };
        let items = if status == reqwest::StatusCode::NOT_MODIFIED {
            out.not_modified += 1;
            before
                .map(|k| k.pulls)
                .ok_or(PullsError::NotModifiedUnkept)?
        } else if status.is_success() {
            out.fetched += 1;
            let pulls = parse(p.provider, &body)?;
            keep.push((
                file,
                kept::Kept {
                    etag,
                    pulls: pulls.clone(),
                },
            ));
            pulls
        } else {
            return Err(PullsError::Status(status));
        };
        let last = items.len() < per_page;
        out.pulls.extend(items);
        if last {
            for (file, k) in &keep {
                kept::write(file, k);
            }
            return Ok(out);
        }
    }
    Err(PullsError::TooManyPages)
}

/// A failed request in words: a timeout as one.
fn said(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.to_string()
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, PullsError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(PullsError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The branches `pulls` give a staging: open pull requests not from a fork, with one of
/// `labels` when any are given.
pub fn branches<'a>(
    pulls: &'a [PullRequest],
    labels: &[String],
) -> std::collections::BTreeSet<&'a str> {
    pulls
        .iter()
        .filter(|p| !p.fork && labelled(p, labels))
        .map(|p| p.branch.as_str())
        .collect()
}

/// Whether `p` carries one of `labels` (any, when none are given).
pub fn labelled(p: &PullRequest, labels: &[String]) -> bool {
    // Forges compare labels without case (GitHub's `Preview` is `preview`).
    labels.is_empty()
        || p.labels
            .iter()
            .any(|l| labels.iter().any(|w| w.eq_ignore_ascii_case(l)))
}

/// Why a labelled open pull request gets no staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// Its head is in another repository.
    Fork,
    /// Its branch is not among the branches the git listing kept.
    NotListed,
}

/// The labelled open pull requests of `pulls` that get no staging, and why: (number, branch,
/// why). `listed` says whether the git listing kept a branch.
pub fn left_out(
    pulls: &[PullRequest],
    labels: &[String],
    listed: impl Fn(&str) -> bool,
) -> Vec<(u64, String, LeftOut)> {
    pulls
        .iter()
        .filter(|p| labelled(p, labels))
        .filter_map(|p| {
            let why = if p.fork {
                LeftOut::Fork
            } else if !listed(&p.branch) {
                LeftOut::NotListed
            } else {
                return None;
            };
            Some((p.number, p.branch.clone(), why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_pull_requests_left_out_are_named_with_why() {
        let pr = |n, b: &str, fork| PullRequest {
            number: n,
            branch: b.into(),
            sha: "a".repeat(40),
            labels: vec!["preview".into()],
            fork,
        };
        let pulls = [
            pr(1, "listed", false),
            pr(2, "listed", true),
            pr(3, "gone", false),
        ];
        let left = left_out(&pulls, &["Preview".into()], |b| b == "listed");
        assert_eq!(
            left,
            [
                (2, "listed".to_string(), LeftOut::Fork),
                (3, "gone".to_string(), LeftOut::NotListed)
            ]
        );
        // Unlabelled ones are the filter doing its job, not worth a hint.
        assert!(left_out(&pulls, &["other".into()], |_| false).is_empty());
    }

    #[test]
    fn forks_and_unlabelled_pull_requests_get_no_branch() {
        let pr = |n, b: &str, l: &[&str], fork| PullRequest {
            number: n,
            branch: b.into(),
            sha: "a".repeat(40),
            labels: l.iter().map(|s| s.to_string()).collect(),
            fork,
        };
        let pulls = [
            pr(1, "a", &["preview"], false),
            pr(2, "b", &[], false),
            pr(3, "c", &["preview"], true),
        ];
        assert_eq!(
            branches(&pulls, &["preview".into()])
                .into_iter()
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            branches(&pulls, &[]).into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(parse(Provider::Github, b"{}").is_err());
        assert!(parse(Provider::Gitlab, b"[{\"iid\": 1}]").is_err());
    }
}
