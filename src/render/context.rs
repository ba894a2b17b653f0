//! A staging's template context: what every template, value, link and render command sees.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{RenderError, TemplateSet};
use crate::config::Settings;
use crate::source::Commit;

/// The branch a staging runs, as templates see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BranchContext {
    /// Full branch name (`feature/login`); for a static staging pinned to a commit, the pin.
    pub name: String,
    /// Its slug (`feature-login`).
    pub slug: String,
}

/// The commit a staging runs, as templates see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitContext {
    /// Full sha.
    pub sha: String,
    /// First 7 characters of the sha.
    pub short_sha: String,
    /// Committer time, RFC 3339.
    pub time: String,
    /// Author name.
    pub author: String,
    /// First line of the message.
    pub subject: String,
}

/// Everything a template can use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Context {
    /// Environment name.
    pub environment: String,
    /// Staging name (a DNS label).
    pub staging: String,
    /// Namespace the staging lives in.
    pub namespace: String,
    /// The branch.
    pub branch: BranchContext,
    /// The commit.
    pub commit: CommitContext,
    /// Commit of the config repository, when known.
    pub config_commit: Option<String>,
    /// Values, rendered.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Links, rendered.
    pub links: IndexMap<String, String>,
}

impl Context {
    /// Build the context of a staging: the namespace first, then values (which may use it),
    /// then links (which may use values).
    pub fn build(
        templates: &TemplateSet,
        environment: &str,
        staging: &str,
        branch: &str,
        commit: &Commit,
        settings: &Settings,
        config_commit: Option<&str>,
    ) -> Result<Context, RenderError> {
        let mut ctx = Context {
            environment: environment.to_string(),
            staging: staging.to_string(),
            namespace: String::new(),
            branch: BranchContext {
                name: branch.to_string(),
                // Bounded: a host label or a name built from it must fit in 63 characters.
                slug: crate::naming::fit_label(branch, crate::consts::MAX_LABEL),
            },
            commit: CommitContext {
                sha: commit.sha.clone(),
                short_sha: commit.sha.chars().take(7).collect(),
                time: crate::text::rfc3339(commit.time),
                author: commit.author.clone(),
                subject: commit.subject.clone(),
            },
            config_commit: config_commit.map(str::to_string),
            values: settings.values.clone(),
            links: IndexMap::new(),
        };
        // One serialization of the context; later stages layer what they add on top of it
        // (this runs for every staging of every pass).
        let base = minijinja::Value::from_serialize(&ctx);
        let ns = templates
            .render_str(&settings.namespace, &base)
            .map_err(|e| {
                super::inline_error(templates, &settings.namespace, "namespace", &e, &ctx)
            })?;
        crate::naming::check_label(&ns).map_err(|reason| RenderError::Namespace {
            template: settings.namespace.clone(),
            value: ns.clone(),
            reason,
        })?;
        let view = minijinja::context! { namespace => &ns, ..base.clone() };
        ctx.namespace = ns;
        // A copy, so an error below can still say what `values` holds.
        let mut values = serde_json::Value::Object(ctx.values.clone());
        render_values(templates, &mut values, &view, &ctx)?;
        let view =
            minijinja::context! { values => minijinja::Value::from_serialize(&values), ..view };
        ctx.values = match values {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("values stay a map"),
        };
        for (name, t) in &settings.links {
            let url = templates.render_str(t, &view).map_err(|e| {
                super::inline_error(templates, t, &format!("links.{name}"), &e, &ctx)
            })?;
            ctx.links.insert(name.clone(), url);
        }
        Ok(ctx)
    }

    /// The context as `OCTOSTAGE_*` environment variables for render commands.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = [
            ("OCTOSTAGE_ENVIRONMENT", self.environment.clone()),
            ("OCTOSTAGE_STAGING", self.staging.clone()),
            ("OCTOSTAGE_NAMESPACE", self.namespace.clone()),
            ("OCTOSTAGE_BRANCH", self.branch.name.clone()),
            ("OCTOSTAGE_BRANCH_SLUG", self.branch.slug.clone()),
            ("OCTOSTAGE_COMMIT", self.commit.sha.clone()),
            ("OCTOSTAGE_COMMIT_SHORT", self.commit.short_sha.clone()),
            ("OCTOSTAGE_COMMIT_TIME", self.commit.time.clone()),
            ("OCTOSTAGE_COMMIT_AUTHOR", self.commit.author.clone()),
            ("OCTOSTAGE_COMMIT_SUBJECT", self.commit.subject.clone()),
            (
                "OCTOSTAGE_CONFIG_COMMIT",
                self.config_commit.clone().unwrap_or_default(),
            ),
            (
                "OCTOSTAGE_VALUES",
                serde_json::to_string(&self.values).expect("json"),
            ),
            (
                "OCTOSTAGE_CONTEXT",
                serde_json::to_string(self).expect("json"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (name, url) in &self.links {
            v.push((format!("OCTOSTAGE_LINK_{}", env_key(name)), url.clone()));
        }
        v
    }
}

fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn render_values(
    t: &TemplateSet,
    v: &mut serde_json::Value,
    view: &minijinja::Value,
    ctx: &Context,
) -> Result<(), RenderError> {
    match v {
        serde_json::Value::String(s) => {
            *s = t
                .render_str(s, view)
                .map_err(|e| super::inline_error(t, s, "values", &e, ctx))?
        }
        serde_json::Value::Array(a) => a
            .iter_mut()
            .try_for_each(|x| render_values(t, x, view, ctx))?,
        serde_json::Value::Object(m) => m
            .values_mut()
            .try_for_each(|x| render_values(t, x, view, ctx))?,
        _ => {}
    }
    Ok(())
}
