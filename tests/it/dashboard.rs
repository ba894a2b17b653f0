//! The dashboard in headless Chromium against a daemon on the local control plane with five
//! stagings in five states: every staging shows with its state and links; an extend through
//! the page, with the token, moves the expiry; screenshots at desktop and phone width are
//! saved under target/screenshots for people to look at. Events land on the namespaces.

use crate::browser::Browser;
use crate::cluster::pods_ready;
use crate::cluster::{json, kubectl, Setup};
use crate::http::*;
use crate::util::*;

const TOKEN: &str = "dashboard-token";

/// Each staging of the test and the state it must reach.
const STATES: [(&str, &str); 5] = [
    ("main", "running"),
    ("feature-pending", "pending"),
    ("feature-sleepy", "sleeping:manual"),
    ("feature-old", "expired"),
    ("feature-taken", "conflict"),
];

#[test]
fn the_dashboard_shows_five_stagings_in_their_states_and_extends_one_through_its_form() {
    let s = Setup::new(1);
    let env = s.env.name.clone();
    for (b, age) in [
        ("feature/pending", 1),
        ("feature/sleepy", 1),
        ("feature/old", 0),
        ("feature/taken", 1),
    ] {
        s.repo.commit(b, &format!("work on {b}"), &days_ago(age));
    }
    // feature/pending's pod runs but is not ready for an hour (its readiness probe's delay).
    let web = s.cfg.join("t/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap().replace(
        "initialDelaySeconds: 2",
        "initialDelaySeconds: {{ 3600 if branch.name == 'feature/pending' else 2 }}",
    );
    assert!(text.contains("3600"));
    std::fs::write(&web, text).unwrap();
    std::fs::write(
        s.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {env}:\n    repository: {}\n    templates: t\n    ttl: 7d\n    retention: 3d\n    always: [main]\n    overrides:\n      feature/old:\n        ttl: 15s\n    links:\n      web: \"https://{{{{ staging }}}}.example.test\"\n",
            s.repo.path.display()
        ),
    )
    .unwrap();
    // Someone else's namespace where one staging would go.
    let taken = format!("{env}-feature-taken");
    kubectl(&s.kc, &["create", "namespace", &taken]);
    let mut args = s.args(&["run", "--interval", "2s"]);
    args.extend(["--no-leader-election".into()]);
    let d = Daemon::start(&args, &[("OCTOSTAGE_API_TOKEN", TOKEN)]);
    let state = |d: &Daemon, name: &str| {
        get(&d.addr, &format!("/api/v1/stagings/{env}-{name}")).json()["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    d.wait(60, "main never pending", |d| state(d, "main") == "pending");
    pods_ready(&s.kc, &format!("{env}-main"), 1);
    let auth = format!("Bearer {TOKEN}");
    let path = format!("/api/v1/stagings/{env}-feature-sleepy/sleep");
    assert_eq!(
        request(&d.addr, "POST", &path, &[("authorization", &auth)], b"").status,
        200
    );
    for (name, want) in STATES {
        d.wait(60, &format!("{name} never {want}"), |d| {
            state(d, name) == want
        });
    }

    let browser = Browser::start();
    let mut page = browser.page();
    let base = format!("http://{}", d.addr);
    page.goto(&format!("{base}/"));
    let text = page.text();
    for (name, want) in STATES {
        let row = page.eval(&format!(
            "[...document.querySelectorAll('tbody tr')].map(r => r.innerText).find(t => t.includes('{env}-{name}')) || ''"
        ));
        let row = row.as_str().unwrap();
        assert!(row.contains(want), "{name}: {row}\n{text}");
    }
    let links =
        page.eval("[...document.querySelectorAll('td a[href^=\"https://\"]')].map(a => a.href)");
    let links: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        links.contains(&format!("https://{env}-main.example.test/").as_str()),
        "{links:?}"
    );
    // Filters work without script: a GET form.
    page.goto(&format!("{base}/?state=sleeping"));
    let rows = page.eval("document.querySelectorAll('tbody tr').length");
    assert_eq!(rows, 1, "{}", page.text());
    page.goto(&format!("{base}/"));
    let shots = root().join("target/screenshots");
    page.screenshot(&shots.join("dashboard-desktop.png"), 1280, false);
    page.screenshot(&shots.join("dashboard-phone.png"), 390, true);

    // Extend through the staging's page, with the token.
    let name = format!("{env}-feature-pending");
    let expires = |d: &Daemon| {
        get(&d.addr, &format!("/api/v1/stagings/{name}")).json()["expires"]["at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = expires(&d);
    page.goto(&format!("{base}/stagings/{name}"));
    page.screenshot(&shots.join("staging-desktop.png"), 1280, false);
    page.eval(&format!(
        "document.getElementById('x-dur').value = '7d'; document.getElementById('x-tok').value = '{TOKEN}'; document.querySelector('form[action$=\"/extend\"]').submit(); true"
    ));
    page.wait_for("/extend");
    let said = page.text();
    assert!(said.contains("kept at least until"), "{said}");
    d.wait(20, "the expiry never moved", |d| expires(d) > before);
    page.goto(&format!("{base}/stagings/{name}"));
    let shown = page.eval("document.getElementById('expires').innerText");
    assert!(shown.as_str().unwrap().contains(&expires(&d)), "{shown}");
    page.screenshot(&shots.join("staging-phone.png"), 390, true);
    // A wrong token through the page changes nothing.
    page.eval("document.getElementById('s-tok').value = 'wrong'; document.querySelector('form[action$=\"/sleep\"]').submit(); true");
    page.wait_for("/sleep");
    assert!(page.text().contains("wrong token"));

    // Each transition is an Event on the staging's namespace.
    let events = json(
        &s.kc,
        &[
            "get",
            "events.v1.events.k8s.io",
            "-n",
            &format!("{env}-main"),
        ],
    );
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reportingController"] == "octostage.dev/controller")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"Created") && reasons.contains(&"Healthy"),
        "{reasons:?} {events}\n{}",
        d.log.lock().unwrap().join("\n")
    );
    // The staging in conflict names someone else's namespace: nothing is posted there.
    let foreign = json(&s.kc, &["get", "events.v1.events.k8s.io", "-n", &taken]);
    let ours = foreign["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reportingController"] == "octostage.dev/controller")
        .count();
    assert_eq!(
        ours, 0,
        "octostage posted into a namespace it did not create: {foreign}"
    );
    kubectl(&s.kc, &["delete", "namespace", &taken, "--wait=false"]);
}
