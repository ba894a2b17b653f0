//! A branch cannot make a render reach the network: every kustomization field that names a
//! file or root is confined to the export, and render processes that read branch files run in
//! a network namespace of their own. A loopback listener (the host's network, reachable from
//! any process not cut off) counts what reaches it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::app_manifests::commit_files;
use crate::util::*;

/// A loopback listener that records the first line of whatever connects (TLS shows as bytes).
fn listener() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut line = String::new();
                let mut r = BufReader::new(c.try_clone().unwrap());
                let _ = r.read_line(&mut line);
                log.lock()
                    .unwrap()
                    .push(line.trim().chars().take(80).collect());
                let mut c = c;
                let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            });
        }
    });
    (port, seen)
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n";

#[test]
fn no_kustomization_field_and_no_render_of_branch_files_reaches_the_network() {
    let (port, seen) = listener();
    let url = |p: &str| format!("http://127.0.0.1:{port}/{p}");
    let d = DirRun::new(&days_ago(1));
    commit_files(
        &d.repo,
        "main",
        &[
            ("deploy/base/kustomization.yaml", Some("resources: [cm.yaml]\n")),
            ("deploy/base/cm.yaml", Some(CM)),
            ("deploy/overlay/kustomization.yaml", Some("resources: [../base]\n")),
            (
                "deploy/chart/Chart.yaml",
                Some(&format!("apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n  - name: db\n    version: 1.0.0\n    repository: {}\n", url("charts"))),
            ),
            ("deploy/chart/templates/cm.yaml", Some(CM)),
        ],
        "Base",
    );
    // One branch per field kustomize reads a file or root from.
    let fields: Vec<(&str, String)> = vec![
        (
            "generators",
            format!("generators: [\"{}\"]\n", url("gen.yaml")),
        ),
        (
            "transformers",
            format!("transformers: [\"{}\"]\n", url("tr.yaml")),
        ),
        (
            "validators",
            format!("validators: [\"{}\"]\n", url("validator.yaml")),
        ),
        (
            "configurations",
            format!("configurations: [\"{}\"]\n", url("conf.yaml")),
        ),
        ("crds", format!("crds: [\"{}\"]\n", url("crd.json"))),
        (
            "openapi",
            format!("openapi:\n  path: \"{}\"\n", url("openapi.json")),
        ),
        (
            "replacements",
            format!("replacements:\n  - path: \"{}\"\n", url("r.yaml")),
        ),
        (
            "patches",
            format!("patches:\n  - path: \"{}\"\n", url("p.yaml")),
        ),
        (
            "psm",
            format!("patchesStrategicMerge: [\"{}\"]\n", url("psm.yaml")),
        ),
        (
            "json6902",
            format!(
                "patchesJson6902:\n  - path: \"{}\"\n    target: {{kind: ConfigMap, name: web}}\n",
                url("j.yaml")
            ),
        ),
        (
            "generator-files",
            format!(
                "configMapGenerator:\n  - name: g\n    files: [\"k={}\"]\n",
                url("f.txt")
            ),
        ),
        (
            "generator-envs",
            format!(
                "configMapGenerator:\n  - name: g\n    envs: [\"{}\"]\n",
                url("e.env")
            ),
        ),
        (
            "helm-charts",
            format!(
                "helmCharts:\n  - name: x\n    repo: \"{}\"\n",
                url("charts")
            ),
        ),
        (
            "git-root",
            "bases: [\"github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\"]\n"
                .to_string(),
        ),
        // YAML kubectl follows and octostage's parse does not: a merge key, a tag, an alias.
        (
            "merge",
            format!(
                "<<: {{bases: [\"{}\", ../../../../../../../host-secret]}}\n",
                url("merge.yaml")
            ),
        ),
        ("tag", format!("bases: !custom [\"{}\"]\n", url("tag.yaml"))),
        (
            "alias",
            format!("x: &u [\"{}\"]\nbases: *u\n", url("alias.yaml")),
        ),
        // Huge: refused before it is read into octostage.
        ("huge", format!("# {}\n", "x".repeat(2 << 20))),
        // A key written twice: octostage refuses the file, kubectl takes the last value.
        ("twice", format!("resources: [\"{}\"]\n", url("twice.yaml"))),
    ];
    for (name, field) in &fields {
        commit_files(
            &d.repo,
            &format!("feature/{name}"),
            &[(
                "deploy/base/kustomization.yaml",
                Some(&format!("resources: [cm.yaml]\n{field}")),
            )],
            "Fetch",
        );
    }
    let script = format!(
        "git ls-remote {} >&2; kubectl kustomize {} >&2; cat \"$OCTOSTAGE_APP_DIR/deploy/base/cm.yaml\"",
        url("repo.git"),
        url("root")
    );
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  k:\n    repository: {repo}\n    branches: {{include: ['*', '**']}}\n    app_paths: [deploy]\n    kustomize: {{from: app, path: deploy/overlay}}\n  c:\n    repository: {repo}\n    branches: {{include: [main]}}\n    app_paths: [deploy]\n    command: [sh, -c, {script:?}]\n  h:\n    repository: {repo}\n    branches: {{include: [main]}}\n    helm: {{from: app, chart: deploy/chart}}\n    app_paths: [deploy]\n",
            repo = d.repo.path.display(),
        ),
    )
    .unwrap();
    let o = d.run(&["run", "--once"]);
    let (out, err) = texts(&o);
    let reached = seen.lock().unwrap().clone();
    println!("{out}\n{err}\nthe listener saw: {reached:?}");
    assert!(
        reached.is_empty(),
        "the render reached the network: {reached:?}\n{out}"
    );
    for (name, _) in &fields {
        assert!(
            !d.out.join(format!("k-feature-{name}")).exists(),
            "feature/{name} rendered"
        );
    }
    assert!(d.out.join("k-main").exists(), "{out}\n{err}");
    // The command ran without a network (its fetches failed) and rendered what it read.
    assert!(d.out.join("c-main").exists(), "{out}\n{err}");
    // helm never fetches a chart's dependencies for `helm template`: it says they are missing.
    assert!(err.contains("missing in charts/"), "{err}");
    // Control: on the host's network the same command reaches the listener, so the listener
    // would have seen the others.
    let o = d.run(&["run", "--once", "--render-network", "host"]);
    let reached = seen.lock().unwrap().clone();
    assert!(
        !reached.is_empty(),
        "the control never reached the listener: {}",
        texts(&o).0
    );
}
