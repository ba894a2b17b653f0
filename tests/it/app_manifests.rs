//! Manifests from the branch itself: templates and a kustomize base read from the application
//! repository at each staging's commit (exported from the mirror), first-class kustomize with
//! per-branch image tags and hosts and no wrapper script, and the errors a user meets.

use std::path::Path;

use crate::util::*;

/// Commit `files` (path, contents; `None` removes) on `branch` of `repo` with the git CLI.
pub fn commit_files(
    repo: &GitRepo,
    branch: &str,
    files: &[(&str, Option<&str>)],
    message: &str,
) -> String {
    let exists = std::process::Command::new("git")
        .args([
            "rev-parse",
            "-q",
            "--verify",
            &format!("refs/heads/{branch}"),
        ])
        .current_dir(&repo.path)
        .output()
        .unwrap()
        .status
        .success();
    let from = if exists { branch } else { "main" };
    repo.git(&["checkout", "-q", "-f", "-B", branch, from]);
    for (path, text) in files {
        let p = repo.path.join(path);
        match text {
            Some(t) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, t).unwrap();
            }
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    repo.git(&["add", "-A"]);
    let date = days_ago(0);
    repo.git_env(
        &["commit", "-q", "--allow-empty", "-m", message],
        &[("GIT_COMMITTER_DATE", &date), ("GIT_AUTHOR_DATE", &date)],
    );
    repo.git(&["rev-parse", "HEAD"])
}

fn read(out: &Path, staging: &str, file: &str) -> serde_json::Value {
    let p = out.join(staging).join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    octostage::yaml::document(&text).unwrap()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  version: \"1\"\n  branch: {{ branch.name | tojson }}\n";

#[test]
fn templates_from_the_branch_follow_its_commits_and_a_missing_path_is_that_stagings_error() {
    let d = DirRun::new(&days_ago(1));
    commit_files(
        &d.repo,
        "main",
        &[("deploy/k8s/cm.yaml", Some(CM))],
        "Manifests",
    );
    d.config("", "");
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    templates: {{from: app, path: deploy/k8s}}\n    always: [main]\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
    let v = d.validate();
    assert!(v.status.success(), "{:?}", texts(&v));
    d.run_ok(&["run", "--once"]);
    assert_eq!(
        read(&d.out, "app-main", "configmap-app-config.yaml")["data"]["version"],
        "1"
    );

    // The branch changes its own manifests: its staging follows them, main's stays.
    commit_files(
        &d.repo,
        "feature/new-config",
        &[
            ("deploy/k8s/cm.yaml", Some(&CM.replace("\"1\"", "\"2\""))),
            ("deploy/k8s/svc.yaml", Some("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n")),
        ],
        "New config",
    );
    d.run_ok(&["run", "--once"]);
    let s = "app-feature-new-config";
    assert_eq!(
        read(&d.out, s, "configmap-app-config.yaml")["data"]["version"],
        "2"
    );
    assert_eq!(
        read(&d.out, s, "configmap-app-config.yaml")["data"]["branch"],
        "feature/new-config"
    );
    assert!(d.out.join(s).join("service-web.yaml").exists());
    assert_eq!(
        read(&d.out, "app-main", "configmap-app-config.yaml")["data"]["version"],
        "1"
    );
    // A second commit removes the Service again: pruned.
    commit_files(
        &d.repo,
        "feature/new-config",
        &[("deploy/k8s/svc.yaml", None)],
        "No service",
    );
    d.run_ok(&["run", "--once"]);
    assert!(!d.out.join(s).join("service-web.yaml").exists());

    // A path the branch does not have: that staging's error, the others go on.
    commit_files(
        &d.repo,
        "feature/moved",
        &[("deploy/k8s/cm.yaml", None), ("k8s/cm.yaml", Some(CM))],
        "Moved",
    );
    let out = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("path \"deploy/k8s\" does not exist in the application repository"),
        "{stdout}\n{stderr}"
    );
    assert!(d.out.join("app-main").exists() && d.out.join(s).exists());

    // A symbolic link in the exported path is refused, never followed.
    d.repo
        .git(&["checkout", "-q", "-f", "-B", "feature/link", "main"]);
    std::os::unix::fs::symlink("/etc/passwd", d.repo.path.join("deploy/k8s/passwd.yaml")).unwrap();
    commit_files(&d.repo, "feature/link", &[], "Link");
    let out = d.run(&["run", "--once"]);
    let (stdout, _) = texts(&out);
    assert!(stdout.contains("symbolic link"), "{stdout}");
    assert!(!d
        .out
        .join("app-feature-link")
        .join("configmap-app-config.yaml")
        .exists());
}

#[test]
fn a_kustomize_base_in_the_app_repository_gets_per_branch_image_and_host_without_a_wrapper() {
    let d = DirRun::new(&days_ago(1));
    commit_files(
        &d.repo,
        "main",
        &[
            ("deploy/base/kustomization.yaml", Some("resources: [deployment.yaml, ingress.yaml]\n")),
            ("deploy/base/deployment.yaml", Some("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: web\n")),
            ("deploy/base/ingress.yaml", Some("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n    - host: example.com\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {service: {name: web, port: {number: 80}}}\n")),
        ],
        "Kustomize base",
    );
    let sha = commit_files(
        &d.repo,
        "feature/login",
        &[("README", Some("login"))],
        "Login",
    );
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            r#"version: 1
environments:
  app:
    repository: {}
    always: [main]
    kustomize:
      from: app
      path: deploy/base
      images:
        - name: web
          new_name: registry.example.com/shop/web
          new_tag: "{{{{ commit.short_sha }}}}"
      patches:
        - target: {{kind: Ingress, name: web}}
          patch: |
            - op: replace
              path: /spec/rules/0/host
              value: {{{{ staging }}}}.preview.example.com
"#,
            d.repo.path.display()
        ),
    )
    .unwrap();
    let v = d.validate();
    assert!(v.status.success(), "{:?}", texts(&v));
    d.run_ok(&["run", "--once"]);
    let s = "app-feature-login";
    let dep = read(&d.out, s, "deployment-web.yaml");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.example.com/shop/web:{}", &sha[..7]).as_str()
    );
    assert_eq!(dep["metadata"]["namespace"], s);
    let ing = read(&d.out, s, "ingress-web.yaml");
    assert_eq!(
        ing["spec"]["rules"][0]["host"],
        "app-feature-login.preview.example.com"
    );
    assert_eq!(
        read(&d.out, "app-main", "ingress-web.yaml")["spec"]["rules"][0]["host"],
        "app-main.preview.example.com"
    );

    // `render` shows the same without a target write; helm without helm is a clear error.
    std::fs::create_dir_all(d.cfg.join("charts/web")).unwrap();
    std::fs::write(
        d.cfg.join("charts/web/Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    helm:\n      chart: charts/web\n      values:\n        image: {{tag: \"{{{{ commit.short_sha }}}}\"}}\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
    let a = d.args(&["plan"]);
    let without_helm = path_without("helm");
    let out = octostage_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[("PATH", &without_helm)],
    );
    let (stdout, stderr) = texts(&out);
    assert!(
        stdout.contains("helm") && stdout.contains("is not installed"),
        "{stdout}\n{stderr}"
    );
}

/// PATH without the folders that hold `program`.
fn path_without(program: &str) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<std::path::PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join(program).exists())
        .collect();
    std::env::join_paths(kept).unwrap().into_string().unwrap()
}

#[test]
fn a_render_command_reads_the_declared_paths_of_its_commit_from_octostage_app_dir() {
    let d = DirRun::new(&days_ago(1));
    let plain = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  from: main\n";
    commit_files(
        &d.repo,
        "main",
        &[
            ("deploy/plain.yaml", Some(plain)),
            ("secret-notes/keys.txt", Some("not exported")),
        ],
        "Plain manifests",
    );
    commit_files(
        &d.repo,
        "feature/b",
        &[(
            "deploy/plain.yaml",
            Some(&plain.replace("from: main", "from: b")),
        )],
        "B",
    );
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    app_paths: [deploy]\n    command: [\"sh\", \"-c\", \"test ! -e \\\"$OCTOSTAGE_APP_DIR/secret-notes\\\" && cat \\\"$OCTOSTAGE_APP_DIR/deploy/plain.yaml\\\"\"]\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
    d.run_ok(&["run", "--once"]);
    assert_eq!(
        read(&d.out, "app-main", "configmap-plain.yaml")["data"]["from"],
        "main"
    );
    assert_eq!(
        read(&d.out, "app-feature-b", "configmap-plain.yaml")["data"]["from"],
        "b"
    );
    // One export per commit and set of paths, kept in the cache.
    let trees = std::fs::read_dir(d.tmp.path().join("cache/trees"))
        .unwrap()
        .count();
    assert_eq!(trees, 2);
}

#[test]
fn a_kustomization_from_the_branch_reaches_nothing_outside_its_export() {
    let d = DirRun::new(&days_ago(1));
    // Something of the host's a branch would like: a kustomization in the config repository.
    std::fs::create_dir_all(d.cfg.join("victim")).unwrap();
    std::fs::write(
        d.cfg.join("victim/kustomization.yaml"),
        "configMapGenerator:\n  - name: stolen\n    literals: [password=S3CRET-CONFIG-PASSWORD]\n",
    )
    .unwrap();
    let deployment = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n";
    commit_files(
        &d.repo,
        "main",
        &[
            (
                "deploy/base/kustomization.yaml",
                Some("resources: [cm.yaml]\n"),
            ),
            ("deploy/base/cm.yaml", Some(deployment)),
            (
                "deploy/overlay/kustomization.yaml",
                Some("resources: [../base]\n"),
            ),
            (
                "deploy/.git/config",
                Some("[core]\n\tfsmonitor = touch /tmp/octostage-pwned\n"),
            ),
        ],
        "Base",
    );
    let up = "../".repeat(12) + &d.cfg.join("victim").display().to_string()[1..];
    commit_files(
        &d.repo,
        "feature/steal",
        &[(
            "deploy/base/kustomization.yaml",
            Some(&format!("resources: [cm.yaml, {up}]\n")),
        )],
        "Steal",
    );
    commit_files(
        &d.repo,
        "feature/remote",
        &[(
            "deploy/base/kustomization.yaml",
            Some("resources: [cm.yaml, \"https://127.0.0.1:9/x.yaml\"]\n"),
        )],
        "Remote",
    );
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    app_paths: [deploy]\n    kustomize: {{from: app, path: deploy/overlay}}\n",
            d.repo.path.display()
        ),
    )
    .unwrap();
    // A relative cache directory works too (tools run in the config repository).
    let a = [
        "run",
        "--once",
        "--config",
        d.cfg.to_str().unwrap(),
        "--cache-dir",
        "cache-rel",
        "--target",
        &format!("dir:{}", d.out.display()),
    ];
    let o = octostage_env(&a, Some(d.tmp.path()), &[]);
    let (out, err) = texts(&o);
    assert!(
        d.out.join("app-main/configmap-web.yaml").exists(),
        "{out}\n{err}"
    );
    assert!(out.contains("not inside the exported paths"), "{out}");
    assert!(out.contains("a remote location"), "{out}");
    for s in ["app-feature-steal", "app-feature-remote"] {
        assert!(!d.out.join(s).exists(), "{s}");
    }
    let all = std::process::Command::new("grep")
        .args(["-rl", "S3CRET", d.out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(all.stdout.is_empty());
    // The repository metadata a branch carries is not exported.
    let trees = d.tmp.path().join("cache-rel/trees");
    let found = std::process::Command::new("find")
        .arg(&trees)
        .args(["-name", ".git"])
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
}

#[test]
fn a_commit_subject_written_unquoted_into_a_kustomize_patch_is_warned_about_and_refused() {
    let d = DirRun::new(&days_ago(1));
    commit_files(
        &d.repo,
        "main",
        &[
            (
                "deploy/base/kustomization.yaml",
                Some("resources: [cm.yaml]\n"),
            ),
            (
                "deploy/base/cm.yaml",
                Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata: {a: b}\n"),
            ),
        ],
        "Base",
    );
    commit_files(
        &d.repo,
        "feature/inject",
        &[("README", Some("x"))],
        "hi, injected: yes",
    );
    let env = |note: &str| {
        std::fs::write(
            d.cfg.join("environments.yaml"),
            format!(
                "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    kustomize:\n      from: app\n      path: deploy/base\n      patches:\n        - patch: |\n            apiVersion: v1\n            kind: ConfigMap\n            metadata: {{name: web}}\n            data: {{note: {note}}}\n",
                d.repo.path.display()
            ),
        )
        .unwrap();
    };
    env("{{ commit.subject }}");
    let v = d.validate();
    let (stdout, stderr) = texts(&v);
    assert!(
        format!("{stdout}{stderr}")
            .contains("`{{ commit.subject }}` writes a value from git into YAML as it is"),
        "{stdout}\n{stderr}"
    );
    let r = d.run(&["run", "--once"]);
    let (stdout, stderr) = texts(&r);
    assert_eq!(r.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the commit subject (\"hi, injected: yes\") is written into the YAML where it is read as YAML syntax"),
        "{stdout}\n{stderr}"
    );
    assert!(!d.out.join("app-feature-inject").exists());
    assert_eq!(
        read(&d.out, "app-main", "configmap-web.yaml")["data"]["note"],
        "Base"
    );
    // Written with tojson it stays one string, and validate says nothing.
    env("{{ commit.subject | tojson }}");
    let v = d.validate();
    assert!(
        !texts(&v).0.contains("writes a value from git")
            && !texts(&v).1.contains("writes a value from git")
    );
    d.run_ok(&["run", "--once"]);
    let cm = read(&d.out, "app-feature-inject", "configmap-web.yaml");
    assert_eq!(cm["data"]["note"], "hi, injected: yes");
    assert!(cm["data"].get("injected").is_none());
}
