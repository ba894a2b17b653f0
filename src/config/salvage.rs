//! A configuration for a pass when only some environments are wrong: one typo in one
//! environment freezes that environment, not every one (`validate` stays strict).

use std::path::Path;

use super::{consts, parse, validate_value, Config, ConfigError, Files, LoadOptions, Problem};
use crate::yaml::{self as position, Positions};

/// [`parse`] of `environments.yaml`'s `text`, but when the only problems lie inside some
/// environments' part of it, the configuration without those environments, which it names in
/// [`Config::frozen`]: one typo in one environment freezes that environment, not every one.
pub(super) fn parse_salvaging(
    text: &str,
    root: &Path,
    files: &dyn Files,
    opts: &LoadOptions,
) -> Result<Config, ConfigError> {
    let problems = match parse(text, consts::CONFIG_FILE, root, files, opts) {
        Err(ConfigError::Invalid(p)) => p,
        other => return other,
    };
    salvage(crate::text::strip_bom(text), root, files, opts, problems)
}

fn salvage(
    text: &str,
    root: &Path,
    files: &dyn Files,
    opts: &LoadOptions,
    problems: Vec<Problem>,
) -> Result<Config, ConfigError> {
    let file = consts::CONFIG_FILE;
    let fail = |problems: Vec<Problem>| Err(ConfigError::Invalid(problems));
    let Ok(mut value) = crate::yaml::document(text) else {
        return fail(problems);
    };
    let positions = Positions::index(text);
    // Each environment's lines: from its key to the next environment's or top-level key.
    let top: Vec<usize> = value
        .as_object()
        .map(|o| {
            o.keys()
                .map(|k| positions.key(&format!("/{}", position::escape(k))).line)
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<String> = value["environments"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let starts: Vec<(String, usize)> = names
        .iter()
        .map(|n| {
            let line = positions
                .key(&format!("/environments/{}", position::escape(n)))
                .line;
            (n.clone(), line)
        })
        .collect();
    let range_of = |start: usize| {
        let end = starts
            .iter()
            .map(|(_, l)| *l)
            .chain(top.iter().copied())
            .filter(|l| *l > start)
            .min()
            .unwrap_or(usize::MAX);
        start..end
    };
    let mut broken: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for p in &problems {
        let owner = starts
            .iter()
            .find(|(_, start)| p.file == file && range_of(*start).contains(&p.pos.line));
        match owner {
            Some((name, _)) => broken.entry(name.clone()).or_default().push(p.to_string()),
            // A problem outside every environment (defaults, a template file): nothing to save.
            None => return fail(problems),
        }
    }
    if broken.is_empty() || broken.len() == names.len() {
        return fail(problems);
    }
    let skip: Vec<std::ops::Range<usize>> = starts
        .iter()
        .filter(|(n, _)| broken.contains_key(n))
        .map(|(_, s)| range_of(*s))
        .collect();
    if let Some(envs) = value["environments"].as_object_mut() {
        envs.retain(|n, _| !broken.contains_key(n));
    }
    match validate_value(value, &positions, file, root, files, opts, &skip) {
        Ok(mut config) => {
            config.frozen = broken.into_iter().map(|(n, p)| (n, p.join("; "))).collect();
            Ok(config)
        }
        Err(_) => fail(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MemFiles;

    fn problems_of(text: &str, files: &MemFiles) -> Vec<Problem> {
        let parsed = parse(
            text,
            consts::CONFIG_FILE,
            Path::new("/cfg"),
            files,
            &LoadOptions::default(),
        );
        match parsed {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_typo_in_one_environment_freezes_that_environment_only() {
        let text = "version: 1\nenvironments:\n  app:\n    repository: /repo\n    templates: t\n    ttl: 5 dys\n  other:\n    repository: /repo\n    templates: t\n";
        let files = MemFiles::new([(
            "t/a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        )]);
        let problems = problems_of(text, &files);
        let c = salvage(
            text,
            Path::new("/cfg"),
            &files,
            &LoadOptions::default(),
            problems,
        )
        .unwrap();
        assert_eq!(
            c.environments
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            ["other"]
        );
        assert_eq!(c.frozen.len(), 1);
        assert_eq!(c.frozen[0].0, "app");
        assert!(
            c.frozen[0].1.contains("environments.yaml:6"),
            "{:?}",
            c.frozen
        );
        // A problem outside every environment saves nothing.
        let text = "version: 1\ndefaults:\n  ttl: 5 dys\nenvironments:\n  app:\n    repository: /repo\n    templates: t\n";
        let problems = problems_of(text, &files);
        assert!(salvage(
            text,
            Path::new("/cfg"),
            &files,
            &LoadOptions::default(),
            problems
        )
        .is_err());
    }
}
