//! The CLI end to end on real repositories: validation, schema, plans over 200 branches with
//! hostile names, idempotent runs against the dir target, exit codes.

use std::collections::HashSet;

use crate::util::*;

#[test]
fn the_example_repository_is_valid() {
    let out = octostage_ok(
        &[
            "validate",
            "--config",
            root().join("example-repo").to_str().unwrap(),
        ],
        0,
    );
    assert!(
        out.contains("valid (3 environments, 2 static stagings)"),
        "{out}"
    );
}

#[test]
fn every_problem_of_a_bad_file_is_reported_with_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bad");
    copy_dir(&root().join("example-repo"), &dir);
    let file = dir.join("environments.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text
        .replace(
            "    max_stagings: 25\n",
            "    max_stagings: 25\n    tll: 3d\n",
        )
        .replace("  ttl: 7d\n", "  ttl: 7 dayz\n")
        .replace(
            "  retention: 1d\n",
            "  retention: 1d\n  sleep:\n    at: \"0 25 * * Mon-Fri\"\n    wake: \"0 7 * * Mon-Fri\"\n",
        )
        .replace("\"fix/**\", \"release/*\"", "\"fix/[abc\", \"release/*\"");
    std::fs::write(&file, &text).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let out = octostage(&["validate", "--config", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 problems"), "{err}");
    for (needle, expect) in [
        ("tll: 3d", "unknown key `tll`"),
        ("ttl: 7 dayz", "invalid duration \"7 dayz\""),
        ("0 25 * *", "invalid cron expression"),
        ("fix/[abc", "invalid glob \"fix/[abc\""),
    ] {
        let prefix = format!("environments.yaml:{}:", line_of(needle));
        assert!(
            err.lines()
                .any(|l| l.contains(&prefix) && l.contains(expect)),
            "no {expect:?} at {prefix}\n{err}"
        );
    }
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let generated = octostage_ok(&["schema"], 0);
    let committed =
        std::fs::read_to_string(root().join("schema/environments.schema.json")).unwrap();
    assert!(generated == committed, "schema/environments.schema.json is stale: run `cargo run -- schema > schema/environments.schema.json`");
    let first = std::fs::read_to_string(root().join("example-repo/environments.yaml")).unwrap();
    assert!(first.starts_with("# yaml-language-server: $schema=../schema/environments.schema.json"));
}

#[test]
fn a_missing_config_directory_is_named() {
    let out = octostage(&["validate", "--config", "no-such-dir"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir: is not a directory"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(octostage(&["plan"]).status.code(), Some(2));
    assert_eq!(octostage(&["frobnicate"]).status.code(), Some(2));
}

fn hostile_branches() -> Vec<String> {
    let mut b: Vec<String> = (0..150).map(|i| format!("feature/task-{i}")).collect();
    b.extend((0..20).map(|i| format!("fix/UPPER_case.{i}")));
    b.extend(
        [
            "feature/a",
            "feature-a",
            "Feature_A",
            "feature/ümlaut-日本語",
            "feat/🚀-rocket",
            "a/b/c/d/e/f",
            "123",
            "release/1.2.3",
            "x",
            "_under_",
            "dots.in.name",
            "MiXeD/CaSe/Branch",
            "feature/___",
            "ü",
            "日本",
        ]
        .map(String::from),
    );
    b.push(format!("feature/{}", "very-long-".repeat(24)));
    b.push(format!("feature/{}x", "very-long-".repeat(24)));
    while b.len() < 199 {
        b.push(format!("misc/n{}", b.len()));
    }
    b
}

#[test]
fn two_hundred_branches_plan_run_delete_and_expire() {
    let d = DirRun::new(&days_ago(60));
    let repo = &d.repo;
    for b in &hostile_branches() {
        repo.commit(b, "work", &days_ago(1));
    }
    let plan = || -> serde_json::Value {
        serde_json::from_str(&d.run_ok(&["plan", "--format", "json"])).unwrap()
    };

    let p = plan();
    let stagings = p["stagings"].as_array().unwrap();
    assert_eq!(stagings.len(), 200, "199 branches and main");
    let names: HashSet<&str> = stagings
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 200, "names are unique");
    for s in stagings {
        let name = s["name"].as_str().unwrap();
        assert!(name.len() <= 63 && name.starts_with("app-"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.ends_with('-'),
            "{name}"
        );
        assert_eq!(s["action"], "create", "{s}");
        assert_eq!(s["namespace"], s["name"]);
        for key in ["environment", "branch", "commit", "reason", "expires_at"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
        if s["branch"] == "main" {
            assert!(s["expires_at"].is_null());
        } else {
            chrono::DateTime::parse_from_rfc3339(s["expires_at"].as_str().unwrap())
                .expect("RFC 3339");
        }
    }

    let once = ["run", "--once"];
    let first = d.run(&once);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out_dir = d.out.clone();
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 200);
    let before = snapshot(&out_dir);
    let second = d.run(&once);
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("0 writes"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(snapshot(&out_dir), before, "the second run rewrote files");

    // After a run everything is up to date.
    let p = plan();
    assert!(
        p["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "noop"),
        "{p}"
    );

    repo.delete_branch("feature/task-7");
    repo.commit("feature/task-8", "old work", &days_ago(30));
    let p = plan();
    let by_branch = |b: &str| {
        p["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["branch"] == b)
            .unwrap()
            .clone()
    };
    let deleted = by_branch("feature/task-7");
    assert_eq!(
        (deleted["action"].as_str(), deleted["reason"].as_str()),
        (Some("delete"), Some("branch deleted"))
    );
    let expired = by_branch("feature/task-8");
    assert_eq!(expired["action"], "delete");
    assert!(
        expired["reason"]
            .as_str()
            .unwrap()
            .starts_with("no activity for 30d"),
        "{expired}"
    );
    assert!(
        expired["reason"].as_str().unwrap().ends_with("(ttl 7d)"),
        "{expired}"
    );
    let changed = p["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "noop")
        .count();
    assert_eq!(changed, 2, "{p}");

    // The run carries the deletions out.
    assert!(d.run(&once).status.success());
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 198);
}

#[test]
fn an_unreachable_repository_fails_that_environment_and_deletes_nothing() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/x", "x", &days_ago(1));
    let once = ["run", "--once"];
    assert!(d.run(&once).status.success());
    assert_eq!(d.stagings(), 2);
    std::fs::rename(&d.repo.path, d.tmp.path().join("moved")).unwrap();
    let r = d.run(&once);
    // A cron job must notice: exit 1, the source named, nothing deleted.
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("source of app failed")
            && String::from_utf8_lossy(&r.stdout)
                .contains("cannot open the repository: no such directory"),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("1 environments could not be read"));
    assert_eq!(d.stagings(), 2, "nothing deleted");
    // A config that no longer parses changes nothing either.
    std::fs::write(
        d.cfg.join("environments.yaml"),
        "version: 1\nenvironments: [",
    )
    .unwrap();
    assert_eq!(d.run(&once).status.code(), Some(1));
    assert_eq!(d.stagings(), 2);
}

#[test]
fn a_listing_that_loses_most_branches_is_not_believed_until_confirmed() {
    let d = DirRun::new(&days_ago(1));
    for i in 0..6 {
        d.repo
            .commit(&format!("feature/f{i}"), "work", &days_ago(1));
    }
    let once = ["run", "--once"];
    d.run_ok(&once);
    assert_eq!(d.stagings(), 7);
    // Five of six feature branches vanish at once (a broken mirror, a bad force-push).
    for i in 0..5 {
        d.repo.delete_branch(&format!("feature/f{i}"));
    }
    let held = d.run_ok(&once);
    assert_eq!(held.matches("deletion held").count(), 5, "{held}");
    assert_eq!(d.stagings(), 7, "nothing deleted");
    let done = d.run_ok(&["run", "--once", "--confirm-deletions"]);
    assert_eq!(done.matches("branch deleted").count(), 5, "{done}");
    assert_eq!(d.stagings(), 2);
}

/// The documents: README.md and the book's chapters (docs/src), with their folders.
fn documents() -> Vec<(std::path::PathBuf, String)> {
    let mut docs = vec![root().join("README.md")];
    let mut chapters: Vec<_> = std::fs::read_dir(root().join("docs/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    docs.extend(chapters);
    docs.into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// Every `[label](target)` of a Markdown text, outside code blocks.
fn links(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let label_start = rest[..i].rfind('[').map_or(0, |j| j + 1);
            let label = rest[label_start..i].to_string();
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((label, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// README and the book back each safety claim with a link to its test: every such link must
/// name a test that exists in the file it points at (files move, tests get renamed), and
/// every other link inside the repository must lead to a file or folder that exists.
#[test]
fn every_link_of_the_readme_and_the_book_resolves_and_every_test_link_names_a_test() {
    let mut tests = 0;
    let mut broken = Vec::new();
    for (doc, text) in documents() {
        let dir = doc.parent().unwrap();
        for (label, target) in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if path.is_empty() {
                continue;
            }
            let file = dir.join(path);
            let shown = format!(
                "{} -> {target}",
                doc.strip_prefix(root()).unwrap().display()
            );
            if !file.exists() {
                broken.push(format!("{shown}: no such file"));
                continue;
            }
            let name = label.trim_matches('`');
            let test = name.rsplit("::").next().unwrap();
            let is_test_link = path.ends_with(".rs")
                && label.starts_with('`')
                && !test.is_empty()
                && test
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if is_test_link {
                tests += 1;
                let code = std::fs::read_to_string(&file).unwrap_or_default();
                if !code.contains(&format!("fn {test}(")) {
                    broken.push(format!("{shown}: no test {test}"));
                }
            }
        }
    }
    assert!(tests > 20, "only {tests} test links found");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn plan_diff_names_the_fields_that_change_and_never_a_secrets_value() {
    let d = DirRun::new(&days_ago(1));
    d.template(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: old-planted-value\n",
    );
    d.run_ok(&["run", "--once"]);
    assert_eq!(d.run_ok(&["plan", "--diff"]), "no changes\n");
    d.template(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  branch: {{ branch.name | tojson }}\n  commit: {{ commit.sha }}\n  extra: \"x\"\n",
    );
    d.template(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: new-planted-value\n",
    );
    d.template("gone.yaml", "");
    let out = d.run_ok(&["plan", "--diff"]);
    assert!(out.contains("~ app-main (update"), "{out}");
    assert!(
        out.contains("    ~ ConfigMap/info\n        + data.extra: \"x\"\n"),
        "{out}"
    );
    assert!(
        out.contains("    ~ Secret/s\n        ~ stringData.password: (sensitive) → (sensitive)\n"),
        "{out}"
    );
    assert!(!out.contains("planted-value"), "{out}");
    // Nothing was changed by looking.
    assert!(d.run_ok(&["plan", "--diff"]).contains("+ data.extra"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, mark) in [
        ("bash", "_octostage()"),
        ("zsh", "#compdef octostage"),
        ("fish", "complete -c octostage"),
    ] {
        let out = octostage_ok(&["completions", shell], 0);
        assert!(
            out.contains(mark),
            "{shell}: {}",
            &out[..out.len().min(200)]
        );
        assert!(out.contains("extend"), "{shell}");
    }
}

#[test]
fn a_lease_name_the_api_server_would_refuse_is_a_usage_error() {
    let out = octostage(&[
        "run",
        "--config",
        ".",
        "--target",
        "dir:/nonexistent",
        "--lease",
        "My_Lease",
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    assert!(texts(&out).1.contains("--lease"), "{:?}", texts(&out));
}

#[test]
fn a_failed_staging_is_failed_in_plan_diff_and_times_say_their_zone() {
    let d = DirRun::new(&days_ago(1));
    d.config("", "");
    d.template(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  a: {{ nope.x }}\n",
    );
    let o = d.run(&["plan", "--diff"]);
    let (out, _) = texts(&o);
    assert!(
        out.contains("! app-main (FAILED: t/bad.yaml:6:9: undefined variable"),
        "{out}"
    );
    assert!(!out.contains("+ app-main"), "{out}");
    // Never created: the target knows nothing of it, the configuration does.
    d.run(&["run", "--once"]);
    let status = d.run_ok(&["status"]);
    let row = status
        .lines()
        .find(|l| l.starts_with("app-main "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        row.contains("FAILED (t/bad.yaml:6:9: undefined variable"),
        "{status}"
    );
    assert!(
        status.contains("0 stagings, and 1 that failed before it was created"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&d.run_ok(&["status", "--format", "json"])).unwrap();
    let main = &json["stagings"][0];
    assert_eq!(main["name"], "app-main", "{json}");
    assert_eq!(main["state"], "FAILED", "{json}");
    assert!(
        main["error"]
            .as_str()
            .unwrap()
            .contains("undefined variable"),
        "{json}"
    );
    std::fs::remove_file(d.cfg.join("t/bad.yaml")).unwrap();
    d.repo.commit("feature/x", "w", &days_ago(0));
    d.run_ok(&["run", "--once"]);
    let status = d.run_ok(&["status"]);
    assert!(status.contains(" UTC"), "{status}");
}

#[test]
fn a_wake_that_an_awake_cap_of_zero_undoes_says_so() {
    let d = DirRun::new(&days_ago(1));
    d.config("    max_awake: 0\n", "");
    d.run(&["run", "--once"]);
    let target = format!("dir:{}", d.out.display());
    let cfg = d.cfg.display().to_string();
    // With the configuration it can tell; the same arguments as every command.
    let said = octostage_ok(&["wake", "main", "--target", &target, "--config", &cfg], 0);
    assert!(
        said.contains("app-main: awake from the next pass"),
        "{said}"
    );
    assert!(
        said.contains("stays asleep: environment app has max_awake: 0"),
        "{said}"
    );
    // `sleep` and `status` take the same arguments (and need no configuration).
    octostage_ok(
        &["sleep", "app-main", "--target", &target, "--config", &cfg],
        0,
    );
    octostage_ok(&["status", "--target", &target, "--config", &cfg], 0);
}

#[test]
fn retention_zero_written_as_a_number_is_taken_and_a_bare_number_elsewhere_says_why_not() {
    let d = DirRun::new(&days_ago(1));
    d.config("    retention: 0\n", "");
    let o = d.validate();
    assert!(o.status.success(), "{:?}", texts(&o));
    d.config("    retention: 0\n    max_extension: 3\n", "");
    let (out, err) = texts(&d.validate());
    assert!((out.clone() + &err).contains("max_extension"), "{out}{err}");
}

/// README's environments.yaml is a configuration `validate` accepts.
#[test]
fn the_readme_example_configuration_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let yaml = readme
        .split("## environments.yaml\n\n```yaml\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .expect("README has an environments.yaml example");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("environments.yaml"), yaml).unwrap();
    let o = octostage(&[
        "validate",
        "--offline",
        "--config",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", texts(&o));
}

/// The reference's key tables are the schema's: regenerated, they are what the book holds.
#[test]
fn the_reference_tables_are_generated_from_the_current_schema() {
    use std::io::Write;
    let schema = octostage_ok(&["schema"], 0);
    let mut gen = std::process::Command::new("python3")
        .arg(root().join("scripts/gen-reference.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    gen.stdin
        .take()
        .unwrap()
        .write_all(schema.as_bytes())
        .unwrap();
    let out = gen.wait_with_output().unwrap();
    assert!(out.status.success());
    let section = String::from_utf8(out.stdout).unwrap();
    assert!(section.lines().count() > 100, "{section}");
    let doc = std::fs::read_to_string(root().join("docs/src/reference.md")).unwrap();
    assert!(
        doc.contains(&section),
        "docs/src/reference.md is stale: run `octostage schema | scripts/gen-reference.py --write`"
    );
}
