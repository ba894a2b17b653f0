//! Branch names, commit messages and URLs are untrusted input: a branch or a commit never
//! becomes code, structure or time, and credentials are never repeated. Each test names the
//! finding of a review it covers.

use crate::util::*;

fn plan_json(d: &DirRun) -> serde_json::Value {
    serde_json::from_str(&texts(&d.run(&["plan", "--format", "json"])).0).unwrap()
}

/// Finding 5: a branch name interpolated into `sh -c` ran as code.
#[test]
fn an_unquoted_value_in_a_shell_script_is_refused_with_the_fix() {
    let d = DirRun::new(&days_ago(1));
    d.config(
        "    command: [\"sh\", \"-c\", \"echo {{ branch.name }} >> log; cat cm.yaml\"]\n",
        "",
    );
    let r = d.validate();
    assert_eq!(r.status.code(), Some(1));
    let (_, err) = texts(&r);
    assert!(
        err.contains("interpolates `{{ branch.name }}` unquoted")
            && err.contains("`{{ branch.name | shell_quote }}`"),
        "{err}"
    );
}

#[test]
fn a_quoted_branch_name_stays_data_however_it_is_spelled() {
    let d = DirRun::new(&days_ago(1));
    let evil = "feature/$(touch${IFS}pwned)";
    d.repo.commit(evil, "w", &days_ago(1));
    std::fs::write(
        d.cfg.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )
    .unwrap();
    std::fs::remove_dir_all(d.cfg.join("t")).unwrap();
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    command: [\"sh\", \"-c\", \"echo {{{{ branch.name | shell_quote }}}} >> log; cat cm.yaml\"]\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
    d.run_ok(&["run", "--once"]);
    assert!(!d.cfg.join("pwned").exists(), "the branch name ran as code");
    let log = std::fs::read_to_string(d.cfg.join("log")).unwrap();
    assert!(log.lines().any(|l| l == evil), "{log}");
}

/// A branch name ran as code behind a wrapper program (`timeout 30 sh -c`) or inside double
/// quotes around `shell_quote`, and `validate` said valid.
#[test]
fn wrapped_shells_and_quoting_tricks_are_refused() {
    let d = DirRun::new(&days_ago(1));
    for cmd in [
        r#"[timeout, "30", sh, -c, "echo {{ branch.name | shell_quote }}"]"#,
        r#"[nice, sh, -c, "echo {{ branch.name }}"]"#,
        r#"[xargs, sh, -c, "{{ commit.subject }}"]"#,
        r#"[sh, -c, "echo \"{{ branch.name | shell_quote }}\""]"#,
        r#"[sh, -c, "eval echo {{ branch.name | shell_quote }}"]"#,
        r#"[python3, -c, "print('{{ commit.author }}')"]"#,
    ] {
        d.config(&format!("    command: {cmd}\n"), "");
        let r = d.validate();
        assert_eq!(r.status.code(), Some(1), "{cmd}: {:?}", texts(&r));
        let err = texts(&r).1;
        assert!(
            err.contains("anyone who can push") && err.contains("OCTOSTAGE_"),
            "{cmd}: {err}"
        );
    }
    // Safe names anywhere; values that carry a git value count as one.
    d.config(
        "    command: [timeout, \"30\", sh, render.sh, \"{{ staging }}\", \"{{ branch.slug }}\", \"{{ commit.short_sha }}\"]\n",
        "",
    );
    assert!(d.validate().status.success(), "{:?}", texts(&d.validate()));
    d.config(
        "    command: [helm, template, \"{{ values.who }}\"]\n    values:\n      who: \"{{ branch.name }}\"\n",
        "",
    );
    assert_eq!(d.validate().status.code(), Some(1));
}

/// Finding 5: render commands inherited octostage's whole environment.
#[test]
fn render_commands_get_an_explicit_environment() {
    let d = DirRun::new(&days_ago(1));
    std::fs::write(
        d.cfg.join("render.sh"),
        "cat <<EOF\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: env\ndata:\n  token: \"${SHOP_GIT_TOKEN:-unset}\"\n  kubeconfig: \"${KUBECONFIG:-unset}\"\n  allowed: \"${HELM_CACHE_HOME:-unset}\"\n  branch: \"$OCTOSTAGE_BRANCH\"\nEOF\n",
    )
    .unwrap();
    d.config(
        "    command: [\"sh\", \"render.sh\"]\n    render_env: [HELM_CACHE_HOME]\n",
        "",
    );
    let r = octostage_env(
        &d.args(&["run", "--once"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
        &[
            ("SHOP_GIT_TOKEN", "s3cr3t-token"),
            ("KUBECONFIG", "/secret/kubeconfig"),
            ("HELM_CACHE_HOME", "/helm-cache"),
        ],
    );
    assert!(r.status.success(), "{:?}", texts(&r));
    let cm = std::fs::read_to_string(d.out.join("app-main/configmap-env.yaml")).unwrap();
    assert!(
        cm.contains("token: unset") && cm.contains("kubeconfig: unset"),
        "{cm}"
    );
    assert!(
        cm.contains("allowed: /helm-cache") && cm.contains("branch: main"),
        "{cm}"
    );
    // A token variable may not be allowed in.
    d.config(
        "    command: [\"sh\", \"render.sh\"]\n    render_env: [KUBECONFIG]\n",
        "",
    );
    let (_, err) = texts(&d.validate());
    assert!(err.contains("KUBECONFIG holds credentials"), "{err}");
    d.config(
        "    command: [\"sh\", \"render.sh\"]\n    render_env: [OCTOSTAGE_TARGET]\n",
        "",
    );
    let (_, err) = texts(&d.validate());
    assert!(err.contains("one of octostage's own settings"), "{err}");
}

/// Finding 7: credentials in URL forms that were accepted and then printed.
#[test]
fn credentials_in_urls_are_refused_and_never_repeated() {
    let d = DirRun::new(&days_ago(1));
    for url in [
        "https://SECRETTOKEN1@git.example.com/a/b.git",
        "https://git.example.com/a/b.git?access_token=SECRETTOKEN1",
        "git:SECRETTOKEN1@git.example.com:a/b.git",
        "https://user:SECRETTOKEN1@git.example.com/a/b.git",
    ] {
        let r = octostage(&[
            "validate",
            "--config",
            d.cfg.to_str().unwrap(),
            "--repository",
            &format!("app={url}"),
        ]);
        let (out, err) = texts(&r);
        assert_eq!(r.status.code(), Some(1), "{url}: {out}{err}");
        assert!(err.contains("repository URL refused"), "{url}: {err}");
        assert!(
            !out.contains("SECRETTOKEN1") && !err.contains("SECRETTOKEN1"),
            "{url}: {err}"
        );
    }
    // A token over plain http.
    std::fs::write(
        d.cfg.join("environments.yaml"),
        "version: 1\nenvironments:\n  app:\n    repository:\n      url: http://git.example.com/a.git\n      credentials: {token_env: T}\n    templates: t\n",
    )
    .unwrap();
    let (_, err) = texts(&d.validate());
    assert!(err.contains("plain http://"), "{err}");
    // A password in --config.
    let r = octostage(&[
        "validate",
        "--config",
        "https://u:SECRETTOKEN1@127.0.0.1:1/c.git",
    ]);
    let (out, err) = texts(&r);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        !out.contains("SECRETTOKEN1") && !err.contains("SECRETTOKEN1"),
        "{err}"
    );
}

/// Branch names git refuses or that are not UTF-8 are skipped and named, never fatal.
#[test]
fn hostile_branch_names_are_skipped_and_reported() {
    let d = DirRun::new(&days_ago(1));
    let sha = d.repo.git(&["rev-parse", "main"]);
    d.repo
        .git(&["update-ref", "refs/heads/--upload-pack=x", &sha]);
    let bad = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"refs/heads/bad\xff");
    std::process::Command::new("git")
        .arg("update-ref")
        .arg(bad)
        .arg(&sha)
        .current_dir(&d.repo.path)
        .status()
        .unwrap();
    let out = d.run_ok(&["run", "--once"]);
    assert!(out.contains("\"--upload-pack=x\" gets no staging"), "{out}");
    assert!(
        // git2 gives the advertised name only as UTF-8, so it is shown as "?".
        out.contains("\"?\" gets no staging: its name is not UTF-8"),
        "{out}"
    );
    assert_eq!(d.stagings(), 1);
}

/// A committer date in the future made a staging practically permanent and won the cap.
#[test]
fn a_future_committer_date_buys_no_time() {
    let d = DirRun::new(&days_ago(1));
    d.repo
        .commit("feature/forever", "w", "2099-01-01T00:00:00Z");
    let plan = plan_json(&d);
    let s = plan["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["branch"] == "feature/forever")
        .unwrap();
    let expires: chrono::DateTime<chrono::Utc> = s["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        expires < chrono::Utc::now() + chrono::Duration::days(8),
        "{s}"
    );
}

/// A commit subject reached YAML through `values` (no warning) and added a hostNetwork pod
/// spec to the rendered object.
#[test]
fn a_commit_subject_that_would_become_yaml_structure_fails_its_staging() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit(
        "feature/evil",
        "hi}}, spec: {hostNetwork: true, containers: [{name: pwn, image: evil}]}, x: {y: {z: w",
        &days_ago(1),
    );
    d.template(
        "cm.yaml",
        "{apiVersion: v1, kind: ConfigMap, metadata: {name: info, annotations: {subject: {{ values.s }}}}}\n",
    );
    d.config("    values:\n      s: \"{{ commit.subject }}\"\n", "");
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    let (out, _) = texts(&r);
    let row = out
        .lines()
        .find(|l| l.contains("feature/evil"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("read as YAML syntax"), "{row}");
    assert!(!d.out.join("app-feature-evil").exists());
    assert!(
        d.out.join("app-main/configmap-info.yaml").is_file(),
        "the others go on"
    );
}

/// Terminal escapes in commit subjects reached `status` and `plan` tables raw.
#[test]
fn control_characters_from_git_are_shown_escaped() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit(
        "feature/x",
        "\u{1b}]0;owned\u{7}\u{1b}[2Jgone",
        &days_ago(1),
    );
    d.config("    links:\n      why: \"{{ commit.subject }}\"\n", "");
    d.run_ok(&["run", "--once"]);
    let status = octostage_ok(
        &["status", "--target", &format!("dir:{}", d.out.display())],
        0,
    );
    assert!(
        !status.contains('\u{1b}') && status.contains("\\u{1b}"),
        "{status:?}"
    );
}
