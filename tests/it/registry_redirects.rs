//! Registry credentials go to the configured registry and to the token endpoint that registry
//! itself names, never further: two loopback registries, the configured one redirecting to the
//! other, which asks for credentials with a token endpoint of its own.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use octostage::config::{RegistryCredentials, TokenSource};
use octostage::source::registry::{check, Presence};

use crate::util::read_request;

/// What a loopback server saw: each request's method, target and whether it carried
/// credentials.
type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

/// A server answering every request with `answer(target, port)`; returns its port and log.
fn serve(answer: impl Fn(&str, u16) -> String + Send + Sync + 'static) -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let (log, answer) = (log.clone(), answer.clone());
            // A connection of its own each: the client keeps some open between requests.
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                while let Some(req) = read_request(&mut r) {
                    let creds = req.headers.iter().any(|(k, _)| k == "authorization");
                    log.lock()
                        .unwrap()
                        .push((req.method.clone(), req.target.clone(), creds));
                    let _ = c.write_all(answer(&req.target, port).as_bytes());
                }
            });
        }
    });
    (port, seen)
}

fn creds() -> RegistryCredentials {
    std::env::set_var(
        "REDIRECT_TEST_PASSWORD",
        "registry-secret-never-sent-elsewhere",
    );
    RegistryCredentials {
        username: "ci".into(),
        password: TokenSource::Env("REDIRECT_TEST_PASSWORD".into()),
    }
}

fn ask(port: u16) -> Result<Presence, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check(&format!("127.0.0.1:{port}/app:v1"), Some(&creds())))
        .map_err(|e| e.to_string())
}

const EMPTY: &str = "content-length: 0\r\n\r\n";

/// A registry that asks for a bearer token from its own `/token`, which wants credentials.
fn asking(target: &str, port: u16, then: &str) -> String {
    if target.starts_with("/token") {
        return "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"token\":\"t-1\"}".into();
    }
    format!("HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"r\"\r\n{EMPTY}{then}")
}

#[test]
fn a_redirect_never_receives_credentials_nor_chooses_where_they_go() {
    // Elsewhere: a host that asks for credentials, naming its own token endpoint.
    let (elsewhere, seen_elsewhere) = serve(|t, port| asking(t, port, ""));
    // The configured registry redirects every manifest there.
    let (registry, seen_registry) = serve(move |t, _| {
        format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{elsewhere}{t}\r\n{EMPTY}")
    });
    let r = ask(registry);
    let err = r.expect_err("a redirect to a host asking for credentials is not an answer");
    assert!(err.contains("redirected"), "{err}");
    assert!(!err.contains("registry-secret"), "{err}");
    let elsewhere_saw = seen_elsewhere.lock().unwrap().clone();
    assert!(
        elsewhere_saw.iter().all(|(_, _, creds)| !creds),
        "credentials reached the host a redirect named: {elsewhere_saw:?}"
    );
    assert!(
        elsewhere_saw
            .iter()
            .all(|(_, t, _)| !t.starts_with("/token")),
        "the redirect's token endpoint was asked: {elsewhere_saw:?}"
    );
    assert_eq!(seen_registry.lock().unwrap().len(), 1);
}

#[test]
fn a_registry_that_authenticates_then_redirects_sends_no_credentials_along() {
    let (storage, seen_storage) = serve(|_, _| format!("HTTP/1.1 200 OK\r\n{EMPTY}"));
    // The registry asks for its own token; with it, it redirects to the storage.
    let (registry, seen_registry) = serve(move |t, port| {
        if t.starts_with("/token") {
            return asking(t, port, "");
        }
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{storage}{t}\r\n{EMPTY}"
        )
    });
    // The first HEAD of the registry is unauthenticated: it answers with a redirect, which is
    // followed without credentials, and the storage says the manifest is there.
    assert_eq!(ask(registry), Ok(Presence::Present));
    assert!(seen_storage.lock().unwrap().iter().all(|(_, _, c)| !c));
    assert_eq!(seen_registry.lock().unwrap().len(), 1);
    // A registry that wants its token first: credentials go to it and its token endpoint only.
    let (storage, seen_storage) = serve(|_, _| format!("HTTP/1.1 200 OK\r\n{EMPTY}"));
    let asked = std::sync::atomic::AtomicBool::new(false);
    let (registry, seen_registry) = serve(move |t, port| {
        if t.starts_with("/token") {
            return asking(t, port, "");
        }
        // Unauthenticated: ask; authenticated (the second HEAD): redirect.
        if !asked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return asking(t, port, "");
        }
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{storage}{t}\r\n{EMPTY}"
        )
    });
    assert_eq!(ask(registry), Ok(Presence::Present));
    let registry_saw = seen_registry.lock().unwrap().clone();
    assert!(
        registry_saw
            .iter()
            .any(|(_, t, c)| t.starts_with("/token") && *c),
        "{registry_saw:?}"
    );
    assert!(
        seen_storage.lock().unwrap().iter().all(|(_, _, c)| !c),
        "credentials followed the redirect"
    );
}
