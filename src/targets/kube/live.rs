//! What the cluster holds, as a pass sees it: this instance's namespaces and the objects that
//! carry octostage's full ownership record, each reduced to what a pass needs.
//!
//! Ownership is proven from the object itself, never assumed from a name or a label alone:
//! - a namespace is this instance's when it carries octostage's labels for this instance, the
//!   creation record octostage writes only when it creates a namespace, and octostage's field
//!   manager in its managed fields;
//! - an object is when it carries the labels (managed-by, instance, the staging of its
//!   namespace), the content-hash annotation, and octostage's field manager.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

use super::drift::Ownership;
use super::state::{self, CreatedBy};
use crate::consts;
use crate::plan::{Foreign, StagingRecord};

/// One of this instance's namespaces as the pass saw it.
#[derive(Debug, Clone)]
pub struct LiveNs {
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub created: CreatedBy,
    /// Managed fields, when octostage's create entry still needs converting to an apply entry.
    pub convert: Option<Vec<ManagedFieldsEntry>>,
}

/// One object octostage owns, as the pass saw it.
#[derive(Debug, Clone)]
pub struct LiveObject {
    pub uid: String,
    pub hash: String,
    pub ownership: Ownership,
    pub convert: Convert,
}

/// Whether octostage's create entry still needs converting to an apply entry before an update.
#[derive(Debug, Clone)]
pub enum Convert {
    No,
    /// Yes, from these managed fields.
    With(Vec<ManagedFieldsEntry>),
    /// Yes; the managed fields were not kept (the watch cache) and are read when needed.
    Fetch,
}

impl LiveObject {
    /// Keep only what a pass needs without a request: the field sets only when another manager
    /// owns fields (drift is possible), the create entry's fields not at all (read again on
    /// the rare update that needs them). A thousand stagings of objects fit in a few MiB.
    pub fn compact(&mut self) {
        self.ownership.compact();
        if let Convert::With(_) = self.convert {
            self.convert = Convert::Fetch;
        }
    }
}

/// One namespace's objects: (kind key, name) → the object.
pub type LiveObjects = HashMap<(String, String), Arc<LiveObject>>;

/// What `observe` saw, kept for the applies of the same pass.
#[derive(Debug, Default)]
pub struct Live {
    /// Shared with the watch cache: a pass copies pointers, not what they point at.
    pub namespaces: HashMap<String, Arc<LiveNs>>,
    /// Per namespace: (kind key, name) → the object.
    pub objects: HashMap<String, LiveObjects>,
    /// Per staging, how many of this instance's namespaces carry its label.
    pub staging_namespaces: HashMap<String, u32>,
    /// Kinds in use that could not be listed this pass: their objects are unknown, so they are
    /// neither pruned nor dropped from a namespace's record.
    pub unlistable: std::collections::BTreeSet<String>,
}

/// Sort one namespace: this instance's staging, or why it is not.
pub fn classify(
    meta: &ObjectMeta,
    instance: &str,
) -> Result<(StagingRecord, Arc<LiveNs>), Foreign> {
    let name = meta.name.clone().unwrap_or_default();
    let labels = meta.labels.clone().unwrap_or_default();
    let ann = meta.annotations.clone().unwrap_or_default();
    let managed = labels.get(consts::LABEL_MANAGED_BY).map(String::as_str) == Some(consts::MANAGER);
    let label_instance = labels.get(consts::LABEL_INSTANCE);
    let fields = meta.managed_fields.as_deref().unwrap_or_default();
    let ownership = Ownership::read(fields);
    let created = match CreatedBy::read(&ann) {
        None if !managed => return Err(Foreign::NotCreated),
        None => {
            return Err(match label_instance {
                Some(i) if i != instance => Foreign::OtherInstance(i.clone()),
                _ => Foreign::LabelsWithoutRecord,
            })
        }
        Some(r) if r.instance != instance => return Err(Foreign::OtherInstance(r.instance)),
        Some(r) => r,
    };
    if !managed || label_instance.map(String::as_str) != Some(instance) || ownership.is_none() {
        // A creation record octostage did not write (copied by hand or by a restore).
        return Err(Foreign::RecordNotWritten);
    }
    if meta.deletion_timestamp.is_some() {
        return Err(Foreign::Terminating);
    }
    let staging =
        state::observed(&name, &labels, &ann).map_err(|e| Foreign::Unreadable(e.to_string()))?;
    let convert = ownership
        .filter(|o| o.create_entry)
        .map(|_| fields.to_vec());
    Ok((
        staging,
        Arc::new(LiveNs {
            uid: meta.uid.clone().unwrap_or_default(),
            labels,
            annotations: ann,
            created,
            convert,
        }),
    ))
}

/// One listed object, if it carries octostage's full ownership record for `staging`.
pub fn owned_object(meta: &ObjectMeta, staging: &str) -> Option<LiveObject> {
    let labels = meta.labels.as_ref()?;
    if labels.get(consts::LABEL_STAGING).map(String::as_str) != Some(staging) {
        return None;
    }
    let hash = meta
        .annotations
        .as_ref()?
        .get(consts::ANNOTATION_HASH)?
        .clone();
    let fields = meta.managed_fields.as_deref().unwrap_or_default();
    let ownership = Ownership::read(fields)?;
    let convert = match ownership.create_entry {
        true => Convert::With(fields.to_vec()),
        false => Convert::No,
    };
    Some(LiveObject {
        uid: meta.uid.clone()?,
        hash,
        ownership,
        convert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    fn meta(labels: &[(&str, &str)], ann: &[(&str, &str)], manager: &str) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        ObjectMeta {
            name: Some("shop-a".into()),
            uid: Some("u1".into()),
            labels: map(labels),
            annotations: map(ann),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some("Update".into()),
                fields_v1: Some(FieldsV1(serde_json::json!({"f:metadata": {}}))),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    const LABELS: &[(&str, &str)] = &[
        ("app.kubernetes.io/managed-by", "octostage"),
        ("octostage.dev/instance", "default"),
        ("octostage.dev/environment", "shop"),
        ("octostage.dev/staging", "shop-a"),
    ];

    fn record(instance: &str) -> String {
        CreatedBy::new(instance, chrono::Utc::now()).to_annotation()
    }

    #[test]
    fn only_a_namespace_octostage_created_for_this_instance_is_its() {
        let rec = record("default");
        let staging = r#"{"name":"shop-a","environment":"shop","branch":"a","namespace":"shop-a","commit":"c","first_seen":"2026-11-26T00:00:00Z","state":"active"}"#;
        let ann = [
            ("octostage.dev/created-by", rec.as_str()),
            ("octostage.dev/record", staging),
        ];
        assert!(classify(&meta(LABELS, &ann, "octostage"), "default").is_ok());
        // Someone else's namespace, labels copied or not.
        assert_eq!(
            classify(&meta(&[], &[], "kubectl"), "default").unwrap_err(),
            Foreign::NotCreated
        );
        assert_eq!(
            classify(&meta(LABELS, &ann[1..], "octostage"), "default").unwrap_err(),
            Foreign::LabelsWithoutRecord
        );
        // A creation record copied onto a namespace octostage never wrote.
        assert_eq!(
            classify(&meta(LABELS, &ann, "kubectl-create"), "default").unwrap_err(),
            Foreign::RecordNotWritten
        );
        let other = record("other");
        assert_eq!(
            classify(
                &meta(
                    LABELS,
                    &[("octostage.dev/created-by", other.as_str())],
                    "octostage"
                ),
                "default"
            )
            .unwrap_err(),
            Foreign::OtherInstance("other".into())
        );
        let mut terminating = meta(LABELS, &ann, "octostage");
        terminating.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(
            classify(&terminating, "default").unwrap_err(),
            Foreign::Terminating
        );
    }

    #[test]
    fn an_object_with_only_some_of_the_record_is_not_owned() {
        let full = meta(LABELS, &[("octostage.dev/content-hash", "h")], "octostage");
        assert!(owned_object(&full, "shop-a").is_some());
        assert!(owned_object(&full, "shop-b").is_none(), "another staging's");
        let only_label = meta(
            &[
                ("app.kubernetes.io/managed-by", "octostage"),
                ("octostage.dev/staging", "shop-a"),
            ],
            &[],
            "octostage",
        );
        assert!(owned_object(&only_label, "shop-a").is_none());
        let by_hand = meta(
            LABELS,
            &[("octostage.dev/content-hash", "h")],
            "kubectl-create",
        );
        assert!(owned_object(&by_hand, "shop-a").is_none());
    }
}
