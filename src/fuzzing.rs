//! Entry points for fuzzing: each takes arbitrary bytes and drives one parser of untrusted
//! input the way octostage does. None may panic, whatever the input; the fuzz targets in
//! `fuzz/` call them, and the integration tests replay the committed corpus through them.

use std::path::Path;

use crate::config::{parse, LoadOptions, MemFiles};

fn text(data: &[u8]) -> &str {
    match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// A whole `environments.yaml`: YAML, schema, positions, semantic checks, template compiles,
/// then the sample render of `validate`.
pub fn config(data: &[u8]) {
    let files = MemFiles::new([(
        "t/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )]);
    if let Ok(c) = parse(
        text(data),
        "environments.yaml",
        Path::new("/cfg"),
        &files,
        &LoadOptions::default(),
    ) {
        let _ = crate::check::check(&c);
    }
}

/// Branch globs: compiled, then matched against a branch name (the input split at a newline).
pub fn globs(data: &[u8]) {
    let t = text(data);
    let (patterns, branch) = t.split_once('\n').unwrap_or((t, "feature/a"));
    let list: Vec<&str> = patterns.split(',').collect();
    if let Ok(g) = crate::config::Globs::new(&list) {
        let _ = g.matches(branch);
        for p in g.patterns() {
            let _ = crate::check::sample_branch(p);
        }
    }
}

/// Staging names from branch names (one per line), and the checks on labels.
pub fn naming(data: &[u8]) {
    let t = text(data);
    let branches: Vec<&str> = t.lines().take(200).collect();
    let names = crate::naming::assign(
        "env",
        branches.iter().copied(),
        &Default::default(),
        &Default::default(),
    );
    for (b, n) in &names {
        assert!(crate::naming::check_label(n).is_ok(), "{b:?} named {n:?}");
        let _ = crate::naming::slug(b);
    }
    let _ = crate::naming::check_label(t);
}

/// Durations and sizes as settings take them.
pub fn durations(data: &[u8]) {
    let t = text(data);
    let _ = humantime::parse_duration(t);
    let _ = crate::config::validate::parse_size(t);
    let yaml = format!(
        "version: 1\ndefaults:\n  templates: t\nenvironments:\n  e:\n    repository: /r\n    ttl: {t:?}\n    retention: {t:?}\n    render_timeout: {t:?}\n"
    );
    config(yaml.as_bytes());
}

/// Cron expressions of sleep schedules.
pub fn cron(data: &[u8]) {
    if let Ok(s) = crate::config::validate::parse_cron(text(data)) {
        let _ = s.upcoming(chrono::Utc).take(3).count();
    }
}

/// A template file rendered for a staging: compile, render (with fuel), parse the YAML it
/// gives, check its objects.
pub fn templates(data: &[u8]) {
    let mut set = crate::templating::TemplateSet::default();
    if !set
        .add_dir("t", vec![("t/a.yaml".into(), text(data).into())])
        .is_empty()
    {
        return;
    }
    let ctx = minijinja::context! {
        environment => "env", staging => "env-main", namespace => "env-main",
        branch => minijinja::context! { name => "main", slug => "main" },
        values => minijinja::context! { image => "x" },
    };
    if let Ok(out) = set.render_file("t/a.yaml", &ctx, "env-main") {
        if out.len() > 1 << 20 {
            return;
        }
        if let Ok(docs) = crate::render::parse_documents("t/a.yaml", &out) {
            let mut objects = Vec::new();
            for d in docs {
                let _ = crate::render::collect_object("t/a.yaml", d, "env-main", &mut objects);
            }
        }
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The fuzz entry points by target name.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("globs", globs),
    ("naming", naming),
    ("durations", durations),
    ("cron", cron),
    ("templates", templates),
];

/// The committed fuzz corpus (`fuzz/corpus/<target>/`) replayed through every entry point:
/// what the fuzzer found once keeps being tested without a nightly toolchain. A panic fails
/// the test and names the file.
#[cfg(test)]
mod corpus {
    #[test]
    fn the_fuzz_corpus_never_panics() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut ran = 0;
        for (name, target) in super::TARGETS {
            let dir = root.join("fuzz/corpus").join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for e in entries {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let r = std::panic::catch_unwind(|| target(&data));
                assert!(r.is_ok(), "fuzz target {name} panics on {}", path.display());
                ran += 1;
            }
        }
        assert!(ran >= 30, "only {ran} corpus inputs");
    }
}
