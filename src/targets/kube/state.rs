//! What octostage keeps on the cluster, as pure functions: a staging's namespace labels and
//! annotations (the state a restart must not forget) and the content hash of each object.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::consts::{self, ANNOTATION_CREATED_BY, ANNOTATION_HASH};
use crate::plan::{Planned, StagingRecord};
use crate::render::Object;
use crate::text::rfc3339;

/// The staging's record (see [`StagingRecord`]), JSON: what a restart must not forget.
pub const RECORD: &str = "octostage.dev/record";
/// Kinds applied inside, `apiVersion/Kind` comma-separated, so pruning lists only those.
pub const KINDS: &str = "octostage.dev/kinds";
/// Why the staging is being deleted, recorded before the namespace is.
pub const DELETE_REASON: &str = "octostage.dev/delete-reason";
/// What people asked of the staging (`octostage sleep | wake | extend`), JSON; written by those
/// commands, only read by passes.
pub const REQUESTS: &str = "octostage.dev/requests";

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
/// The label selector of everything this instance labels as its own (ownership is then
/// checked object by object).
pub fn instance_selector(instance: &str) -> String {
    format!(
        "{}={},{}={}",
        consts::LABEL_MANAGED_BY,
        consts::MANAGER,
        consts::LABEL_INSTANCE,
        instance
    )
}

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

/// A staging as its namespace records it: as planned, with what it costs as rendered.
#[derive(Debug, Clone, Copy)]
pub struct Writing<'a> {
    /// The staging.
    pub p: &'a Planned,
    /// Its usage as rendered (the one last recorded when it was not rendered again).
    pub usage: Option<crate::plan::Usage>,
}

/// Annotations of a staging's namespace: its record, the `kinds` applied inside, and its
/// creation record.
pub fn namespace_annotations(
    w: &Writing<'_>,
    kinds: &[String],
    created: &CreatedBy,
) -> BTreeMap<String, String> {
    let record = StagingRecord {
        usage: w.usage,
        ..StagingRecord::of(w.p)
    };
    let record = serde_json::to_string(&record).expect("records serialize");
    [
        (ANNOTATION_CREATED_BY, created.to_annotation()),
        (RECORD, record),
        (KINDS, kinds.join(",")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Why a namespace with octostage's labels holds no readable record of its staging.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No record.
    #[error("annotation {RECORD} is missing")]
    Missing,
    /// A record that does not parse.
    #[error("annotation {RECORD}: {0}")]
    Unreadable(serde_json::Error),
    /// A record of another staging or namespace.
    #[error("annotation {RECORD} names staging {name:?} of {environment:?} in namespace {namespace:?}, which its labels and name do not")]
    Mismatch {
        /// The staging it names.
        name: String,
        /// Its environment.
        environment: String,
        /// Its namespace.
        namespace: String,
    },
}

/// Read a staging back from its namespace's name, labels and annotations; why not, when the
/// namespace carries octostage's labels but no readable record of them.
pub fn observed(
    name: &str,
    labels: &BTreeMap<String, String>,
    ann: &BTreeMap<String, String>,
) -> Result<StagingRecord, RecordError> {
    let text = ann.get(RECORD).ok_or(RecordError::Missing)?;
    let mut r: StagingRecord = serde_json::from_str(text).map_err(RecordError::Unreadable)?;
    if let Some(text) = ann.get(REQUESTS) {
        // A hand edit gone wrong must not stop the staging's passes: ignored, and said.
        match serde_json::from_str(text) {
            Ok(q) => r.requests = q,
            Err(e) => {
                tracing::warn!(namespace = name, error = %e, "annotation {REQUESTS} ignored: unreadable")
            }
        }
    }
    let staging = labels.get(consts::LABEL_STAGING).map(String::as_str);
    let environment = labels.get(consts::LABEL_ENVIRONMENT).map(String::as_str);
    if r.namespace != name || staging != Some(&r.name) || environment != Some(&r.environment) {
        return Err(RecordError::Mismatch {
            name: r.name,
            environment: r.environment,
            namespace: r.namespace,
        });
    }
    Ok(r)
}

/// The annotations of a namespace that [`namespace_annotations`] writes (the delete reason and
/// the requests are written separately), to compare with what a pass would write: any difference, a key added
/// or dropped included, means the namespace needs applying.
pub fn recorded(ann: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    ann.iter()
        .filter(|(k, _)| {
            k.starts_with("octostage.dev/") && k.as_str() != DELETE_REASON && k.as_str() != REQUESTS
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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
        let record = r#"{"name":"shop-a","environment":"shop","branch":"feature/a","namespace":"shop-a","commit":"abc","first_seen":"2026-11-26T00:00:00Z","expires_at":null,"state":"expired"}"#;
        let ann: BTreeMap<String, String> =
            [(RECORD, record), (KINDS, "v1/ConfigMap,apps/v1/Deployment")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into();
        let o = observed("shop-a", &labels, &ann).unwrap();
        assert_eq!(
            (o.branch.as_str(), o.state, o.expires_at),
            ("feature/a", crate::plan::State::Expired, None)
        );
        assert_eq!(kinds(&ann), ["v1/ConfigMap", "apps/v1/Deployment"]);
        assert_eq!(recorded(&ann), ann, "all of these are written by a pass");
        let mut with_reason = ann.clone();
        with_reason.insert(DELETE_REASON.into(), "branch deleted".into());
        with_reason.insert("other.io/x".into(), "y".into());
        assert_eq!(recorded(&with_reason), ann);
        // A record that names another staging than its namespace's labels is not believed.
        assert!(observed("shop-b", &labels, &ann).is_err());
        let mut broken = ann.clone();
        broken.remove(RECORD);
        assert!(observed("shop-a", &labels, &broken)
            .unwrap_err()
            .to_string()
            .contains(RECORD));
    }
}
