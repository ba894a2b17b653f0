//! Regression tests for the hostile review (issue "Trustworthy"), without a cluster: what a
//! careless user or anyone who can push a branch can do to octostage, and what it must do
//! instead. Each test names the finding it covers.

use std::time::Duration;

use crate::util::*;

fn json_of(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn staging<'a>(plan: &'a serde_json::Value, branch: &str) -> &'a serde_json::Value {
    plan["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["branch"] == branch)
        .unwrap_or_else(|| panic!("{branch} not in {plan}"))
}

/// Finding 2(b): env `shop` + branch `x-y` and env `shop-x` + branch `y` are both `shop-x-y`.
#[test]
fn names_that_meet_across_environments_are_an_error_for_both_and_nothing_is_written() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("x-y", "w", &days_ago(1));
    let other = GitRepo::init(&d.tmp.path().join("other"), &days_ago(1));
    other.commit("y", "w", &days_ago(1));
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\ndefaults:\n  templates: t\nenvironments:\n  shop:\n    repository: {}\n  shop-x:\n    repository: {}\n",
            d.repo.path.display(),
            other.path.display()
        ),
    )
    .unwrap();
    let plan = json_of(&String::from_utf8(d.run(&["plan", "--format", "json"]).stdout).unwrap());
    for (env, branch) in [("shop", "x-y"), ("shop-x", "y")] {
        let s = plan["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["environment"] == env && s["branch"] == branch)
            .unwrap();
        assert_eq!(s["error_kind"], "name-collision", "{s}");
        assert_eq!(s["action"], "noop");
    }
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1), "{:?}", texts(&r));
    let (out, _) = texts(&r);
    assert!(
        out.contains("shop-x/y") && out.contains("shop/x-y"),
        "both are named: {out}"
    );
    assert!(!d.out.join("shop-x-y").exists(), "no write for either");
    assert!(d.out.join("shop-main").is_dir() && d.out.join("shop-x-main").is_dir());
}

/// Finding 2(a): a namespace template that gives two stagings one namespace.
#[test]
fn a_namespace_shared_by_two_stagings_is_an_error_for_both() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/a", "w", &days_ago(1));
    d.config("    namespace: \"shared-{{ environment }}\"\n", "");
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    let (out, _) = texts(&r);
    assert_eq!(out.matches("is also the namespace of").count(), 2, "{out}");
    assert!(!d.out.exists() || d.stagings() == 0, "nothing written");
}

/// Finding 3: an application repository with no branches aborted the process (exit 134).
#[test]
fn an_empty_repository_is_an_empty_listing_not_a_crash() {
    let d = DirRun::new(&days_ago(1));
    let empty = d.tmp.path().join("empty.git");
    std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&empty)
        .status()
        .unwrap();
    let mut args = d.args(&["run", "--once"]);
    args.extend(["--repository".into(), format!("app={}", empty.display())]);
    let r = octostage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.status.code(), Some(0), "{:?}", texts(&r));

    // Stagings that exist are kept when every head vanishes: the shrink guard holds them.
    d.repo.commit("feature/a", "w", &days_ago(1));
    d.run_ok(&["run", "--once"]);
    assert_eq!(d.stagings(), 2);
    for b in ["main", "feature/a"] {
        d.repo.delete_branch(b);
    }
    let out = d.run_ok(&["run", "--once"]);
    assert!(
        out.contains("the repository listed no branches at all"),
        "{out}"
    );
    assert_eq!(d.stagings(), 2, "nothing deleted");
}

/// Finding 3, the service: `run` keeps running against an empty repository.
#[test]
fn the_run_loop_survives_an_empty_repository() {
    let d = DirRun::new(&days_ago(1));
    d.repo.delete_branch("main");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .args(d.args(&["run", "--interval", "1s"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(child.try_wait().unwrap().is_none(), "run died");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
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

/// Finding 10: one repository in two environments raced on the mirror.
#[test]
fn one_repository_in_two_environments_is_fetched_once_per_pass() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/a", "w", &days_ago(1));
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\ndefaults:\n  templates: t\nenvironments:\n  one:\n    repository: {r}\n  two:\n    repository: {r}\n",
            r = d.repo.path.display()
        ),
    )
    .unwrap();
    for i in 0..8 {
        let cache = d.tmp.path().join(format!("cache{i}"));
        let out = d.tmp.path().join(format!("out{i}"));
        let r = octostage(&[
            "run",
            "--once",
            "--log",
            "octostage=debug",
            "--config",
            d.cfg.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--target",
            &format!("dir:{}", out.display()),
        ]);
        let (o, e) = texts(&r);
        assert!(r.status.success(), "pass {i}: {o}{e}");
        assert_eq!(
            e.matches(" fetched url=").count(),
            1,
            "one fetch per repository: {e}"
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);
    }
}

/// Finding 11: duplicate keys, a BOM, zero durations, misplaced keys, symlinks out of the
/// repository.
#[test]
fn small_config_mistakes_are_reported_where_they_are() {
    let d = DirRun::new(&days_ago(1));
    d.config("    ttl: 3d\n", "");
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains("environments.yaml:8:5: duplicate key `ttl` (first given at line 6)"),
        "{err}"
    );

    d.config("", "");
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml")).unwrap();
    std::fs::write(d.cfg.join("environments.yaml"), format!("\u{feff}{text}")).unwrap();
    assert!(d.validate().status.success(), "{:?}", texts(&d.validate()));

    d.config("    render_timeout: 0s\n", "");
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains("render_timeout must be longer than 0s"),
        "{err}"
    );

    d.config(
        "    branches:\n      include: [\"**\"]\n      always: [main]\n",
        "",
    );
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains(
            "unknown key `always` in environments.app.branches; `always` belongs in an environment"
        ),
        "{err}"
    );

    let outside = d.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("stolen.yaml"), "kind: x\n").unwrap();
    std::os::unix::fs::symlink(&outside, d.cfg.join("t/linked")).unwrap();
    d.config("", "");
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains("symbolic link") && err.contains("outside the config repository"),
        "{err}"
    );
}

#[test]
fn an_interval_of_zero_is_a_usage_error() {
    let r = octostage(&["run", "--interval", "0s", "--config", "x"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(texts(&r).1.contains("must be at least 1s"));
}

/// Finding 11: undefined stays an error through filters; `namespace()` stays usable.
#[test]
fn template_values_that_are_undefined_fail_and_the_namespace_builtin_works() {
    let d = DirRun::new(&days_ago(1));
    d.template("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  x: {{ values.typo | tojson }}\n");
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r).0.contains("`values` has no key `typo`"),
        "{:?}",
        texts(&r)
    );
    d.template(
        "cm.yaml",
        "{% set n = namespace(count=0) %}{% for i in [1, 2, 3] %}{% set n.count = n.count + i %}{% endfor %}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  count: \"{{ n.count }}\"\n  ns: {{ namespace }}\n",
    );
    d.run_ok(&["run", "--once"]);
    let cm = std::fs::read_to_string(d.out.join("app-main/configmap-info.yaml")).unwrap();
    assert!(
        cm.contains("count: '6'") && cm.contains("ns: app-main"),
        "{cm}"
    );
}

/// Finding 11: a `kind: List` whose `items` is not a list was silently empty.
#[test]
fn a_list_whose_items_is_not_a_list_is_an_error() {
    let d = DirRun::new(&days_ago(1));
    d.template(
        "cm.yaml",
        "apiVersion: v1\nkind: List\nitems:\n  apiVersion: v1\n  kind: ConfigMap\n",
    );
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        texts(&r).0.contains("has `items` that is not a list"),
        "{:?}",
        texts(&r)
    );
}

/// Finding 11: an environment renamed or removed deleted its stagings unguarded.
#[test]
fn a_removed_environment_keeps_its_stagings_until_confirmed() {
    let d = DirRun::new(&days_ago(1));
    d.config("", "  docs:\n    repository: REPO\n    templates: t\n");
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml"))
        .unwrap()
        .replace("REPO", d.repo.path.to_str().unwrap());
    std::fs::write(d.cfg.join("environments.yaml"), text).unwrap();
    d.run_ok(&["run", "--once"]);
    assert!(d.out.join("docs-main").is_dir());
    d.config("", "");
    let out = d.run_ok(&["run", "--once"]);
    assert!(
        out.contains("environment \"docs\" is not in the configuration"),
        "{out}"
    );
    assert!(d.out.join("docs-main").is_dir(), "held");
    d.run_ok(&["run", "--once", "--confirm-deletions"]);
    assert!(!d.out.join("docs-main").exists());
}

/// Finding 12: `run` with nowhere to deploy said it created stagings and exited 0.
#[test]
fn run_names_its_target_and_refuses_to_deploy_nowhere() {
    let d = DirRun::new(&days_ago(1));
    let home = d.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cfg = d.cfg.to_str().unwrap();
    let env = [("HOME", home.to_str().unwrap()), ("KUBECONFIG", "")];
    for target in [None, Some("none")] {
        let mut args = vec!["run", "--once", "--config", cfg];
        if let Some(t) = target {
            args.extend(["--target", t]);
        }
        let r = octostage_env(&args, None, &env);
        let (out, err) = texts(&r);
        assert_eq!(r.status.code(), Some(1), "{target:?}: {out}{err}");
        assert!(!out.contains("create"), "{out}");
        assert!(
            err.contains("no cluster is configured") || err.contains("for `plan` only"),
            "{err}"
        );
    }
    let out = d.run_ok(&["run", "--once"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("octostage run: target dir:"),
        "{out}"
    );
}

/// Finding 12: failing stagings were left out of the run table.
#[test]
fn failing_stagings_are_rows_with_their_error() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/b", "w", &days_ago(1));
    d.config(
        "    overrides:\n      feature/b:\n        values:\n          x: \"{{ values.nope }}\"\n",
        "",
    );
    let r = d.run(&["run", "--once"]);
    assert_eq!(r.status.code(), Some(1));
    let (out, err) = texts(&r);
    let row = out
        .lines()
        .find(|l| l.contains("app-feature-b"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("FAILED") && row.contains("`values` has no key `nope`"),
        "{row}"
    );
    assert!(out.contains("1 failed"), "{out}");
    assert!(err.contains("1 stagings failed"), "{err}");
}

/// Finding 12: `validate` passed templates a pass would fail on.
#[test]
fn validate_renders_every_environment_override_and_static_staging() {
    let d = DirRun::new(&days_ago(1));
    d.template(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  sha: {{ comit.sha }}\n",
    );
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains("t/cm.yaml:6:11: undefined variable `comit`; the context holds: environment, staging, namespace, branch, commit"),
        "{err}"
    );
    d.template(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\n",
    );
    d.config(
        "    values:\n      image: x\n    overrides:\n      \"release/*\":\n        values:\n          tag: \"{{ values.imag }}\"\n",
        "",
    );
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains("override \"release/*\" (as branch \"release/sample\")")
            && err.contains("environments.yaml:13:20: `values` has no key `imag`; it holds: image"),
        "{err}"
    );
    d.config("    namespace: \"{{ staging }}_x\"\n", "");
    let (_, err) = texts(&d.validate());
    assert!(err.contains("is not a valid DNS-1123 label"), "{err}");
    d.config("    namespace: kube-system\n", "");
    let (_, err) = texts(&d.validate());
    assert!(
        err.contains("namespace \"kube-system\" is protected"),
        "{err}"
    );
}

/// Finding 12: `--repository ENV=relative/path` was resolved against the config directory.
#[test]
fn a_relative_repository_path_is_taken_from_the_current_directory() {
    let d = DirRun::new(&days_ago(1));
    let cache = d.tmp.path().join("cache");
    let args = [
        "plan",
        "--format",
        "json",
        "--config",
        d.cfg.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--repository",
        "app=app",
    ];
    let r = octostage_env(&args, Some(d.tmp.path()), &[]);
    assert!(r.status.success(), "{:?}", texts(&r));
    let plan = json_of(&texts(&r).0);
    assert_eq!(staging(&plan, "main")["action"], "create");
}

/// Finding 12: an include pattern that matches nothing deserves a hint; the example promises
/// only what works.
#[test]
fn plan_hints_at_patterns_that_match_nothing() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/x/y", "w", &days_ago(1));
    d.config("    branches:\n      include: [main, \"feature/*\"]\n", "");
    let out = d.run_ok(&["plan"]);
    assert!(out.contains("hint: environment app: branches.include pattern \"feature/*\" matches none of its 2 branches (`*` stays within one path segment; \"feature/**\" would match 1)"), "{out}");
    // Offline: the example's application repositories are not real.
    let r = octostage(&[
        "validate",
        "--offline",
        "--config",
        root().join("example-repo").to_str().unwrap(),
    ]);
    assert!(r.status.success());
    assert!(!texts(&r).1.contains("warning"), "{}", texts(&r).1);
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
