//! Tests of `hooks`.

use super::*;

fn secrets() -> HookSecrets {
    HookSecrets {
        github: Secret::new("s3cret"),
        gitea: Secret::new("s3cret"),
        gitlab: Secret::new("tok"),
        generic: Secret::new("bearer"),
    }
}

fn sign(body: &[u8]) -> String {
    crate::signing::hmac_sha256(b"s3cret", &[body])
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

const PUSH: &[u8] = br#"{"ref":"refs/heads/a","repository":{"clone_url":"https://github.com/org/app.git","ssh_url":"git@github.com:org/app.git"}}"#;

#[test]
fn a_github_push_is_taken_only_with_the_right_signature() {
    let sig = format!("sha256={}", sign(PUSH));
    let ok = headers(&[("x-hub-signature-256", &sig), ("x-github-event", "push")]);
    assert!(
        matches!(verify("github", &secrets(), &ok, PUSH), Ok(Delivery::Changed(u)) if u.len() == 2)
    );
    let unsigned = headers(&[("x-github-event", "push")]);
    assert_eq!(
        verify("github", &secrets(), &unsigned, PUSH),
        Err(HookError::Unauthorized)
    );
    let wrong = headers(&[
        ("x-hub-signature-256", "sha256=00ff"),
        ("x-github-event", "push"),
    ]);
    assert_eq!(
        verify("github", &secrets(), &wrong, PUSH),
        Err(HookError::Unauthorized)
    );
    // The signature of another body does not do.
    let other = headers(&[
        ("x-hub-signature-256", &format!("sha256={}", sign(b"{}"))),
        ("x-github-event", "push"),
    ]);
    assert_eq!(
        verify("github", &secrets(), &other, PUSH),
        Err(HookError::Unauthorized)
    );
    let ping = headers(&[("x-hub-signature-256", &sig), ("x-github-event", "ping")]);
    assert!(matches!(
        verify("github", &secrets(), &ping, PUSH),
        Ok(Delivery::Ignore(_))
    ));
    // A pull request labelled or closed changes `branches.from: pull_requests`.
    let pr = headers(&[
        ("x-hub-signature-256", &sig),
        ("x-github-event", "pull_request"),
    ]);
    assert!(!matches!(
        verify("github", &secrets(), &pr, PUSH),
        Ok(Delivery::Ignore(_)) | Err(_)
    ));
    // Without a secret the provider is off, whatever is sent.
    assert_eq!(
        verify("github", &HookSecrets::default(), &ok, PUSH),
        Err(HookError::Disabled("github"))
    );
}

#[test]
fn gitea_gitlab_and_generic_are_checked_their_own_way() {
    let gitea = headers(&[
        ("x-gitea-signature", &sign(PUSH)),
        ("x-gitea-event", "push"),
    ]);
    assert!(matches!(
        verify("gitea", &secrets(), &gitea, PUSH),
        Ok(Delivery::Changed(_))
    ));
    let body = br#"{"project":{"git_http_url":"https://gitlab.example.com/g/app.git"}}"#;
    let gl = headers(&[("x-gitlab-token", "tok"), ("x-gitlab-event", "Push Hook")]);
    assert_eq!(
        verify("gitlab", &secrets(), &gl, body),
        Ok(Delivery::Changed(vec![
            "https://gitlab.example.com/g/app.git".into()
        ]))
    );
    let bad = headers(&[("x-gitlab-token", "tok2"), ("x-gitlab-event", "Push Hook")]);
    assert_eq!(
        verify("gitlab", &secrets(), &bad, body),
        Err(HookError::Unauthorized)
    );
    for scheme in ["bearer", "BEARER"] {
        let g = headers(&[("authorization", &format!("{scheme} bearer"))]);
        assert!(
            verify("generic", &secrets(), &g, br#"{"repository":"/a"}"#).is_ok(),
            "{scheme}"
        );
    }
    let g = headers(&[("authorization", "Bearer bearer")]);
    assert!(matches!(
        verify(
            "generic",
            &secrets(),
            &g,
            br#"{"repository":"/srv/app.git"}"#
        ),
        Ok(Delivery::Changed(_))
    ));
    assert!(matches!(
        verify("generic", &secrets(), &g, b"not json"),
        Err(HookError::Malformed(_))
    ));
    assert!(matches!(
        verify("bitbucket", &secrets(), &g, b"{}"),
        Err(HookError::Unknown(_))
    ));
}

#[test]
fn the_forms_of_one_repository_compare_equal_and_others_do_not() {
    let n = normalize_repository;
    assert_eq!(n("https://github.com/org/app.git"), "github.com/org/app");
    assert_eq!(n("git@github.com:org/app.git"), "github.com/org/app");
    assert_eq!(n("ssh://git@GitHub.com:22/org/app"), "github.com/org/app");
    assert_eq!(
        n("https://user:tok@github.com/org/app/"),
        "github.com/org/app"
    );
    assert_eq!(n("/srv/git/app.git"), "/srv/git/app");
    assert_eq!(n("file:///srv/git/app.git"), "/srv/git/app");
    for same in [
        "/srv/git/app/",
        "/srv//git/./app",
        "/srv/x/../git/app.git/",
        "file:///srv/git/app/",
    ] {
        assert_eq!(n(same), "/srv/git/app", "{same}");
    }
    assert_ne!(
        n("https://github.com/org/app"),
        n("https://github.com/org/app2")
    );
    assert_ne!(
        n("https://github.com/org/app"),
        n("https://gitlab.com/org/app")
    );
}
