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

/// An application repository with `main` and `feature/x`, and a config repository for it
/// (committed, then served as `cfg.git` from `repos`).
fn private_setup(tmp: &std::path::Path) -> (GitRepo, std::path::PathBuf) {
    let app = GitRepo::init(&tmp.join("app"), &days_ago(1));
    app.commit("feature/x", "x", &days_ago(1));
    let src = tmp.join("cfgsrc");
    write_config(&src, &app.path);
    let c = GitRepo { path: src.clone() };
    c.git(&["init", "-q", "-b", "main"]);
    c.git(&["config", "user.name", "Ops"]);
    c.git(&["config", "user.email", "ops@example.com"]);
    c.git(&["add", "-A"]);
    c.git(&["commit", "-q", "-m", "config"]);
    // The application repository is read by the CGI's user too (a local path).
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(tmp)
        .status();
    let cfg = crate::git_servers::bare(&src, &tmp.join("repos"), "cfg");
    (app, cfg)
}

/// Every file name under `dir`, and every file's bytes: where a secret must not be.
fn everything_under(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in walkdir(dir) {
        out.extend(e.display().to_string().as_bytes());
        if let Ok(bytes) = std::fs::read(&e) {
            out.extend(bytes);
        }
    }
    out
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_private_config_repository_over_https_is_read_with_a_token_and_wrong_credentials_freeze_deletions(
) {
    const TOKEN: &str = "cfg-token-7f3a9c2e51";
    let tmp = tempfile::tempdir().unwrap();
    let (app, _) = private_setup(tmp.path());
    let server_dir = tmp.path().join("https");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server =
        crate::git_servers::HttpsGit::start(&server_dir, &tmp.path().join("repos"), "ops", TOKEN);
    let url = server.url("cfg");
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out");
    let cert = server.cert.display().to_string();
    let run = |env: &[(&str, &str)]| {
        let target = format!("dir:{}", out.display());
        let mut e = vec![
            ("SSL_CERT_FILE", cert.as_str()),
            ("OCTOSTAGE_CONFIG_USERNAME", "ops"),
        ];
        e.extend_from_slice(env);
        let o = octostage_env(
            &[
                "run",
                "--once",
                "--config",
                &url,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--target",
                &target,
            ],
            None,
            &e,
        );
        let (stdout, stderr) = texts(&o);
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "the token was printed"
        );
        (o.status.code(), stdout, stderr)
    };
    // Without credentials: one error that says where they go.
    let (code, _, err) = run(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("OCTOSTAGE_CONFIG_TOKEN"), "{err}");
    // The token from the environment.
    let (code, stdout, err) = run(&[("OCTOSTAGE_CONFIG_TOKEN", TOKEN)]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(
        out.join("app-main").is_dir() && out.join("app-feature-x").is_dir(),
        "{stdout}"
    );
    // The branch goes; a wrong token fails the source, which freezes deletions.
    app.delete_branch("feature/x");
    let (code, stdout, err) = run(&[("OCTOSTAGE_CONFIG_TOKEN", "wrong-token")]);
    assert_eq!(code, Some(1), "{stdout}\n{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(
        out.join("app-feature-x").is_dir(),
        "deleted on a failed config source"
    );
    // The token from a file: the deletion goes ahead.
    let file = tmp.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let (code, stdout, err) = run(&[("OCTOSTAGE_CONFIG_TOKEN_FILE", file.to_str().unwrap())]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(!out.join("app-feature-x").exists(), "{stdout}");
    let all = everything_under(tmp.path().join("cache").as_path());
    assert!(
        !all.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the token is in the cache"
    );
}

#[test]
fn a_private_config_repository_over_ssh_is_read_with_a_key_and_a_server_not_in_known_hosts_is_refused(
) {
    let tmp = tempfile::tempdir().unwrap();
    let (app, cfg) = private_setup(tmp.path());
    let ssh_dir = tmp.path().join("ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let ssh = crate::git_servers::SshGit::start(&ssh_dir);
    let url = ssh.url(&cfg);
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out");
    let key = ssh.client_key.display().to_string();
    let run = |known_hosts: &std::path::Path, key: &str| {
        let target = format!("dir:{}", out.display());
        let o = octostage_env(
            &[
                "run",
                "--once",
                "--config",
                &url,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--target",
                &target,
            ],
            None,
            &[
                ("OCTOSTAGE_CONFIG_SSH_KEY_FILE", key),
                (
                    "OCTOSTAGE_CONFIG_KNOWN_HOSTS",
                    known_hosts.to_str().unwrap(),
                ),
            ],
        );
        let (stdout, stderr) = texts(&o);
        (o.status.code(), stdout, stderr)
    };
    let (code, stdout, err) = run(&ssh.known_hosts, &key);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(out.join("app-feature-x").is_dir(), "{stdout}");
    app.delete_branch("feature/x");
    // A server the file does not list: refused before anything is sent.
    let empty = tmp.path().join("known_hosts.empty");
    std::fs::write(&empty, "").unwrap();
    let (code, _, err) = run(&empty, &key);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not in the known_hosts file"), "{err}");
    // The host listed with another key: someone in the way.
    let other = tmp.path().join("other_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut f = other_pub.split_whitespace();
    let spoofed = tmp.path().join("known_hosts.spoofed");
    std::fs::write(
        &spoofed,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            ssh.port,
            f.next().unwrap(),
            f.next().unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = run(&spoofed, &key);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("does not list for it"), "{err}");
    // A key the server does not let in.
    let (code, _, err) = run(&ssh.known_hosts, other.to_str().unwrap());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("authentication failed") || err.contains("authenticat"),
        "{err}"
    );
    assert!(
        out.join("app-feature-x").is_dir(),
        "deleted on a failed config source"
    );
    let (code, stdout, err) = run(&ssh.known_hosts, &key);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(!out.join("app-feature-x").exists(), "{stdout}");
}
