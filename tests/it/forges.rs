//! Forges on loopback: a server that records every request (method, path, headers, body) and
//! answers GETs with recorded answers and their ETag (304 to a matching If-None-Match), as
//! GitHub does; bodies are checked against the providers' published API descriptions vendored
//! in tests/fixtures/forges (see its README for their sources).

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::util::*;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A loopback forge.
pub struct Forge {
    pub url: String,
    pub got: Arc<Mutex<Vec<Req>>>,
    /// GET answers by path (without query): (ETag, body).
    pub answers: Arc<Mutex<HashMap<String, (String, String)>>>,
}

impl Forge {
    pub fn start() -> Forge {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Req>>> = Arc::default();
        let answers: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
        let (g, a) = (got.clone(), answers.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (g, a) = (g.clone(), a.clone());
                std::thread::spawn(move || serve(conn, &g, &a));
            }
        });
        Forge { url, got, answers }
    }

    /// Serve `body` at `path` with an ETag of its content.
    pub fn answer(&self, path: &str, body: &str) {
        let etag = format!("\"{}\"", octostage::naming::short_hash(body, 16));
        self.answers
            .lock()
            .unwrap()
            .insert(path.to_string(), (etag, body.to_string()));
    }

    pub fn requests(&self) -> Vec<Req> {
        self.got.lock().unwrap().clone()
    }
}

fn serve(
    conn: std::net::TcpStream,
    got: &Mutex<Vec<Req>>,
    answers: &Mutex<HashMap<String, (String, String)>>,
) {
    let mut r = BufReader::new(conn);
    let Some(HttpRequest {
        method,
        target,
        headers,
        body,
    }) = read_request(&mut r)
    else {
        return;
    };
    let path = target.split('?').next().unwrap_or("").to_string();
    let (status, extra, reply) = match method.as_str() {
        "POST" => (201, String::new(), "{}".to_string()),
        "GET" => match answers.lock().unwrap().get(&path).cloned() {
            Some((etag, text)) => {
                let matches = headers
                    .iter()
                    .any(|(k, v)| k == "if-none-match" && *v == etag);
                if matches {
                    (304, format!("etag: {etag}\r\n"), String::new())
                } else {
                    (200, format!("etag: {etag}\r\n"), text)
                }
            }
            None => (404, String::new(), "{\"message\":\"Not Found\"}".into()),
        },
        _ => (405, String::new(), String::new()),
    };
    got.lock().unwrap().push(Req {
        method,
        path: target,
        headers,
        body,
    });
    let mut conn = r.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// Whether `body` is valid against the vendored schema `file`.
pub fn check(file: &str, body: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/forges").join(file)).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{file}: {errors:?}\n{body}");
}

const TOKEN: &str = "forge-token-7c1e9a-never-print";

fn config(d: &DirRun, provider: &str, api: &str) {
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    templates: t\n    always: [main]\n    links:\n      web: \"https://{{{{ staging }}}}.preview.example.com\"\n    notify:\n      commit_status:\n        provider: {provider}\n        api_url: {api}\n        repository: acme/shop\n        token_env: OCTOSTAGE_TEST_FORGE_TOKEN\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
}

fn run(d: &DirRun) -> (String, String) {
    let a = d.args(&["run", "--once", "--log", "debug"]);
    let o = octostage_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[("OCTOSTAGE_TEST_FORGE_TOKEN", TOKEN)],
    );
    let t = texts(&o);
    assert!(o.status.success(), "{t:?}");
    assert!(!t.0.contains(TOKEN) && !t.1.contains(TOKEN));
    t
}

/// (sha, state, target_url) of each status named `context` set, in order.
fn statuses_of(f: &Forge, context: &str) -> Vec<(String, String, Option<String>)> {
    f.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.json()["context"] == context)
        .map(|r| {
            let body = r.json();
            let sha = r.path.rsplit('/').next().unwrap().to_string();
            (
                sha,
                body["state"].as_str().unwrap_or_default().to_string(),
                body["target_url"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn commit_statuses_follow_each_transition_once_and_survive_a_restart() {
    use crate::cluster::pods_ready;
    use crate::cluster::Setup;
    let f = Forge::start();
    let s = Setup::new(2);
    let env = s.env.name.clone();
    std::fs::write(
        s.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  {env}:\n    repository: {}\n    templates: t\n    always: [main]\n    links:\n      web: \"https://{{{{ staging }}}}.preview.example.com\"\n    notify:\n      commit_status:\n        provider: github\n        api_url: {}\n        repository: acme/shop\n        token_env: OCTOSTAGE_TEST_FORGE_TOKEN\n",
            s.repo.path.display(),
            f.url
        ),
    )
    .unwrap();
    let run = || {
        let a = s.args(&["run", "--once", "--log", "debug"]);
        let o = octostage_env(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
            &[("OCTOSTAGE_TEST_FORGE_TOKEN", TOKEN)],
        );
        let t = texts(&o);
        assert!(o.status.success(), "{t:?}");
        assert!(!t.0.contains(TOKEN) && !t.1.contains(TOKEN));
    };
    let main = format!("{env}-main");
    let link = Some(format!("https://{main}.preview.example.com"));
    let of_main = |f: &Forge| -> Vec<(String, String, Option<String>)> {
        statuses_of(f, &format!("octostage/{main}"))
    };
    let first = s.repo.git(&["rev-parse", "main"]);
    run();
    assert_eq!(
        of_main(&f),
        [(first.clone(), "pending".into(), link.clone())]
    );
    // Its pod becomes ready (the simulated node runs it): the next pass finds it running.
    pods_ready(&s.kc, &main, 1);
    std::thread::sleep(std::time::Duration::from_secs(1));
    run();
    assert_eq!(
        of_main(&f),
        [
            (first.clone(), "pending".into(), link.clone()),
            (first.clone(), "success".into(), link.clone())
        ]
    );
    for r in f.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert!(
            r.path.starts_with("/repos/acme/shop/statuses/"),
            "{}",
            r.path
        );
        check("github.status.schema.json", &r.json());
    }
    // A restart: the transitions are recorded on the staging; nothing is sent again.
    let sent = f.requests().len();
    run();
    assert_eq!(f.requests().len(), sent);

    // A new commit: pending on it. A deleted branch: a last status, without the dead link.
    let second = s.repo.commit("main", "Second", &days_ago(0));
    run();
    assert_eq!(of_main(&f)[2], (second, "pending".into(), link.clone()));
    let f1 = format!("{env}-feature-f1");
    let f1_sha = s.repo.git(&["rev-parse", "feature/f1"]);
    s.repo.delete_branch("feature/f1");
    run();
    let last = statuses_of(&f, &format!("octostage/{f1}"));
    assert_eq!(
        last.last().unwrap(),
        &(f1_sha, "success".to_string(), None),
        "{last:?}"
    );
    let body = f
        .requests()
        .iter()
        .rev()
        .map(Req::json)
        .find(|b| b["context"] == format!("octostage/{f1}"))
        .unwrap();
    assert!(
        body["description"].as_str().unwrap().starts_with("Deleted"),
        "{body}"
    );
    check("github.status.schema.json", &body);
}

#[test]
fn gitlab_and_gitea_statuses_are_valid_against_their_api_descriptions() {
    for (provider, schema) in [
        ("gitlab", "gitlab.status.schema.json"),
        ("gitea", "gitea.status.schema.json"),
    ] {
        let f = Forge::start();
        let d = DirRun::new(&days_ago(1));
        config(&d, provider, &f.url);
        let sha = d.repo.git(&["rev-parse", "main"]);
        run(&d);
        let reqs = f.requests();
        assert_eq!(reqs.len(), 1, "{provider}: {reqs:?}");
        for r in &reqs {
            check(schema, &r.json());
            match provider {
                "gitlab" => {
                    assert_eq!(r.path, format!("/projects/acme%2Fshop/statuses/{sha}"));
                    assert_eq!(r.header("private-token"), Some(TOKEN));
                    assert_eq!(r.json()["name"], "octostage/app-main");
                }
                _ => {
                    assert_eq!(r.path, format!("/repos/acme/shop/statuses/{sha}"));
                    assert_eq!(
                        r.header("authorization"),
                        Some(format!("token {TOKEN}").as_str())
                    );
                }
            }
        }
        let states: Vec<String> = reqs
            .iter()
            .map(|r| r.json()["state"].as_str().unwrap().to_string())
            .collect();
        let want = if provider == "gitlab" {
            ["running"]
        } else {
            ["pending"]
        };
        assert_eq!(states, want);
    }
}

/// A recorded listing with the vendored placeholder shas replaced by the test repository's.
fn recorded(file: &str, repo: &GitRepo, schema: &str) -> String {
    let mut text =
        std::fs::read_to_string(root().join("tests/fixtures/forges").join(file)).unwrap();
    for (placeholder, branch) in [
        (
            "cb49b4505e4516842a8fb14baecdb33b1e6a466a",
            "feature/labelled",
        ),
        (
            "0c056826e953067b4b9b9ee7c8f0dfd4fb85fab9",
            "feature/unlabelled",
        ),
        ("27c726cf036ed1554bc5b4c0c8207cee705365c7", "feature/fork"),
    ] {
        text = text.replace(placeholder, &repo.git(&["rev-parse", branch]));
    }
    check(schema, &serde_json::from_str(&text).unwrap());
    text
}

fn pulls_config(d: &DirRun, provider: &str, api: &str) {
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    templates: t\n    branches:\n      from: pull_requests\n      pull_requests:\n        provider: {provider}\n        api_url: {api}\n        repository: acme/shop\n        token_env: OCTOSTAGE_TEST_FORGE_TOKEN\n        labels: [preview]\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
}

fn stagings(d: &DirRun) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&d.out)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn pull_requests_with_a_label_get_stagings_and_an_idle_poll_is_answered_304() {
    let f = Forge::start();
    let d = DirRun::new(&days_ago(1));
    for b in ["feature/labelled", "feature/unlabelled", "feature/fork"] {
        d.repo.commit(b, "work", &days_ago(1));
    }
    let path = "/repos/acme/shop/pulls";
    let listing = recorded("github.pulls.json", &d.repo, "github.pulls.schema.json");
    f.answer(path, &listing);
    pulls_config(&d, "github", &f.url);
    let (stdout, _) = run(&d);
    // Only the labelled pull request; not the unlabelled one, not main (no pull request), not
    // the fork's (its head is someone else's code, even though a branch of that name exists),
    // which the plan names.
    assert_eq!(stagings(&d), ["app-feature-labelled"]);
    assert!(
        stdout.contains("hint: environment app: pull request #3 (branch \"feature/fork\") gets no staging: it comes from a fork"),
        "{stdout}"
    );
    let gets: Vec<Req> = f
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 1);
    assert!(gets[0].path.starts_with(path) && gets[0].path.contains("state=open"));
    assert_eq!(
        gets[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(gets[0].header("if-none-match").is_none());

    // Nothing changed: the poll is conditional, answered 304, and the pass plans nothing new.
    let (stdout, _) = run(&d);
    let gets: Vec<Req> = f
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 2);
    assert!(gets[1].header("if-none-match").is_some(), "{:?}", gets[1]);
    assert!(
        !stdout.contains("create") && !stdout.contains("update"),
        "{stdout}"
    );
    assert_eq!(stagings(&d), ["app-feature-labelled"]);

    // The label added to the second pull request: a new answer, a new staging.
    let labelled_too = listing.replacen("\"labels\": []", "\"labels\": [{\"id\": 1, \"node_id\": \"x\", \"url\": \"https://api.github.com/repos/acme/shop/labels/preview\", \"name\": \"preview\", \"description\": \"\", \"color\": \"f29513\", \"default\": false}]", 1);
    assert_ne!(labelled_too, listing);
    check(
        "github.pulls.schema.json",
        &serde_json::from_str(&labelled_too).unwrap(),
    );
    f.answer(path, &labelled_too);
    run(&d);
    assert_eq!(
        stagings(&d),
        ["app-feature-labelled", "app-feature-unlabelled"]
    );

    // The API fails: the environment's stagings are kept as they are.
    f.answers.lock().unwrap().clear();
    let a = d.args(&["run", "--once"]);
    let o = octostage_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[("OCTOSTAGE_TEST_FORGE_TOKEN", TOKEN)],
    );
    let (out, err) = texts(&o);
    assert!(
        err.contains("pull request listing failed") || out.contains("pull requests from"),
        "{out}\n{err}"
    );
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN));
    assert_eq!(
        stagings(&d),
        ["app-feature-labelled", "app-feature-unlabelled"]
    );
}

#[test]
fn gitlab_merge_requests_and_gitea_pull_requests_are_read_alike() {
    for (provider, file, schema, path) in [
        (
            "gitlab",
            "gitlab.merge_requests.json",
            "gitlab.merge_requests.schema.json",
            "/projects/acme%2Fshop/merge_requests",
        ),
        (
            "gitea",
            "gitea.pulls.json",
            "gitea.pulls.schema.json",
            "/repos/acme/shop/pulls",
        ),
    ] {
        let f = Forge::start();
        let d = DirRun::new(&days_ago(1));
        for b in ["feature/labelled", "feature/unlabelled", "feature/fork"] {
            d.repo.commit(b, "work", &days_ago(1));
        }
        f.answer(path, &recorded(file, &d.repo, schema));
        pulls_config(&d, provider, &f.url);
        run(&d);
        assert_eq!(stagings(&d), ["app-feature-labelled"], "{provider}");
        let get = f
            .requests()
            .into_iter()
            .find(|r| r.method == "GET")
            .unwrap();
        match provider {
            "gitlab" => {
                assert!(get.path.contains("state=opened"), "{}", get.path);
                assert_eq!(get.header("private-token"), Some(TOKEN));
            }
            _ => assert_eq!(
                get.header("authorization"),
                Some(format!("token {TOKEN}").as_str())
            ),
        }
    }
}

#[test]
fn with_pull_requests_statics_and_always_branches_still_follow_git_heads() {
    let f = Forge::start();
    let d = DirRun::new(&days_ago(1));
    for b in [
        "feature/labelled",
        "feature/unlabelled",
        "feature/fork",
        "release/1",
    ] {
        d.repo.commit(b, "work", &days_ago(1));
    }
    let listing = recorded("github.pulls.json", &d.repo, "github.pulls.schema.json");
    f.answer("/repos/acme/shop/pulls", &listing);
    pulls_config(&d, "github", &f.url);
    // A static staging on main and `always` release branches, neither a pull request.
    let text = std::fs::read_to_string(d.cfg.join("environments.yaml")).unwrap();
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "{text}    always: ['release/*']\n    static:\n      demo:\n        branch: main\n"
        ),
    )
    .unwrap();
    let (stdout, stderr) = run(&d);
    assert_eq!(
        stagings(&d),
        ["app-demo", "app-feature-labelled", "app-release-1"],
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("does not exist"), "{stdout}");
}
