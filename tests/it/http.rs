//! A small HTTP/1.1 client for the server tests (one request per connection), and a running
//! `octostage run` with its server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A response: status, headers (lowercased names), body.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Send one request to `addr` (`127.0.0.1:PORT`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before it has read a large body.
    let _ = s.write_all(body);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            chunked |= k == "transfer-encoding" && v.contains("chunked");
            headers.push((k, v));
        }
    }
    let mut raw = Vec::new();
    let _ = r.read_to_end(&mut raw);
    let body = if chunked { unchunk(&raw) } else { raw };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 4 + size..];
    }
}

pub fn get(addr: &str, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

/// HMAC-SHA256 of `body` with `key`, hex: GitHub's `X-Hub-Signature-256` without its prefix.
pub fn sign(key: &str, body: &[u8]) -> String {
    octostage::signing::hmac_sha256(key.as_bytes(), &[body])
}

/// A sample from the metrics: the value of `name` whose labels include all of `labels`,
/// summed; parsed with a Prometheus text-format parser.
pub fn metric(addr: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = get(addr, "/metrics").body;
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("metrics parse");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `octostage run` with its server on a free loopback port, its stderr collected.
pub struct Daemon {
    pub child: Option<Child>,
    pub addr: String,
    /// The probe listener's address: `/healthz`, `/readyz`, `/metrics`.
    pub probes: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(args: &[String], env: &[(&str, &str)]) -> Daemon {
        let listen: &[&str] = if args.iter().any(|a| a == "--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_octostage"))
            .args(args)
            .args(listen)
            .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        let mut probes = None;
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(a) = line.trim().strip_prefix("octostage run: probes on http://") {
                probes = Some(a.to_string());
            }
            if let Some(a) = line
                .trim()
                .strip_prefix("octostage run: serving on http://")
            {
                addr = Some(a.to_string());
                break;
            }
            line.clear();
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = addr.unwrap_or_else(|| panic!("no server: {:?}", log.lock().unwrap()));
        // A binary without a probe listener (older ones) served its metrics with the rest.
        let probes = probes.unwrap_or_else(|| addr.clone());
        Daemon {
            child: Some(child),
            addr,
            probes,
            log,
        }
    }

    /// Wait until `done`, at most `secs`.
    pub fn wait(&self, secs: u64, what: &str, done: impl Fn(&Daemon) -> bool) -> Duration {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{what}\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    pub fn passes(&self) -> f64 {
        metric(&self.probes, "octostage_passes_total", &[])
    }

    /// The names of the stagings the API shows.
    pub fn stagings(&self) -> Vec<String> {
        get(&self.addr, "/api/v1/stagings").json()["stagings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let c = self.child.take()?;
        crate::signals::signal(&c, nix::sys::signal::Signal::SIGTERM);
        crate::signals::finish(c, Duration::from_secs(20)).0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
