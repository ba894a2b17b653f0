//! The config repository read from a git URL at a ref, or from its default branch.

use crate::util::*;

#[test]
fn config_from_a_git_url_at_its_head_or_a_ref() {
    let tmp = tempfile::tempdir().unwrap();
    let app = GitRepo::init(&tmp.path().join("app"), &days_ago(1));
    app.commit("feature/x", "x", &days_ago(1));
    // A config repository with two commits: the first has env "one", the second "two".
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(cfg.join("t")).unwrap();
    let c = GitRepo { path: cfg.clone() };
    c.git(&["init", "-q", "-b", "main"]);
    c.git(&["config", "user.name", "Ops"]);
    c.git(&["config", "user.email", "ops@example.com"]);
    std::fs::write(
        cfg.join("t/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )
    .unwrap();
    let write = |env: &str| {
        std::fs::write(
            cfg.join("environments.yaml"),
            format!(
                "version: 1\nenvironments:\n  {env}:\n    repository: {}\n    templates: t\n",
                app.path.display()
            ),
        )
        .unwrap();
        c.git(&["add", "-A"]);
        c.git(&["commit", "-q", "-m", env]);
        c.git(&["rev-parse", "HEAD"])
    };
    let first = write("one");
    let second = write("two");
    let url = format!("file://{}", cfg.display());
    let cache = tmp.path().join("cache");
    let plan = |extra: &[&str]| -> serde_json::Value {
        let mut a = vec![
            "plan",
            "--format",
            "json",
            "--config",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        serde_json::from_str(&octostage_ok(&a, 0)).unwrap()
    };
    let head = plan(&[]);
    assert!(
        head["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["environment"] == "two"),
        "{head}"
    );
    let old = plan(&["--config-ref", &first]);
    assert!(
        old["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["environment"] == "one"),
        "{old}"
    );
    let _ = second;
}
