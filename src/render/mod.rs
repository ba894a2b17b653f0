//! Rendering: a staging's template context, its objects from a templates directory or a render
//! command, and the ownership labels every object gets.

mod command;
mod templates;

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use templates::{environment, TemplateSet};

use crate::config::{Config, Render, Settings};
use crate::consts;
use crate::source::Commit;

/// Why a staging could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed.
    #[error("{file}:{line}: {message}")]
    Template {
        /// Template file or the setting that holds the template.
        file: String,
        /// Line in it (0 when unknown).
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// The namespace template gave something that is not a DNS label.
    #[error("namespace {value:?} (from template {template:?}) is not a valid DNS-1123 label: it {reason}")]
    Namespace {
        /// The template.
        template: String,
        /// What it rendered to.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Rendered output is not valid YAML.
    #[error("{source_name} produced invalid YAML: {message}")]
    Yaml {
        /// Template file or command.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A rendered object breaks a rule.
    #[error("{source_name}, object {object}: {message}")]
    Object {
        /// Template file or command.
        source_name: String,
        /// `Kind/name` or the document number.
        object: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A render command failed.
    #[error("render command `{program}` {message}{}", if stderr.is_empty() { String::new() } else { format!("; its stderr:\n{stderr}") })]
    Command {
        /// The program.
        program: String,
        /// What happened.
        message: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// A render command ran too long.
    #[error("render command `{program}` did not finish within {} and was stopped (raise `render_timeout`)", humantime::format_duration(*after))]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        after: Duration,
    },
}

impl RenderError {
    fn from_minijinja(name: &str, e: &minijinja::Error) -> Self {
        let mut message = e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string());
        if let Some(src) = std::error::Error::source(e) {
            message.push_str(&format!(": {src}"));
        }
        RenderError::Template {
            file: e.name().unwrap_or(name).to_string(),
            line: e.line().unwrap_or(0),
            message,
        }
    }
}

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
                slug: crate::naming::slug(branch),
            },
            commit: CommitContext {
                sha: commit.sha.clone(),
                short_sha: commit.sha.chars().take(7).collect(),
                time: crate::plan::rfc3339(commit.time),
                author: commit.author.clone(),
                subject: commit.subject.clone(),
            },
            config_commit: config_commit.map(str::to_string),
            values: settings.values.clone(),
            links: IndexMap::new(),
        };
        let setting_err = |what: &str, e: minijinja::Error| {
            let mut r = RenderError::from_minijinja(what, &e);
            if let RenderError::Template { file, .. } = &mut r {
                *file = format!("{} ({what})", crate::consts::CONFIG_FILE);
            }
            r
        };
        // One serialization of the context; later stages layer what they add on top of it
        // (this runs for every staging of every pass).
        let base = minijinja::Value::from_serialize(&ctx);
        let ns = templates
            .render_str(&settings.namespace, &base)
            .map_err(|e| setting_err("namespace", e))?;
        crate::naming::check_label(&ns).map_err(|reason| RenderError::Namespace {
            template: settings.namespace.clone(),
            value: ns.clone(),
            reason: reason.trim_start_matches("is ").to_string(),
        })?;
        let view = minijinja::context! { namespace => &ns, ..base.clone() };
        ctx.namespace = ns;
        let mut values = serde_json::Value::Object(std::mem::take(&mut ctx.values));
        render_values(templates, &mut values, &view).map_err(|e| setting_err("values", e))?;
        let view =
            minijinja::context! { values => minijinja::Value::from_serialize(&values), ..view };
        ctx.values = match values {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("values stay a map"),
        };
        for (name, t) in &settings.links {
            let url = templates
                .render_str(t, &view)
                .map_err(|e| setting_err(&format!("links.{name}"), e))?;
            ctx.links.insert(name.clone(), url);
        }
        Ok(ctx)
    }

    /// The context as `OCTOSTAGE_*` environment variables for render commands.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "OCTOSTAGE_ENVIRONMENT".to_string(),
                self.environment.clone(),
            ),
            ("OCTOSTAGE_STAGING".into(), self.staging.clone()),
            ("OCTOSTAGE_NAMESPACE".into(), self.namespace.clone()),
            ("OCTOSTAGE_BRANCH".into(), self.branch.name.clone()),
            ("OCTOSTAGE_BRANCH_SLUG".into(), self.branch.slug.clone()),
            ("OCTOSTAGE_COMMIT".into(), self.commit.sha.clone()),
            (
                "OCTOSTAGE_COMMIT_SHORT".into(),
                self.commit.short_sha.clone(),
            ),
            ("OCTOSTAGE_COMMIT_TIME".into(), self.commit.time.clone()),
            ("OCTOSTAGE_COMMIT_AUTHOR".into(), self.commit.author.clone()),
            (
                "OCTOSTAGE_COMMIT_SUBJECT".into(),
                self.commit.subject.clone(),
            ),
            (
                "OCTOSTAGE_CONFIG_COMMIT".into(),
                self.config_commit.clone().unwrap_or_default(),
            ),
            (
                "OCTOSTAGE_VALUES".into(),
                serde_json::to_string(&self.values).expect("json"),
            ),
            (
                "OCTOSTAGE_CONTEXT".into(),
                serde_json::to_string(self).expect("json"),
            ),
        ];
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

fn render_values(
    t: &TemplateSet,
    v: &mut serde_json::Value,
    ctx: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match v {
        serde_json::Value::String(s) => *s = t.render_str(s, ctx)?,
        serde_json::Value::Array(a) => a.iter_mut().try_for_each(|x| render_values(t, x, ctx))?,
        serde_json::Value::Object(m) => {
            m.values_mut().try_for_each(|x| render_values(t, x, ctx))?
        }
        _ => {}
    }
    Ok(())
}

/// One rendered Kubernetes object.
pub type Object = serde_json::Map<String, serde_json::Value>;

/// Kinds that are cluster-scoped in every Kubernetes release; octostage refuses them because a
/// staging may only touch its own namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "CSIDriver",
    "RuntimeClass",
    "CertificateSigningRequest",
];

/// Render a staging's objects: run its templates or command, parse the YAML, check every object
/// and add the ownership labels. Objects come back sorted by kind and name.
pub fn render(
    config: &Config,
    settings: &Settings,
    ctx: &Context,
) -> Result<Vec<Object>, RenderError> {
    let outputs = match &settings.render {
        Render::Templates(dir) => config
            .templates
            .render_dir(dir, &minijinja::Value::from_serialize(ctx))?,
        Render::Command(args) => {
            let view = minijinja::Value::from_serialize(ctx);
            let argv = args
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    config.templates.render_str(a, &view).map_err(|e| {
                        RenderError::from_minijinja(&format!("command argument {i}"), &e)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = command::run(
                &argv,
                &config.root,
                &ctx.env_vars(),
                settings.render_timeout,
            )?;
            vec![(format!("command `{}`", argv.join(" ")), out)]
        }
    };
    let mut objects = Vec::new();
    for (source_name, text) in outputs {
        for doc in parse_documents(&source_name, &text)? {
            collect_object(&source_name, doc, &ctx.namespace, &mut objects)?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for o in &mut objects {
        let id = object_id(o);
        if !seen.insert(id.clone()) {
            return Err(RenderError::Object {
                source_name: "rendered output".into(),
                object: id,
                message: "appears twice; each object may be rendered once".into(),
            });
        }
        own(o, ctx);
    }
    objects.sort_by_key(object_id);
    Ok(objects)
}

/// Parse multi-document YAML into its non-empty documents.
pub fn parse_documents(
    source_name: &str,
    text: &str,
) -> Result<Vec<serde_json::Value>, RenderError> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(de).map_err(|e| RenderError::Yaml {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn collect_object(
    source_name: &str,
    doc: serde_json::Value,
    namespace: &str,
    out: &mut Vec<Object>,
) -> Result<(), RenderError> {
    let err = |object: String, message: &str| RenderError::Object {
        source_name: source_name.to_string(),
        object,
        message: message.to_string(),
    };
    let serde_json::Value::Object(mut o) = doc else {
        return Err(err(
            format!("#{}", out.len() + 1),
            "is not a map; every document must be one Kubernetes object",
        ));
    };
    if o.get("kind").and_then(|k| k.as_str()) == Some("List") {
        if let Some(serde_json::Value::Array(items)) = o.remove("items") {
            for item in items {
                collect_object(source_name, item, namespace, out)?;
            }
        }
        return Ok(());
    }
    let id = object_id(&o);
    for field in ["apiVersion", "kind"] {
        if !o
            .get(field)
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            return Err(err(id, &format!("has no `{field}`")));
        }
    }
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("");
    if name.is_empty() {
        return Err(err(id, "has no `metadata.name`"));
    }
    let kind = o["kind"].as_str().unwrap_or_default();
    if CLUSTER_SCOPED.contains(&kind) {
        return Err(err(id, "is cluster-scoped; a staging may only create objects in its own namespace (octostage creates the namespace itself)"));
    }
    check_namespace(source_name, &o, namespace)?;
    out.push(o);
    Ok(())
}

/// `Kind/name` of an object, for messages and ordering.
pub fn object_id(o: &Object) -> String {
    let kind = o.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// Put the object in the staging's namespace and add the ownership labels.
fn own(o: &mut Object, ctx: &Context) {
    let meta = o.entry("metadata").or_insert_with(|| serde_json::json!({}));
    let meta = meta
        .as_object_mut()
        .expect("metadata checked to be a map with a name");
    meta.insert("namespace".into(), ctx.namespace.clone().into());
    let labels = meta
        .entry("labels")
        .or_insert_with(|| serde_json::json!({}));
    if !labels.is_object() {
        *labels = serde_json::json!({});
    }
    let labels = labels.as_object_mut().expect("labels is a map");
    labels.insert(consts::LABEL_MANAGED_BY.into(), consts::MANAGER.into());
    labels.insert(
        consts::LABEL_ENVIRONMENT.into(),
        ctx.environment.clone().into(),
    );
    labels.insert(consts::LABEL_STAGING.into(), ctx.staging.clone().into());
}

/// Check that a rendered object does not ask for another namespace than its staging's.
fn check_namespace(source_name: &str, o: &Object, namespace: &str) -> Result<(), RenderError> {
    match o.get("metadata").and_then(|m| m.get("namespace")).and_then(|n| n.as_str()) {
        Some(ns) if ns != namespace => Err(RenderError::Object {
            source_name: source_name.to_string(),
            object: object_id(o),
            message: format!("asks for namespace {ns:?}; objects may only land in the staging's namespace {namespace:?} (leave `metadata.namespace` out)"),
        }),
        _ => Ok(()),
    }
}
