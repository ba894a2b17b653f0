//! Branch listings from real repositories through the cache: created, advanced, deleted,
//! pinned commits, failures.

use octostage::config::Credentials;
use octostage::source::RepoCache;

use crate::util::*;

#[test]
fn listing_follows_the_repository_incrementally() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(&tmp.path().join("app"), "2026-11-01T10:00:00Z");
    let a = repo.commit("feature/a", "Add a", "2026-11-02T10:00:00Z");
    repo.git(&["tag", "v1", "main"]);
    let cache = RepoCache::new(tmp.path().join("cache"));
    let url = repo.path.to_str().unwrap();

    let l = cache
        .list(url, &Credentials::default(), &["v1".to_string()])
        .unwrap();
    let names: Vec<&str> = l.branches.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["feature/a", "main"]);
    assert_eq!(l.branches[0].commit.sha, a);
    assert_eq!(
        l.branches[0].commit.time.to_rfc3339(),
        "2026-11-02T10:00:00+00:00"
    );
    assert_eq!(l.branches[0].commit.subject, "Add a");
    assert_eq!(l.branches[0].commit.author, "Test Dev");
    assert_eq!(l.pins["v1"].as_ref().unwrap().subject, "Initial commit");

    let a2 = repo.commit("feature/a", "More a", "2026-11-03T10:00:00Z");
    repo.commit("feature/b", "Add b", "2026-11-03T11:00:00Z");
    repo.delete_branch("main");
    let l = cache.list(url, &Credentials::default(), &[]).unwrap();
    let heads: Vec<(&str, &str)> = l
        .branches
        .iter()
        .map(|b| (b.name.as_str(), b.commit.sha.as_str()))
        .collect();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0], ("feature/a", a2.as_str()));
    assert_eq!(heads[1].0, "feature/b");
    // The mirror's own refs follow the remote: they are what the next fetch negotiates with.
    let mirror = GitRepo {
        path: cache.mirror_dir(url),
    };
    let refs = mirror.git(&["for-each-ref", "--format=%(refname) %(objectname)"]);
    let refs: Vec<&str> = refs.lines().collect();
    assert_eq!(refs.len(), 3, "{refs:?}");
    assert!(
        refs.contains(&format!("refs/heads/feature/a {a2}").as_str()),
        "{refs:?}"
    );
    assert!(
        refs.iter().any(|r| r.starts_with("refs/tags/v1 ")),
        "{refs:?}"
    );
    assert!(
        !refs.iter().any(|r| r.starts_with("refs/heads/main ")),
        "{refs:?}"
    );
    assert!(
        cache.mirror_dir(url).join("HEAD").exists(),
        "mirrored in the cache"
    );
}

#[test]
fn a_file_url_works_and_a_missing_repository_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(&tmp.path().join("app"), "2026-11-01T10:00:00Z");
    let cache = RepoCache::new(tmp.path().join("cache"));
    let url = format!("file://{}", repo.path.display());
    assert_eq!(
        cache
            .list(&url, &Credentials::default(), &[])
            .unwrap()
            .branches
            .len(),
        1
    );
    let missing = tmp.path().join("nope");
    let e = cache
        .list(missing.to_str().unwrap(), &Credentials::default(), &[])
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let l = cache
        .list(
            &url,
            &Credentials::default(),
            &["0123456789abcdef0123456789abcdef01234567".into()],
        )
        .unwrap();
    assert!(l.pins.values().next().unwrap().is_err());
}
