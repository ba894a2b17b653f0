//! Ordered steps on the control plane: a migration Job in wave -1 is applied, and the
//! Deployment of wave 0 only once the Job completed (its pod run by the simulated nodes, for
//! `sim.octostage.dev/run-for`); a failing Job (its pod annotated to fail) makes the staging
//! failing with the Job's reason, and the running Deployment stays as it was.

use crate::cluster::{json, Setup};
use crate::util::*;

fn templates(s: &Setup) {
    let t = s.cfg.join("t");
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("migrate.yaml"),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate-{{ commit.short_sha }}\n  annotations:\n    octostage.dev/wave: \"-1\"\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      annotations:\n        sim.octostage.dev/run-for: 4s\n        sim.octostage.dev/fail: \"{{ 'true' if commit.subject == 'Bad migration' else 'false' }}\"\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: \"registry.example.com/web:{{ commit.short_sha }}\"\n          args: [migrate]\n",
    )
    .unwrap();
    std::fs::write(
        t.join("web.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: \"registry.example.com/web:{{ commit.short_sha }}\"\n",
    )
    .unwrap();
}

/// Wait until the Job reports `Complete` or `Failed`: the simulated node runs its pod, which
/// succeeds, or fails when the commit's subject says so (see `templates`).
fn job_finished(s: &Setup, ns: &str, name: &str, wanted: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let job = json(&s.kc, &["get", "job", name, "-n", ns]);
        let done = job["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == wanted && c["status"] == "True")
        });
        if done {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Job never reported {wanted}: {job}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn has(s: &Setup, ns: &str, kind: &str, name: &str) -> bool {
    json(&s.kc, &["get", kind, "-n", ns])["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["metadata"]["name"] == name)
}

fn staging<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {plan}"))
}

#[test]
fn a_migration_job_completes_before_the_app_and_a_failing_one_holds_it_back() {
    let s = Setup::new(1);
    templates(&s);
    let ns = format!("{}-main", s.env.name);
    let sha = s.repo.git(&["rev-parse", "--short=7", "main"]);
    let job = format!("migrate-{sha}");

    let (out, _) = s.run();
    assert!(has(&s, &ns, "jobs", &job), "{out}");
    assert!(
        !has(&s, &ns, "deployments", "web"),
        "wave 0 before wave -1 completed"
    );
    assert!(out.contains("wait for wave 0"), "{out}");
    let plan = s.plan();
    let st = staging(&plan, &ns);
    assert_eq!(st["lifecycle"], "pending", "{st}");

    // Still running: a second pass writes nothing and goes no further.
    let (_, writes) = s.run();
    assert_eq!(writes, 0);
    assert!(!has(&s, &ns, "deployments", "web"));

    job_finished(&s, &ns, &job, "Complete");
    let (out, _) = s.run();
    assert!(has(&s, &ns, "deployments", "web"), "{out}");

    // A new commit whose migration fails: the Deployment keeps the old commit's image, and
    // the staging is failing with the Job's reason.
    s.repo.commit("main", "Bad migration", &days_ago(0));
    let sha2 = s.repo.git(&["rev-parse", "--short=7", "main"]);
    let job2 = format!("migrate-{sha2}");
    s.run();
    assert!(has(&s, &ns, "jobs", &job2));
    job_finished(&s, &ns, &job2, "Failed");
    let (out, _) = s.run();
    let image = json(&s.kc, &["get", "deployment", "web", "-n", &ns])["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .clone();
    assert_eq!(image, format!("registry.example.com/web:{sha}"), "{out}");
    let plan = s.plan();
    let st = staging(&plan, &ns);
    assert_eq!(st["lifecycle"], "failing", "{st}");
    assert!(
        st.to_string().contains("BackoffLimitExceeded"),
        "the Job's reason: {st}"
    );
}
