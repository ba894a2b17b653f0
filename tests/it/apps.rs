//! Three applications written as teams write them (tests/fixtures/apps): a Helm chart with a
//! local subchart (ledger), a kustomize overlay over a base (tracker), and config-repository
//! templates (notes). Together they cover Deployment, StatefulSet with volumeClaimTemplates,
//! batch/v1 CronJob and Job, policy/v1 PodDisruptionBudget, autoscaling/v2 HPA, Ingress and
//! Gateway API HTTPRoute, gRPC and HTTP probes, ServiceAccount, Role, NetworkPolicy, ConfigMap,
//! Secret, and Services whose ports omit `protocol`.
//!
//! On the local control plane each converges, becomes healthy from the simulated nodes' pods
//! (no test writes any status), sleeps (no pods, volume claims kept, CronJobs suspended, HPA
//! untouched), wakes healthy again and is deleted without leftovers.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster::{json, kubeconfig, pods, pods_ready, Env};
use crate::util::*;

struct App {
    _tmp: tempfile::TempDir,
    env: Env,
    repo: GitRepo,
    /// `--config`, `--cache-dir` and the target's kubeconfig, for `run`.
    config: Vec<String>,
    target: String,
    ns: String,
}

impl App {
    /// The fixture `name` as the `main` branch of an application repository, and a config
    /// repository whose environment is `spec` (indented under the environment).
    fn new(name: &str, spec: &str) -> App {
        let kc = kubeconfig();
        let tmp = tempfile::tempdir().unwrap();
        let fixture = root().join("tests/fixtures/apps").join(name);
        let repo_dir = tmp.path().join(name);
        let repo = GitRepo::with_files(&repo_dir, &fixture, &days_ago(1), "Deploy manifests");
        crate::app_manifests::commit_files(
            &repo,
            "feature/review",
            &[("CHANGELOG.md", Some("- Review me\n"))],
            "Review me",
        );
        let env = Env::new(&kc);
        let cfg = tmp.path().join("cfg");
        copy_dir(&fixture, &cfg);
        std::fs::write(
            cfg.join("environments.yaml"),
            format!(
                "version: 1\nenvironments:\n  {}:\n    repository: {}\n    branches: {{include: [feature/**]}}\n{spec}",
                env.name,
                repo.path.display()
            ),
        )
        .unwrap();
        let ns = format!("{}-feature-review", env.name);
        let config = [
            "--config",
            &cfg.display().to_string(),
            "--cache-dir",
            &tmp.path().join("cache").display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        App {
            _tmp: tmp,
            env,
            repo,
            config,
            target: format!("kube:{}", kc.display()),
            ns,
        }
    }

    fn octostage(&self, cmd: &[&str]) -> String {
        let mut args: Vec<&str> = cmd.to_vec();
        args.extend(self.config.iter().map(String::as_str));
        args.extend(["--instance", &self.env.name, "--target", &self.target]);
        let out = octostage(&args);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{cmd:?}:\n{stdout}\n{stderr}");
        stdout
    }

    /// A command that takes only the instance and the target (status, sleep, wake).
    fn steer(&self, cmd: &[&str]) -> String {
        let mut args: Vec<&str> = cmd.to_vec();
        args.extend(["--instance", &self.env.name, "--target", &self.target]);
        octostage_ok(&args, 0)
    }

    fn kc(&self) -> &Path {
        &self.env.kc
    }

    fn items(&self, kind: &str) -> Vec<serde_json::Value> {
        json(self.kc(), &["get", kind, "-n", &self.ns])["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn state(&self) -> String {
        let out = self.steer(&["status", "--format", "json"]);
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        status["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == self.ns.as_str())
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Passes until the staging reports `want`, within a minute.
    fn converge_to(&self, want: &str) {
        let start = Instant::now();
        loop {
            let out = self.octostage(&["run", "--once"]);
            let state = self.state();
            if state == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{} never {want} (now {state}):\n{out}\npods: {:?}",
                self.ns,
                self.pods()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn pods(&self) -> Vec<(String, String, bool)> {
        pods(self.kc(), &self.ns)
    }

    fn wait_no_pods(&self) {
        let start = Instant::now();
        while self
            .pods()
            .iter()
            .any(|(_, phase, _)| phase != "Succeeded" && phase != "Failed")
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "pods left in {}: {:?}",
                self.ns,
                self.pods()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The whole life: converge, healthy, sleep, wake, delete. `pods` is how many pods the
    /// workloads run when awake.
    fn live(&self, pods: usize) -> (serde_json::Value, Vec<String>) {
        self.converge_to("running");
        pods_ready(self.kc(), &self.ns, pods);
        let hpas = self.items("horizontalpodautoscalers");
        let claims: Vec<String> = self
            .items("persistentvolumeclaims")
            .iter()
            .map(|c| {
                assert_eq!(c["status"]["phase"], "Bound", "{c}");
                c["metadata"]["uid"].as_str().unwrap().to_string()
            })
            .collect();

        // Asleep: no pods, claims kept (the same objects), CronJobs suspended, HPAs as they were.
        self.steer(&["sleep", &self.ns]);
        self.octostage(&["run", "--once"]);
        assert!(self.state().starts_with("sleeping"), "{}", self.state());
        self.wait_no_pods();
        let kept: Vec<String> = self
            .items("persistentvolumeclaims")
            .iter()
            .map(|c| c["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kept, claims);
        for c in self.items("cronjobs") {
            assert_eq!(c["spec"]["suspend"], true, "{c}");
        }
        let hpas_asleep = self.items("horizontalpodautoscalers");
        assert_eq!(hpas_asleep.len(), hpas.len());
        for (a, b) in hpas.iter().zip(&hpas_asleep) {
            assert_eq!(a["metadata"]["uid"], b["metadata"]["uid"]);
            assert_eq!(a["spec"], b["spec"]);
        }

        // Awake: healthy again from the same claims.
        self.steer(&["wake", &self.ns]);
        self.converge_to("running");
        pods_ready(self.kc(), &self.ns, pods);
        for c in self.items("cronjobs") {
            assert_ne!(c["spec"]["suspend"], true, "{c}");
        }
        let objects = json(self.kc(), &["get", "all", "-n", &self.ns]);
        (objects, claims)
    }

    /// The branch goes: the namespace and every volume of the staging go with it.
    fn delete(&self) {
        self.repo.delete_branch("feature/review");
        self.octostage(&["run", "--once"]);
        let start = Instant::now();
        loop {
            let left = json(self.kc(), &["get", "namespaces"])["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["metadata"]["name"] == self.ns.as_str());
            let volumes: Vec<serde_json::Value> = json(self.kc(), &["get", "pv"])["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v["spec"]["claimRef"]["namespace"] == self.ns.as_str())
                .cloned()
                .collect();
            if !left && volumes.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "left behind: namespace {left}, volumes {volumes:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn kinds(app: &App) -> Vec<String> {
    let mut kinds: Vec<String> = [
        "deployments",
        "statefulsets",
        "cronjobs",
        "jobs",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
        "ingresses",
        "httproutes",
        "serviceaccounts",
        "roles",
        "networkpolicies",
        "configmaps",
        "secrets",
        "services",
    ]
    .iter()
    .filter(|k| {
        app.items(k)
            .iter()
            .any(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "octostage")
    })
    .map(|k| k.to_string())
    .collect();
    kinds.sort();
    kinds
}

#[test]
fn a_helm_chart_with_a_local_subchart_lives_sleeps_wakes_and_leaves_nothing() {
    let app = App::new(
        "ledger",
        "    helm:\n      from: app\n      chart: chart\n      release: review\n      values:\n        image: {tag: \"{{ commit.short_sha }}\"}\n        ingress: {host: \"{{ staging }}.ledger.preview.example.com\"}\n        postgres: {storage: 1Gi}\n",
    );
    // api: 2 (its HPA's minimum; the chart leaves replicas to the HPA), worker 1, postgres 1.
    let (objects, claims) = app.live(4);
    assert_eq!(claims.len(), 1, "postgres's volume claim");
    let api = json(
        app.kc(),
        &["get", "deployment", "review-ledger-api", "-n", &app.ns],
    );
    let sha = app.repo.git(&["rev-parse", "--short=7", "feature/review"]);
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.example.com/acme/ledger:{sha}").as_str(),
        "{objects}"
    );
    let kinds = kinds(&app);
    for k in [
        "deployments",
        "statefulsets",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
        "ingresses",
        "serviceaccounts",
        "secrets",
        "configmaps",
        "services",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} missing: {kinds:?}");
    }
    app.delete();
}

#[test]
fn a_kustomize_overlay_with_grpc_probes_a_job_and_a_route_lives_sleeps_wakes_and_leaves_nothing() {
    let app = App::new(
        "tracker",
        "    app_paths: [deploy/base]\n    kustomize:\n      from: app\n      path: deploy/overlays/preview\n      images:\n        - {name: tracker, new_name: registry.example.com/acme/tracker, new_tag: \"{{ commit.sha }}\"}\n      patches:\n        - target: {kind: HTTPRoute, name: web}\n          patch: |\n            - op: replace\n              path: /spec/hostnames/0\n              value: \"{{ staging }}.tracker.preview.example.com\"\n",
    );
    // backend 1 (the overlay's patch), web 1; the migration Job's pod has completed.
    app.live(2);
    let route = json(app.kc(), &["get", "httproute", "web", "-n", &app.ns]);
    assert_eq!(
        route["spec"]["hostnames"][0],
        format!("{}.tracker.preview.example.com", app.ns).as_str()
    );
    let job = json(app.kc(), &["get", "job", "migrate", "-n", &app.ns]);
    assert!(
        job["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True"),
        "{job}"
    );
    let kinds = kinds(&app);
    for k in [
        "cronjobs",
        "jobs",
        "httproutes",
        "roles",
        "networkpolicies",
        "serviceaccounts",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} missing: {kinds:?}");
    }
    app.delete();
}

#[test]
fn config_templates_with_redis_an_hpa_and_both_routes_live_sleep_wake_and_leave_nothing() {
    let app = App::new(
        "notes",
        "    templates: templates\n    values:\n      registry: registry.example.com/acme\n      web_replicas: 1\n      host: \"{{ staging }}.notes.preview.example.com\"\n",
    );
    // web 1, api 2, redis 1.
    let (_, claims) = app.live(4);
    assert_eq!(claims.len(), 1, "redis's volume claim");
    let kinds = kinds(&app);
    for k in [
        "deployments",
        "statefulsets",
        "cronjobs",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
        "ingresses",
        "httproutes",
        "networkpolicies",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} missing: {kinds:?}");
    }
    app.delete();
}
