//! Leases (`coordination.k8s.io/v1`) for leader election, and Events (`events.k8s.io/v1`) on
//! a staging's namespace.

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{api_err, consts, KubeTarget};
use crate::targets::{LeaseRecord, Leases, StagingNotice, TargetError};

/// The annotation on the Lease where its holder says where it takes actions.
const LEADER_URL: &str = "octostage.dev/leader-url";

/// Longest note of an Event (the API server refuses more than 1 KiB).
const NOTE_MAX: usize = 1000;

fn micro(t: chrono::DateTime<chrono::Utc>) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros())
        .ok()
        .map(MicroTime)
}

fn chrono_of(t: &MicroTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(t.0.as_microsecond())
}

fn record_of(lease: Lease) -> LeaseRecord {
    let spec = lease.spec.unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        duration: std::time::Duration::from_secs(
            spec.lease_duration_seconds.unwrap_or(0).max(0) as u64
        ),
        acquired: spec.acquire_time.as_ref().and_then(chrono_of),
        renewed: spec.renew_time.as_ref().and_then(chrono_of),
        transitions: spec.lease_transitions.unwrap_or(0),
        leader_url: lease
            .metadata
            .annotations
            .and_then(|mut a| a.remove(LEADER_URL)),
        version: lease.metadata.resource_version.unwrap_or_default(),
    }
}

impl KubeTarget {
    fn lease_api(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.lease_namespace)
    }
}

#[async_trait]
impl Leases for KubeTarget {
    fn describe_lease(&self, name: &str) -> String {
        format!("lease {}/{name}", self.lease_namespace)
    }

    async fn read_lease(&self, name: &str) -> Result<Option<LeaseRecord>, TargetError> {
        let api = self.lease_api();
        // One attempt: the election asks again in a moment, and must not outwait its deadline.
        // Not counted in `requests`, which tells what passes send: the lease is renewed
        // beside them (the metrics count it).
        api.get_opt(name)
            .await
            .map(|l| l.map(record_of))
            .map_err(|e| api_err(self.describe_lease(name), e))
    }

    async fn write_lease(&self, name: &str, r: &LeaseRecord) -> Result<bool, TargetError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(self.lease_namespace.clone()),
                resource_version: (!r.version.is_empty()).then(|| r.version.clone()),
                labels: Some(
                    [
                        (
                            consts::LABEL_MANAGED_BY.to_string(),
                            consts::MANAGER.to_string(),
                        ),
                        (consts::LABEL_INSTANCE.to_string(), self.instance.clone()),
                    ]
                    .into(),
                ),
                annotations: r
                    .leader_url
                    .as_ref()
                    .map(|u| [(LEADER_URL.to_string(), u.clone())].into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(r.holder.clone().unwrap_or_default()),
                lease_duration_seconds: Some(r.duration.as_secs().min(i32::MAX as u64) as i32),
                acquire_time: r.acquired.and_then(micro),
                renew_time: r.renewed.and_then(micro),
                lease_transitions: Some(r.transitions),
                ..Default::default()
            }),
        };
        let api = self.lease_api();
        let pp = PostParams {
            field_manager: Some(consts::MANAGER.into()),
            ..Default::default()
        };
        let written = if r.version.is_empty() {
            api.create(&pp, &lease).await
        } else {
            api.replace(name, &pp, &lease).await
        };
        match written {
            Ok(_) => Ok(true),
            // Someone else wrote first (or created it first): they lead, or will.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(api_err(self.describe_lease(name), e)),
        }
    }
}

impl KubeTarget {
    /// Post each notice as an Event in its staging's namespace; a failure is logged, never
    /// more (a namespace being deleted refuses events).
    pub(super) async fn publish_async(&self, notices: &[StagingNotice]) {
        let now = chrono::Utc::now();
        for (i, n) in notices.iter().enumerate() {
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
                    Some(Readiness::NotReady(m)) => m.clone(),
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
