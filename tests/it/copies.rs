//! `copy` on the control plane, under the deploy/ RBAC: a wildcard TLS Secret and a pull
//! secret copied into 10 stagings, a rotation of the source written into all 10 in one pass,
//! and the planted secret value in no output, log, record or annotation.

use crate::cluster::{json, kubectl, remove_service_account, service_account_kubeconfig, Setup};
use crate::util::*;

const PLANTED: &str = "PLANTED-9f3c1d-never-print-me";

/// The source namespace, deleted at the end of the test.
struct Source {
    kc: std::path::PathBuf,
    ns: String,
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kc)
            .args(["delete", "namespace", &self.ns, "--wait=false"])
            .output();
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn apply(kc: &std::path::Path, yaml: &str, dir: &std::path::Path) {
    let f = dir.join(format!(
        "obj-{}.yaml",
        octostage::naming::short_hash(yaml, 8)
    ));
    std::fs::write(&f, yaml).unwrap();
    kubectl(kc, &["apply", "-f", f.to_str().unwrap()]);
}

fn secrets(kc: &std::path::Path, ns: &str, key: &str, name: &str) -> String {
    json(kc, &["get", "secret", name, "-n", ns])["data"][key]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn secrets_are_copied_into_ten_stagings_rotated_in_one_pass_and_never_printed() {
    let mut s = Setup::new(10);
    let admin = s.kc.clone();
    let src = Source {
        kc: admin.clone(),
        ns: format!("{}-src", s.env.name),
    };
    kubectl(&admin, &["create", "namespace", &src.ns]);
    let dir = s._tmp.path().to_path_buf();
    let tls = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: wildcard-tls\n  namespace: {}\n  labels: {{team: platform}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
            src.ns,
            b64(&format!("CERT {value}")),
            b64(value)
        )
    };
    apply(&admin, &tls(PLANTED), &dir);
    apply(
        &admin,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull-secret\n  namespace: {}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: not-copied\n  namespace: {}\nstringData: {{x: z}}\n",
            src.ns,
            b64(&format!("{{\"auths\":{{\"r.example\":{{\"auth\":\"{}\"}}}}}}", b64(PLANTED))),
            src.ns
        ),
        &dir,
    );
    // Under deploy/rbac.yaml and deploy/copy-sources.yaml (names and namespaces replaced).
    let id = format!("{}-sa", s.env.name);
    let sa = service_account_kubeconfig(&admin, &id, &dir);
    // Its lease lives in the service account's namespace, as in a pod.
    s.pod_namespace = Some(format!("{id}-rbac"));
    let copy_rbac = std::fs::read_to_string(root().join("deploy/copy-sources.yaml"))
        .unwrap()
        .replace("namespace: platform\n", &format!("namespace: {}\n", src.ns))
        .replace("  name: octostage-copy\n", &format!("  name: {id}-copy\n"))
        .replace("  name: octostage\n", &format!("  name: {id}\n"))
        .replace("namespace: octostage\n", &format!("namespace: {id}-rbac\n"));
    apply(&admin, &copy_rbac, &dir);
    let who = format!("system:serviceaccount:{id}-rbac:{id}");
    let can = |what: &str| {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&admin)
            .args(["auth", "can-i", "get", what, "-n", &src.ns, "--as", &who])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(can("secret/wildcard-tls") && can("secret/pull-secret"));
    assert!(
        !can("secret/not-copied") && !can("secrets"),
        "exactly those names"
    );
    s.target = format!("kube:{}", sa.display());

    let env = &s.env.name;
    std::fs::write(
        s.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {env}:\n    repository: {}\n    templates: t\n    always: [main]\n    copy:\n      - secret: {}/wildcard-tls\n      - secret: {}/pull-secret\n        as: regcred\n",
            s.repo.path.display(),
            src.ns,
            src.ns
        ),
    )
    .unwrap();
    let mut outputs = Vec::new();
    let out = s.cmd(&["run", "--once", "--log", "debug"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    outputs.push(out);
    let stagings = s.env.active_namespaces();
    assert_eq!(stagings.len(), 10);
    for ns in &stagings {
        assert_eq!(secrets(&admin, ns, "tls.key", "wildcard-tls"), b64(PLANTED));
        let regcred = json(&admin, &["get", "secret", "regcred", "-n", ns]);
        assert_eq!(regcred["type"], "kubernetes.io/dockerconfigjson");
        // The source's own labels stay with it; the copy is octostage's.
        assert!(regcred["metadata"]["labels"]["team"].is_null());
        assert_eq!(
            regcred["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "octostage"
        );
    }
    // Nothing changed once healthy (the pods run): no write.
    s.settle();
    assert_eq!(s.run().1, 0);

    // Rotation: one pass writes the new value into all ten, and only that.
    let rotated = "ROTATED-value-2";
    apply(&admin, &tls(rotated), &dir);
    let (_, written, writes) = s.run_logged();
    assert_eq!(writes, 10, "{written:?}");
    assert!(
        written.iter().all(|w| w == "Secret/wildcard-tls"),
        "{written:?}"
    );
    for ns in &stagings {
        assert_eq!(secrets(&admin, ns, "tls.key", "wildcard-tls"), b64(rotated));
    }
    apply(&admin, &tls(PLANTED), &dir);

    // The planted value in no output: run, plan, plan --diff, status, namespaces' records.
    // As admin, `plan --diff` reads the live Secrets and shows which fields change, not how.
    let admin_target = format!("kube:{}", admin.display());
    let diff = octostage(
        &s.args(&["plan", "--diff"])
            .iter()
            .map(|a| {
                if *a == s.target {
                    admin_target.as_str()
                } else {
                    a.as_str()
                }
            })
            .collect::<Vec<_>>(),
    );
    let (text, _) = texts(&diff);
    assert!(text.contains("(sensitive)"), "{text}");
    outputs.push(diff);
    for args in [
        vec!["plan", "--diff", "--log", "debug"],
        vec!["plan", "--format", "json"],
        vec!["run", "--once", "--log", "debug"],
    ] {
        outputs.push(s.cmd(&args));
    }
    outputs.push(octostage(&[
        "status",
        "--format",
        "json",
        "--instance",
        env,
        "--target",
        &s.target,
    ]));
    let plan_diff = String::from_utf8_lossy(&outputs[2].stdout).to_string();
    assert!(plan_diff.contains("Secret/wildcard-tls"), "{plan_diff}");
    for o in &outputs {
        let (out, err) = texts(o);
        for v in [
            PLANTED.to_string(),
            b64(PLANTED),
            b64(&format!("CERT {PLANTED}")),
        ] {
            assert!(!out.contains(&v) && !err.contains(&v), "{out}\n{err}");
        }
    }
    let records = kubectl(&admin, &["get", "namespaces", "-o", "json"]);
    assert!(!records.contains(&b64(PLANTED)) && !records.contains(PLANTED));

    // A source that is gone is an error of each staging that copies it, and nothing is deleted.
    kubectl(&admin, &["delete", "secret", "pull-secret", "-n", &src.ns]);
    let out = s.cmd(&["run", "--once"]);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("pull-secret: not found"), "{stdout}");
    assert_eq!(s.env.active_namespaces().len(), 10);
    assert!(!secrets(&admin, &stagings[0], ".dockerconfigjson", "regcred").is_empty());
    remove_service_account(&admin, &id);
}
