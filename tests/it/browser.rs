//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: open a page,
//! read it, fill and submit its forms, take screenshots at a given width.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Browser {
    pub fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let port = crate::http::free_port();
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--hide-scrollbars",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium is installed (scripts/test.sh installs it)");
        Browser {
            child,
            _profile: profile,
            port,
        }
    }

    /// The first tab, over its DevTools websocket.
    pub fn page(&self) -> Page {
        let start = Instant::now();
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::Write;
                let get = format!(
                    "GET /json/list HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\n\r\n",
                    self.port
                );
                let _ = s.write_all(get.as_bytes());
                // DevTools keeps the connection open: read what came within a moment.
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut raw = Vec::new();
                let _ = s.read_to_end(&mut raw);
                let text = String::from_utf8_lossy(&raw);
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
                if let Ok(Value::Array(tabs)) = serde_json::from_str::<Value>(body) {
                    if let Some(ws) = tabs
                        .iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                    {
                        let (ws, _) = tungstenite::connect(ws).unwrap();
                        return Page { ws, id: 0 };
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromium never listened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Page {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    id: u64,
}

impl Page {
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let msg = json!({"id": self.id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(t) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == self.id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        r["result"]["value"].clone()
    }

    /// Wait until the document at a URL containing `part` has loaded.
    pub fn wait_for(&mut self, part: &str) {
        let start = Instant::now();
        loop {
            let v = self.eval("location.href + ' ' + document.readyState");
            let s = v.as_str().unwrap_or_default().to_string();
            if s.contains(part) && s.ends_with("complete") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never loaded {part}: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(url);
    }

    /// The page as text, as a reader sees it.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the page at `width` (a phone when `mobile`), the whole page's height.
    pub fn screenshot(&mut self, path: &std::path::Path, width: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}),
        );
        let height = self
            .eval("document.documentElement.scrollHeight")
            .as_u64()
            .unwrap_or(800)
            .clamp(400, 4000);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}
