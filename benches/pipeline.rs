//! Benchmarks of the pipeline's hot parts, printing figures (run: `cargo bench --bench pipeline`).
//!
//! - plan: the pure planner over 10,000 branches, first pass (all create) and steady state (all
//!   noop), against the 100 ms budget and against a baseline of naming alone.
//! - list: 10,000 branches from a local repository through the cache, cold (first fetch) and warm
//!   (nothing new), against `git clone --mirror` and `git for-each-ref` on the same repository.
//! - yaml: what a render prints (Deployments of 25 nodes each, 50 to 5,000 of them) read by
//!   `octostage::yaml::documents` within the staging's budget, against the same values read
//!   from JSON by serde_json.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use octostage::config::{parse, LoadOptions, MemFiles};
use octostage::plan::{plan, Inputs, Observed, StagingRecord};
use octostage::source::{Branch, Commit, RepoCache, RepoListing};

const N: usize = 10_000;

/// The templates directory `t` with one ConfigMap.
fn templates() -> MemFiles {
    MemFiles::new([(
        "t/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )])
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn bench_plan() {
    let cfg = "version: 1\ndefaults:\n  templates: t\nenvironments:\n  shop:\n    repository: /repo\n    always: [main]\n    links:\n      web: 'https://{{ staging }}.example.com'\n    overrides:\n      'release/*':\n        ttl: 30d\n";
    let config = parse(
        cfg,
        "environments.yaml",
        Path::new("/cfg"),
        &templates(),
        &LoadOptions::default(),
    )
    .unwrap();
    let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
    let branches: Vec<Branch> = (0..N)
        .map(|i| Branch {
            name: match i % 4 {
                0 => format!("feature/JIRA-{i}-some-work"),
                1 => format!("fix/{i}_bug"),
                2 => format!("release/{i}.0"),
                _ => format!("user/dev{}/experiment-{i}", i % 50),
            },
            commit: Commit {
                sha: format!("{:040x}", i),
                time: now - chrono::Duration::hours((i % 200) as i64),
                author: "Dev".into(),
                subject: "work".into(),
                steer: None,
            },
        })
        .collect();
    let listings: octostage::plan::Listings = [(
        "shop".to_string(),
        Ok(RepoListing {
            branches: branches.clone(),
            ..RepoListing::default()
        }),
    )]
    .into();
    let empty = Observed::default();
    let first = || {
        plan(
            &config,
            &Inputs {
                listings: &listings,
                observed: &empty,
                now,
                confirm_deletions: false,
                previous: None,
                images: None,
            },
        )
    };
    let p = first();
    let stagings: Vec<StagingRecord> = p
        .stagings
        .iter()
        .filter(|s| s.exists_after())
        .map(StagingRecord::of)
        .collect();
    let observed = Observed {
        stagings: stagings.into_iter().map(std::sync::Arc::new).collect(),
        ..Default::default()
    };
    let t_first = time(7, first);
    let t_steady = time(7, || {
        plan(
            &config,
            &Inputs {
                listings: &listings,
                observed: &observed,
                now,
                confirm_deletions: false,
                previous: None,
                images: None,
            },
        )
    });
    let t_names = time(7, || {
        octostage::naming::assign(
            "shop",
            branches.iter().map(|b| b.name.as_str()),
            &Default::default(),
            &HashMap::new(),
        )
    });
    let budget = Duration::from_millis(100);
    println!("plan, {N} branches ({} stagings):", observed.stagings.len());
    println!(
        "  first pass (all create)  {:>10}   {:.2}x of the 100 ms budget",
        ms(t_first),
        t_first.as_secs_f64() / budget.as_secs_f64()
    );
    println!(
        "  steady state (all noop)  {:>10}   {:.2}x of the 100 ms budget",
        ms(t_steady),
        t_steady.as_secs_f64() / budget.as_secs_f64()
    );
    println!(
        "  baseline: naming alone   {:>10}   planner/naming = {:.1}x",
        ms(t_names),
        t_steady.as_secs_f64() / t_names.as_secs_f64()
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// A repository with `N` branches, each with its own commit, made with `git fast-import`.
fn big_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = String::new();
    s.push_str("commit refs/heads/main\nmark :1\ncommitter Dev <dev@example.com> 1764000000 +0000\ndata 4\nroot\n\n");
    for i in 0..N {
        let body = format!("branch {i}\n");
        s.push_str(&format!(
            "commit refs/heads/feature/b{i}\ncommitter Dev <dev@example.com> {} +0000\ndata 5\nwork\nfrom :1\nM 644 inline f.txt\ndata {}\n{body}\n",
            1764000000 + i,
            body.len()
        ));
    }
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn bench_list() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("app");
    std::fs::create_dir_all(&repo).unwrap();
    big_repo(&repo);
    let url = repo.to_str().unwrap().to_string();
    let creds = Default::default();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut mirror = Vec::new();
    for i in 0..3 {
        let cache = RepoCache::new(tmp.path().join(format!("cache{i}")));
        let t = Instant::now();
        let l = cache.list(&url, &creds, &[]).unwrap();
        cold.push(t.elapsed());
        assert_eq!(l.branches.len(), N + 1);
        warm.push(time(5, || cache.list(&url, &creds, &[]).unwrap()));
        let dest = tmp.path().join(format!("mirror{i}"));
        let t = Instant::now();
        git(
            tmp.path(),
            &["clone", "-q", "--mirror", &url, dest.to_str().unwrap()],
        );
        mirror.push(t.elapsed());
    }
    let t_refs = time(5, || {
        Command::new("git")
            .args([
                "for-each-ref",
                "--format=%(refname) %(objectname) %(committerdate:unix)",
                "refs/heads",
            ])
            .current_dir(&repo)
            .output()
            .unwrap()
    });
    let (cold, warm, mirror) = (median(cold), median(warm), median(mirror));
    println!("list, {N} branches from a local repository:");
    println!("  cold (first fetch into the cache)  {:>10}   baseline git clone --mirror {:>10}   ratio {:.2}x", ms(cold), ms(mirror), cold.as_secs_f64() / mirror.as_secs_f64());
    println!("  warm (fetch, nothing new, list)    {:>10}   baseline git for-each-ref   {:>10}   ratio {:.2}x", ms(warm), ms(t_refs), warm.as_secs_f64() / t_refs.as_secs_f64());
}

fn bench_yaml() {
    println!("yaml, documents of a render read within the budget:");
    for n in [50, 500, 5000] {
        let yaml: String = (0..n)
            .map(|i| {
                format!(
                    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  labels: {{app: web, tier: \"front\"}}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        args: [\"--port\", \"8080\"]\n        env:\n        - name: A\n          value: \"{}\"\n",
                    "y".repeat(100)
                )
            })
            .collect();
        let docs =
            octostage::yaml::documents(&yaml, &mut octostage::yaml::Budget::default()).unwrap();
        assert_eq!(docs.len(), n);
        let json = serde_json::to_string(&docs).unwrap();
        let t_yaml = time(7, || {
            octostage::yaml::documents(&yaml, &mut octostage::yaml::Budget::default()).unwrap()
        });
        let t_json = time(7, || {
            serde_json::from_str::<Vec<serde_json::Value>>(&json).unwrap()
        });
        println!(
            "  {n:>5} objects, {:>5} KB of YAML   {:>10}   baseline serde_json on the same values {:>10}   ratio {:.2}x",
            yaml.len() >> 10,
            ms(t_yaml),
            ms(t_json),
            t_yaml.as_secs_f64() / t_json.as_secs_f64()
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and only checks it runs.
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        println!("pipeline bench: run with `cargo bench --bench pipeline` for figures");
        return;
    }
    // `cargo bench --bench pipeline -- plan` runs one group.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("plan") {
        bench_plan();
    }
    if run("list") {
        bench_list();
    }
    if run("yaml") {
        bench_yaml();
    }
}
