//! `validate`, beyond the file: every environment, override and static staging rendered
//! against a sample context, so a typo in a template (`{{ comit.sha }}`, `{{ values.imag }}`), a
//! namespace that renders to no DNS label or into a protected namespace, or an object a pass
//! would refuse is found before any pass. Render commands are not run (only their arguments
//! rendered): `octostage render` runs them.

pub mod hosts;

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
    let staging = branch_staging(env, branch);
    check_staging(config, env, what, &staging, branch, settings, out);
}

/// The name a pass gives the staging of `branch` in `env`, alone in its environment.
fn branch_staging(env: &Environment, branch: &str) -> String {
    crate::naming::assign(
        &env.name,
        [branch],
        &Default::default(),
        &Default::default(),
    )[branch]
        .clone()
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
        // The overlay's images and patches and the chart's values are templates of the
        // configuration: rendered here. The tools run, and files of the application
        // repository are read, in `pass::render_samples`.
        Render::Kustomize(_) | Render::Helm(_) => render::tool_inputs(config, settings, &ctx),
        Render::AppTemplates(_) => Ok(()),
    };
    if let Err(e) = result {
        found(e.to_string());
    }
}

/// A branch with a long name, as someone will push: what a host built from it looks like.
fn long_branch(sample: &str) -> String {
    format!("{sample}-and-a-long-description-of-the-ticket-someone-pushed-for-review-4711")
}

/// The hosts of one branch's staging: its links, and the routes of objects rendered from the
/// configuration's templates (tools and application files are not rendered here).
fn sample_hosts(config: &Config, env: &Environment, branch: &str) -> hosts::Hosts {
    let staging = branch_staging(env, branch);
    let settings = env.settings_for(branch);
    let Ok(ctx) = Context::build(
        &config.templates,
        &env.name,
        &staging,
        branch,
        &sample_commit(),
        &settings,
        config.commit.as_deref(),
    ) else {
        return hosts::Hosts::new();
    };
    let mut out = hosts::of_links(&ctx);
    if let Render::Templates(_) = settings.render {
        if let Ok(objects) = render::render(config, &settings, &ctx, None, None) {
            out.extend(hosts::of_objects(&objects));
        }
    }
    out
}

/// Hosts a staging would be unreachable at, or that a wildcard certificate for the preview
/// domain does not cover: each environment's links and routed
/// hosts, for a branch of a usual name and for one with a long name.
pub fn host_warnings(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for env in &config.environments {
        // A branch the environment builds: the first include pattern that is not always-on.
        let branch = env
            .include
            .patterns()
            .find(|p| env.always.matches(&sample_branch(p)).is_none())
            .map(sample_branch)
            .unwrap_or_else(|| "feature/sample".to_string());
        let long = long_branch(&branch);
        let short_hosts = sample_hosts(config, env, &branch);
        let long_hosts = sample_hosts(config, env, &long);
        for (at, host) in &long_hosts {
            if let Some(message) = hosts::label_problem(host) {
                let what = format!("environment {}, {at} (as branch {long:?})", env.name);
                out.push(Finding { what, message });
            }
        }
        for (at, short) in &short_hosts {
            let Some((_, long_host)) = long_hosts.iter().find(|(a, _)| a == at) else {
                continue;
            };
            if let Some(message) = hosts::across_branches(short, long_host) {
                let what = format!("environment {}, {at} (as branch {branch:?})", env.name);
                out.push(Finding { what, message });
            }
        }
    }
    out
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
