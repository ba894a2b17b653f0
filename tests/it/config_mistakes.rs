//! Mistakes in environments.yaml and on the command line: each is reported where it is, with
//! the fix, and nothing is written.

use crate::util::*;
use std::time::{Duration, Instant};

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
        cm.contains("count: \"6\"") && cm.contains("ns: app-main"),
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
        // The reason is the error's cause too: printed once, not once per link of the chain.
        assert_eq!(err.matches("pass --target").count(), 1, "{err}");
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
