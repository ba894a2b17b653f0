//! Regression tests for what attacking octostage found after the hostile review's findings were
//! fixed (the cluster ones are in `ownership`, the credential redirect in `secrets`).

use std::time::{Duration, Instant};

use crate::util::*;

fn plan_json(d: &DirRun) -> serde_json::Value {
    serde_json::from_str(&texts(&d.run(&["plan", "--format", "json"])).0).unwrap()
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

/// A symbolic link where a staging's folder goes made octostage write and delete through it.
#[test]
fn the_dir_target_never_writes_or_deletes_through_a_symbolic_link() {
    let d = DirRun::new(&days_ago(1));
    d.run_ok(&["run", "--once"]);
    let victim = d.tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious.yaml"), "keep\n").unwrap();
    let status = std::fs::read_to_string(d.out.join("app-main/octostage-status.yaml"))
        .unwrap()
        .replace("configmap-info.yaml", "precious.yaml");
    std::fs::write(victim.join("octostage-status.yaml"), status).unwrap();
    std::fs::remove_dir_all(d.out.join("app-main")).unwrap();
    std::os::unix::fs::symlink(&victim, d.out.join("app-main")).unwrap();
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1), "{:?}", texts(&r));
    assert!(
        texts(&r).0.contains("is a symbolic link"),
        "{:?}",
        texts(&r)
    );
    let mut left: Vec<String> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["octostage-status.yaml", "precious.yaml"]);
    assert_eq!(
        std::fs::read_to_string(victim.join("precious.yaml")).unwrap(),
        "keep\n"
    );
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

/// `demo --dir D` committed into, deleted branches of, and overwrote files in an existing D.
#[test]
fn the_demo_refuses_a_directory_that_holds_anything() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes"), "mine").unwrap();
    let r = octostage(&["demo", "--dir", tmp.path().to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(texts(&r).1.contains("is not empty"), "{:?}", texts(&r));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes")).unwrap(),
        "mine"
    );
}

/// An object named like the status file overwrote it; two objects mapped to one file.
#[test]
fn objects_that_would_share_a_file_or_replace_the_status_file_are_errors() {
    let d = DirRun::new(&days_ago(1));
    d.template(
        "cm.yaml",
        "apiVersion: v1\nkind: Octostage\nmetadata:\n  name: status\n",
    );
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r).0.contains("octostage's own file"),
        "{:?}",
        texts(&r)
    );
    d.template(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\napiVersion: v1\nkind: Configmap\nmetadata:\n  name: x\n",
    );
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r)
            .0
            .contains("would both be written to configmap-x.yaml"),
        "{:?}",
        texts(&r)
    );
}

/// A static staging named like an existing branch staging took over its folder (namespace).
#[test]
fn a_static_staging_never_takes_an_existing_branch_stagings_name() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("b3", "w", &days_ago(1));
    d.run_ok(&["run", "--once"]);
    let before = std::fs::read_to_string(d.out.join("app-main/octostage-status.yaml")).unwrap();
    d.config("    static:\n      main:\n        branch: b3\n", "");
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r).0.contains("is also the name of app/main"),
        "{:?}",
        texts(&r)
    );
    let after = std::fs::read_to_string(d.out.join("app-main/octostage-status.yaml")).unwrap();
    assert_eq!(before, after, "the branch staging is untouched");
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

/// A commit with an unreadable committer date (pushed to a server that does not check objects)
/// fails the listing of its environment: libgit2 refuses it while fetching. That environment's
/// stagings are then kept as they are, like for any failed source, and the pass says so.
#[test]
fn a_branch_at_an_unreadable_commit_freezes_its_environment_and_deletes_nothing() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/ok", "w", &days_ago(1));
    d.repo.commit("feature/bad", "w", &days_ago(1));
    d.run_ok(&["run", "--once"]);
    let tree = d.repo.git(&["rev-parse", "main^{tree}"]);
    let body = format!(
        "tree {tree}\nauthor A <a@b> 99999999999999999999 +0000\ncommitter C <c@d> 99999999999999999999 +0000\n\nbad date\n"
    );
    let sha = {
        use std::io::Write;
        let mut c = std::process::Command::new("git")
            .args([
                "hash-object",
                "-t",
                "commit",
                "-w",
                "--stdin",
                "--literally",
            ])
            .current_dir(&d.repo.path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    d.repo.git(&["update-ref", "refs/heads/feature/bad", &sha]);
    d.repo.delete_branch("feature/ok");
    let r = d.run(&["run", "--once"]);
    let (out, _) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(
        out.contains("source of app failed") && out.contains("invalid Unix timestamp"),
        "{out}"
    );
    for s in ["app-main", "app-feature-ok", "app-feature-bad"] {
        assert!(
            d.out.join(s).join("octostage-status.yaml").is_file(),
            "{s} kept"
        );
    }
}

/// A FIFO named like a template hung `validate` and `run`; a TTL too long to compute became
/// "never".
#[test]
fn a_fifo_template_and_an_endless_ttl_are_refused() {
    let d = DirRun::new(&days_ago(1));
    let fifo = d.cfg.join("t/pipe.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let r = d.validate();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r).1.contains("is not a regular file"),
        "{:?}",
        texts(&r)
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    std::fs::remove_file(&fifo).unwrap();
    d.config("    ttl: 2000000000d\n", "");
    let (_, err) = texts(&d.validate());
    assert!(err.contains("longer than 100 years"), "{err}");
}

/// Two `run --once` on one dir target at once shared temporary file names and failed.
#[test]
fn two_runs_on_one_target_at_once_do_not_trip_over_each_other() {
    let d = DirRun::new(&days_ago(1));
    for i in 0..30 {
        d.repo.commit(&format!("feature/f{i}"), "w", &days_ago(1));
    }
    d.run_ok(&["plan"]);
    for round in 0..4 {
        d.template("cm.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  round: \"{round}\"\n"));
        let spawn = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_octostage"))
                .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
                .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
                .args(d.args(&["run", "--once"]))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for c in [a, b] {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {:?}", texts(&out));
        }
    }
}
