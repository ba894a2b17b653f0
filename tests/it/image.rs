//! The container image (scripts/image.sh) run as a pod would see it: the ServiceAccount of
//! `deploy/rbac.yaml` (its token and the cluster's CA at the in-cluster paths,
//! KUBERNETES_SERVICE_HOST/PORT), a read-only root filesystem, non-root, the config and
//! application repositories over authenticated HTTPS; it converges a kustomize overlay and a
//! helm chart of the application repository, serves the dashboard, and stops on SIGTERM within
//! the grace period.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::app_manifests::commit_files;
use crate::cluster::{kubeconfig, kubectl};
use crate::http::{free_port, get};
use crate::util::*;

const TOKEN: &str = "image-test-token-5e1d";

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--cgroup-manager", "cgroupfs", "--runtime", "runc"]);
    c
}

/// The image under test: OCTOSTAGE_TEST_IMAGE, else octostage:dev, built when missing.
fn image() -> String {
    let name = std::env::var("OCTOSTAGE_TEST_IMAGE").unwrap_or_else(|_| "octostage:dev".into());
    let exists = podman().args(["image", "exists", &name]).status().unwrap();
    if !exists.success() {
        let built = Command::new(root().join("scripts/image.sh"))
            .args(["build", &name])
            .status()
            .unwrap();
        assert!(built.success(), "scripts/image.sh build {name} failed");
    }
    name
}

/// The API server's host and port, from the kubeconfig.
fn api_server(kc: &Path) -> (String, String) {
    let server = kubectl(
        kc,
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    let url = url::Url::parse(server.trim()).unwrap();
    (
        url.host_str().unwrap().to_string(),
        url.port().unwrap_or(443).to_string(),
    )
}

fn app_files(app: &GitRepo) {
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: web:1\n";
    let chart_deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n        - name: api\n          image: {{ .Values.image | quote }}\n";
    commit_files(
        app,
        "main",
        &[
            (
                "deploy/base/kustomization.yaml",
                Some("resources: [deployment.yaml, cm.yaml]\n"),
            ),
            ("deploy/base/deployment.yaml", Some(deploy)),
            (
                "deploy/base/cm.yaml",
                Some(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
                ),
            ),
            (
                "deploy/overlay/kustomization.yaml",
                Some("resources: [../base]\nnamePrefix: shop-\n"),
            ),
            (
                "deploy/chart/Chart.yaml",
                Some("apiVersion: v2\nname: api\nversion: 0.1.0\n"),
            ),
            ("deploy/chart/values.yaml", Some("image: api:1\n")),
            ("deploy/chart/templates/deployment.yaml", Some(chart_deploy)),
        ],
        "Manifests: a kustomize overlay and a chart",
    );
}

#[test]
fn the_image_runs_as_a_pod_converges_kustomize_and_helm_stagings_and_stops_on_sigterm() {
    let image = image();
    let kc = kubeconfig();
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("i{}", &uuid_like(tmp.path())[..6]);
    // The application repository and the config repository, served over HTTPS with a token.
    let app = GitRepo::init(&tmp.path().join("app"), &days_ago(1));
    app_files(&app);
    let repos = tmp.path().join("repos");
    crate::git_servers::bare(&app.path, &repos, "app");
    let src = tmp.path().join("cfgsrc");
    std::fs::create_dir_all(&src).unwrap();
    let server_dir = tmp.path().join("https");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = crate::git_servers::HttpsGit::start(&server_dir, &repos, "ops", TOKEN);
    let (k, h) = (format!("{id}k"), format!("{id}h"));
    std::fs::write(
        src.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {k}:\n    repository: {{url: {app}, credentials: {{username: ops, token_env: APP_TOKEN}}}}\n    always: [main]\n    app_paths: [deploy]\n    kustomize: {{from: app, path: deploy/overlay}}\n  {h}:\n    repository: {{url: {app}, credentials: {{username: ops, token_env: APP_TOKEN}}}}\n    always: [main]\n    app_paths: [deploy]\n    helm: {{from: app, chart: deploy/chart, values: {{image: \"api:2\"}}}}\n",
            app = server.url("app"),
        ),
    )
    .unwrap();
    let c = GitRepo { path: src.clone() };
    c.git(&["init", "-q", "-b", "main"]);
    c.git(&[
        "-c",
        "user.name=Ops",
        "-c",
        "user.email=ops@example.com",
        "add",
        "-A",
    ]);
    c.git(&[
        "-c",
        "user.name=Ops",
        "-c",
        "user.email=ops@example.com",
        "commit",
        "-q",
        "-m",
        "config",
    ]);
    crate::git_servers::bare(&src, &repos, "cfg");

    // The ServiceAccount of deploy/, its token and the cluster's CA where a pod has them.
    kubectl(
        &kc,
        &[
            "apply",
            "-f",
            root().join("deploy/namespace.yaml").to_str().unwrap(),
        ],
    );
    kubectl(
        &kc,
        &[
            "apply",
            "-f",
            root().join("deploy/rbac.yaml").to_str().unwrap(),
        ],
    );
    let sa = tmp.path().join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    let token = kubectl(
        &kc,
        &[
            "-n",
            "octostage",
            "create",
            "token",
            "octostage",
            "--duration",
            "1h",
        ],
    );
    std::fs::write(sa.join("token"), token.trim()).unwrap();
    let ca = kubectl(
        &kc,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority}",
        ],
    );
    std::fs::copy(ca.trim(), sa.join("ca.crt")).unwrap();
    std::fs::write(sa.join("namespace"), "octostage").unwrap();
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(tmp.path())
        .status();
    let (host, port) = api_server(&kc);
    let (listen, probes) = (free_port(), free_port());
    let name = format!("octostage-{id}");
    let (scratch, cache) = (tmp.path().join("scratch"), tmp.path().join("cache"));
    for dir in [&scratch, &cache] {
        std::fs::create_dir_all(dir).unwrap();
        let owned = Command::new("chown")
            .arg("65532:65532")
            .arg(dir)
            .status()
            .unwrap();
        assert!(owned.success());
    }
    let env = [
        format!("KUBERNETES_SERVICE_HOST={host}"),
        format!("KUBERNETES_SERVICE_PORT={port}"),
        "POD_NAMESPACE=octostage".into(),
        format!("POD_NAME={name}"),
        format!("OCTOSTAGE_INSTANCE={id}"),
        "OCTOSTAGE_TARGET=kube".into(),
        format!("OCTOSTAGE_CONFIG={}", server.url("cfg")),
        "OCTOSTAGE_CONFIG_USERNAME=ops".into(),
        format!("OCTOSTAGE_CONFIG_TOKEN={TOKEN}"),
        format!("APP_TOKEN={TOKEN}"),
        "SSL_CERT_FILE=/certs/cert.pem".into(),
        format!("OCTOSTAGE_LISTEN=127.0.0.1:{listen}"),
        format!("OCTOSTAGE_PROBE_LISTEN=127.0.0.1:{probes}"),
    ];
    let mut run = podman();
    run.args([
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
    ])
    // Writable places as emptyDirs with fsGroup give them: the pod's user owns them.
    .arg("-v")
    .arg(format!("{}:/tmp", scratch.display()))
    .arg("-v")
    .arg(format!("{}:/var/cache/octostage", cache.display()))
    .args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ])
    .args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"])
    .arg("-v")
    .arg(format!(
        "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        sa.display()
    ))
    .arg("-v")
    .arg(format!("{}:/certs/cert.pem:ro", server.cert.display()));
    for e in &env {
        run.args(["-e", e]);
    }
    let started = run.arg(&image).output().unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let logs = || {
        let o = podman().args(["logs", &name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let cleanup = Cleanup { name: name.clone() };

    // It converges both stagings: the overlay's objects and the chart's.
    let start = Instant::now();
    let (kns, hns) = (format!("{k}-main"), format!("{h}-main"));
    loop {
        let deploys = |ns: &str| {
            let o = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kc)
                .args(["-n", ns, "get", "deploy", "-o", "name"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        if deploys(&kns).contains("deployment.apps/shop-web")
            && deploys(&hns).contains(&format!("deployment.apps/{hns}-api"))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never converged:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let image_of = kubectl(
        &kc,
        &[
            "-n",
            &hns,
            "get",
            "deploy",
            &format!("{hns}-api"),
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image_of, "api:2");
    // The dashboard and the probes.
    let page = get(&format!("127.0.0.1:{listen}"), "/");
    assert_eq!(page.status, 200, "{}", logs());
    assert!(
        page.body.contains(&kns) && page.body.contains(&hns),
        "{}",
        page.body
    );
    assert_eq!(get(&format!("127.0.0.1:{probes}"), "/readyz").status, 200);
    // Non-root, and the token nowhere in what it printed.
    let user = podman().args(["exec", &name, "id", "-u"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532");
    assert!(!logs().contains(TOKEN), "the token was logged");

    // SIGTERM, as the kubelet sends it: gone well within the 30 s grace period, exit 0.
    let stopping = Instant::now();
    let stopped = podman().args(["stop", "-t", "30", &name]).output().unwrap();
    let took = stopping.elapsed();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let code = podman()
        .args(["inspect", &name, "--format", "{{.State.ExitCode}}"])
        .output()
        .unwrap();
    println!("stopped on SIGTERM in {:.1} s", took.as_secs_f64());
    assert_eq!(
        String::from_utf8_lossy(&code.stdout).trim(),
        "0",
        "{}",
        logs()
    );
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    drop(cleanup);
    for ns in [&kns, &hns] {
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(["delete", "namespace", ns, "--wait=false"])
            .output();
    }
}

/// Removes the container however the test ends.
struct Cleanup {
    name: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", &self.name]).output();
    }
}

/// Some hex from a path: a name of its own for each run.
fn uuid_like(p: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    std::process::id().hash(&mut h);
    format!("{:016x}", h.finish())
}
