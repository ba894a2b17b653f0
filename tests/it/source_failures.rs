//! Sources that fail, are empty or shrink: the pass goes on for what it can read, and what
//! depends on a failed source is kept as it is (deletions freeze).

use crate::util::*;
use std::time::Duration;

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
