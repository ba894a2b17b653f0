//! Lifecycle and cost control on the real binary, the local control plane and real git:
//! expiry puts a staging to sleep with its volume kept and deletes it after its retention; a
//! commit in between wakes it; every transition is notified once, across restarts; a template
//! change while asleep is applied asleep; `extend`, `wake --for` and `sleep`; caps.
//!
//! The control plane has no kubelet: pods are made ready by writing their status subresource
//! as a kubelet would (`ready_pods`), and the Deployment controller does the rest.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{json, kubectl, Setup};
use crate::util::*;

/// A webhook receiver on loopback that records every request (headers lowercased, JSON body).
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook/secret-path", l.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let mut r = BufReader::new(conn);
                let mut headers = Vec::new();
                let mut line = String::new();
                let mut len = 0usize;
                r.read_line(&mut line).unwrap_or(0);
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim().split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                        if k == "content-length" {
                            len = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_ok() {
                    g.lock().unwrap().push((headers, body));
                }
                let mut conn = r.into_inner();
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { url, got }
    }

    /// `staging event` of every request so far.
    pub fn events(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|(_, b, _)| {
                format!(
                    "{} {}",
                    b["staging"].as_str().unwrap_or("?"),
                    b["event"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    /// Every request: headers, JSON body, raw body.
    pub fn requests(&self) -> Vec<(Vec<(String, String)>, serde_json::Value, Vec<u8>)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| {
                (
                    h.clone(),
                    serde_json::from_slice(b).unwrap_or_default(),
                    b.clone(),
                )
            })
            .collect()
    }
}

/// Mark every pod of `ns` ready, as a kubelet would, once the ReplicaSet made `want` of them.
pub fn ready_pods(s: &Setup, ns: &str, want: usize) {
    let start = Instant::now();
    loop {
        let pods = json(&s.kc, &["get", "pods", "-n", ns]);
        let names: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        if names.len() >= want {
            for p in names {
                kubectl(
                    &s.kc,
                    &[
                        "patch",
                        "pod",
                        &p,
                        "-n",
                        ns,
                        "--subresource=status",
                        "--type=merge",
                        "-p",
                        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
                    ],
                );
            }
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {want} pods in {ns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the Deployment `web` in `ns` reports `n` ready replicas.
fn ready_replicas(s: &Setup, ns: &str, n: i64) {
    let start = Instant::now();
    while json(&s.kc, &["get", "deployment", "web", "-n", ns])["status"]["readyReplicas"]
        .as_i64()
        .unwrap_or(0)
        != n
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "web in {ns} never had {n} ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A Deployment of two replicas with requests, a volume claim and a ConfigMap of data.
fn templates(s: &Setup, image_note: &str) {
    let t = s.cfg.join("t");
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("web.yaml"), format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: \"registry.example.com/web:{{{{ commit.short_sha }}}}\"\n          env: [{{name: NOTE, value: {image_note:?}}}]\n          resources: {{requests: {{cpu: 250m, memory: 128Mi}}}}\n")).unwrap();
    std::fs::write(t.join("data.yaml"), "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seed\ndata:\n  rows: \"42\"\n").unwrap();
}

fn config(s: &Setup, extra: &str) {
    std::fs::write(
        s.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {}:\n    repository: {}\n    templates: t\n    branches: {{include: [\"feature/**\"]}}\n{extra}",
            s.env.name,
            s.repo.path.display()
        ),
    )
    .unwrap();
}

fn deployment(s: &Setup, ns: &str) -> serde_json::Value {
    json(&s.kc, &["get", "deployment", "web", "-n", ns])
}

fn uid(s: &Setup, kind: &str, name: &str, ns: &str) -> String {
    json(&s.kc, &["get", kind, name, "-n", ns])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Run with the webhook's key in the environment.
fn run(s: &Setup) -> String {
    let out = octostage_env(
        &s.args(&["run", "--once"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
        &[("HOOK_KEY", "k3y")],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    stdout
}

#[test]
fn expiry_sleeps_keeping_data_a_commit_wakes_and_retention_deletes_each_transition_notified_once() {
    let rx = Receiver::start();
    let s = Setup::new(1);
    templates(&s, "one");
    config(&s, &format!("    ttl: 7d\n    retention: 1m\n    notify:\n      webhooks: [{{url: {:?}, secret_env: HOOK_KEY}}]\n", rx.url));
    s.repo.commit("feature/x", "work", &days_ago(0));
    let name = format!("{}-feature-x", s.env.name);
    let ns = name.clone();

    assert!(run(&s).contains("create"));
    assert_eq!(deployment(&s, &ns)["spec"]["replicas"], 2);
    let pvc = uid(&s, "pvc", "data", &ns);
    let seed = uid(&s, "configmap", "seed", &ns);
    ready_pods(&s, &ns, 2);
    ready_replicas(&s, &ns, 2);
    run(&s);

    // Backdated past its ttl: expired, asleep, its volume claim and data kept.
    s.repo.commit("feature/x", "old work", &days_ago(30));
    let out = run(&s);
    assert!(
        out.contains("expire"),
        "{out}\n{}",
        s.repo.git(&["log", "--format=%h %cI", "feature/x"])
    );
    let d = deployment(&s, &ns);
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(
        d["metadata"]["annotations"]["octostage.dev/awake"],
        "replicas=2"
    );
    assert_eq!(
        (
            uid(&s, "pvc", "data", &ns),
            uid(&s, "configmap", "seed", &ns)
        ),
        (pvc.clone(), seed.clone())
    );
    // A restart in between sends nothing again (`run --once` waits for its deliveries).
    let sent = rx.events().len();
    run(&s);
    assert_eq!(rx.events().len(), sent);

    // A commit during retention wakes it, volume and data intact.
    s.repo.commit("feature/x", "more work", &days_ago(0));
    let out = run(&s);
    assert!(out.contains("active again"), "{out}");
    assert_eq!(deployment(&s, &ns)["spec"]["replicas"], 2);
    assert_eq!(
        (
            uid(&s, "pvc", "data", &ns),
            uid(&s, "configmap", "seed", &ns)
        ),
        (pvc, seed)
    );

    // Stale again; deleted once the minute of retention has passed, not before.
    s.repo.commit("feature/x", "abandoned", &days_ago(30));
    run(&s);
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
    let mine = status["stagings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["state"], "expired");
    let delete_at: chrono::DateTime<chrono::Utc> =
        mine["delete_at"].as_str().unwrap().parse().unwrap();
    run(&s);
    assert_eq!(s.env.active_namespaces(), [ns.clone()]);
    let wait = (delete_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_secs(1);
    std::thread::sleep(wait);
    assert!(run(&s).contains("delete"));
    assert!(s.env.active_namespaces().is_empty());
    run(&s);

    let want: Vec<String> = [
        "created", "healthy", "expired", "expiring", "waking", "expired", "expiring", "deleted",
    ]
    .iter()
    .map(|e| format!("{name} {e}"))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.events().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rx.events(), want);
    for (headers, body, raw) in rx.requests() {
        let h = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k3y").unwrap();
        mac.update(&raw);
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(h("x-octostage-signature-256"), format!("sha256={sig}"));
        let text = raw;
        assert_eq!(h("x-octostage-event"), body["event"].as_str().unwrap());
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("octostage: {name} (feature/x) ")));
        // Nothing of the key or the secret path travels in the payload.
        let text = String::from_utf8(text).unwrap();
        assert!(
            !text.contains("k3y") && !text.contains("secret-path"),
            "{text}"
        );
    }
}
