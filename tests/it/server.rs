//! The HTTP server of `run` on a dir target: the JSON API, actions with and without the token,
//! webhooks signed, unsigned and wrongly signed, body limits, probes and metrics (parsed with a
//! Prometheus text-format parser). The cluster and the browser are in `dashboard` and `leader`.

use std::time::Duration;

use crate::http::*;
use crate::util::*;

const TOKEN: &str = "api-token-123";
const HOOK: &str = "hook-secret-456";

fn daemon(d: &DirRun, token: bool) -> Daemon {
    let mut env = vec![
        ("OCTOSTAGE_GITHUB_SECRET", HOOK),
        ("OCTOSTAGE_WEBHOOK_TOKEN", HOOK),
    ];
    if token {
        env.push(("OCTOSTAGE_API_TOKEN", TOKEN));
    }
    let daemon = Daemon::start(&d.args(&["run", "--interval", "1h"]), &env);
    daemon.wait(20, "never ready", |d| get(&d.addr, "/readyz").status == 200);
    daemon
}

fn push(d: &Daemon, body: &[u8], signature: Option<&str>) -> Resp {
    let mut h = vec![
        ("x-github-event", "push"),
        ("content-type", "application/json"),
    ];
    let sig;
    if let Some(s) = signature {
        sig = format!("sha256={s}");
        h.push(("x-hub-signature-256", &sig));
    }
    request(&d.addr, "POST", "/hooks/github", &h, body)
}

#[test]
fn webhooks_trigger_a_pass_only_when_signed_and_replays_are_harmless() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, true);
    assert_eq!(s.stagings(), vec!["app-main"]);
    let before = s.passes();
    d.repo.commit("feature/hook", "w", &days_ago(0));
    let body = format!(
        r#"{{"ref":"refs/heads/feature/hook","repository":{{"clone_url":"{}","full_name":"o/app"}}}}"#,
        d.repo.path.display()
    );
    let body = body.as_bytes();
    assert_eq!(push(&s, body, None).status, 401);
    assert_eq!(push(&s, body, Some("00ff")).status, 401);
    assert_eq!(push(&s, body, Some(&sign("another key", body))).status, 401);
    // Signed with the right key, but over another body.
    assert_eq!(push(&s, body, Some(&sign(HOOK, b"{}"))).status, 401);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.passes(), before, "a refused webhook ran a pass");
    assert_eq!(s.stagings(), vec!["app-main"]);
    let r = push(&s, body, Some(&sign(HOOK, body)));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["environments"][0], "app");
    s.wait(10, "the push made no staging", |s| s.stagings().len() == 2);
    // A delivery without an id asks for another pass, which changes nothing; a replayed
    // delivery id asks for nothing.
    let r = push(&s, body, Some(&sign(HOOK, body)));
    assert_eq!(r.status, 202);
    s.wait(10, "no pass after the second delivery", |s| {
        s.passes() >= before + 2.0
    });
    assert_eq!(d.stagings(), 2);
    let sig = format!("sha256={}", sign(HOOK, body));
    let with_id = [
        ("x-github-event", "push"),
        ("x-hub-signature-256", sig.as_str()),
        ("x-github-delivery", "d-1"),
    ];
    let first = request(&s.addr, "POST", "/hooks/github", &with_id, body);
    assert_eq!(first.status, 202);
    let replay = request(&s.addr, "POST", "/hooks/github", &with_id, body);
    assert_eq!(replay.status, 200);
    assert_eq!(replay.json()["ignored"], "this delivery was taken already");
    // A repository no environment watches asks for nothing.
    let other = br#"{"repository":{"clone_url":"https://example.com/other.git"}}"#;
    let r = push(&s, other, Some(&sign(HOOK, other)));
    assert_eq!(r.status, 200);
    assert!(r.json()["ignored"].is_string());
    // A ping is answered and ignored; a body over the limit is refused before it is read.
    let ping = request(
        &s.addr,
        "POST",
        "/hooks/github",
        &[
            ("x-github-event", "ping"),
            (
                "x-hub-signature-256",
                &format!("sha256={}", sign(HOOK, b"{}")),
            ),
        ],
        b"{}",
    );
    assert_eq!(ping.status, 200);
    let huge = vec![b' '; 2 << 20];
    let r = push(&s, &huge, Some(&sign(HOOK, &huge)));
    assert_eq!(r.status, 413);
    // GitLab has no secret here: it is off.
    let r = request(
        &s.addr,
        "POST",
        "/hooks/gitlab",
        &[("x-gitlab-token", HOOK)],
        b"{}",
    );
    assert_eq!(r.status, 404);
    // The generic hook takes a bearer token.
    let g = format!(r#"{{"repository":"{}"}}"#, d.repo.path.display());
    let bad = request(
        &s.addr,
        "POST",
        "/hooks/generic",
        &[("authorization", "Bearer nope")],
        g.as_bytes(),
    );
    assert_eq!(bad.status, 401);
    let auth = format!("Bearer {HOOK}");
    let ok = request(
        &s.addr,
        "POST",
        "/hooks/generic",
        &[("authorization", &auth)],
        g.as_bytes(),
    );
    assert_eq!(ok.status, 202, "{}", ok.body);
    let hooks = |result: &str| {
        metric(
            &s.probes,
            "octostage_webhook_deliveries_total",
            &[("provider", "github"), ("result", result)],
        )
    };
    assert_eq!(hooks("unauthorized"), 4.0);
    assert_eq!(hooks("accepted"), 3.0);
    assert_eq!(hooks("ignored"), 3.0);
    // No secret in any answer or log line.
    let log = s.log.lock().unwrap().join("\n");
    assert!(!log.contains(HOOK) && !log.contains(TOKEN), "{log}");
}

#[test]
fn actions_need_the_token_change_the_staging_and_the_api_and_metrics_tell() {
    let d = DirRun::new(&days_ago(1));
    d.repo.commit("feature/a", "the subject <b>", &days_ago(1));
    d.config("    max_extension: 30d\n", "");
    let s = daemon(&d, true);
    let path = "/api/v1/stagings/app-feature-a/extend";
    let body = br#"{"duration":"40d"}"#;
    assert_eq!(request(&s.addr, "POST", path, &[], body).status, 401);
    let wrong = [("authorization", "Bearer api-token-12")];
    assert_eq!(request(&s.addr, "POST", path, &wrong, body).status, 401);
    let auth = format!("Bearer {TOKEN}");
    let h = [("authorization", auth.as_str())];
    // Past max_extension: refused with why.
    let r = request(&s.addr, "POST", path, &h, body);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("max_extension"));
    let expires = |s: &Daemon| {
        get(&s.addr, "/api/v1/stagings/app-feature-a").json()["expires"]["at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = expires(&s);
    let r = request(&s.addr, "POST", path, &h, br#"{"duration":"20d"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    s.wait(10, "the extension never showed", |s| expires(s) > before);
    // The dashboard's form takes the token as a field; another site's form is refused.
    let form = format!("token={TOKEN}&for=1h");
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let r = request(
        &s.addr,
        "POST",
        "/stagings/app-feature-a/sleep",
        &[ct],
        format!("token={TOKEN}").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s.wait(10, "never asleep", |s| {
        get(&s.addr, "/api/v1/stagings/app-feature-a").json()["state"] == "sleeping:manual"
    });
    for site in ["cross-site", "same-site"] {
        let from = [ct, ("sec-fetch-site", site)];
        let path = "/stagings/app-feature-a/wake";
        let r = request(&s.addr, "POST", path, &from, form.as_bytes());
        assert_eq!(r.status, 403, "{site}");
    }
    let r = request(
        &s.addr,
        "POST",
        "/stagings/app-feature-a/wake",
        &[ct],
        form.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s.wait(10, "never awake", |s| {
        get(&s.addr, "/api/v1/stagings/app-feature-a").json()["state"] == "running"
    });
    // Unknown staging and action.
    let r = request(&s.addr, "POST", "/api/v1/stagings/nope/sleep", &h, b"");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = request(
        &s.addr,
        "POST",
        "/api/v1/stagings/app-feature-a/delete",
        &h,
        b"",
    );
    assert_eq!(r.status, 400);
    // A pass on request; the plan and the detail.
    let n = s.passes();
    assert_eq!(
        request(&s.addr, "POST", "/api/v1/pass", &h, b"").status,
        200
    );
    s.wait(10, "no pass", |s| s.passes() > n);
    let plan = get(&s.addr, "/api/v1/plan").json();
    assert_eq!(plan["stagings"].as_array().unwrap().len(), 2);
    let detail = get(&s.addr, "/api/v1/stagings/app-feature-a").json();
    assert_eq!(detail["commit"]["subject"], "the subject <b>");
    assert!(detail["history"].as_array().unwrap().len() >= 3, "{detail}");
    assert_eq!(get(&s.addr, "/api/v1/stagings/nope").status, 404);
    // Pages: escaped, and the unknown one is 404.
    let page = get(&s.addr, "/stagings/app-feature-a");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("the subject &lt;b&gt;"), "{}", page.body);
    assert_eq!(get(&s.addr, "/stagings/nope").status, 404);
    let health = get(&s.addr, "/healthz");
    assert_eq!(health.status, 200);
    // Not framed by other sites, types not sniffed.
    for (k, v) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert!(
            health.headers.iter().any(|(hk, hv)| hk == k && hv == v),
            "{k}"
        );
    }
    // The scheme of the bearer token is case-insensitive.
    let lower = format!("bearer {TOKEN}");
    let r = request(
        &s.addr,
        "POST",
        "/api/v1/pass",
        &[("authorization", &lower)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Metrics: stagings by state, passes, and the pass histogram.
    let running = metric(
        &s.probes,
        "octostage_stagings",
        &[("environment", "app"), ("state", "running")],
    );
    assert_eq!(running, 2.0);
    assert!(metric(&s.probes, "octostage_pass_duration_seconds_count", &[]) >= 3.0);
    assert_eq!(
        metric(&s.probes, "octostage_leader", &[]),
        1.0,
        "a dir target needs no lease"
    );
}

#[test]
fn without_a_token_the_server_is_read_only() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, false);
    let r = request(
        &s.addr,
        "POST",
        "/api/v1/stagings/app-main/sleep",
        &[("authorization", "Bearer x")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].as_str().unwrap().contains("read-only"));
    let page = get(&s.addr, "/stagings/app-main").body;
    assert!(page.contains("Read-only") && !page.contains("type=\"password\""));
    assert!(s
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("read-only")));
    // An open event stream does not hold the exit.
    let mut s = s;
    let addr = s.addr.clone();
    let stream = std::thread::spawn(move || get(&addr, "/events"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(s.stop(), Some(0));
    let _ = stream.join();
}

#[test]
fn idle_connections_are_closed_and_never_starve_the_controller() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, true);
    let pid = s.child.as_ref().unwrap().id();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    // 400 connections that send half a request and then nothing (slowloris).
    let idle: Vec<std::net::TcpStream> = (0..400)
        .filter_map(|_| {
            use std::io::Write;
            let mut c = std::net::TcpStream::connect(&s.addr).ok()?;
            c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").ok()?;
            Some(c)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = fds();
    assert!(
        held < 330,
        "{held} descriptors open: connections are not capped"
    );
    // Within the header timeout they are closed, and the server answers again.
    s.wait(20, "the server never answered again", |s| {
        std::panic::catch_unwind(|| get(&s.addr, "/healthz").status).ok() == Some(200)
    });
    drop(idle);
    // The controller still has descriptors for its work: a pass on request writes a staging.
    d.repo.commit("feature/after", "w", &days_ago(0));
    let auth = format!("Bearer {TOKEN}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(
        request(&s.addr, "POST", "/api/v1/pass", &h, b"").status,
        200
    );
    s.wait(10, "no staging after the flood", |s| {
        s.stagings().len() == 2
    });
}

#[test]
fn open_live_pages_are_capped_and_leave_room_for_everything_else() {
    use std::io::{BufRead, BufReader, Write};
    let d = DirRun::new(&days_ago(1));
    // Every page from this one test address: the bound tested is the live views', not the
    // per-client one.
    let s = Daemon::start(
        &d.args(&[
            "run",
            "--interval",
            "1h",
            "--max-connections-per-client",
            "256",
        ]),
        &[("OCTOSTAGE_GITHUB_SECRET", HOOK)],
    );
    s.wait(20, "never ready", |d| get(&d.addr, "/readyz").status == 200);
    let mut statuses = Vec::new();
    let mut open = Vec::new();
    for _ in 0..80 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        c.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(c);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        statuses.push(line.split(' ').nth(1).unwrap_or_default().to_string());
        open.push(r);
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "200").count(),
        64,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "503").count(),
        16,
        "{statuses:?}"
    );
    assert_eq!(get(&s.addr, "/healthz").status, 200);
    assert_eq!(get(&s.addr, "/").status, 200);
    // A closed page frees its place.
    drop(open);
    s.wait(10, "no place freed", |s| {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        c.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut line = String::new();
        BufReader::new(c).read_line(&mut line).unwrap();
        line.contains(" 200 ")
    });
}

#[test]
fn an_approval_carries_out_only_the_held_set_it_names() {
    let d = DirRun::new(&days_ago(1));
    for b in ["f1", "f2", "f3", "f4"] {
        d.repo.commit(&format!("feature/{b}"), "w", &days_ago(0));
    }
    let s = daemon(&d, true);
    s.wait(20, "five stagings", |s| s.stagings().len() == 5);
    let auth = format!("Bearer {TOKEN}");
    let h = [("authorization", auth.as_str())];
    let pass = |s: &Daemon| {
        let before = s.passes();
        assert_eq!(
            request(&s.addr, "POST", "/api/v1/pass", &h, b"").status,
            200
        );
        s.wait(10, "no pass", |s| s.passes() > before);
    };
    // Three of five branches vanish at once: more than half, so the deletions are held.
    for b in ["f1", "f2", "f3"] {
        d.repo.delete_branch(&format!("feature/{b}"));
    }
    pass(&s);
    // A pass is counted a moment before its report is recorded: wait for the report.
    let held = |s: &Daemon| {
        get(&s.addr, "/api/v1/plan").json()["held_digest"]
            .as_str()
            .map(String::from)
    };
    s.wait(10, "nothing held", |s| held(s).is_some());
    let first = held(&s).unwrap();
    // Approving without naming the set, or naming another, does nothing.
    let r = request(&s.addr, "POST", "/api/v1/approve", &h, b"");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request(
        &s.addr,
        "POST",
        "/api/v1/approve",
        &h,
        br#"{"held":"0000"}"#,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    // The held set changes after the operator looked: the old approval is refused.
    d.repo.delete_branch("feature/f4");
    pass(&s);
    s.wait(10, "the held set never changed", |s| {
        held(s).is_some_and(|h| h != first)
    });
    let second = held(&s).unwrap();
    let body = format!(r#"{{"held":"{first}"}}"#);
    let r = request(&s.addr, "POST", "/api/v1/approve", &h, body.as_bytes());
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains(&second), "{}", r.body);
    assert_eq!(
        d.stagings(),
        5,
        "an approval for another set deleted something"
    );
    // The set shown now, approved, is carried out.
    let body = format!(r#"{{"held":"{second}"}}"#);
    let r = request(&s.addr, "POST", "/api/v1/approve", &h, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    s.wait(10, "the approved deletions never ran", |_| {
        d.stagings() == 1
    });
}

#[test]
fn a_typo_in_one_environment_freezes_it_alone_and_says_so() {
    let d = DirRun::new(&days_ago(1));
    let two = |ttl: &str| {
        std::fs::write(
            d.cfg.join("environments.yaml"),
            format!(
                "version: 1\nenvironments:\n  app:\n    repository: {repo}\n    templates: t\n    ttl: {ttl}\n  other:\n    repository: {repo}\n    templates: t\n    ttl: 7d\n",
                repo = d.repo.path.display()
            ),
        )
        .unwrap();
    };
    two("7d");
    d.repo.commit("feature/a", "w", &days_ago(0));
    let s = daemon(&d, true);
    s.wait(20, "four stagings", |_| d.stagings() == 4);
    assert_eq!(metric(&s.probes, "octostage_config_valid", &[]), 1.0);
    // One typo in `app`; a new branch: `other` goes on, `app` is frozen as it is.
    two("5 dys");
    d.repo.commit("feature/b", "w", &days_ago(0));
    let auth = format!("Bearer {TOKEN}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(
        request(&s.addr, "POST", "/api/v1/pass", &h, b"").status,
        200
    );
    s.wait(20, "other never got feature/b", |_| {
        d.out.join("other-feature-b").exists()
    });
    assert!(!d.out.join("app-feature-b").exists());
    assert!(d.out.join("app-feature-a").exists() && d.out.join("app-main").exists());
    // The pass's files are written before its report is recorded: wait for the report.
    s.wait(10, "readyz never said app is frozen", |s| {
        let ready = get(&s.probes, "/readyz");
        ready.status == 200
            && ready
                .body
                .contains("environment app frozen: environments.yaml:6")
    });
    assert_eq!(metric(&s.probes, "octostage_config_valid", &[]), 0.0);
    let api = get(&s.addr, "/api/v1/stagings").json();
    assert!(api["failed_sources"].to_string().contains("app"), "{api}");
    // Fixed: whole again.
    two("7d");
    assert_eq!(
        request(&s.addr, "POST", "/api/v1/pass", &h, b"").status,
        200
    );
    s.wait(20, "app never got feature/b", |_| {
        d.out.join("app-feature-b").exists()
    });
    s.wait(10, "config_valid never came back", |s| {
        metric(&s.probes, "octostage_config_valid", &[]) == 1.0
    });
}

#[test]
fn the_openapi_document_describes_every_api_route_and_the_server_serves_each() {
    let d = DirRun::new(&days_ago(1));
    let s = daemon(&d, true);
    let doc = get(&s.addr, "/api/v1/openapi.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut described: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    described.sort();
    let mut routes: Vec<(String, String)> = octostage::server::API_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(described, routes, "the document and the routes differ");
    // Each one is routed to a handler (which answers JSON), not to the router's fallback.
    for (method, path) in &described {
        let path = path.replace("{name}", "app-main").replace(
            "{action}",
            if path.contains("stagings") {
                "sleep"
            } else {
                "pass"
            },
        );
        let r = request(&s.addr, &method.to_ascii_uppercase(), &path, &[], b"");
        assert!(
            r.body.trim_start().starts_with('{'),
            "{method} {path}: {} {:?}",
            r.status,
            r.body
        );
        // Documented, with this status.
        let op = &doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(p, _)| {
                p.replace("{name}", "app-main").replace(
                    "{action}",
                    if p.contains("stagings") {
                        "sleep"
                    } else {
                        "pass"
                    },
                ) == path
            })
            .unwrap()
            .1[method.as_str()];
        assert!(
            op["responses"][r.status.to_string()].is_object(),
            "{method} {path} answered {}, which the document does not list",
            r.status
        );
    }
}

#[test]
fn the_dashboard_shows_control_characters_and_direction_overrides_escaped() {
    let d = DirRun::new(&days_ago(1));
    // A branch that would read as `feature/exe.png`, and a subject with a terminal escape.
    d.repo.commit(
        "feature/\u{202e}gnp.exe",
        "subject \u{1b}[31mred\u{7}",
        &days_ago(0),
    );
    let s = daemon(&d, false);
    s.wait(20, "two stagings", |s| s.stagings().len() == 2);
    let page = get(&s.addr, "/").body;
    assert!(!page.contains('\u{202e}') && !page.contains('\u{1b}') && !page.contains('\u{7}'));
    assert!(page.contains("\\u{202e}gnp.exe"), "{page}");
}

#[test]
fn a_staging_that_failed_before_it_was_created_has_no_create_in_its_history() {
    let d = DirRun::new(&days_ago(1));
    d.config("", "");
    d.template(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  a: {{ nope.x }}\n",
    );
    let s = daemon(&d, false);
    let detail = get(&s.addr, "/api/v1/stagings/app-main");
    assert_eq!(detail.status, 200, "{}", detail.body);
    let v: serde_json::Value = serde_json::from_str(&detail.body).unwrap();
    let history = v["history"].as_array().unwrap();
    assert!(!history.is_empty(), "{v}");
    for h in history {
        assert!(
            h["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("FAILED: ") && e.contains("undefined variable")),
            "a create that failed reads as done: {h}"
        );
    }
    let page = get(&s.addr, "/stagings/app-main").body;
    assert!(page.contains("FAILED"), "{page}");
}
