//! What octostage keeps on the cluster, as pure functions: a staging's namespace labels and
//! annotations (the state a restart must not forget) and the content hash of each object.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::consts::{self, ANNOTATION_CREATED_BY, ANNOTATION_HASH};
use crate::plan::{ObservedStaging, Planned, State};
use crate::render::Object;
use crate::text::rfc3339;

/// Full branch name (or the pin of a static staging).
pub const BRANCH: &str = "octostage.dev/branch";
/// Static staging name.
pub const STATIC: &str = "octostage.dev/static";
/// Commit the staging runs.
pub const COMMIT: &str = "octostage.dev/commit";
/// When octostage first saw that commit.
pub const FIRST_SEEN: &str = "octostage.dev/first-seen";
/// When the staging expires (absent: never).
pub const EXPIRES_AT: &str = "octostage.dev/expires-at";
/// Lifecycle state.
pub const STATE: &str = "octostage.dev/state";
/// Kinds applied inside, `apiVersion/Kind` comma-separated, so pruning lists only those.
pub const KINDS: &str = "octostage.dev/kinds";
/// Rendered links, JSON.
pub const LINKS: &str = "octostage.dev/links";
/// Why the staging is being deleted, recorded before the namespace is.
pub const DELETE_REASON: &str = "octostage.dev/delete-reason";

/// The creation record: which instance created a namespace, and when. Written only when
/// octostage creates the namespace; without it a namespace is never octostage's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedBy {
    /// The instance.
    pub instance: String,
    /// When, RFC 3339.
    pub at: String,
}

impl CreatedBy {
    /// The record for a namespace `instance` creates at `now`.
    pub fn new(instance: &str, now: DateTime<Utc>) -> CreatedBy {
        CreatedBy {
            instance: instance.to_string(),
            at: rfc3339(now),
        }
    }

    /// The record on a namespace, if it carries a readable one.
    pub fn read(ann: &BTreeMap<String, String>) -> Option<CreatedBy> {
        serde_json::from_str(ann.get(ANNOTATION_CREATED_BY)?).ok()
    }

    /// As the annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("record serializes")
    }
}

/// Labels of a staging's namespace.
pub fn namespace_labels(p: &Planned, instance: &str) -> BTreeMap<String, String> {
    [
        (consts::LABEL_MANAGED_BY, consts::MANAGER.to_string()),
        (consts::LABEL_INSTANCE, instance.to_string()),
        (consts::LABEL_ENVIRONMENT, p.environment.clone()),
        (consts::LABEL_STAGING, p.name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Annotations of a staging's namespace, recording `kinds` as applied inside and keeping its
/// creation record.
pub fn namespace_annotations(
    p: &Planned,
    kinds: &[String],
    created: &CreatedBy,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(ANNOTATION_CREATED_BY.to_string(), created.to_annotation());
    a.insert(BRANCH.to_string(), p.branch.clone());
    if let Some(s) = &p.static_name {
        a.insert(STATIC.to_string(), s.clone());
    }
    a.insert(
        COMMIT.to_string(),
        p.commit.as_ref().map(|c| c.sha.clone()).unwrap_or_default(),
    );
    a.insert(FIRST_SEEN.to_string(), rfc3339(p.first_seen));
    if let Some(e) = p.expires_at {
        a.insert(EXPIRES_AT.to_string(), rfc3339(e));
    }
    a.insert(
        STATE.to_string(),
        p.state.unwrap_or(State::Active).to_string(),
    );
    a.insert(KINDS.to_string(), kinds.join(","));
    if let Some(ctx) = &p.context {
        a.insert(
            LINKS.to_string(),
            serde_json::to_string(&ctx.links).expect("links serialize"),
        );
    }
    a
}

/// Read a staging back from its namespace's name, labels and annotations; why not, when the
/// namespace carries octostage's label but not its state.
pub fn observed(
    name: &str,
    labels: &BTreeMap<String, String>,
    ann: &BTreeMap<String, String>,
) -> Result<ObservedStaging, String> {
    let get = |k: &str| {
        ann.get(k)
            .cloned()
            .ok_or_else(|| format!("annotation {k} is missing"))
    };
    let time = |k: &str| -> Result<DateTime<Utc>, String> {
        get(k)?
            .parse::<DateTime<Utc>>()
            .map_err(|e| format!("annotation {k}: {e}"))
    };
    Ok(ObservedStaging {
        name: labels
            .get(consts::LABEL_STAGING)
            .cloned()
            .unwrap_or_else(|| name.to_string()),
        environment: labels
            .get(consts::LABEL_ENVIRONMENT)
            .cloned()
            .ok_or("label octostage.dev/environment is missing")?,
        branch: get(BRANCH)?,
        static_name: ann.get(STATIC).cloned(),
        namespace: name.to_string(),
        commit: get(COMMIT)?,
        first_seen: time(FIRST_SEEN)?,
        expires_at: if ann.contains_key(EXPIRES_AT) {
            Some(time(EXPIRES_AT)?)
        } else {
            None
        },
        state: match ann.get(STATE).map(String::as_str) {
            Some("expired") => State::Expired,
            _ => State::Active,
        },
    })
}

/// The annotations of a namespace that [`namespace_annotations`] writes (the delete reason is
/// written separately), to compare with what a pass would write: any difference, a key added
/// or dropped included, means the namespace needs applying.
pub fn recorded(ann: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    ann.iter()
        .filter(|(k, _)| k.starts_with("octostage.dev/") && k.as_str() != DELETE_REASON)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Links recorded on a namespace.
pub fn links(ann: &BTreeMap<String, String>) -> IndexMap<String, String> {
    ann.get(LINKS)
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default()
}

/// Kinds recorded on a namespace.
pub fn kinds(ann: &BTreeMap<String, String>) -> Vec<String> {
    ann.get(KINDS)
        .map(|k| {
            k.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `apiVersion/Kind` of an object (`apps/v1/Deployment`, `v1/ConfigMap`).
pub fn kind_key(o: &Object) -> String {
    let api = o.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
    let kind = o.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    format!("{api}/{kind}")
}

/// Split a kind key into (group, version, kind).
pub fn split_kind(key: &str) -> Option<(&str, &str, &str)> {
    let (api, kind) = key.rsplit_once('/')?;
    match api.split_once('/') {
        Some((group, version)) => Some((group, version, kind)),
        None => Some(("", api, kind)),
    }
}

/// Put the instance label and the content hash on `o`: a hash of everything octostage sends,
/// so an unchanged object costs no write.
pub fn stamp(o: &mut Object, instance: &str) -> String {
    if let Some(labels) = o
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(|l| l.as_object_mut())
    {
        labels.insert(consts::LABEL_INSTANCE.to_string(), instance.into());
    }
    let hash =
        crate::naming::short_hash(&serde_json::to_string(&*o).expect("objects serialize"), 24);
    let meta = o
        .get_mut("metadata")
        .and_then(|m| m.as_object_mut())
        .expect("rendered objects have metadata");
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if !ann.is_object() {
        *ann = serde_json::json!({});
    }
    ann.as_object_mut()
        .expect("map")
        .insert(ANNOTATION_HASH.to_string(), hash.clone().into());
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_keys_split() {
        assert_eq!(
            split_kind("apps/v1/Deployment"),
            Some(("apps", "v1", "Deployment"))
        );
        assert_eq!(split_kind("v1/ConfigMap"), Some(("", "v1", "ConfigMap")));
        assert_eq!(
            split_kind("networking.k8s.io/v1/Ingress"),
            Some(("networking.k8s.io", "v1", "Ingress"))
        );
    }

    #[test]
    fn stamping_is_stable_and_sensitive() {
        let mut a: Object = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"1"}}"#,
        )
        .unwrap();
        let mut b = a.clone();
        assert_eq!(stamp(&mut a, "i"), stamp(&mut b, "i"));
        assert_eq!(
            a["metadata"]["annotations"][ANNOTATION_HASH]
                .as_str()
                .unwrap()
                .len(),
            24
        );
        let mut c: Object = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"2"}}"#,
        )
        .unwrap();
        assert_ne!(
            stamp(&mut c, "i"),
            a["metadata"]["annotations"][ANNOTATION_HASH]
                .as_str()
                .unwrap()
        );
    }

    #[test]
    fn namespace_state_round_trips() {
        let labels: BTreeMap<String, String> = [
            (consts::LABEL_ENVIRONMENT.to_string(), "shop".to_string()),
            (consts::LABEL_STAGING.to_string(), "shop-a".to_string()),
        ]
        .into();
        let ann: BTreeMap<String, String> = [
            (BRANCH, "feature/a"),
            (COMMIT, "abc"),
            (FIRST_SEEN, "2026-11-26T00:00:00Z"),
            (STATE, "expired"),
            (KINDS, "v1/ConfigMap,apps/v1/Deployment"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let o = observed("shop-a", &labels, &ann).unwrap();
        assert_eq!(
            (o.branch.as_str(), o.state, o.expires_at),
            ("feature/a", State::Expired, None)
        );
        assert_eq!(kinds(&ann), ["v1/ConfigMap", "apps/v1/Deployment"]);
        assert_eq!(recorded(&ann), ann, "all of these are written by a pass");
        let mut with_reason = ann.clone();
        with_reason.insert(DELETE_REASON.into(), "branch deleted".into());
        with_reason.insert("other.io/x".into(), "y".into());
        assert_eq!(recorded(&with_reason), ann);
        let mut broken = ann.clone();
        broken.remove(COMMIT);
        assert!(observed("shop-a", &labels, &broken)
            .unwrap_err()
            .contains(COMMIT));
    }
}
