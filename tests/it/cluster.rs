//! Cluster tests against a real kube-apiserver: the local control plane that
//! `scripts/control-plane.sh` starts (shared by every test process), or the cluster named by
//! OCTOSTAGE_TEST_KUBECONFIG. They are never skipped: without a cluster they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

/// The kubeconfig of the test cluster, starting the local control plane when none is given.
pub fn kubeconfig() -> PathBuf {
    if let Some(p) = std::env::var_os("OCTOSTAGE_TEST_KUBECONFIG").filter(|p| !p.is_empty()) {
        return p.into();
    }
    let out = Command::new(root().join("scripts/control-plane.sh"))
        .arg("up")
        .output()
        .expect("control-plane.sh runs");
    assert!(
        out.status.success(),
        "cannot start the local control plane:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// kubectl against the test cluster; panics on failure.
pub fn kubectl(kc: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(kc: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(kc, &a)).unwrap()
}

/// (name, phase, ready) of each pod of `ns`.
pub fn pods(kc: &Path, ns: &str) -> Vec<(String, String, bool)> {
    json(kc, &["get", "pods", "-n", ns])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["phase"].as_str().unwrap_or("").to_string(),
                ready,
            )
        })
        .collect()
}

/// Wait, a minute at most, until `ns` runs `want` pods and every one is Ready (pods of Jobs
/// that finished are not counted). The simulated nodes run them and make them Ready after
/// their readiness probe's delay; no test writes a pod's status.
pub fn pods_ready(kc: &Path, ns: &str, want: usize) {
    let start = std::time::Instant::now();
    loop {
        let running: Vec<_> = pods(kc, ns)
            .into_iter()
            .filter(|(_, phase, _)| phase != "Succeeded" && phase != "Failed")
            .collect();
        if running.len() == want && running.iter().all(|(_, _, ready)| *ready) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "not {want} ready pods in {ns}: {running:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// A unique environment name, and the clean-up of its namespaces when the test ends.
pub struct Env {
    pub name: String,
    pub kc: PathBuf,
}

impl Env {
    pub fn new(kc: &Path) -> Env {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "t{}",
            &octostage::naming::short_hash(&format!("{nanos}{}", std::process::id()), 8)
        );
        Env {
            name,
            kc: kc.to_path_buf(),
        }
    }

    pub fn namespaces(&self) -> Vec<serde_json::Value> {
        let sel = format!("octostage.dev/environment={}", self.name);
        json(&self.kc, &["get", "namespaces", "-l", &sel])["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn active_namespaces(&self) -> Vec<String> {
        self.namespaces()
            .iter()
            .filter(|n| n["metadata"]["deletionTimestamp"].is_null())
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let sel = format!("octostage.dev/environment={}", self.name);
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kc)
            .args(["delete", "namespaces", "-l", &sel, "--wait=false"])
            .output();
        // `run --once` holds the instance's lease for its pass and leaves it released.
        let lease = format!("octostage-{}", self.name);
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kc)
            .args([
                "delete",
                "lease",
                &lease,
                "-n",
                "default",
                "--ignore-not-found",
            ])
            .output();
    }
}

pub fn write_templates(cfg: &Path, extra_cm: bool, note: &str) {
    let t = cfg.join("t");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("settings.yaml"), format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  branch: {{{{ branch.name | tojson }}}}\n  note: {note:?}\n")).unwrap();
    let extra = t.join("extra.yaml");
    if extra_cm {
        std::fs::write(
            &extra,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n",
        )
        .unwrap();
    } else {
        let _ = std::fs::remove_file(&extra);
    }
    std::fs::write(
        t.join("web.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: \"registry.example.com/web:{{ commit.short_sha }}\"\n          readinessProbe: {httpGet: {path: /healthz, port: 8080}, initialDelaySeconds: 2}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n    - port: 80\n      targetPort: 8080\n      protocol: TCP\n",
    )
    .unwrap();
}

pub struct Setup {
    pub _tmp: tempfile::TempDir,
    pub repo: GitRepo,
    pub cfg: PathBuf,
    pub cache: PathBuf,
    pub target: String,
    pub env: Env,
    pub kc: PathBuf,
    /// `POD_NAMESPACE` of the commands, as in a pod: where `run` keeps its lease.
    pub pod_namespace: Option<String>,
}

impl Setup {
    pub fn new(branches: usize) -> Setup {
        let kc = kubeconfig();
        let tmp = tempfile::tempdir().unwrap();
        let repo = GitRepo::init(&tmp.path().join("app"), &days_ago(1));
        for i in 1..branches {
            repo.commit(&format!("feature/f{i}"), "work", &days_ago(1));
        }
        let env = Env::new(&kc);
        let cfg = tmp.path().join("cfg");
        write_templates(&cfg, true, "first");
        std::fs::write(cfg.join("environments.yaml"), format!("version: 1\nenvironments:\n  {}:\n    repository: {}\n    templates: t\n    ttl: 7d\n    always: [main]\n", env.name, repo.path.display())).unwrap();
        let cache = tmp.path().join("cache");
        let target = format!("kube:{}", kc.display());
        Setup {
            _tmp: tmp,
            repo,
            cfg,
            cache,
            target,
            env,
            kc,
            pod_namespace: None,
        }
    }

    /// `CMD...` with this setup's instance, config, cache and target.
    pub fn args(&self, cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--instance".into(),
            self.env.name.clone(),
            "--config".into(),
            self.cfg.display().to_string(),
            "--cache-dir".into(),
            self.cache.display().to_string(),
            "--target".into(),
            self.target.clone(),
        ]);
        args
    }

    /// `octostage CMD...` with this setup's instance, config, cache and target.
    pub fn cmd(&self, cmd: &[&str]) -> std::process::Output {
        let args = self.args(cmd);
        let env: Vec<(&str, &str)> = self
            .pod_namespace
            .iter()
            .map(|n| ("POD_NAMESPACE", n.as_str()))
            .collect();
        crate::util::octostage_env(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
            &env,
        )
    }

    /// `run --once`; returns (stdout, number of writes).
    pub fn run(&self) -> (String, u64) {
        let (stdout, _, writes) = self.run_logged();
        (stdout, writes)
    }

    /// `run --once`; returns (stdout, the objects written as logged, number of writes).
    pub fn run_logged(&self) -> (String, Vec<String>, u64) {
        let out = self.cmd(&["run", "--once", "--log", "info"]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "run failed:\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        let writes = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_suffix(" writes"))
            .and_then(|n| n.trim().parse().ok())
            .expect("writes line");
        // One log line per write request, and the counter agrees with them.
        let written: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains("write: "))
            .map(|l| {
                l.split("object=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(written.len() as u64, writes, "{stderr}");
        (String::from_utf8(out.stdout).unwrap(), written, writes)
    }

    /// Wait until every Deployment of this environment has all its replicas ready (the
    /// simulated nodes run the pods), then run a pass: the stagings that turned healthy record
    /// it, so the passes after this one write only what the test changes.
    pub fn settle(&self) {
        self.deployments_ready();
        self.run();
    }

    /// Wait until every Deployment of this environment has all its replicas ready and its
    /// controller has seen its last change.
    pub fn deployments_ready(&self) {
        let start = std::time::Instant::now();
        let sel = format!("octostage.dev/environment={}", self.env.name);
        loop {
            let deps = json(&self.kc, &["get", "deployments", "-A", "-l", &sel]);
            let ready = deps["items"].as_array().unwrap().iter().all(|d| {
                d["status"]["readyReplicas"].as_i64().unwrap_or(0)
                    == d["spec"]["replicas"].as_i64().unwrap_or(1)
                    && d["status"]["observedGeneration"] == d["metadata"]["generation"]
            });
            if ready {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "Deployments never ready: {deps}"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    pub fn plan(&self) -> serde_json::Value {
        let out = self.cmd(&["plan", "--format", "json"]);
        assert!(
            out.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn twenty_branches_converge_idempotently_prune_restore_and_delete() {
    let s = Setup::new(20);
    let (_, writes) = s.run();
    let namespaces = s.env.namespaces();
    assert_eq!(namespaces.len(), 20);
    for ns in &namespaces {
        let labels = &ns["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "octostage");
        assert_eq!(labels["octostage.dev/staging"], ns["metadata"]["name"]);
        let record = crate::ownership::record_of(ns);
        assert!(record["branch"].is_string(), "{record}");
        // The record keeps what happened to the staging, machine-readable.
        assert_eq!(record["history"][0]["action"], "create", "{record}");
        assert_eq!(
            record["history"][0]["why"]["code"], "new-branch",
            "{record}"
        );
    }
    // Per staging: the namespace and four objects.
    assert_eq!(writes, 20 * 5);
    // And its Event, posted before `run --once` gave up the lease (after it, none could be).
    for ns in &namespaces {
        let name = ns["metadata"]["name"].as_str().unwrap();
        let events = json(&s.kc, &["get", "events.events.k8s.io", "-n", name]);
        let ours = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["reportingController"] == "octostage.dev/controller")
            .count();
        assert!(ours >= 1, "no Event in {name}: {events}");
    }
    let ns = format!("{}-main", s.env.name);
    let names = kubectl(
        &s.kc,
        &[
            "get",
            "configmaps,deployments,services",
            "-n",
            &ns,
            "-l",
            "app.kubernetes.io/managed-by=octostage",
            "-o",
            "name",
        ],
    );
    for o in [
        "configmap/settings",
        "configmap/extra",
        "deployment.apps/web",
        "service/web",
    ] {
        assert!(names.contains(o), "{o} missing in {names}");
    }
    let web = json(
        &s.kc,
        &[
            "get",
            "deployment",
            "web",
            "-n",
            &ns,
            "--show-managed-fields",
        ],
    );
    let managers: Vec<&str> = web["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["manager"].as_str().unwrap())
        .collect();
    // Created with a create request (never over an existing object), by field manager octostage.
    assert!(managers.contains(&"octostage"), "{managers:?}");

    // Healthy once their pods run (each staging records it once); then a pass sends no write
    // request.
    s.settle();
    assert_eq!(s.run().1, 0);

    // A template change re-applies only the changed object of each staging.
    write_templates(&s.cfg, true, "second");
    let plan = s.plan();
    let updates: Vec<&serde_json::Value> = plan["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["action"] == "update")
        .collect();
    assert_eq!(updates.len(), 20, "plan shows the change: {plan}");
    assert_eq!(
        updates[0]["changes"],
        serde_json::json!(["update ConfigMap/settings"])
    );
    // Known only once rendered, and said as a type, not only as text.
    assert_eq!(
        updates[0]["why"],
        serde_json::json!({"code": "rendered", "changes": ["update ConfigMap/settings"], "more": 0})
    );
    // resourceVersion is no proof: the controller manager updates Deployment status on its own.
    let (out, written, writes) = s.run_logged();
    assert_eq!(writes, 20, "{out}");
    assert!(
        written.iter().all(|o| o == "ConfigMap/settings"),
        "{written:?}"
    );
    assert!(
        out.contains("rendered objects changed: update ConfigMap/settings"),
        "{out}"
    );
    let settings = json(
        &s.kc,
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--show-managed-fields",
        ],
    );
    assert_eq!(settings["data"]["note"], "second");
    // Updated with server-side apply by field manager octostage.
    assert!(settings["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["manager"] == "octostage" && f["operation"] == "Apply"));

    // A removed template object is pruned; an object without octostage's labels survives.
    kubectl(
        &s.kc,
        &[
            "create",
            "configmap",
            "hand-made",
            "-n",
            &ns,
            "--from-literal=k=v",
        ],
    );
    write_templates(&s.cfg, false, "second");
    let (_, writes) = s.run();
    assert_eq!(writes, 20, "one prune per staging");
    let names = kubectl(&s.kc, &["get", "configmaps", "-n", &ns, "-o", "name"]);
    assert!(
        !names.contains("configmap/extra") && names.contains("configmap/hand-made"),
        "{names}"
    );

    // A Deployment deleted by hand comes back.
    kubectl(&s.kc, &["delete", "deployment", "web", "-n", &ns]);
    let (out, written, _) = s.run_logged();
    // The staging's record says first that it is pending again (until the new pod is ready).
    assert_eq!(
        written,
        [&format!("Namespace/{ns}"), "Deployment/web"],
        "{out}"
    );
    kubectl(&s.kc, &["get", "deployment", "web", "-n", &ns]);
    s.settle();

    // Five branches deleted and three backdated past the ttl: eight namespaces go, each with its
    // reason, and nothing else is written.
    for i in 1..=5 {
        s.repo.delete_branch(&format!("feature/f{i}"));
    }
    for i in 6..=8 {
        s.repo
            .commit(&format!("feature/f{i}"), "old", &days_ago(30));
    }
    let before: Vec<String> = s.env.active_namespaces();
    let (out, writes) = s.run();
    assert_eq!(
        writes,
        8 * 2,
        "a reason annotation and a delete per staging:\n{out}"
    );
    assert_eq!(out.matches("branch deleted").count(), 5, "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("delete") && l.contains("(ttl 7d)"))
            .count(),
        3,
        "{out}"
    );
    for ns in s.env.namespaces() {
        if !ns["metadata"]["deletionTimestamp"].is_null() {
            let reason = ns["metadata"]["annotations"]["octostage.dev/delete-reason"]
                .as_str()
                .unwrap_or("");
            assert!(
                reason == "branch deleted" || reason.starts_with("no activity for 30d"),
                "{reason}"
            );
        }
    }
    let after = s.env.active_namespaces();
    assert_eq!(after.len(), 12);
    assert!(after.iter().all(|n| before.contains(n)));
    let status: serde_json::Value = serde_json::from_str(&octostage_ok(
        &[
            "status",
            "--format",
            "json",
            "--instance",
            &s.env.name,
            "--target",
            &s.target,
        ],
        0,
    ))
    .unwrap();
    let mine: Vec<&serde_json::Value> = status["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["environment"] == s.env.name.as_str())
        .collect();
    // Awake, applied and healthy: the simulated nodes run their pods.
    assert_eq!(mine.iter().filter(|x| x["state"] == "running").count(), 12);
}

#[test]
fn plan_against_the_cluster_changes_nothing() {
    let s = Setup::new(3);
    let plan = s.plan();
    assert!(
        plan["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["action"] == "create"),
        "{plan}"
    );
    let changes = plan["stagings"][0]["changes"].as_array().unwrap();
    assert_eq!(
        changes.len(),
        5,
        "the namespace and four objects: {changes:?}"
    );
    assert!(changes[0]
        .as_str()
        .unwrap()
        .starts_with("create Namespace/"));
    assert!(s.env.namespaces().is_empty(), "plan created namespaces");
    s.run();
    assert_eq!(s.env.namespaces().len(), 3);

    // Another instance with another configuration on the same cluster leaves them alone.
    let other = Setup::new(2);
    other.run();
    assert_eq!(other.env.namespaces().len(), 2);
    assert_eq!(s.env.active_namespaces().len(), 3);
    s.settle();
    assert_eq!(s.run().1, 0);
}

/// A kubeconfig for a ServiceAccount bound to `deploy/rbac.yaml` (renamed for this test).
pub fn service_account_kubeconfig(kc: &Path, id: &str, dir: &Path) -> PathBuf {
    let rbac = std::fs::read_to_string(root().join("deploy/rbac.yaml")).unwrap();
    let ns = format!("{id}-rbac");
    let rbac = rbac
        .replace("name: octostage\n", &format!("name: {id}\n"))
        .replace("namespace: octostage\n", &format!("namespace: {ns}\n"));
    let file = dir.join("rbac.yaml");
    std::fs::write(&file, rbac).unwrap();
    kubectl(kc, &["create", "namespace", &ns]);
    kubectl(kc, &["apply", "-f", file.to_str().unwrap()]);
    // Kubernetes 1.24+ mints tokens on request; older servers keep them in a Secret.
    let token = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(["create", "token", id, "-n", &ns])
        .output()
        .unwrap();
    let token = if token.status.success() {
        String::from_utf8(token.stdout).unwrap().trim().to_string()
    } else {
        let mut found = None;
        for _ in 0..100 {
            let sa = json(kc, &["get", "serviceaccount", id, "-n", &ns]);
            if let Some(secret) = sa["secrets"][0]["name"].as_str() {
                let s = json(kc, &["get", "secret", secret, "-n", &ns]);
                let b64 = s["data"]["token"].as_str().unwrap().to_string();
                let out = Command::new("base64")
                    .arg("-d")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .and_then(|mut c| {
                        use std::io::Write;
                        c.stdin.take().unwrap().write_all(b64.as_bytes())?;
                        c.wait_with_output()
                    });
                found = Some(String::from_utf8(out.unwrap().stdout).unwrap());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        found.expect("the token controller made no token")
    };
    let view = json(kc, &["config", "view", "--raw", "--minify"]);
    let cluster = &view["clusters"][0]["cluster"];
    let mut cluster_yaml = format!("    server: {}\n", cluster["server"].as_str().unwrap());
    for key in ["certificate-authority", "certificate-authority-data"] {
        if let Some(v) = cluster[key].as_str() {
            cluster_yaml.push_str(&format!("    {key}: {v}\n"));
        }
    }
    let path = dir.join("sa.kubeconfig");
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n{cluster_yaml}users:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: sa}}\ncurrent-context: c\n"),
    )
    .unwrap();
    path
}

#[test]
fn rbac_is_sufficient() {
    let mut s = Setup::new(3);
    let admin = s.kc.clone();
    let id = format!("{}-sa", s.env.name);
    let sa = service_account_kubeconfig(&admin, &id, s._tmp.path());
    s.target = format!("kube:{}", sa.display());
    // `run --once` holds its lease in the service account's namespace, as in a pod.
    s.pod_namespace = Some(format!("{id}-rbac"));
    // Forbidden requests fail the pass, so a green run proves every verb it needed was granted.
    let (_, writes) = s.run();
    assert_eq!(writes, 3 * 5);
    s.settle();
    assert_eq!(s.run().1, 0);
    write_templates(&s.cfg, false, "second");
    s.run();
    s.repo.delete_branch("feature/f1");
    let (out, _) = s.run();
    assert!(out.contains("branch deleted"), "{out}");
    assert_eq!(s.env.active_namespaces().len(), 2);
    // Health reads Deployments, StatefulSets and Jobs; a refusal there only warns, so look.
    let out = s.cmd(&["run", "--once", "--log", "info"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("cannot read how workloads are doing"),
        "{log}"
    );
    // `sleep` patches its request annotation.
    let name = s.env.active_namespaces()[0].clone();
    let o = octostage(&[
        "sleep",
        &name,
        "--instance",
        &s.env.name,
        "--target",
        &s.target,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // `run` keeps watches: a refused watch only warns, so look at a short-lived daemon's log.
    let args = s.args(&["run", "--interval", "1h", "--log", "info"]);
    // Its lease lives in the service account's namespace, as in a pod.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .env("POD_NAMESPACE", format!("{id}-rbac"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    crate::signals::signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, _, log) = crate::signals::finish(child, std::time::Duration::from_secs(10));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("pass finished") && !log.contains("watch failed"),
        "{log}"
    );
    // Its Events (the sleep just asked for) were posted: reading the namespace to check it is
    // octostage's, and creating the Event, are both allowed.
    assert!(
        !log.contains("no event posted") && !log.contains("event not posted"),
        "{log}"
    );
    // It took the lease (get, create, update) and released it at the end.
    assert!(
        log.contains("leading: this replica writes") && log.contains("lease released"),
        "{log}"
    );
    remove_service_account(&admin, &id);
}

/// Undo [`service_account_kubeconfig`].
pub fn remove_service_account(admin: &Path, id: &str) {
    for args in [
        vec!["delete", "clusterrolebinding", id],
        vec!["delete", "clusterrole", id],
        vec!["delete", "namespace", &format!("{id}-rbac"), "--wait=false"],
    ] {
        kubectl(admin, &args);
    }
}

#[test]
fn a_new_namespace_template_moves_stagings() {
    let s = Setup::new(2);
    s.run();
    let file = s.cfg.join("environments.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "    templates: t\n",
        "    templates: t\n    namespace: \"{{ staging }}-v2\"\n",
    );
    std::fs::write(&file, text).unwrap();
    let (out, writes) = s.run();
    assert_eq!(out.matches("namespace changes from").count(), 2, "{out}");
    // Per staging: the new namespace and its four objects, then the old one's reason and delete.
    assert_eq!(writes, 2 * 7, "{out}");
    let mut active = s.env.active_namespaces();
    active.sort();
    assert_eq!(
        active,
        [
            format!("{}-feature-f1-v2", s.env.name),
            format!("{}-main-v2", s.env.name)
        ]
    );
    for ns in s.env.namespaces() {
        if !ns["metadata"]["deletionTimestamp"].is_null() {
            let reason = ns["metadata"]["annotations"]["octostage.dev/delete-reason"]
                .as_str()
                .unwrap();
            assert!(reason.contains("moved to namespace"), "{reason}");
        }
    }
    s.settle();
    assert_eq!(s.run().1, 0);
}

/// A cluster-scoped custom resource of the tests' own, served once its CRD is established.
pub fn cluster_scoped_crd(kc: &Path) {
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: clusterwidgets.test.octostage.dev\nspec:\n  group: test.octostage.dev\n  scope: Cluster\n  names: {plural: clusterwidgets, singular: clusterwidget, kind: ClusterWidget}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), crd.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    kubectl(
        kc,
        &[
            "wait",
            "--for=condition=Established",
            "crd/clusterwidgets.test.octostage.dev",
            "--timeout=30s",
        ],
    );
}

#[test]
fn a_failing_staging_does_not_stop_the_others() {
    let s = Setup::new(3);
    // feature/f1 renders, besides the usual objects, a cluster-scoped kind that only discovery
    // can tell apart (a CRD of the test's own: no built-in list knows it).
    cluster_scoped_crd(&s.kc);
    std::fs::create_dir_all(s.cfg.join("t2")).unwrap();
    for f in ["settings.yaml", "extra.yaml", "web.yaml"] {
        std::fs::copy(s.cfg.join("t").join(f), s.cfg.join("t2").join(f)).unwrap();
    }
    std::fs::write(
        s.cfg.join("t2/flow.yaml"),
        "apiVersion: test.octostage.dev/v1\nkind: ClusterWidget\nmetadata:\n  name: mine\nspec:\n  size: 3\n",
    )
    .unwrap();
    let file = s.cfg.join("environments.yaml");
    let text = std::fs::read_to_string(&file).unwrap()
        + "    overrides:\n      feature/f1:\n        templates: t2\n";
    std::fs::write(&file, text).unwrap();
    let out = s.cmd(&["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed staging fails the pass"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.contains("feature/f1")
            && l.contains("FAILED")
            && l.contains("test.octostage.dev/v1/ClusterWidget is cluster-scoped")),
        "{stdout}"
    );
    // Discovery said so, not the built-in list (whose message names the namespace).
    assert!(
        !stdout.contains("octostage creates the namespace itself"),
        "{stdout}"
    );
    let mut active = s.env.active_namespaces();
    active.sort();
    assert_eq!(
        active,
        [
            format!("{}-feature-f2", s.env.name),
            format!("{}-main", s.env.name)
        ]
    );
    let flows = kubectl(&s.kc, &["get", "flowschemas", "-o", "name"]);
    assert!(
        !flows.contains("flowschema.flowcontrol.apiserver.k8s.io/mine"),
        "{flows}"
    );
}

/// `tests/cluster-tests.filter` (the tests that run again on the oldest supported Kubernetes)
/// names every test that starts a cluster setup, so none is left out of that round.
#[test]
fn the_oldest_version_round_names_every_cluster_test() {
    let filter = std::fs::read_to_string(root().join("tests/cluster-tests.filter")).unwrap();
    let modules: Vec<&str> = filter
        .split("test(/^(")
        .nth(1)
        .and_then(|r| r.split(")::/)").next())
        .unwrap()
        .split('|')
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/it")).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for chunk in text.split("#[test]\n").skip(1) {
            let name = chunk
                .split("fn ")
                .nth(1)
                .and_then(|r| r.split('(').next())
                .unwrap();
            let body = chunk.split("\n}\n").next().unwrap();
            let on_cluster = ["kubeconfig()", "Setup::new(", "App::new("]
                .iter()
                .any(|m| body.contains(m));
            let named = modules.contains(&module.as_str())
                || filter.contains(&format!("test(={module}::{name})"));
            if on_cluster && !named {
                missing.push(format!("{module}::{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add to tests/cluster-tests.filter: {missing:?}"
    );
}
