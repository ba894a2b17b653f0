//! `wait_for` against a real registry on loopback (Debian's `docker-registry`, CNCF
//! distribution, with htpasswd basic auth): a branch whose image is not pushed gets no staging,
//! the image pushed the next pass creates it, and a running staging whose new commit has no
//! image keeps its commit and says why. Images are pushed over the registry's HTTP API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

use crate::util::*;

const USER: &str = "ci";
const PASSWORD: &str = "registry-pass-5d1f-never-print";

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) runs");
        assert!(htpasswd.status.success());
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let port = crate::http::free_port();
        let child = Command::new(root().join("scripts/registry.sh"))
            .arg(dir.path())
            .arg(port.to_string())
            .arg(dir.path().join("htpasswd"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/registry.sh runs");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let start = std::time::Instant::now();
        while r.request("GET", "/v2/", &[], b"", false).0 != 401 {
            assert!(start.elapsed().as_secs() < 20, "the registry did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        r
    }

    /// One HTTP/1.1 request: (status, headers lowercased, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        auth: bool,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, Vec::new(), Vec::new());
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\ncontent-length: {}\r\n", self.port, body.len());
        if auth {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
            head.push_str(&format!("authorization: Basic {b}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text_end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(out.len());
        let head = String::from_utf8_lossy(&out[..text_end]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let hs = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (
            status,
            hs,
            out.get(text_end + 4..).unwrap_or_default().to_vec(),
        )
    }

    /// Push a minimal OCI image `name:tag` (a config blob, no layers).
    fn push(&self, name: &str, tag: &str) {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let digest = format!("sha256:{:x}", Sha256::digest(config));
        let (status, headers, _) = self.request(
            "POST",
            &format!("/v2/{name}/blobs/uploads/"),
            &[],
            b"",
            true,
        );
        assert_eq!(status, 202);
        let location = headers
            .iter()
            .find(|(k, _)| k == "location")
            .unwrap()
            .1
            .clone();
        let path = location
            .split_once("://")
            .map(|(_, r)| &r[r.find('/').unwrap()..])
            .unwrap_or(&location)
            .to_string();
        let (status, _, body) = self.request(
            "PUT",
            &format!("{path}&digest={digest}"),
            &[("content-type", "application/octet-stream")],
            config,
            true,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
            config.len()
        );
        let (status, _, body) = self.request(
            "PUT",
            &format!("/v2/{name}/manifests/{tag}"),
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.as_bytes(),
            true,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
}

fn run(d: &DirRun, cmd: &[&str], password: &str) -> (String, String) {
    let a = d.args(cmd);
    let o = octostage_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[("OCTOSTAGE_TEST_REGISTRY_PASSWORD", password)],
    );
    let t = texts(&o);
    assert!(!t.0.contains(PASSWORD) && !t.1.contains(PASSWORD), "{t:?}");
    t
}

fn commit_in(d: &DirRun, staging: &str) -> Option<String> {
    let text = std::fs::read_to_string(d.out.join(staging).join("configmap-info.yaml")).ok()?;
    let v = octostage::yaml::document(&text).unwrap();
    v["data"]["commit"].as_str().map(str::to_string)
}

#[test]
fn a_staging_waits_for_its_image_and_a_running_one_keeps_its_commit_until_the_new_one_is_pushed() {
    let reg = Registry::start();
    let d = DirRun::new(&days_ago(0));
    d.config(
        &format!("    wait_for:\n      give_up: 1h\n      image: \"127.0.0.1:{}/shop/web:{{{{ commit.short_sha }}}}\"\n      credentials: {{username: {USER}, password_env: OCTOSTAGE_TEST_REGISTRY_PASSWORD}}\n", reg.port),
        "",
    );
    let main = d.repo.git(&["rev-parse", "main"]);
    reg.push("shop/web", &main[..7]);
    let feature = d.repo.commit("feature/a", "A", &days_ago(0));

    // main's image is there, feature/a's is not: only main gets a staging.
    let (out, _) = run(&d, &["run", "--once"], PASSWORD);
    assert_eq!(
        commit_in(&d, "app-main").as_deref(),
        Some(main.as_str()),
        "{out}"
    );
    assert!(!d.out.join("app-feature-a").exists(), "{out}");
    let (plan, _) = run(&d, &["plan", "--format", "json"], PASSWORD);
    assert!(
        plan.contains(&format!(
            "not created: waiting for image 127.0.0.1:{}/shop/web:{} (not in the registry yet)",
            reg.port,
            &feature[..7]
        )),
        "{plan}"
    );

    // The table shows it too, though nothing is done.
    let (table, _) = run(&d, &["plan"], PASSWORD);
    assert!(
        table.contains("app-feature-a") && table.contains("waiting for image"),
        "{table}"
    );

    // Pushed: the next pass creates it.
    reg.push("shop/web", &feature[..7]);
    run(&d, &["run", "--once"], PASSWORD);
    assert_eq!(
        commit_in(&d, "app-feature-a").as_deref(),
        Some(feature.as_str())
    );

    // A new commit on main without its image: main keeps running the old commit, and says so.
    let second = d.repo.commit("main", "Second", &days_ago(0));
    let (out, _) = run(&d, &["run", "--once"], PASSWORD);
    assert_eq!(
        commit_in(&d, "app-main").as_deref(),
        Some(main.as_str()),
        "{out}"
    );
    let (plan, _) = run(&d, &["plan", "--format", "json"], PASSWORD);
    assert!(
        plan.contains(&format!(
            "waiting for image 127.0.0.1:{}/shop/web:{}",
            reg.port,
            &second[..7]
        )),
        "{plan}"
    );
    let status = octostage_ok(
        &["status", "--target", &format!("dir:{}", d.out.display())],
        0,
    );
    assert!(
        status.contains(&main[..7]) && !status.contains(&second[..7]),
        "{status}"
    );
    reg.push("shop/web", &second[..7]);
    run(&d, &["run", "--once"], PASSWORD);
    assert_eq!(commit_in(&d, "app-main").as_deref(), Some(second.as_str()));

    // A commit older than `give_up` whose image is missing: asked once, never moved to.
    let three_hours_ago = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
    let old = d.repo.commit("feature/old", "Old", &three_hours_ago);
    let (plan, _) = run(&d, &["plan", "--format", "json"], PASSWORD);
    assert!(
        plan.contains(&format!(
            "gave up waiting for image 127.0.0.1:{}/shop/web:{}",
            reg.port,
            &old[..7]
        )),
        "{plan}"
    );
    reg.push("shop/web", &old[..7]);
    run(&d, &["run", "--once"], PASSWORD);
    assert_eq!(
        commit_in(&d, "app-feature-old").as_deref(),
        Some(old.as_str())
    );

    // A wrong password: the registry refuses, the staging waits and says why.
    let third = d.repo.commit("main", "Third", &days_ago(0));
    reg.push("shop/web", &third[..7]);
    let (plan, _) = run(&d, &["plan", "--format", "json"], "wrong");
    assert!(plan.contains("refused"), "{plan}");
    assert_eq!(commit_in(&d, "app-main").as_deref(), Some(second.as_str()));
}
