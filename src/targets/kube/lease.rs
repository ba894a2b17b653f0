//! Leases (`coordination.k8s.io/v1`) for leader election.

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{api_err, consts, KubeTarget};
use crate::targets::{LeaseRecord, Leases, TargetError};

/// The annotation on the Lease where its holder says where it takes actions.
const LEADER_URL: &str = "octostage.dev/leader-url";

pub(super) fn micro(t: chrono::DateTime<chrono::Utc>) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros())
        .ok()
        .map(MicroTime)
}

fn chrono_of(t: &MicroTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(t.0.as_microsecond())
}

fn record_of(lease: Lease, instance: &str) -> LeaseRecord {
    let spec = lease.spec.unwrap_or_default();
    let labels = lease.metadata.labels.unwrap_or_default();
    LeaseRecord {
        ours: labels.get(consts::LABEL_MANAGED_BY).map(String::as_str) == Some(consts::MANAGER)
            && labels.get(consts::LABEL_INSTANCE).map(String::as_str) == Some(instance),
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
    fn gate(&self) -> &crate::targets::WriteGate {
        &self.gate
    }

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
            .map(|l| l.map(|l| record_of(l, &self.instance)))
            .map_err(|e| api_err(self.describe_lease(name), e))
    }

    async fn write_lease(&self, name: &str, r: &LeaseRecord) -> Result<bool, TargetError> {
        if !r.version.is_empty() && !r.ours {
            return Err(TargetError::Conflict {
                what: self.describe_lease(name),
                whose: crate::targets::Clash::ForeignLease,
            });
        }
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
