//! Finding 8 of the hostile review: the dir target after a kill mid-write or mid-delete, and a
//! status file that points outside the target root.

use std::time::Duration;

use crate::util::*;

fn status_json(d: &DirRun) -> serde_json::Value {
    let out = octostage_ok(
        &[
            "status",
            "--format",
            "json",
            "--target",
            &format!("dir:{}", d.out.display()),
        ],
        0,
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_status_file_naming_a_path_outside_the_root_touches_nothing() {
    let d = DirRun::new(&days_ago(1));
    d.run_ok(&["run", "--once"]);
    // A folder whose status file claims the staging `../victim`.
    let victim = d.tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("data"), "precious").unwrap();
    let evil = d.out.join("app-evil");
    std::fs::create_dir_all(&evil).unwrap();
    let status = std::fs::read_to_string(d.out.join("app-main/octostage-status.yaml"))
        .unwrap()
        .replace("name: app-main", "name: ../victim");
    std::fs::write(evil.join("octostage-status.yaml"), status).unwrap();
    let out = d.run_ok(&["run", "--once"]);
    assert!(victim.join("data").is_file(), "{out}");
    assert!(evil.join("octostage-status.yaml").is_file());
    let st = status_json(&d);
    let left = st["left_alone"].as_array().unwrap();
    assert!(
        left.iter().any(|l| l["what"] == "app-evil"
            && l["why"]
                .as_str()
                .unwrap()
                .contains("names staging \"../victim\"")),
        "{st}"
    );
}

#[test]
fn folders_left_without_a_status_file_are_reported_and_never_taken() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/a", "w", &days_ago(1));
    // Someone's folder where a staging would go, and one with only an interrupted write in it.
    let theirs = d.out.join("app-feature-a");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.yaml"), "mine: true\n").unwrap();
    let interrupted = d.out.join("app-main");
    std::fs::create_dir_all(&interrupted).unwrap();
    let tmp = interrupted.join(".octostage-octostage-status.yaml.tmp");
    std::fs::write(&tmp, "half").unwrap();
    // Left by a write killed a while ago (a younger one may be another octostage's at work).
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(120))
        .unwrap();
    let plan = d.run(&["plan"]);
    let (out, _) = texts(&plan);
    assert!(
        out.contains("app-feature-a") && out.contains("octostage did not create it"),
        "{out}"
    );
    let r = d.run(&["run", "--once"]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "a conflict fails the pass: {:?}",
        texts(&r)
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("notes.yaml")).unwrap(),
        "mine: true\n"
    );
    assert!(!theirs.join("octostage-status.yaml").exists());
    // The interrupted write was octostage's own: finished, its temporary file gone.
    assert!(interrupted.join("octostage-status.yaml").is_file());
    assert!(!interrupted
        .join(".octostage-octostage-status.yaml.tmp")
        .exists());
    let st = status_json(&d);
    assert!(
        st["left_alone"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["what"] == "app-feature-a"),
        "{st}"
    );
}

#[test]
fn a_deletion_killed_half_way_is_finished_by_the_next_pass() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/a", "w", &days_ago(1));
    d.run_ok(&["run", "--once"]);
    let folder = d.out.join("app-feature-a");
    // What a kill between the first removal and the status file looks like.
    std::fs::remove_file(folder.join("configmap-info.yaml")).unwrap();
    std::fs::write(folder.join("user-notes.txt"), "not octostage's").unwrap();
    d.repo.delete_branch("feature/a");
    d.run_ok(&["run", "--once"]);
    assert!(!folder.join("octostage-status.yaml").exists());
    // Files octostage did not write stay, and so does their folder.
    assert_eq!(
        std::fs::read_to_string(folder.join("user-notes.txt")).unwrap(),
        "not octostage's"
    );
}

#[test]
fn sigkill_at_any_moment_of_a_pass_leaves_a_target_the_next_pass_converges() {
    let d = DirRun::new(&days_ago(1));
    for i in 0..150 {
        d.repo.commit(&format!("feature/f{i}"), "w", &days_ago(1));
    }
    // Warm the branch cache so the kills land in the writes.
    d.run_ok(&["plan", "--format", "json"]);
    for delay in [60, 120, 200, 300, 450] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_octostage"))
            .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
            .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
            .args(d.args(&["run", "--once"]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        // Every other round, the template changes, so the next pass rewrites what was half done.
        d.template("cm.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  round: \"{delay}\"\n  branch: {{{{ branch.name | tojson }}}}\n"));
        d.run_ok(&["run", "--once"]);
        assert_eq!(d.stagings(), 151);
        for e in std::fs::read_dir(&d.out).unwrap() {
            let dir = e.unwrap().path();
            assert!(
                dir.join("octostage-status.yaml").is_file(),
                "{}",
                dir.display()
            );
            for f in std::fs::read_dir(&dir).unwrap() {
                let name = f.unwrap().file_name().into_string().unwrap();
                assert!(!name.ends_with(".tmp"), "{} holds {name}", dir.display());
            }
            let cm = std::fs::read_to_string(dir.join("configmap-info.yaml")).unwrap();
            assert!(cm.contains(&format!("round: \"{delay}\"")), "{cm}");
        }
        let st = status_json(&d);
        assert!(st["left_alone"].as_array().unwrap().is_empty(), "{st}");
        // And the pass after that writes nothing.
        assert!(texts(&d.run(&["run", "--once"])).1.contains("0 writes"));
    }
}
