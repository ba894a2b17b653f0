//! A webhook receiver on loopback for notification tests.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Headers (lowercased names) and body of one request.
type Request = (Vec<(String, String)>, Vec<u8>);

/// A webhook receiver on loopback that records every request (headers lowercased, JSON body).
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Request>>>,
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
                if let Some(req) = crate::util::read_request(&mut r) {
                    g.lock().unwrap().push((req.headers, req.body));
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
            .map(|(_, b)| {
                format!(
                    "{} {}",
                    b["staging"].as_str().unwrap_or("?"),
                    b["event"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    /// Every request, with its body read as JSON.
    pub fn requests(&self) -> Vec<(Request, serde_json::Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.clone(), serde_json::from_slice(&r.1).unwrap_or_default()))
            .collect()
    }
}
