//! `deploy/` is accepted by the API server: `kubectl kustomize deploy | kubectl apply
//! --dry-run=server -f -` on the local control plane (the namespace made for real first, since
//! a server dry run refuses objects in a namespace that does not exist yet).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::cluster::kubeconfig;
use crate::util::root;

#[test]
fn the_deploy_base_passes_a_server_side_dry_run() {
    let kc = kubeconfig();
    let deploy = root().join("deploy");
    let ns = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["apply", "-f"])
        .arg(deploy.join("namespace.yaml"))
        .output()
        .unwrap();
    assert!(
        ns.status.success(),
        "{}",
        String::from_utf8_lossy(&ns.stderr)
    );
    let rendered = Command::new("kubectl")
        .args(["kustomize"])
        .arg(&deploy)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let yaml = String::from_utf8(rendered.stdout).unwrap();
    for kind in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "ConfigMap",
    ] {
        assert!(
            yaml.contains(&format!("kind: {kind}\n")),
            "no {kind} in deploy/"
        );
    }
    assert!(yaml.contains("replicas: 2") && yaml.contains("/readyz") && yaml.contains("/healthz"));
    assert!(yaml.contains("MIMALLOC_ARENA_EAGER_COMMIT"));
    let o = server_dry_run(&kc, &yaml);
    assert!(
        o.contains("deployment.apps/octostage created (server dry run)"),
        "{o}"
    );
}

/// `kubectl apply --dry-run=server` of `yaml` on the test cluster; what it printed.
fn server_dry_run(kc: &std::path::Path, yaml: &str) -> String {
    let mut apply = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = apply.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{o}{e}");
    o
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The objects of a multi-document YAML stream, each as canonical JSON, sorted.
fn objects(yaml: &str) -> Vec<String> {
    let mut out: Vec<String> =
        octostage::yaml::documents(yaml, &mut octostage::yaml::Budget::default())
            .unwrap()
            .iter()
            .map(canonical)
            .collect();
    out.sort();
    out
}

fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap(),
                        canonical(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

fn helm_template(extra: &[&str]) -> String {
    run_ok(
        Command::new("helm")
            .args(["template", "octostage"])
            .arg(root().join("charts/octostage"))
            .args(["--namespace", "octostage"])
            .args(extra),
    )
}

#[test]
fn the_chart_and_the_kustomize_base_give_the_same_objects() {
    let chart = helm_template(&["--set", "createNamespace=true"]);
    let base = run_ok(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(root().join("deploy")),
    );
    let (a, b) = (objects(&chart), objects(&base));
    assert_eq!(a.len(), 11, "{chart}");
    assert_eq!(
        a, b,
        "charts/octostage and deploy/ differ: run scripts/gen-deploy.sh"
    );
    for kind in [
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Namespace",
        "Deployment",
    ] {
        assert!(chart.contains(&format!("kind: {kind}\n")), "no {kind}");
    }
    run_ok(
        Command::new("helm")
            .arg("lint")
            .arg(root().join("charts/octostage")),
    );
}

#[test]
fn the_chart_with_every_option_passes_a_server_side_dry_run() {
    let kc = kubeconfig();
    let ns = "octostage-chart";
    let _ = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["create", "namespace", ns])
        .output();
    let rendered = run_ok(
        Command::new("helm")
            .args(["template", "octostage"])
            .arg(root().join("charts/octostage"))
            .args(["--namespace", ns])
            .args([
                "--set",
                "secret.create=true,secret.data.OCTOSTAGE_API_TOKEN=t",
            ])
            .args([
                "--set",
                "ingress.enabled=true,ingress.tlsSecret=octostage-tls",
            ])
            .args(["--set", "httpRoute.enabled=true"])
            .args([
                "--set-json",
                r#"httpRoute.parentRefs=[{"name":"gw","namespace":"gateways"}]"#,
            ]),
    );
    for kind in ["Secret", "Ingress", "HTTPRoute", "Deployment"] {
        assert!(rendered.contains(&format!("kind: {kind}\n")), "no {kind}");
    }
    let o = server_dry_run(&kc, &rendered);
    for what in [
        "deployment.apps/octostage created (server dry run)",
        "poddisruptionbudget.policy/octostage created (server dry run)",
        "networkpolicy.networking.k8s.io/octostage created (server dry run)",
        "ingress.networking.k8s.io/octostage created (server dry run)",
        "httproute.gateway.networking.k8s.io/octostage created (server dry run)",
    ] {
        assert!(o.contains(what), "{o}");
    }
}

#[test]
fn a_release_builds_install_yaml_from_the_base_and_packages_the_chart() {
    let dist = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("scripts/release.sh"))
        .args(["--manifests-only", "1.2.3", "registry.test"])
        .env("DIST", dist.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let install = std::fs::read_to_string(dist.path().join("install.yaml")).unwrap();
    assert!(
        install.contains("image: registry.test/octostage:1.2.3"),
        "{install}"
    );
    // Otherwise the base's objects, exactly.
    let base = run_ok(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(root().join("deploy")),
    );
    let base = base.replace(
        "registry.example.com/octostage:0.1.0",
        "registry.test/octostage:1.2.3",
    );
    assert_eq!(objects(&install), objects(&base));
    assert!(dist.path().join("octostage-1.2.3.tgz").is_file());
}
