//! `octostage demo`: the main job on an embedded default. It writes the example config
//! repository, makes demo application repositories with real branches and backdated commits,
//! and runs passes against a `dir` target while time moves on, printing what happens.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use git2::{Oid, Repository, Signature, Time};

use crate::config::LoadOptions;
use crate::pass::{self, PassOptions};
use crate::source::{ConfigSource, RepoCache};
use crate::targets::dir::DirTarget;
use crate::targets::Target;

/// The example config repository, embedded so the demo needs nothing but the binary.
pub const EXAMPLE_REPO: &[(&str, &str)] = &[
    (
        "environments.yaml",
        include_str!("../example-repo/environments.yaml"),
    ),
    ("README.md", include_str!("../example-repo/README.md")),
    (
        "templates/shop/configmap.yaml",
        include_str!("../example-repo/templates/shop/configmap.yaml"),
    ),
    (
        "templates/shop/web.yaml",
        include_str!("../example-repo/templates/shop/web.yaml"),
    ),
    (
        "templates/shop/api.yaml",
        include_str!("../example-repo/templates/shop/api.yaml"),
    ),
    (
        "templates/shop/worker.yaml",
        include_str!("../example-repo/templates/shop/worker.yaml"),
    ),
    (
        "templates/shop/postgres.yaml",
        include_str!("../example-repo/templates/shop/postgres.yaml"),
    ),
    (
        "templates/shop/ingress.yaml",
        include_str!("../example-repo/templates/shop/ingress.yaml"),
    ),
    (
        "templates/shop/httproute.yaml",
        include_str!("../example-repo/templates/shop/httproute.yaml"),
    ),
    (
        "render/docs.sh",
        include_str!("../example-repo/render/docs.sh"),
    ),
    (
        "app-storefront/deploy/base/kustomization.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/kustomization.yaml"),
    ),
    (
        "app-storefront/deploy/base/deployment.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/deployment.yaml"),
    ),
    (
        "app-storefront/deploy/base/service.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/service.yaml"),
    ),
    (
        "app-storefront/deploy/base/ingress.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/ingress.yaml"),
    ),
];

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setting up files or repositories failed.
    #[error("demo setup: {0}")]
    Setup(String),
    /// A pass failed.
    #[error("demo pass: {0}")]
    Pass(#[from] pass::PassError),
    /// Writing the output failed.
    #[error("demo output: {0}")]
    Io(#[from] std::io::Error),
}

fn setup<E: std::fmt::Display>(e: E) -> DemoError {
    DemoError::Setup(e.to_string())
}

/// What the storefront application repository keeps in `deploy/base` (its kustomize base).
pub const STOREFRONT: &[(&str, &str)] = &[
    (
        "deploy/base/kustomization.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/kustomization.yaml"),
    ),
    (
        "deploy/base/deployment.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/deployment.yaml"),
    ),
    (
        "deploy/base/service.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/service.yaml"),
    ),
    (
        "deploy/base/ingress.yaml",
        include_str!("../example-repo/app-storefront/deploy/base/ingress.yaml"),
    ),
];

/// Write the example config repository into `dir`.
pub fn write_example(dir: &Path) -> Result<(), DemoError> {
    for (path, text) in EXAMPLE_REPO {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("relative path")).map_err(setup)?;
        std::fs::write(&p, text).map_err(setup)?;
    }
    Ok(())
}

/// A tiny git helper for the demo and tests: commits with chosen times on chosen branches.
pub struct DemoRepo {
    repo: Repository,
}

impl DemoRepo {
    /// A new repository at `path` with `main` committed at `when`.
    pub fn create(path: &Path, when: DateTime<Utc>) -> Result<DemoRepo, git2::Error> {
        let repo = Repository::init(path)?;
        let r = DemoRepo { repo };
        r.commit("main", "Initial commit", when)?;
        r.repo.set_head("refs/heads/main")?;
        Ok(r)
    }

    /// A new repository at `path` whose first commit on `main`, at `when`, holds `files`
    /// (relative path, contents).
    pub fn create_with(
        path: &Path,
        when: DateTime<Utc>,
        files: &[(&str, &str)],
    ) -> Result<DemoRepo, git2::Error> {
        let repo = Repository::init(path)?;
        for (rel, text) in files {
            let p = path.join(rel);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| git2::Error::from_str(&e.to_string()))?;
            }
            std::fs::write(&p, text).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        }
        let mut index = repo.index()?;
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
        index.write()?;
        {
            let tree = repo.find_tree(index.write_tree()?)?;
            let sig = Signature::new(
                "Demo Developer",
                "dev@example.com",
                &Time::new(when.timestamp(), 0),
            )?;
            repo.commit(
                Some("refs/heads/main"),
                &sig,
                &sig,
                "Initial commit",
                &tree,
                &[],
            )?;
        }
        repo.set_head("refs/heads/main")?;
        Ok(DemoRepo { repo })
    }

    /// Commit a file change on `branch` (created from main when missing) at time `when`.
    pub fn commit(
        &self,
        branch: &str,
        subject: &str,
        when: DateTime<Utc>,
    ) -> Result<Oid, git2::Error> {
        let sig = Signature::new(
            "Demo Developer",
            "dev@example.com",
            &Time::new(when.timestamp(), 0),
        )?;
        let parent = self
            .repo
            .find_reference(&format!("refs/heads/{branch}"))
            .or_else(|_| self.repo.find_reference("refs/heads/main"))
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let blob = self
            .repo
            .blob(format!("{branch}: {subject}\n").as_bytes())?;
        let base = parent.as_ref().map(|p| p.tree()).transpose()?;
        let mut tb = self.repo.treebuilder(base.as_ref())?;
        tb.insert(
            format!("{}.txt", crate::naming::slug(branch)),
            blob,
            0o100644,
        )?;
        let tree = self.repo.find_tree(tb.write()?)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo.commit(
            Some(&format!("refs/heads/{branch}")),
            &sig,
            &sig,
            subject,
            &tree,
            &parents,
        )
    }

    /// Delete `branch`.
    pub fn delete_branch(&self, branch: &str) -> Result<(), git2::Error> {
        self.repo
            .find_reference(&format!("refs/heads/{branch}"))?
            .delete()
    }

    /// Tag the head of `branch` as `tag`.
    pub fn tag(&self, tag: &str, branch: &str) -> Result<(), git2::Error> {
        let obj = self.repo.revparse_single(&format!("refs/heads/{branch}"))?;
        self.repo.tag_lightweight(tag, &obj, true).map(|_| ())
    }
}

/// Run the demo in `dir` (a new temporary directory when `None`), printing to `out`.
pub async fn run(dir: Option<PathBuf>, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
    let base = demo_dir(dir)?;
    let now = Utc::now();
    let day = Duration::days(1);
    let config_dir = base.join("config");
    write_example(&config_dir)?;
    let shop = shop_repository(&base, now)?;
    let docs = DemoRepo::create(&base.join("apps/docs"), now - day * 30).map_err(setup)?;
    let storefront =
        DemoRepo::create_with(&base.join("apps/storefront"), now - day * 10, STOREFRONT)
            .map_err(setup)?;
    storefront
        .commit("feature/wishlist", "Wishlist", now - Duration::hours(3))
        .map_err(setup)?;
    docs.commit(
        "docs/install-guide",
        "Rewrite the install guide",
        now - Duration::hours(2),
    )
    .map_err(setup)?;

    let stagings = base.join("stagings");
    let target = DirTarget::new(&stagings);
    let cache = RepoCache::new(base.join("cache"));
    let source = ConfigSource::Dir(config_dir.clone());
    let opts = PassOptions {
        load: LoadOptions {
            commit: None,
            repository_overrides: vec![
                ("shop".into(), base.join("apps/shop").display().to_string()),
                ("docs".into(), base.join("apps/docs").display().to_string()),
                (
                    "storefront".into(),
                    base.join("apps/storefront").display().to_string(),
                ),
            ],
        },
        dry_run: false,
        confirm_deletions: false,
        approved: None,
        concurrency: 4,
        progress: Default::default(),
        diff: false,
        images: Default::default(),
    };
    writeln!(out, "octostage demo in {}\n  config repository: {}\n  application repositories: {}/apps/{{shop,docs,storefront}}\n  target: dir:{}\n", base.display(), config_dir.display(), base.display(), stagings.display())?;

    let cancel = tokio_util::sync::CancellationToken::new();
    let demo = Demo {
        source: &source,
        cache: &cache,
        target: &target,
        opts: &opts,
        cancel: &cancel,
    };
    demo.story(&shop, now, out).await?;
    let remaining = target.observe().await.map_err(setup)?;
    writeln!(out, "Stagings left in {}:", stagings.display())?;
    for s in remaining.stagings {
        writeln!(out, "  {:<34} {:<24} {}", s.name, s.branch, s.state)?;
    }
    writeln!(out, "\nLook inside: ls {}/shop-main", stagings.display())?;
    Ok(())
}

/// The demo's directory: `dir` when it is new or empty (the demo makes repositories and
/// commits, never in someone's existing files), else a new temporary one.
fn demo_dir(dir: Option<PathBuf>) -> Result<PathBuf, DemoError> {
    match dir {
        Some(d) => {
            if std::fs::read_dir(&d).is_ok_and(|mut e| e.next().is_some()) {
                return Err(DemoError::Setup(format!(
                    "{} is not empty; give a new or empty directory",
                    d.display()
                )));
            }
            std::fs::create_dir_all(&d).map_err(setup)?;
            Ok(d)
        }
        None => Ok(tempfile::Builder::new()
            .prefix("octostage-demo-")
            .tempdir()
            .map_err(setup)?
            .keep()),
    }
}

/// The shop application: a release tag and branches of every age the example's rules treat
/// differently.
fn shop_repository(base: &Path, now: DateTime<Utc>) -> Result<DemoRepo, DemoError> {
    let day = Duration::days(1);
    let shop = DemoRepo::create(&base.join("apps/shop"), now - day * 40).map_err(setup)?;
    shop.tag("v1.4.0", "main").map_err(setup)?;
    let commits = [
        ("main", "Release 1.4.1", now - day * 3),
        (
            "feature/checkout-v2",
            "New checkout flow",
            now - Duration::hours(5),
        ),
        ("fix/cart-total", "Round cart totals", now - day),
        ("feature/search", "Faster search", now - day * 6),
        (
            "feature/wip-payments",
            "Half done",
            now - Duration::hours(1),
        ),
        ("feature/old-idea", "Abandoned", now - day * 20),
    ];
    for (branch, subject, when) in commits {
        shop.commit(branch, subject, when).map_err(setup)?;
    }
    Ok(shop)
}

/// What every pass of the demo shares.
struct Demo<'a> {
    source: &'a ConfigSource,
    cache: &'a RepoCache,
    target: &'a DirTarget,
    opts: &'a PassOptions,
    cancel: &'a tokio_util::sync::CancellationToken,
}

impl Demo<'_> {
    /// Five passes over a push, a merged branch, a new branch, and time going by.
    async fn story(
        &self,
        shop: &DemoRepo,
        now: DateTime<Utc>,
        out: &mut (dyn Write + Send),
    ) -> Result<(), DemoError> {
        let day = Duration::days(1);
        self.pass("Pass 1: first look at the three repositories", now, out)
            .await?;
        self.pass("Pass 2: nothing changed, so nothing is written", now, out)
            .await?;
        shop.commit(
            "feature/checkout-v2",
            "Fix checkout button",
            now + Duration::hours(1),
        )
        .map_err(setup)?;
        shop.delete_branch("fix/cart-total").map_err(setup)?;
        shop.commit("feature/gift-cards", "Gift cards", now + Duration::hours(1))
            .map_err(setup)?;
        self.pass(
            "Pass 3: a push, a merged-and-deleted branch, a new branch",
            now + Duration::hours(2),
            out,
        )
        .await?;
        self.pass(
            "Pass 4: eight days later, nobody pushed (ttl 7d, retention 1d)",
            now + day * 8,
            out,
        )
        .await?;
        self.pass(
            "Pass 5: one more day: retention is over",
            now + day * 9,
            out,
        )
        .await
    }

    async fn pass(
        &self,
        title: &str,
        at: DateTime<Utc>,
        out: &mut (dyn Write + Send),
    ) -> Result<(), DemoError> {
        let r = pass::run(
            self.source,
            self.cache,
            self.target,
            at,
            self.opts,
            self.cancel,
        )
        .await?;
        writeln!(
            out,
            "== {title} (clock: {})",
            at.format("%Y-%m-%d %H:%M UTC")
        )?;
        write!(out, "{}", crate::report::text(&r, false))?;
        writeln!(out, "{} files written\n", r.writes)?;
        if r.failures() > 0 {
            return Err(DemoError::Setup(format!(
                "{} stagings failed in {title:?}",
                r.failures()
            )));
        }
        Ok(())
    }
}
