//! Helpers: real git repositories driven by the `git` CLI (dates set with GIT_COMMITTER_DATE),
//! and the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A git repository made with the `git` CLI.
pub struct GitRepo {
    pub path: PathBuf,
}

impl GitRepo {
    /// `git init` with `main` holding one commit at `date`.
    pub fn init(path: &Path, date: &str) -> GitRepo {
        std::fs::create_dir_all(path).unwrap();
        let r = GitRepo {
            path: path.to_path_buf(),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.name", "Test Dev"]);
        r.git(&["config", "user.email", "dev@example.com"]);
        r.commit("main", "Initial commit", date);
        r
    }

    /// A repository at `path` whose `main` holds the files of the folder `files`, committed
    /// with `message` on top of an initial commit at `date`.
    pub fn with_files(path: &Path, files: &Path, date: &str, message: &str) -> GitRepo {
        copy_dir(files, path);
        let r = GitRepo::init(path, date);
        r.git(&["add", "-A"]);
        r.git(&["commit", "-q", "-m", message]);
        r
    }

    /// Run git in the repository; panics with its stderr on failure.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_env(args, &[])
    }

    pub fn git_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.path)
            .envs(env.iter().copied())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A new commit on `branch` (branched from main when new), committed at `date` (any date
    /// git accepts, e.g. `2026-11-01T10:00:00Z` or `30 days ago`). Returns its sha.
    pub fn commit(&self, branch: &str, message: &str, date: &str) -> String {
        let parent = Command::new("git")
            .args([
                "rev-parse",
                "-q",
                "--verify",
                &format!("refs/heads/{branch}^{{commit}}"),
            ])
            .current_dir(&self.path)
            .output()
            .unwrap();
        let parent = if parent.status.success() {
            Some(String::from_utf8(parent.stdout).unwrap().trim().to_string())
        } else {
            let main = Command::new("git")
                .args(["rev-parse", "-q", "--verify", "refs/heads/main"])
                .current_dir(&self.path)
                .output()
                .unwrap();
            main.status
                .success()
                .then(|| String::from_utf8(main.stdout).unwrap().trim().to_string())
        };
        let blob = self.git_with_stdin(
            &["hash-object", "-w", "--stdin"],
            &format!("{branch} {message}\n"),
        );
        let tree = self.git_with_stdin(&["mktree"], &format!("100644 blob {blob}\tchange.txt\n"));
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        if let Some(p) = &parent {
            args.push("-p");
            args.push(p);
        }
        let env = [("GIT_COMMITTER_DATE", date), ("GIT_AUTHOR_DATE", date)];
        let sha = self.git_env(&args, &env);
        self.git(&["update-ref", &format!("refs/heads/{branch}"), &sha]);
        sha
    }

    /// Run git with `input` on its standard input; its trimmed output.
    fn git_with_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("git")
            .args(args)
            .current_dir(&self.path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn delete_branch(&self, branch: &str) {
        self.git(&["update-ref", "-d", &format!("refs/heads/{branch}")]);
    }
}

/// Run the octostage binary.
pub fn octostage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .args(args)
        .env_remove("OCTOSTAGE_CONFIG")
        .env_remove("OCTOSTAGE_TARGET")
        .output()
        .expect("binary runs")
}

/// Run it, and its peak resident memory in MiB (the kernel's high-water mark of that one
/// process, read every 10 ms while it runs): a figure of its own, where `RUSAGE_CHILDREN`
/// would hold the largest process any test of this binary ever waited for.
pub fn octostage_peak_mib(args: &[&str]) -> (Output, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_octostage"))
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .args(args)
        .env_remove("OCTOSTAGE_CONFIG")
        .env_remove("OCTOSTAGE_TARGET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let status = format!("/proc/{}/status", child.id());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                });
                peak = peak.max(hwm.unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak / 1024
        })
    };
    let out = child.wait_with_output().expect("binary runs");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    (out, watcher.join().unwrap())
}

/// Run it and expect `code`; returns stdout.
pub fn octostage_ok(args: &[&str], code: i32) -> String {
    let out = octostage(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "octostage {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The repository's root (for `example-repo/` and `schema/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir` with its modification time and size.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(PathBuf, std::time::SystemTime, u64)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&e.path(), out);
            } else {
                out.push((e.path(), m.modified().unwrap(), m.len()));
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

/// A date `days` days before now, as git reads it.
pub fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

pub fn write_config(dir: &std::path::Path, repo: &std::path::Path) {
    std::fs::create_dir_all(dir.join("t")).unwrap();
    std::fs::write(dir.join("t/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  branch: {{ branch.name | tojson }}\n  commit: {{ commit.sha }}\n").unwrap();
    std::fs::write(
        dir.join("environments.yaml"),
        format!("version: 1\nenvironments:\n  app:\n    repository: {}\n    templates: t\n    ttl: 7d\n    always: [main]\n", repo.display()),
    )
    .unwrap();
}

/// An application repository with `main` committed at `main_date`, a config for it, a cache
/// and a dir target, all in one temporary directory.
pub struct DirRun {
    pub tmp: tempfile::TempDir,
    pub repo: GitRepo,
    pub cfg: std::path::PathBuf,
    pub out: std::path::PathBuf,
}

impl DirRun {
    pub fn new(main_date: &str) -> DirRun {
        let tmp = tempfile::tempdir().unwrap();
        let repo = GitRepo::init(&tmp.path().join("app"), main_date);
        let cfg = tmp.path().join("cfg");
        write_config(&cfg, &repo.path);
        let out = tmp.path().join("out");
        DirRun {
            tmp,
            repo,
            cfg,
            out,
        }
    }

    /// `cmd` with this setup's config, cache and target.
    pub fn args(&self, cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--config".to_string(),
            self.cfg.display().to_string(),
            "--cache-dir".to_string(),
            self.tmp.path().join("cache").display().to_string(),
            "--target".to_string(),
            format!("dir:{}", self.out.display()),
        ]);
        a
    }

    pub fn run(&self, cmd: &[&str]) -> std::process::Output {
        let a = self.args(cmd);
        octostage(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// [`DirRun::run`], and the process's peak resident memory in MiB.
    pub fn run_peak_mib(&self, cmd: &[&str]) -> (std::process::Output, u64) {
        let a = self.args(cmd);
        octostage_peak_mib(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn run_ok(&self, cmd: &[&str]) -> String {
        let a = self.args(cmd);
        octostage_ok(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0)
    }

    /// Staging folders in the target.
    pub fn stagings(&self) -> usize {
        std::fs::read_dir(&self.out).unwrap().count()
    }
}

impl DirRun {
    /// Rewrite environments.yaml: the `app` environment with `extra` lines added (indented by
    /// the caller), and `tail` after the environments.
    /// Without `templates: t` when `extra` sets a `command`.
    pub fn config(&self, extra: &str, tail: &str) {
        let templates = if extra.contains("command:") {
            ""
        } else {
            "    templates: t\n"
        };
        std::fs::write(
            self.cfg.join("environments.yaml"),
            format!(
                "version: 1\nenvironments:\n  app:\n    repository: {}\n{templates}    ttl: 7d\n    always: [main]\n{extra}{tail}",
                self.repo.path.display()
            ),
        )
        .unwrap();
    }

    /// `validate` of this setup's config.
    pub fn validate(&self) -> Output {
        let cache = self.tmp.path().join("cache");
        octostage(&[
            "validate",
            "--config",
            self.cfg.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
    }

    /// Write the template `t/NAME`.
    pub fn template(&self, name: &str, text: &str) {
        std::fs::write(self.cfg.join("t").join(name), text).unwrap();
    }
}

/// stdout and stderr of a run, as text.
pub fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Run the octostage binary in `cwd` with extra environment variables.
pub fn octostage_env(args: &[&str], cwd: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_octostage"));
    c.args(args)
        .env("OCTOSTAGE_LISTEN", "127.0.0.1:0")
        .env("OCTOSTAGE_PROBE_LISTEN", "127.0.0.1:0")
        .env_remove("OCTOSTAGE_CONFIG")
        .env_remove("OCTOSTAGE_TARGET")
        .envs(env.iter().copied());
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.output().expect("binary runs")
}

/// One HTTP/1.1 request read from a loopback test server's connection: method, target,
/// headers (names in lower case) and body (by `content-length`); `None` when the client went.
pub struct HttpRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn read_request(r: &mut impl std::io::BufRead) -> Option<HttpRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                len = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        target,
        headers,
        body,
    })
}
