//! Commit statuses on GitHub, GitLab and Gitea: a staging's state and first link on the commit
//! it runs, one status per staging (its name is the context), set on each transition. Pure
//! here (what to send where); [`super::deliver`] sends it with the token, read only then.

use serde_json::{json, Value};

use super::Payload;
use crate::config::{CommitStatus, EventKind, Provider};

/// GitHub's limit on a status description.
const MAX_DESCRIPTION: usize = 140;

/// A request setting one status: where, and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRequest {
    /// The endpoint.
    pub url: String,
    /// The body.
    pub body: Value,
}

/// What `event` sets: the state (in the provider's words) and a description; `None` for an
/// event that changes nothing a status shows (`expiring`). Every status set is one that
/// resolves: a staging applied asleep (a new commit while it sleeps) is not `pending` ("Deploying"
/// would wait for a health that never comes while it sleeps) but done, saying when it wakes.
fn state(provider: Provider, p: &Payload) -> Option<(&'static str, String)> {
    use crate::plan::health::Lifecycle;
    let asleep = matches!(p.state, Some(Lifecycle::Sleeping(_) | Lifecycle::Expired));
    let (gh, gl, what) = match p.event {
        EventKind::Created | EventKind::Updated if asleep => (
            "success",
            "success",
            match &p.wakes_at {
                Some(w) => format!("Asleep: wakes at {w}"),
                None => "Asleep: until woken (octostage wake)".into(),
            },
        ),
        EventKind::Created | EventKind::Updated | EventKind::Waking => {
            ("pending", "running", "Deploying".to_string())
        }
        EventKind::Healthy => ("success", "success", "Running".into()),
        EventKind::Failing => ("failure", "failed", format!("Failing: {}", p.reason)),
        EventKind::Sleeping => ("success", "success", format!("Asleep: {}", p.reason)),
        EventKind::Expired => ("success", "success", format!("Expired: {}", p.reason)),
        EventKind::Deleted => ("success", "canceled", format!("Deleted: {}", p.reason)),
        EventKind::Expiring => return None,
    };
    let state = match provider {
        Provider::Github | Provider::Gitea => gh,
        Provider::Gitlab => gl,
    };
    Some((state, what))
}

fn truncated(s: &str) -> String {
    if s.chars().count() <= MAX_DESCRIPTION {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_DESCRIPTION - 1).collect();
    out.push('…');
    out
}

/// The request setting `p`'s status on `repository`, if the event sets one and there is a
/// commit.
pub fn request(c: &CommitStatus, repository: &str, p: &Payload) -> Option<StatusRequest> {
    let sha = p.commit.as_deref()?;
    let (state, description) = state(c.provider, p)?;
    let context = format!("{}/{}", c.context, p.staging);
    // A deleted staging's link leads nowhere.
    let link = p.links.values().next().filter(|l| {
        p.event != EventKind::Deleted && (l.starts_with("https://") || l.starts_with("http://"))
    });
    let description = truncated(&description);
    let (url, mut body) = match c.provider {
        Provider::Github | Provider::Gitea => (
            format!("{}/repos/{repository}/statuses/{sha}", c.api_url),
            json!({"state": state, "description": description, "context": context}),
        ),
        Provider::Gitlab => (
            format!(
                "{}/projects/{}/statuses/{sha}",
                c.api_url,
                repository.replace('/', "%2F")
            ),
            json!({"state": state, "description": description, "name": context}),
        ),
    };
    if let Some(l) = link {
        body["target_url"] = l.clone().into();
    }
    Some(StatusRequest { url, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: EventKind, reason: &str) -> Payload {
        Payload {
            event,
            staging: "shop-a".into(),
            environment: "shop".into(),
            branch: "a".into(),
            static_name: None,
            commit: Some("a".repeat(40)),
            state: None,
            reason: reason.into(),
            at: "2026-11-26T12:00:00Z".into(),
            delete_at: None,
            wakes_at: None,
            links: [("web".to_string(), "https://shop-a.example.com".to_string())]
                .into_iter()
                .collect(),
            text: String::new(),
            id: "1".into(),
        }
    }

    #[test]
    fn statuses_name_the_staging_keep_to_the_limits_and_drop_a_dead_link() {
        let c = CommitStatus {
            provider: Provider::Gitlab,
            api_url: "https://gitlab.example.com/api/v4".into(),
            repository: None,
            token: crate::config::TokenSource::Env("T".into()),
            context: "octostage".into(),
        };
        let r = request(
            &c,
            "group/sub/shop",
            &payload(EventKind::Failing, &"x".repeat(500)),
        )
        .unwrap();
        assert!(r.url.starts_with(
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fshop/statuses/aaaa"
        ));
        assert_eq!(r.body["state"], "failed");
        assert_eq!(r.body["name"], "octostage/shop-a");
        assert_eq!(r.body["description"].as_str().unwrap().chars().count(), 140);
        let gone = request(&c, "g/s", &payload(EventKind::Deleted, "branch deleted")).unwrap();
        assert_eq!(gone.body["state"], "canceled");
        assert!(gone.body.get("target_url").is_none());
        assert!(request(&c, "g/s", &payload(EventKind::Expiring, "soon")).is_none());
    }

    #[test]
    fn a_commit_applied_asleep_is_never_left_pending() {
        let c = CommitStatus {
            provider: Provider::Github,
            api_url: "https://api.github.com".into(),
            repository: None,
            token: crate::config::TokenSource::Env("T".into()),
            context: "octostage".into(),
        };
        let mut p = payload(EventKind::Updated, "new commit");
        assert_eq!(request(&c, "a/b", &p).unwrap().body["state"], "pending");
        p.state = Some(crate::plan::health::Lifecycle::Sleeping(
            crate::plan::SleepCause::Schedule,
        ));
        p.wakes_at = Some("2026-11-27T07:00:00Z".into());
        let r = request(&c, "a/b", &p).unwrap();
        assert_eq!(r.body["state"], "success");
        assert_eq!(
            r.body["description"],
            "Asleep: wakes at 2026-11-27T07:00:00Z"
        );
        p.wakes_at = None;
        let r = request(&c, "a/b", &p).unwrap();
        assert!(r.body["description"]
            .as_str()
            .unwrap()
            .contains("until woken"));
    }

    #[test]
    fn repositories_are_read_from_every_url_form() {
        for (url, want) in [
            ("https://github.com/acme/shop.git", Some("acme/shop")),
            (
                "https://gitlab.example.com/group/sub/shop",
                Some("group/sub/shop"),
            ),
            ("ssh://git@github.com/acme/shop.git", Some("acme/shop")),
            ("git@github.com:acme/shop.git", Some("acme/shop")),
            ("/srv/git/shop", None),
            ("https://github.com/../etc", None),
        ] {
            assert_eq!(crate::source::repository_of(url).as_deref(), want, "{url}");
        }
    }
}
