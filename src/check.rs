//! `validate`, beyond the file: every environment, override and static staging rendered
//! against a sample context, so a typo in a template (`{{ comit.sha }}`, `{{ values.imag }}`), a
//! namespace that renders to no DNS label or into a protected namespace, or an object a pass
//! would refuse is found before any pass. Render commands are not run (only their arguments
//! rendered): `octostage render` runs them.

use chrono::{TimeZone, Utc};

use crate::config::{Config, Environment, Render, Settings};
use crate::render::{self, Context};
use crate::source::Commit;

/// One thing a pass would fail on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `environment shop, override "fix/**" (as branch "fix/sample")`.
    pub what: String,
    /// The error.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

/// The commit every sample staging runs.
fn sample_commit() -> Commit {
    Commit {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        time: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date"),
        author: "Sample Author".into(),
        subject: "Sample commit".into(),
        steer: None,
    }
}

/// A branch name the glob matches: `feature/**` → `feature/sample`.
pub fn sample_branch(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push_str("sample");
            }
            '?' => out.push('x'),
            '[' => {
                let mut first = None;
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    if first.is_none() && d != '!' && d != '^' {
                        first = Some(d);
                    }
                }
                out.push(first.unwrap_or('x'));
            }
            '{' => {
                let mut alt = String::new();
                let mut done = false;
                for d in chars.by_ref() {
                    match d {
                        '}' => break,
                        ',' => done = true,
                        d if !done => alt.push(d),
                        _ => {}
                    }
                }
                out.push_str(&alt);
            }
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Render every environment, override and static staging of `config` against a sample context.
pub fn check(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for env in &config.environments {
        let main = env
            .always
            .patterns()
            .next()
            .map(sample_branch)
            .unwrap_or_else(|| "main".to_string());
        let what = format!("environment {} (as branch {main:?})", env.name);
        check_one(
            config,
            env,
            &what,
            &main,
            &env.settings_for(&main),
            &mut out,
        );
        for (pattern, _) in &env.overrides {
            for p in pattern.patterns() {
                let branch = sample_branch(p);
                let what = format!(
                    "environment {}, override {p:?} (as branch {branch:?})",
                    env.name
                );
                check_one(
                    config,
                    env,
                    &what,
                    &branch,
                    &env.settings_for(&branch),
                    &mut out,
                );
            }
        }
        for st in &env.statics {
            let what = format!("environment {}, static staging {:?}", env.name, st.name);
            let branch = match &st.pin {
                crate::config::Pin::Branch(b) | crate::config::Pin::Commit(b) => b.clone(),
            };
            let staging = crate::naming::static_name(&env.name, &st.name);
            check_staging(
                config,
                env,
                &what,
                &staging,
                &branch,
                &st.settings,
                &mut out,
            );
        }
    }
    out
}

fn check_one(
    config: &Config,
    env: &Environment,
    what: &str,
    branch: &str,
    settings: &Settings,
    out: &mut Vec<Finding>,
) {
    let staging = crate::naming::assign(
        &env.name,
        [branch],
        &Default::default(),
        &Default::default(),
    )[branch]
        .clone();
    check_staging(config, env, what, &staging, branch, settings, out);
}

fn check_staging(
    config: &Config,
    env: &Environment,
    what: &str,
    staging: &str,
    branch: &str,
    settings: &Settings,
    out: &mut Vec<Finding>,
) {
    let mut found = |message: String| {
        out.push(Finding {
            what: what.to_string(),
            message,
        })
    };
    let ctx = match Context::build(
        &config.templates,
        &env.name,
        staging,
        branch,
        &sample_commit(),
        settings,
        config.commit.as_deref(),
    ) {
        Ok(ctx) => ctx,
        Err(e) => return found(e.to_string()),
    };
    if let Some(p) = config.safety.protects(&ctx.namespace) {
        found(format!(
            "namespace {:?} is protected (by {p:?}); a staging may never live in it",
            ctx.namespace
        ));
    }
    let result = match &settings.render {
        Render::Templates(_) => render::render(config, settings, &ctx, None, None).map(|_| ()),
        Render::Command(args) => render::command_args(&config.templates, args, &ctx).map(|_| ()),
        // Files of the application repository exist only at a commit, and tools are not run
        // by `validate`: the templates in the spec were compiled when the file was read.
        Render::AppTemplates(_) | Render::Kustomize(_) | Render::Helm(_) => Ok(()),
    };
    if let Err(e) = result {
        found(e.to_string());
    }
}

/// What each environment's sleep schedule means, in its zone: the next three times it sleeps
/// and wakes, so that a cron expression read differently from what was meant shows at once.
pub fn sleep_schedules(
    config: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    use crate::config::validate::next_times;
    let mut text = String::new();
    for e in &config.environments {
        let Some(s) = &e.settings.sleep else { continue };
        text.push_str(&format!(
            "{}: sleeps {}; wakes {} ({})\n",
            e.name,
            next_times(&s.at, s.timezone, now, 3).join(", "),
            next_times(&s.wake, s.timezone, now, 3).join(", "),
            s.timezone
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_branches_match_their_globs() {
        for g in [
            "main",
            "feature/**",
            "fix/*",
            "release/v?.[0-9]",
            "{hot,cold}fix/*",
            "a\\*b",
        ] {
            let b = sample_branch(g);
            let globs = crate::config::Globs::new(&[g]).unwrap();
            assert!(globs.matches(&b).is_some(), "{g} → {b}");
        }
    }
}
