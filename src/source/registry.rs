//! Does an image exist? The OCI distribution API's `HEAD /v2/<name>/manifests/<reference>`,
//! with basic auth or the bearer-token flow a registry's `WWW-Authenticate` names (the token
//! endpoint asked with the same credentials). Plain `http://` only for a registry on loopback.
//! Every request is bounded; errors name the registry's host, never a credential.

use std::time::Duration;

use crate::config::RegistryCredentials;

/// One request to a registry or its token endpoint.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a token answer read at most.
const MAX_TOKEN_ANSWER: usize = 64 << 10;
/// The manifest types asked for: registry 2.8 answers 404 or 400 for a type not listed.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Why a registry could not say whether an image exists. Names the registry's host, never a
/// credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// Not an image reference the registry API takes.
    #[error("image {image:?} {why}")]
    Image {
        /// As written.
        image: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A request failed (its URL left out).
    #[error("{host}: {}", said(source))]
    Request {
        /// The registry, or its token endpoint.
        host: String,
        /// The cause.
        source: std::sync::Arc<reqwest::Error>,
    },
    /// A redirect that cannot or may not be followed.
    #[error("{host}: {why}")]
    Redirect {
        #[allow(missing_docs)]
        host: String,
        /// Why not.
        why: String,
    },
    /// A redirect led to a host that asks for credentials.
    #[error("{host} redirected to a host that asks for credentials; octostage sends them only to {host} and the token endpoint it names")]
    RedirectedChallenge {
        #[allow(missing_docs)]
        host: String,
    },
    /// The registry refused the credentials, or asks for some.
    #[error("{host}: refused ({status}); check `wait_for.credentials`")]
    Refused {
        #[allow(missing_docs)]
        host: String,
        #[allow(missing_docs)]
        status: reqwest::StatusCode,
    },
    /// Another answer than present or missing.
    #[error("{host}: answered {status} for {name}")]
    Status {
        #[allow(missing_docs)]
        host: String,
        #[allow(missing_docs)]
        status: reqwest::StatusCode,
        /// The repository asked for.
        name: String,
    },
    /// Credentials are asked for and none are configured.
    #[error("{host} asks for credentials; set `wait_for.credentials`")]
    NoCredentials {
        #[allow(missing_docs)]
        host: String,
    },
    /// The password could not be read.
    #[error("{host}: {source}")]
    Password {
        #[allow(missing_docs)]
        host: String,
        #[allow(missing_docs)]
        source: crate::config::TokenError,
    },
    /// The authentication challenge or the token answer is not usable.
    #[error("{host}: {why}")]
    Auth {
        #[allow(missing_docs)]
        host: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The challenge names a token endpoint credentials may not go to.
    #[error("{host}: {source}; not sending credentials there")]
    Realm {
        #[allow(missing_docs)]
        host: String,
        #[allow(missing_docs)]
        source: crate::config::endpoint::EndpointError,
    },
    /// No answer in the time all of a pass's checks may take.
    #[error("no answer within {}s", .0.as_secs())]
    Unanswered(Duration),
    /// The token endpoint refused.
    #[error("{host} token endpoint answered {status}")]
    TokenStatus {
        #[allow(missing_docs)]
        host: String,
        #[allow(missing_docs)]
        status: reqwest::StatusCode,
    },
}

fn request_err(host: &str) -> impl Fn(reqwest::Error) -> RegistryError + '_ {
    move |e| RegistryError::Request {
        host: host.to_string(),
        source: std::sync::Arc::new(e.without_url()),
    }
}

/// What the registry says of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// It is there.
    Present,
    /// No such manifest (yet).
    Missing,
}

/// The API host of a registry as an image names it: Docker Hub's names are one.
pub fn canonical_registry(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".into(),
        h => h.to_string(),
    }
}

/// An image reference taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// The repository (`library/nginx`).
    pub name: String,
    /// The tag or `sha256:` digest.
    pub reference: String,
}

impl ImageRef {
    /// Parse `[registry/]name[:tag][@digest]` as Docker does (no registry: Docker Hub).
    pub fn parse(image: &str) -> Result<ImageRef, RegistryError> {
        let bad = |why| RegistryError::Image {
            image: image.to_string(),
            why,
        };
        if image.is_empty()
            || image.len() > 512
            || image.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("is not an image reference"));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (image, None),
        };
        let (first, remainder) = rest.split_once('/').unwrap_or(("", rest));
        let (registry, path) = if !first.is_empty()
            && (first.contains('.') || first.contains(':') || first == "localhost")
        {
            (canonical_registry(first), remainder.to_string())
        } else {
            ("registry-1.docker.io".to_string(), rest.to_string())
        };
        let (name, tag) = match path.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_string(), Some(t.to_string())),
            _ => (path.clone(), None),
        };
        let name = if registry == "registry-1.docker.io" && !name.contains('/') {
            format!("library/{name}")
        } else {
            name
        };
        let name_ok = !name.is_empty()
            && name.split('/').all(|s| {
                // Docker's grammar: [a-z0-9]+ joined by `.`, `_`, `__` or `-`s.
                s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && !s.contains("..")
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !name_ok {
            return Err(bad("has a repository name the registry API does not take"));
        }
        let reference = match (digest, tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t,
            (None, None) => "latest".to_string(),
        };
        let ref_ok = reference.len() <= 128
            && reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c));
        if !ref_ok {
            return Err(bad("has a tag or digest the registry API does not take"));
        }
        Ok(ImageRef {
            registry,
            name,
            reference,
        })
    }

    fn loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    }

    /// The manifest URL.
    pub fn manifest_url(&self) -> String {
        let scheme = if self.loopback() { "http" } else { "https" };
        format!(
            "{scheme}://{}/v2/{}/manifests/{}",
            self.registry, self.name, self.reference
        )
    }
}

/// Redirects are followed by hand ([`head_following`]): the client follows none, so that no
/// credential and no challenge crosses to a host the configuration did not name.
static CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client without custom TLS builds")
});

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// An answer to a manifest `HEAD`, and whether the registry itself gave it (no redirect).
struct Answer {
    resp: reqwest::Response,
    from_registry: bool,
}

/// `HEAD url` with `auth`, following redirects without it: a redirect names a host the
/// configuration did not, which gets neither the credentials nor a say in where they go.
async fn head_following(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    host: &str,
) -> Result<Answer, RegistryError> {
    let redirect = |why: String| RegistryError::Redirect {
        host: host.to_string(),
        why,
    };
    let mut url = reqwest::Url::parse(url).map_err(|_| redirect("not a URL".into()))?;
    for hop in 0..=MAX_REDIRECTS {
        let mut req = client.head(url.clone()).header("accept", ACCEPT);
        if let (0, Some(a)) = (hop, auth) {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.map_err(request_err(host))?;
        if !resp.status().is_redirection() {
            return Ok(Answer {
                resp,
                from_registry: hop == 0,
            });
        }
        let next = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| redirect("a redirect without a usable Location".into()))?;
        if !matches!(next.scheme(), "https" | "http") {
            return Err(redirect(format!("a redirect to a {} URL", next.scheme())));
        }
        let mut next = next;
        // Credentials a redirect carries in its URL are not sent either.
        let _ = next.set_username("");
        let _ = next.set_password(None);
        url = next;
    }
    Err(redirect(format!("more than {MAX_REDIRECTS} redirects")))
}

/// A `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` header's parameters.
pub fn bearer_params(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((k.trim().to_ascii_lowercase(), v.to_string()));
        s = next.trim_start_matches([',', ' ']);
    }
    Some(out)
}

/// What a failed request says: a timeout as one, never reqwest's bare words.
fn said(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.to_string()
    }
}

/// Ask the registry whether `image` exists.
pub async fn check(
    image: &str,
    creds: Option<&RegistryCredentials>,
) -> Result<Presence, RegistryError> {
    let r = ImageRef::parse(image)?;
    let url = r.manifest_url();
    let host = r.registry.clone();
    let client = &*CLIENT;
    let first = head_following(client, &url, None, &host).await?;
    let resp = if first.resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        if !first.from_registry {
            return Err(RegistryError::RedirectedChallenge { host });
        }
        let challenge = first
            .resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let auth = authorization(client, &challenge, creds, &host).await?;
        head_following(client, &url, Some(&auth), &host).await?.resp
    } else {
        first.resp
    };
    match resp.status().as_u16() {
        200 => Ok(Presence::Present),
        404 => Ok(Presence::Missing),
        401 | 403 => Err(RegistryError::Refused {
            host,
            status: resp.status(),
        }),
        _ => Err(RegistryError::Status {
            host,
            status: resp.status(),
            name: r.name,
        }),
    }
}

/// The `Authorization` header a challenge asks for.
async fn authorization(
    client: &reqwest::Client,
    challenge: &str,
    creds: Option<&RegistryCredentials>,
    host: &str,
) -> Result<String, RegistryError> {
    use base64::Engine;
    let auth = |why| RegistryError::Auth {
        host: host.to_string(),
        why,
    };
    let basic = |c: &RegistryCredentials| -> Result<String, RegistryError> {
        let password = c
            .password
            .read()
            .map_err(|source| RegistryError::Password {
                host: host.to_string(),
                source,
            })?;
        let raw = format!("{}:{password}", c.username);
        Ok(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    };
    if challenge
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("basic")
    {
        let c = creds.ok_or_else(|| RegistryError::NoCredentials {
            host: host.to_string(),
        })?;
        return basic(c);
    }
    let params = bearer_params(challenge)
        .ok_or_else(|| auth("an authentication challenge octostage does not know"))?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let realm = get("realm").ok_or_else(|| auth("a bearer challenge without a realm"))?;
    let realm = crate::config::endpoint::credential_endpoint(&realm).map_err(|source| {
        RegistryError::Realm {
            host: host.to_string(),
            source,
        }
    })?;
    let mut req = client.get(realm);
    let mut query = Vec::new();
    for k in ["service", "scope"] {
        if let Some(v) = get(k) {
            query.push((k.to_string(), v));
        }
    }
    req = req.query(&query);
    if let Some(c) = creds {
        req = req.header("authorization", basic(c)?);
    }
    let endpoint = format!("{host} token endpoint");
    let mut resp = req.send().await.map_err(request_err(&endpoint))?;
    if !resp.status().is_success() {
        return Err(RegistryError::TokenStatus {
            host: host.to_string(),
            status: resp.status(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(request_err(&endpoint))? {
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
            return Err(auth("the token endpoint's answer is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| auth("the token endpoint's answer is not JSON"))?;
    let token = v["token"]
        .as_str()
        .or_else(|| v["access_token"].as_str())
        .ok_or_else(|| auth("no token in the token endpoint's answer"))?;
    Ok(format!("Bearer {token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_parse_as_docker_reads_them() {
        let r = ImageRef::parse("registry.example.com/shop/web:1a2b3c4").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str(), r.reference.as_str()),
            ("registry.example.com", "shop/web", "1a2b3c4")
        );
        assert!(r.manifest_url().starts_with("https://"));
        assert_eq!(
            ImageRef::parse("docker.io/library/nginx:1")
                .unwrap()
                .registry,
            "registry-1.docker.io"
        );
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str(), r.reference.as_str()),
            ("registry-1.docker.io", "library/nginx", "latest")
        );
        let r = ImageRef::parse("127.0.0.1:5000/a/b@sha256:abc").unwrap();
        assert_eq!(r.reference, "sha256:abc");
        assert!(r
            .manifest_url()
            .starts_with("http://127.0.0.1:5000/v2/a/b/manifests/"));
        for bad in [
            "",
            "a b",
            "Shop/Web:1",
            "x.io/a/../b:1",
            "x.io/a:t?x=1",
            "x.io/a:$(id)",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_challenges_are_read() {
        let p = bearer_params(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#).unwrap();
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[2].1, "repository:library/nginx:pull");
        assert!(bearer_params("Basic realm=x").is_none());
    }
}
