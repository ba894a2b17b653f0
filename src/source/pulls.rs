//! Open pull (merge) requests from a forge's API, as the source of an environment's branches:
//! GitHub, GitLab and Gitea, every page, with conditional requests. Each page's ETag and items
//! are kept in the cache directory, so a poll that finds nothing changed is answered
//! `304 Not Modified` (which GitHub does not count against the rate limit) and reads the kept
//! items, across restarts too. Bounded: at most [`MAX_PAGES`] pages, [`MAX_BODY`] bytes a
//! page, [`POLL_TIMEOUT`] for the whole poll. Errors name the API's host, never the token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Provider, PullRequests, TokenSource};

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

/// A page as kept between polls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Kept {
    etag: Option<String>,
    pulls: Vec<PullRequest>,
}

fn kept_path(cache: &Path, url: &str) -> PathBuf {
    cache
        .join("pulls")
        .join(format!("{}.json", crate::naming::short_hash(url, 24)))
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

fn token(t: &TokenSource) -> Result<String, String> {
    let v = match t {
        TokenSource::Env(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
        }
        TokenSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the token file {}: {}",
                path.display(),
                e.kind()
            )
        })?,
    };
    let v = v.trim().to_string();
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err("the API token is empty or not one line".into());
    }
    Ok(v)
}

/// Parse one page of the provider's answer.
pub fn parse(provider: Provider, body: &[u8]) -> Result<Vec<PullRequest>, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let items = v.as_array().ok_or("the answer is not a list")?;
    items.iter().map(|i| item(provider, i)).collect()
}

fn item(provider: Provider, i: &Value) -> Result<PullRequest, String> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().or_else(|| l["name"].as_str()))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (number, branch, sha, labels, fork) = match provider {
        Provider::Github => (
            i["number"].as_u64(),
            s(&i["head"]["ref"]),
            s(&i["head"]["sha"]),
            names(&i["labels"]),
            // A deleted fork has no head repository: a fork all the same.
            i["head"]["repo"]["full_name"] != i["base"]["repo"]["full_name"]
                || i["head"]["repo"].is_null(),
        ),
        Provider::Gitea => (
            i["number"].as_u64(),
            s(&i["head"]["ref"]),
            s(&i["head"]["sha"]),
            names(&i["labels"]),
            i["head"]["repo_id"] != i["base"]["repo_id"],
        ),
        Provider::Gitlab => (
            i["iid"].as_u64(),
            s(&i["source_branch"]),
            s(&i["sha"]),
            names(&i["labels"]),
            i["source_project_id"] != i["target_project_id"],
        ),
    };
    match (number, branch, sha) {
        (Some(number), Some(branch), Some(sha)) => Ok(PullRequest {
            number,
            branch,
            sha,
            labels,
            fork,
        }),
        _ => Err("a pull request in the answer lacks its number, head branch or head sha".into()),
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
pub async fn poll(cache: &Path, p: &PullRequests, repository: &str) -> Result<Polled, String> {
    let client = &*CLIENT;
    match tokio::time::timeout(POLL_TIMEOUT, poll_pages(client, cache, p, repository)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no complete answer within {POLL_TIMEOUT:?}")),
    }
}

async fn poll_pages(
    client: &reqwest::Client,
    cache: &Path,
    p: &PullRequests,
    repository: &str,
) -> Result<Polled, String> {
    let token = token(&p.token)?;
    let mut out = Polled::default();
    for page in 1..=MAX_PAGES {
        let (url, per_page) = page_url(p, repository, page);
        let file = kept_path(cache, &url);
        let kept: Option<Kept> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut req = client.get(&url).header(
            "user-agent",
            concat!("octostage/", env!("CARGO_PKG_VERSION")),
        );
        req = match p.provider {
            Provider::Github => req
                .header("authorization", format!("Bearer {token}"))
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28"),
            Provider::Gitlab => req.header("private-token", &token),
            Provider::Gitea => req.header("authorization", format!("token {token}")),
        };
        if let Some(etag) = kept.as_ref().and_then(|k| k.etag.as_deref()) {
            req = req.header("if-none-match", etag);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}", e.without_url()))?;
        let status = resp.status();
        let items = if status == reqwest::StatusCode::NOT_MODIFIED {
            out.not_modified += 1;
            kept.map(|k| k.pulls)
                .ok_or("304 Not Modified without a kept answer")?
        } else if status.is_success() {
            out.fetched += 1;
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_capped(resp).await?;
            let pulls = parse(p.provider, &body)?;
            keep(
                &file,
                &Kept {
                    etag,
                    pulls: pulls.clone(),
                },
            );
            pulls
        } else {
            return Err(format!("answered {status} to the pull request listing"));
        };
        let last = items.len() < per_page;
        out.pulls.extend(items);
        if last {
            return Ok(out);
        }
    }
    Err(format!(
        "more than {MAX_PAGES} pages of open pull requests; refusing a partial list"
    ))
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!(
                "a page of the answer is larger than {} MiB",
                MAX_BODY >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Keep a page for the next poll; a failure only costs a full answer next time.
fn keep(file: &Path, k: &Kept) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = file.with_extension("tmp");
    if std::fs::write(&tmp, serde_json::to_vec(k).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, file);
    }
}

/// The branches `pulls` give a staging: open pull requests not from a fork, with one of
/// `labels` when any are given.
pub fn branches<'a>(
    pulls: &'a [PullRequest],
    labels: &[String],
) -> std::collections::BTreeSet<&'a str> {
    pulls
        .iter()
        .filter(|p| !p.fork)
        .filter(|p| labels.is_empty() || p.labels.iter().any(|l| labels.contains(l)))
        .map(|p| p.branch.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
