//! Workloads as octostage reads them: the metadata it needs (no managed fields), the wanted
//! replicas, and the status. A Deployment's pod template and managed fields are most of its
//! bytes, and every status change of every workload of the instance arrives on a watch:
//! decoding only these parts made each event several times cheaper than the typed object.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStatus, StatefulSetStatus};
use k8s_openapi::api::batch::v1::JobStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// The metadata fields a workload is read for.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    generation: Option<i64>,
    resource_version: Option<String>,
    uid: Option<String>,
}

fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Meta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        generation: m.generation,
        resource_version: m.resource_version,
        uid: m.uid,
        ..ObjectMeta::default()
    })
}

/// The part of a spec read: how many replicas are wanted.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Replicas {
    /// Wanted replicas (the API's default is 1).
    pub replicas: Option<i32>,
}

macro_rules! workload {
    ($name:ident, $what:literal, $group:literal, $version:literal, $kind:literal, $plural:literal, $(spec: $spec:ty,)? status: $status:ty) => {
        #[doc = $what]
        #[derive(Debug, Clone, Default, Deserialize)]
        pub struct $name {
            /// Name, namespace, labels, generation and versions only.
            #[serde(deserialize_with = "meta", default)]
            pub metadata: ObjectMeta,
            $(
            /// What is wanted, as far as it is read.
            pub spec: Option<$spec>,
            )?
            /// How it is doing.
            pub status: Option<$status>,
        }

        impl k8s_openapi::Resource for $name {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $name {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

workload!(
    Deployment,
    "A Deployment, as read for its health.",
    "apps",
    "v1",
    "Deployment",
    "deployments",
    spec: Replicas,
    status: DeploymentStatus
);
workload!(
    StatefulSet,
    "A StatefulSet, as read for its health.",
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    spec: Replicas,
    status: StatefulSetStatus
);
workload!(
    Job,
    "A Job, as read for its health.",
    "batch",
    "v1",
    "Job",
    "jobs",
    status: JobStatus
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_is_read_without_its_template_or_managed_fields() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop-a", "generation": 3,
                "resourceVersion": "42", "labels": {"a": "b"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web"}]}}},
            "status": {"readyReplicas": 1}
        }))
        .unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("web"));
        assert_eq!(d.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(d.metadata.generation, Some(3));
        assert!(d.metadata.managed_fields.is_none());
        assert_eq!(d.spec.unwrap().replicas, Some(2));
        assert_eq!(d.status.unwrap().ready_replicas, Some(1));
        // The watch's Resource is the API's: the same URL as the typed one.
        use kube::Resource;
        assert_eq!(
            Deployment::url_path(&(), Some("ns")),
            k8s_openapi::api::apps::v1::Deployment::url_path(&(), Some("ns"))
        );
        assert_eq!(Job::url_path(&(), None), "/apis/batch/v1/jobs");
    }
}
