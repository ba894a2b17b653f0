//! The planted-secret test: a repository token and a kubeconfig path put in octostage's
//! environment appear in no output of any command (text, JSON, logs at debug, errors), in no
//! file octostage writes (the dir target, the cache's file names), and on nothing in the
//! cluster. The token is really used: a loopback git server that refuses it receives it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::cluster::{kubeconfig, kubectl, Env};
use crate::util::*;

const TOKEN: &str = "planted-token-5f3a9c0e";
const KUBECONFIG_PATH: &str = "/tmp/planted-kubeconfig-7d21b4/config";

/// An HTTP server on loopback that answers every request with `response` (given the request
/// path) and remembers the Authorization headers it was sent.
fn http_server(response: fn(&str) -> String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut path = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if path.is_empty() {
                    path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    s.lock().unwrap().push(line.trim().to_string());
                }
                line.clear();
            }
            let mut w = stream;
            let _ = w.write_all(response(&path).as_bytes());
        }
    });
    (port, seen)
}

fn refusing(_: &str) -> String {
    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
}

/// A git server that answers 401 to everything.
fn refusing_git_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    http_server(refusing)
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "{what} shows the token:\n{text}");
    assert!(
        !text.contains("planted-kubeconfig"),
        "{what} shows the kubeconfig path:\n{text}"
    );
    let b64 = base64_of(&format!("x-access-token:{TOKEN}"));
    assert!(!text.contains(&b64), "{what} shows the encoded token");
}

fn base64_of(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every file's path and contents under `dir`.
fn all_files(dir: &Path) -> String {
    let mut out = String::new();
    for (p, _, _) in snapshot(dir) {
        out.push_str(&p.display().to_string());
        out.push('\n');
        if let Ok(t) = std::fs::read_to_string(&p) {
            out.push_str(&t);
        }
    }
    out
}

#[test]
fn a_planted_token_and_kubeconfig_path_appear_nowhere() {
    let kc = kubeconfig();
    let env = Env::new(&kc);
    // The render-command environment's stagings go with the test too.
    let _env_r = Env {
        name: format!("{}r", env.name),
        kc: kc.clone(),
    };
    let (port, seen) = refusing_git_server();
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(&tmp.path().join("app"), &days_ago(1));
    repo.commit("feature/a", "w", &days_ago(1));
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(cfg.join("t")).unwrap();
    std::fs::write(cfg.join("t/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  branch: {{ branch.name | tojson }}\n  env: {{ values.env | tojson }}\n").unwrap();
    std::fs::write(cfg.join("render.sh"), "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: env\\ndata:\\n  token: \"%s\"\\n  kc: \"%s\"\\n' \"$SHOP_GIT_TOKEN\" \"$KUBECONFIG\"\n").unwrap();
    std::fs::write(
        cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {e}:\n    repository: {}\n    templates: t\n    values:\n      env: ok\n  {e}r:\n    repository: {}\n    command: [sh, render.sh]\n  {e}p:\n    repository:\n      url: http://127.0.0.1:{port}/private.git\n      credentials: {{token_env: SHOP_GIT_TOKEN, allow_plain_http: true}}\n    templates: t\n",
            repo.path.display(),
            repo.path.display(),
            e = env.name,
        ),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let out_dir = tmp.path().join("out");
    let planted = [("SHOP_GIT_TOKEN", TOKEN), ("KUBECONFIG", KUBECONFIG_PATH)];
    let base = [
        "--config",
        cfg.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--instance",
        &env.name,
    ];
    let dir = format!("dir:{}", out_dir.display());
    let kube = format!("kube:{}", kc.display());
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["validate", "--config", cfg.to_str().unwrap()],
        vec![
            "--log", "debug", "plan", "--format", "json", "--target", &dir,
        ],
        vec!["--log", "debug", "plan", "--target", &kube],
        vec!["--log", "debug", "run", "--once", "--target", &dir],
        vec!["--log", "debug", "run", "--once", "--target", &kube],
        vec![
            "--log",
            "debug",
            "render",
            "--environment",
            &env.name,
            "--branch",
            "main",
        ],
    ];
    for c in commands.iter_mut().skip(1) {
        c.extend(base);
    }
    let render_r = format!("{}r", env.name);
    let mut render_cmd = vec![
        "--log",
        "debug",
        "render",
        "--environment",
        &render_r,
        "--branch",
        "main",
    ];
    render_cmd.extend(base);
    commands.push(render_cmd);
    commands.push(vec!["status", "--format", "json", "--target", &dir]);
    commands.push(vec![
        "--log",
        "debug",
        "status",
        "--target",
        &kube,
        "--instance",
        &env.name,
    ]);
    let mut ran = String::new();
    for c in &commands {
        let r = octostage_env(c, None, &planted);
        let (o, e) = texts(&r);
        assert_clean(&format!("octostage {c:?}"), &format!("{o}\n{e}"));
        ran.push_str(&o);
        ran.push_str(&e);
    }
    // The private repository really was asked, with the token, and refused it.
    assert!(ran.contains("private.git"), "{ran}");
    let auth = seen.lock().unwrap().clone();
    assert!(
        auth.iter()
            .any(|a| a.contains(&base64_of(&format!("x-access-token:{TOKEN}")))),
        "the token was never sent: {auth:?}"
    );
    // What was written: the dir target, the cache's file names, the cluster.
    assert!(out_dir.join(format!("{}-main", env.name)).is_dir());
    assert_clean("the dir target", &all_files(&out_dir));
    let names: String = snapshot(&cache)
        .iter()
        .map(|(p, _, _)| p.display().to_string() + "\n")
        .collect();
    assert_clean("the cache's file names", &names);
    let sel = format!("octostage.dev/environment in ({},{}r)", env.name, env.name);
    let cluster = kubectl(
        &kc,
        &[
            "get",
            "namespaces,configmaps,deployments",
            "-A",
            "-l",
            &sel,
            "-o",
            "json",
        ],
    );
    assert!(cluster.contains(&format!("{}-main", env.name)), "{cluster}");
    assert_clean("the cluster", &cluster);
}

static TARGET_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

fn redirecting(path: &str) -> String {
    let port = TARGET_PORT.load(std::sync::atomic::Ordering::SeqCst);
    format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// Found by attacking octostage: a git server that redirected to another host was sent the
/// token there.
#[test]
fn credentials_are_never_sent_to_a_host_a_redirect_names() {
    let (other, seen) = refusing_git_server();
    TARGET_PORT.store(other, std::sync::atomic::Ordering::SeqCst);
    let (port, _) = http_server(redirecting);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(cfg.join("t")).unwrap();
    std::fs::write(
        cfg.join("t/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )
    .unwrap();
    std::fs::write(
        cfg.join("environments.yaml"),
        format!("version: 1\nenvironments:\n  app:\n    repository:\n      url: http://127.0.0.1:{port}/x.git\n      credentials: {{token_env: SHOP_GIT_TOKEN, allow_plain_http: true}}\n    templates: t\n"),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let r = octostage_env(
        &[
            "plan",
            "--target",
            "none",
            "--config",
            cfg.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        None,
        &[("SHOP_GIT_TOKEN", TOKEN)],
    );
    let (out, err) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("credentials go only to the configured repository's host"),
        "{out}{err}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the other host got: {:?}",
        seen.lock().unwrap()
    );
    assert_clean("plan", &format!("{out}{err}"));
}
