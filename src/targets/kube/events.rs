//! What the kube target shows people beside its stagings: Events (`events.k8s.io/v1`) on a
//! staging's namespace, only one octostage created for this instance, and a namespace's objects
//! with their readiness for the dashboard.

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use super::lease::micro;
use super::{api_err, consts, KubeTarget};
use crate::targets::StagingNotice;

/// Longest note of an Event (the API server refuses more than 1 KiB).
const NOTE_MAX: usize = 1000;

impl KubeTarget {
    /// Whether `namespace` is, read now, one this instance created: the proof the object
    /// itself gives, as for any write.
    async fn ours(&self, namespace: &str) -> bool {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match self.call(|| api.get_opt(namespace)).await {
            Ok(Some(ns)) => super::live::classify(&ns.metadata, &self.instance).is_ok(),
            Ok(None) => false,
            Err(e) => {
                let e = api_err(format!("Namespace/{namespace}"), e);
                tracing::warn!(error = %e, "no event posted: cannot tell whether the namespace is octostage's");
                false
            }
        }
    }

    /// Post each notice as an Event in its staging's namespace, if that namespace is one this
    /// instance created (a staging in conflict names someone else's); a failure is logged, never
    /// more (a namespace being deleted refuses events).
    pub(super) async fn publish_async(&self, notices: &[StagingNotice]) {
        let now = chrono::Utc::now();
        let mut checked: std::collections::HashMap<&str, bool> = Default::default();
        for (i, n) in notices.iter().enumerate() {
            let ours = match checked.get(n.namespace.as_str()) {
                Some(o) => *o,
                None => {
                    let o = self.ours(&n.namespace).await;
                    checked.insert(&n.namespace, o);
                    o
                }
            };
            if !ours {
                tracing::debug!(namespace = %n.namespace, "no event: the namespace is not octostage's");
                continue;
            }
            let api: Api<Event> = Api::namespaced(self.client.clone(), &n.namespace);
            let mut note = crate::redact::text(&n.note).into_owned();
            if note.len() > NOTE_MAX {
                let mut cut = NOTE_MAX;
                while !note.is_char_boundary(cut) {
                    cut -= 1;
                }
                note.truncate(cut);
            }
            let event = Event {
                metadata: ObjectMeta {
                    name: Some(format!(
                        "{}.{:x}{:02x}",
                        n.namespace,
                        now.timestamp_micros(),
                        i % 256
                    )),
                    ..Default::default()
                },
                event_time: micro(now),
                action: Some(n.action.clone()),
                reason: Some(n.reason.clone()),
                note: Some(note),
                type_: Some(if n.warning { "Warning" } else { "Normal" }.into()),
                reporting_controller: Some(consts::EVENT_CONTROLLER.into()),
                reporting_instance: Some(format!("octostage-{}", self.instance)),
                regarding: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Namespace".into()),
                    name: Some(n.namespace.clone()),
                    // The API server wants the event's own namespace here, even for a Namespace.
                    namespace: Some(n.namespace.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                let e = api_err(format!("Event in {}", n.namespace), e);
                tracing::warn!(error = %e, "event not posted");
            }
        }
    }
}

impl KubeTarget {
    /// A namespace's objects from the live view, with the readiness the workload watches saw.
    pub(super) fn objects_of(&self, namespace: &str) -> Vec<crate::targets::ObjectHealth> {
        use crate::plan::Readiness;
        let ready: std::collections::HashMap<String, Readiness> = self
            .watches
            .get()
            .and_then(|w| w.workloads())
            .unwrap_or_default()
            .into_iter()
            .filter(|(ns, _)| ns == namespace)
            .map(|(_, w)| (w.id, w.readiness))
            .collect();
        let live = self.live.lock().expect("live");
        let mut out: Vec<crate::targets::ObjectHealth> = live
            .objects
            .get(namespace)
            .into_iter()
            .flat_map(|o| o.keys())
            .map(|(key, name)| {
                let kind = super::state::split_kind(key).map_or(key.as_str(), |(_, _, k)| k);
                let object = format!("{kind}/{name}");
                let health = match ready.get(&object) {
                    Some(Readiness::Ready) => "ready".to_string(),
                    Some(Readiness::NotReady(m) | Readiness::Unobserved(m)) => m.clone(),
                    Some(Readiness::Failed(m)) => format!("failed: {m}"),
                    Some(Readiness::Unknown(m)) => format!("unknown: {m}"),
                    None => "-".to_string(),
                };
                crate::targets::ObjectHealth { object, health }
            })
            .collect();
        out.sort_by(|a, b| a.object.cmp(&b.object));
        out
    }
}
