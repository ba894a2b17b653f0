//! Regression tests for the hostile review on the real API server (issue "Trustworthy"):
//! octostage writes, prunes and deletes only what it created, for this instance, and proves it
//! from the object itself; drift is shown and restored; signals stop the kube target cleanly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::{json, kubectl, remove_service_account, service_account_kubeconfig, Setup};
use crate::signals::{finish, signal, spawn};
use crate::util::*;

/// Namespaces a test made by hand, deleted when it ends.
pub struct HandMade {
    kc: PathBuf,
    names: Vec<String>,
}

impl HandMade {
    pub fn new(kc: &Path) -> HandMade {
        HandMade {
            kc: kc.to_path_buf(),
            names: Vec::new(),
        }
    }

    /// A namespace made with kubectl, holding a ConfigMap `precious`.
    pub fn namespace(&mut self, name: &str) {
        kubectl(&self.kc, &["create", "namespace", name]);
        kubectl(
            &self.kc,
            &[
                "-n",
                name,
                "create",
                "configmap",
                "precious",
                "--from-literal=a=b",
            ],
        );
        self.names.push(name.to_string());
    }
}

impl Drop for HandMade {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kc)
                .args(["delete", "namespace", n, "--wait=false"])
                .output();
        }
    }
}

impl Setup {
    /// Rewrite environments.yaml: this setup's environment with `extra` lines.
    fn config(&self, extra: &str) {
        std::fs::write(
            self.cfg.join("environments.yaml"),
            format!(
                "version: 1\nenvironments:\n  {}:\n    repository: {}\n    templates: t\n    ttl: 7d\n    always: [main]\n{extra}",
                self.env.name,
                self.repo.path.display()
            ),
        )
        .unwrap();
    }

    fn run_code(&self) -> (Option<i32>, String, String) {
        let r = self.cmd(&["run", "--once"]);
        let (o, e) = texts(&r);
        (r.status.code(), o, e)
    }
}

/// The record octostage keeps on a namespace.
pub fn record_of(ns: &serde_json::Value) -> serde_json::Value {
    let text = ns["metadata"]["annotations"]["octostage.dev/record"]
        .as_str()
        .unwrap_or_else(|| panic!("no record on {ns}"));
    serde_json::from_str(text).unwrap()
}

/// kubectl in namespace `ns`.
fn kubectl_in(kc: &Path, ns: &str, args: &[&str]) -> String {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    kubectl(kc, &a)
}

/// Names of the objects of `kinds` in namespace `ns` matching `selector`.
fn names(kc: &Path, ns: &str, kinds: &str, selector: &str) -> String {
    kubectl(kc, &["-n", ns, "get", kinds, "-l", selector, "-o", "name"])
}

/// The namespace is as it was: no octostage label or annotation, `precious` intact, nothing
/// of octostage's inside.
pub fn untouched(kc: &Path, ns: &str) {
    let n = json(kc, &["get", "namespace", ns]);
    assert!(
        n["metadata"]["deletionTimestamp"].is_null(),
        "{ns} is being deleted"
    );
    let meta = n["metadata"].to_string();
    assert!(!meta.contains("octostage"), "{ns} was labelled: {meta}");
    assert_eq!(
        json(kc, &["-n", ns, "get", "configmap", "precious"])["data"]["a"],
        "b"
    );
    let ours = names(
        kc,
        ns,
        "configmaps,deployments",
        "app.kubernetes.io/managed-by=octostage",
    );
    assert!(ours.trim().is_empty(), "octostage wrote into {ns}: {ours}");
}

/// Finding 1: `namespace: victim` relabelled an existing namespace and a later pass deleted it
/// with its data.
#[test]
fn a_namespace_octostage_did_not_create_is_never_adopted_written_or_deleted() {
    let s = Setup::new(1);
    let mut hand = HandMade::new(&s.kc);
    let victim = format!("{}-victim", s.env.name);
    hand.namespace(&victim);
    s.config(&format!(
        "    namespace: {victim}\n    branches:\n      include: [main]\n"
    ));
    let (code, out, _) = s.run_code();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "namespace {victim:?} exists and octostage did not create it"
        )),
        "{out}"
    );
    untouched(&s.kc, &victim);
    s.config(&format!(
        "    namespace: {victim}\n    branches:\n      include: [nomatch]\n"
    ));
    let (code, out, err) = s.run_code();
    assert_eq!(code, Some(0), "{out}{err}");
    untouched(&s.kc, &victim);
}

/// Finding 1, with the default namespace template, and with octostage's labels copied by hand.
#[test]
fn a_namespace_in_the_way_of_a_branch_staging_is_a_conflict_never_adopted_or_deleted() {
    let s = Setup::new(1);
    let mut hand = HandMade::new(&s.kc);
    let z = format!("{}-feature-z", s.env.name);
    hand.namespace(&z);
    // Every label octostage puts on its namespaces, copied onto one it did not create.
    let y = format!("{}-feature-y", s.env.name);
    hand.namespace(&y);
    kubectl(
        &s.kc,
        &[
            "label",
            "namespace",
            &y,
            "app.kubernetes.io/managed-by=octostage",
            &format!("octostage.dev/instance={}", s.env.name),
            &format!("octostage.dev/environment={}", s.env.name),
            &format!("octostage.dev/staging={y}"),
        ],
    );
    s.repo.commit("feature/z", "w", &days_ago(1));
    s.repo.commit("feature/y", "w", &days_ago(1));
    let (code, out, _) = s.run_code();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("exists and octostage did not create it"),
        "{out}"
    );
    assert!(
        out.contains("carries octostage's labels but no creation record"),
        "{out}"
    );
    untouched(&s.kc, &z);
    let status = octostage_ok(
        &["status", "--instance", &s.env.name, "--target", &s.target],
        0,
    );
    assert!(
        status.contains(&format!("left alone: namespace {y}")),
        "{status}"
    );
    s.repo.delete_branch("feature/z");
    s.repo.delete_branch("feature/y");
    let (code, out, err) = s.run_code();
    assert_eq!(code, Some(0), "{out}{err}");
    untouched(&s.kc, &z);
    assert_eq!(
        json(&s.kc, &["-n", &y, "get", "configmap", "precious"])["data"]["a"],
        "b"
    );
    assert!(json(&s.kc, &["get", "namespace", &y])["metadata"]["deletionTimestamp"].is_null());
}

/// Finding 1: `namespace: kube-system` applied objects into kube-system and sent DELETE for it.
#[test]
fn protected_namespaces_are_refused_before_any_write() {
    let s = Setup::new(1);
    s.config("    namespace: kube-system\n");
    let (code, _, err) = s.run_code();
    assert_eq!(code, Some(1));
    assert!(
        err.contains("namespace \"kube-system\" is protected"),
        "{err}"
    );
    s.config("    namespace: \"kube-{{ branch.slug }}\"\n");
    let (code, out, _) = s.run_code();
    assert_eq!(code, Some(1));
    assert!(
        out.contains("namespace \"kube-main\" is protected"),
        "{out}"
    );
    let mine = format!("octostage.dev/environment={}", s.env.name);
    let in_system = names(
        &s.kc,
        "kube-system",
        "configmaps,deployments,services",
        &mine,
    );
    assert!(in_system.trim().is_empty(), "{in_system}");
}

/// Finding 2: names and namespaces are unique across instances on one cluster.
#[test]
fn two_instances_never_share_a_staging() {
    let s = Setup::new(2);
    s.run();
    let other = octostage(&[
        "run",
        "--once",
        "--instance",
        "other-instance",
        "--config",
        s.cfg.to_str().unwrap(),
        "--cache-dir",
        s.cache.to_str().unwrap(),
        "--target",
        &s.target,
    ]);
    let (out, _) = texts(&other);
    assert_eq!(other.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("belongs to octostage instance {:?}", s.env.name)),
        "{out}"
    );
    for ns in s.env.namespaces() {
        assert_eq!(
            ns["metadata"]["labels"]["octostage.dev/instance"],
            s.env.name.as_str()
        );
    }
    s.settle();
    assert_eq!(s.run().1, 0, "the owner's next pass writes nothing");
}

/// Finding 6: hand edits were never restored and plan said "up to date".
#[test]
fn drift_is_shown_by_plan_and_restored_in_one_pass() {
    let s = Setup::new(1);
    s.run();
    let ns = format!("{}-main", s.env.name);
    kubectl_in(
        &s.kc,
        &ns,
        &["set", "image", "deploy/web", "web=evil:latest"],
    );
    let plan = s.plan();
    let main = &plan["stagings"][0];
    assert_eq!(main["action"], "update", "{plan}");
    assert_eq!(
        main["changes"],
        serde_json::json!(["restore Deployment/web (spec.template.spec.containers[name=web].image changed by kubectl-set)"])
    );
    let (out, written, _) = s.run_logged();
    // The rollout the hand edit started may have made the staging pending: its record says so.
    let mut written: Vec<String> = written
        .into_iter()
        .filter(|w| *w != format!("Namespace/{ns}"))
        .collect();
    // At most two writes: the first update of an object octostage created turns its create
    // entry into an apply entry (server defaults make it differ from the template).
    assert!(written.len() <= 2, "{out}");
    written.dedup();
    assert_eq!(written, ["Deployment/web"]);
    let image = json(&s.kc, &["-n", &ns, "get", "deploy", "web"])["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .clone();
    assert!(
        image
            .as_str()
            .unwrap()
            .starts_with("registry.example.com/web:"),
        "{image}"
    );
    // Healthy again once the restored pods run; then nothing to write.
    s.settle();
    assert_eq!(s.run().1, 0);
    // A server-side apply by another field manager.
    let file = s.cfg.join("hack.yaml");
    std::fs::write(&file, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  note: hacked\n")).unwrap();
    kubectl(
        &s.kc,
        &[
            "apply",
            "--server-side",
            "--field-manager=evil",
            "--force-conflicts",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let plan = s.plan();
    assert_eq!(
        plan["stagings"][0]["changes"],
        serde_json::json!(["restore ConfigMap/settings (data.note changed by evil)"])
    );
    let (_, written, _) = s.run_logged();
    assert_eq!(written, ["ConfigMap/settings"]);
    assert_eq!(
        json(&s.kc, &["-n", &ns, "get", "cm", "settings"])["data"]["note"],
        "first"
    );
    s.settle();
    assert_eq!(s.run().1, 0);
}

/// Finding 11: an object with only octostage's managed-by label was pruned; an object made by
/// hand where octostage would create one was overwritten.
#[test]
fn only_objects_with_the_full_ownership_record_are_pruned_or_written() {
    let s = Setup::new(1);
    s.run();
    let ns = format!("{}-main", s.env.name);
    kubectl_in(
        &s.kc,
        &ns,
        &["create", "configmap", "only-label", "--from-literal=k=v"],
    );
    kubectl_in(
        &s.kc,
        &ns,
        &[
            "label",
            "configmap",
            "only-label",
            "app.kubernetes.io/managed-by=octostage",
        ],
    );
    // Every label and the hash annotation copied, but made by kubectl.
    kubectl_in(
        &s.kc,
        &ns,
        &["create", "configmap", "copied", "--from-literal=k=v"],
    );
    kubectl_in(
        &s.kc,
        &ns,
        &[
            "label",
            "configmap",
            "copied",
            "app.kubernetes.io/managed-by=octostage",
            &format!("octostage.dev/instance={}", s.env.name),
            &format!("octostage.dev/environment={}", s.env.name),
            &format!("octostage.dev/staging={ns}"),
        ],
    );
    kubectl_in(
        &s.kc,
        &ns,
        &[
            "annotate",
            "configmap",
            "copied",
            "octostage.dev/content-hash=abc",
        ],
    );
    write_extra(&s.cfg, false);
    let (_, written, _) = s.run_logged();
    assert_eq!(
        written,
        ["ConfigMap/extra"],
        "only octostage's own object is pruned"
    );
    for cm in ["only-label", "copied"] {
        assert_eq!(
            json(&s.kc, &["-n", &ns, "get", "configmap", cm])["data"]["k"],
            "v"
        );
    }
    // A template that now renders an object someone made by hand.
    kubectl_in(
        &s.kc,
        &ns,
        &["create", "configmap", "theirs", "--from-literal=k=v"],
    );
    std::fs::write(
        s.cfg.join("t/theirs.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: theirs\ndata:\n  k: mine\n",
    )
    .unwrap();
    let (code, out, _) = s.run_code();
    assert_eq!(code, Some(1));
    assert!(
        out.contains("ConfigMap/theirs") && out.contains("octostage did not create it"),
        "{out}"
    );
    let theirs = json(&s.kc, &["-n", &ns, "get", "configmap", "theirs"]);
    assert_eq!(theirs["data"]["k"], "v");
    assert!(theirs["metadata"]["labels"].is_null(), "{theirs}");
}

fn write_extra(cfg: &Path, extra: bool) {
    crate::cluster::write_templates(cfg, extra, "first");
}

/// Finding 9: SIGTERM with the kube target panicked ("Cannot drop a runtime ...", exit 101).
#[test]
fn sigterm_with_the_kube_target_exits_0_without_a_panic() {
    let s = Setup::new(4);
    std::fs::write(
        s.cfg.join("render.sh"),
        "sleep 1\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: slow\\n'\n",
    )
    .unwrap();
    std::fs::write(
        s.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {}:\n    repository: {}\n    command: [\"sh\", \"render.sh\"]\n",
            s.env.name,
            s.repo.path.display()
        ),
    )
    .unwrap();
    let args: Vec<String> = [
        "run",
        "--interval",
        "1h",
        "--concurrency",
        "1",
        "--instance",
        &s.env.name,
        "--config",
        s.cfg.to_str().unwrap(),
        "--cache-dir",
        s.cache.to_str().unwrap(),
        "--target",
        &s.target,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let child = spawn(&args);
    std::thread::sleep(Duration::from_millis(1800));
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, _, err) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(s.env.active_namespaces().len() < 4);
    let (code, out, err) = s.run_code();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(s.env.active_namespaces().len(), 4);
}

/// RBAC, re-checked: a staging that renders a RoleBinding to cluster-admin is refused by the
/// API server under deploy/rbac.yaml, and the other stagings go on.
#[test]
fn a_rolebinding_to_cluster_admin_is_refused_under_the_octostage_role() {
    let mut s = Setup::new(2);
    let admin = s.kc.clone();
    let id = format!("{}-sa", s.env.name);
    let sa = service_account_kubeconfig(&admin, &id, s._tmp.path());
    s.target = format!("kube:{}", sa.display());
    s.pod_namespace = Some(format!("{id}-rbac"));
    std::fs::create_dir_all(s.cfg.join("t2")).unwrap();
    std::fs::copy(
        s.cfg.join("t/settings.yaml"),
        s.cfg.join("t2/settings.yaml"),
    )
    .unwrap();
    std::fs::write(
        s.cfg.join("t2/admin.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: make-me-admin\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: ServiceAccount\n    name: default\n    namespace: default\n",
    )
    .unwrap();
    s.config("    overrides:\n      feature/f1:\n        templates: t2\n");
    let (code, out, _) = s.run_code();
    assert_eq!(code, Some(1), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("feature/f1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("FAILED") && row.contains("forbidden"), "{row}");
    let ns = format!("{}-feature-f1", s.env.name);
    let bindings = kubectl(&admin, &["-n", &ns, "get", "rolebindings", "-o", "name"]);
    assert!(!bindings.contains("make-me-admin"), "{bindings}");
    assert!(s
        .env
        .active_namespaces()
        .contains(&format!("{}-main", s.env.name)));
    remove_service_account(&admin, &id);
}

/// Found by attacking octostage: `git branch -m feat FEAT` gave the new branch the old
/// staging's name, so the pass applied FEAT's objects into the namespace it was deleting for
/// feat, and FEAT's staging vanished while the pass reported success.
#[test]
fn a_renamed_branch_never_writes_into_the_namespace_being_deleted() {
    let s = Setup::new(1);
    s.repo.commit("feat", "w", &days_ago(1));
    s.run();
    let old = format!("{}-feat", s.env.name);
    let old_uid = json(&s.kc, &["get", "namespace", &old])["metadata"]["uid"].clone();
    s.repo.git(&["branch", "-m", "feat", "FEAT"]);
    let (code, out, err) = s.run_code();
    assert_eq!(code, Some(0), "{out}{err}");
    let active = s.env.active_namespaces();
    assert!(!active.contains(&old), "{active:?}");
    let new = active
        .iter()
        .find(|n| n.starts_with(&format!("{old}-")))
        .unwrap_or_else(|| panic!("FEAT has no namespace of its own: {active:?}"));
    let ns = json(&s.kc, &["get", "namespace", new]);
    assert_eq!(record_of(&ns)["branch"], "FEAT");
    assert_ne!(ns["metadata"]["uid"], old_uid);
    s.settle();
    assert_eq!(s.run().1, 0);
}
