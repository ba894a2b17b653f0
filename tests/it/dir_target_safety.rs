//! The dir target stays inside its directory and its own files: symbolic links, objects that
//! would share a file, two runs at once, and the demo's directory.

use crate::util::*;

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
