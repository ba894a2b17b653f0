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
    let mut apply = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
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
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.contains("deployment.apps/octostage created (server dry run)"),
        "{o}"
    );
}
