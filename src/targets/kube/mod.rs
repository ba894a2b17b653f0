//! The `kube` target: one namespace per staging, created by octostage and recorded as such;
//! every rendered object created once (never over an existing one) and then kept with
//! server-side apply (field manager `octostage`) on the very object octostage created (its
//! UID); unchanged objects skipped by content hash unless someone changed fields octostage
//! applies (drift); owned objects no longer rendered pruned; stagings deleted with their
//! namespace. Nothing without octostage's full ownership record is ever written or deleted.
//!
//! One pass costs one namespace list and one list per kind in use (metadata only); after that
//! only writes are sent, and only for what changed.

mod apply;
mod cache;
mod copies;
mod counting;
mod drift;
mod events;
mod follow;
mod gating;
mod health;
mod lease;
mod live;
mod memo;
mod namespace;
mod observe;
mod retry;
mod slim;
mod state;
mod transport;
mod view;
mod watch;
mod waves;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use kube::Client;
use tracing::info;

use super::{Change, StagingStatus, Status, Target, TargetError};
use crate::consts;
use crate::plan::{Foreign, Observed, Planned};
use crate::render::Object;
use live::Live;
use retry::{not_found, retryable, with_retries, RETRY_FIRST_DELAY};

pub use state::{CreatedBy, DELETE_REASON, KINDS};

/// A Kubernetes cluster.
pub struct KubeTarget {
    /// Open unless an election runs; see [`crate::targets::WriteGate`].
    gate: crate::targets::WriteGate,
    client: Client,
    /// For watches: reads may stay quiet for minutes.
    watch_client: Client,
    watches: std::sync::OnceLock<watch::Watches>,
    instance: String,
    /// Where the leader-election lease lives.
    lease_namespace: String,
    describe: String,
    writes: AtomicU64,
    requests: AtomicU64,
    resources: Mutex<HashMap<String, Result<ApiResource, ResourceError>>>,
    live: Mutex<Live>,
    /// What the last pass saw, updated by what changed since (see `view`).
    view: Mutex<Option<view::View>>,
    /// Per staging, what this process last applied (see `memo`).
    applied: Mutex<HashMap<String, memo::Applied>>,
}

/// Why a kind cannot be written to a staging's namespace.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResourceError {
    /// Not `group/version/Kind`.
    #[error("malformed kind {0:?}")]
    Malformed(String),
    /// Cluster-scoped.
    #[error("{0} is cluster-scoped; a staging may only create objects in its own namespace")]
    ClusterScoped(String),
    /// Discovery does not find it.
    #[error("the cluster does not serve {key}: {}", crate::redact::text(&answer.to_string()))]
    NotServed {
        /// The kind.
        key: String,
        /// Discovery's answer: shown redacted, and not a `source()`, so that no error chain
        /// prints it unredacted.
        answer: Arc<kube::Error>,
    },
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> TargetError {
    TargetError::Io {
        path: what.into(),
        cause: crate::targets::Cause::other(e),
    }
}

/// The API server's own words and code for an API error, not the client's debug dump.
fn api_err(what: impl Into<String>, e: kube::Error) -> TargetError {
    TargetError::Io {
        path: what.into(),
        cause: crate::targets::Cause::kube(&e),
    }
}

/// The namespace this process runs in (`POD_NAMESPACE`, or its service account's), else
/// `default`: where its lease lives.
fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| "default".into())
}

impl KubeTarget {
    /// Connect with a kubeconfig file, or the usual inference (KUBECONFIG, ~/.kube/config,
    /// in-cluster service account) when `None`.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        instance: &str,
    ) -> Result<KubeTarget, TargetError> {
        let mut config = match kubeconfig {
            Some(p) => {
                let kc = kube::config::Kubeconfig::read_from(p)
                    .map_err(|e| err(p.display().to_string(), e))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| err(p.display().to_string(), e))?
            }
            None => kube::Config::infer().await.map_err(|e| {
                err(
                    "kubeconfig",
                    format!("{e}; set KUBECONFIG or pass --target kube:PATH"),
                )
            })?,
        };
        // Every request is bounded; retries are bounded too (see `retry`).
        config.connect_timeout = Some(consts::KUBE_CONNECT_TIMEOUT);
        config.read_timeout = Some(consts::KUBE_REQUEST_TIMEOUT);
        config.write_timeout = Some(consts::KUBE_REQUEST_TIMEOUT);
        let describe = format!(
            "kube:{} (instance {instance})",
            crate::redact::url(&config.cluster_url.to_string())
        );
        let mut watch_config = config.clone();
        watch_config.read_timeout = Some(consts::KUBE_WATCH_READ_TIMEOUT);
        let gate = crate::targets::WriteGate::open();
        let client = transport::client(config, &gate).map_err(|e| err("kube client", e))?;
        let watch_client =
            transport::client(watch_config, &gate).map_err(|e| err("kube client", e))?;
        Ok(KubeTarget {
            gate,
            client,
            watch_client,
            watches: Default::default(),
            instance: instance.to_string(),
            lease_namespace: own_namespace(),
            describe,
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            resources: Mutex::default(),
            live: Mutex::default(),
            view: Mutex::default(),
            applied: Mutex::default(),
        })
    }

    /// Run `f` with retries and backoff; counts every attempt as a request.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        with_retries(&self.requests, RETRY_FIRST_DELAY, f, retryable).await
    }

    /// [`Self::call`] for writes into a namespace: also retries 404, which the API server
    /// answers while a namespace created a moment ago has not reached its admission cache.
    async fn call_in_namespace<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        with_retries(&self.requests, RETRY_FIRST_DELAY, f, |e| {
            retryable(e) || not_found(e)
        })
        .await
    }

    fn wrote(&self, what: &str, object: &str, namespace: &str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        info!(namespace, object, "write: {what}");
    }

    /// The API resource of a kind key, from discovery (cached); errors for unknown and
    /// cluster-scoped kinds.
    async fn resource(&self, key: &str) -> Result<ApiResource, ResourceError> {
        if let Some(r) = self.resources.lock().expect("resources").get(key) {
            return r.clone();
        }
        let (group, version, kind) =
            state::split_kind(key).ok_or_else(|| ResourceError::Malformed(key.to_string()))?;
        let gvk = GroupVersionKind::gvk(group, version, kind);
        // Answers are remembered (a kind's scope does not change); failed lookups are not,
        // since a starting API server may not list every group yet.
        let (found, remember) = match self
            .call(|| kube::discovery::pinned_kind(&self.client, &gvk))
            .await
        {
            Ok((ar, caps)) if caps.scope == Scope::Namespaced => (Ok(ar), true),
            Ok(_) => (Err(ResourceError::ClusterScoped(key.to_string())), true),
            Err(e) => (
                Err(ResourceError::NotServed {
                    key: key.to_string(),
                    answer: Arc::new(e),
                }),
                false,
            ),
        };
        if remember {
            self.resources
                .lock()
                .expect("resources")
                .insert(key.to_string(), found.clone());
        }
        found
    }

    /// Every namespace, metadata only (one request).
    async fn namespaces(
        &self,
    ) -> Result<Vec<kube::core::PartialObjectMeta<Namespace>>, TargetError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let lp = ListParams::default();
        let list = self
            .call(|| api.list_metadata(&lp))
            .await
            .map_err(|e| api_err("listing namespaces", e))?;
        Ok(list.items)
    }

    async fn status_async(&self) -> Result<Status, TargetError> {
        let mut out = Status::default();
        for ns in self.namespaces().await? {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let ann = ns.metadata.annotations.clone().unwrap_or_default();
            let created = ns
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| t.0.to_string().parse().ok());
            let mut meta = ns.metadata.clone();
            // A namespace being deleted is still shown, as deleting.
            let deleting = meta
                .deletion_timestamp
                .take()
                .map(|_| ann.get(DELETE_REASON).cloned().unwrap_or_default());
            match live::classify(&meta, &self.instance) {
                Ok((staging, _)) => out.stagings.push(StagingStatus {
                    staging,
                    created,
                    deleting,
                }),
                Err(f @ (Foreign::LabelsWithoutRecord | Foreign::Unreadable(_))) => out
                    .foreign
                    .push((format!("namespace {name}"), f.to_string())),
                Err(_) => {}
            }
        }
        out.stagings
            .sort_by(|a, b| a.staging.name.cmp(&b.staging.name));
        Ok(out)
    }

    /// The live state of `ns` and its objects, as this pass saw them.
    fn live_of(&self, ns: &str) -> (Option<Arc<live::LiveNs>>, live::LiveObjects) {
        let live = self.live.lock().expect("live");
        (
            live.namespaces.get(ns).cloned(),
            live.objects.get(ns).cloned().unwrap_or_default(),
        )
    }
}

#[async_trait]
impl Target for KubeTarget {
    fn describe(&self) -> String {
        self.describe.clone()
    }
    async fn observe(&self) -> Result<Observed, TargetError> {
        self.observe_async().await
    }
    fn watch(&self) {
        self.watches
            .get_or_init(|| watch::Watches::start(self.watch_client.clone(), &self.instance));
    }
    fn unwatch(&self) {
        if let Some(w) = self.watches.get() {
            w.stop();
        }
    }
    async fn apply(
        &self,
        staging: &Planned,
        rendered: &super::Rendered<'_>,
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError> {
        self.apply_async(staging, rendered, dry_run).await
    }
    fn holds(&self, staging: &Planned, fingerprint: &str) -> bool {
        let applied = self.applied.lock().expect("applied");
        let Some(a) = applied.get(&staging.name) else {
            return false;
        };
        let live = self.live.lock().expect("live");
        memo::holds(a, staging, fingerprint, &self.instance, &live)
    }
    async fn delete(&self, staging: &Planned, dry_run: bool) -> Result<(), TargetError> {
        self.delete_async(staging, dry_run).await
    }
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    async fn status(&self) -> Result<Status, TargetError> {
        self.status_async().await
    }
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.watches.get().map(|w| w.changed.clone())
    }
    fn take_dirty(&self) -> Option<crate::targets::Dirty> {
        let w = self.watches.get()?;
        Some(std::mem::take(
            &mut *w.dirty.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
    async fn request(
        &self,
        name: &str,
        expected: &crate::plan::Requests,
        requests: &crate::plan::Requests,
    ) -> Result<bool, TargetError> {
        self.request_async(name, expected, requests).await
    }

    async fn read_copy(&self, copy: &crate::config::Copy) -> Result<Object, TargetError> {
        self.read_copy_async(copy).await
    }

    async fn current(&self, staging: &Planned, object: &Object) -> Option<Object> {
        let ns = staging.namespace.as_deref()?;
        let name = object.get("metadata")?.get("name")?.as_str()?;
        let ar = self.resource(&state::kind_key(object)).await.ok()?;
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let live = self.call(|| api.get_opt(name)).await.ok()??;
        serde_json::to_value(live).ok()?.as_object().cloned()
    }

    fn objects(&self, namespace: &str) -> Vec<crate::targets::ObjectHealth> {
        self.objects_of(namespace)
    }

    fn leases(&self) -> Option<&dyn crate::targets::Leases> {
        Some(self)
    }

    async fn publish(&self, notices: &[crate::targets::StagingNotice]) {
        self.publish_async(notices).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential in discovery's answer (a proxy quoting the URL it was asked) is shown
    /// redacted, and no error chain reaches the answer itself.
    #[test]
    fn a_kind_the_cluster_does_not_serve_says_why_without_a_credential() {
        let answer = kube::Error::Service(Box::new(std::io::Error::other(
            "proxy refused https://admin:s3cret@api.example.com/apis/x",
        )));
        let e = ResourceError::NotServed {
            key: "example.com/v1/Widget".into(),
            answer: Arc::new(answer),
        };
        let shown = e.to_string();
        assert!(
            shown.contains("does not serve example.com/v1/Widget"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(std::error::Error::source(&e).is_none());
        assert!(!err("Widget/w", &e).to_string().contains("s3cret"));
    }
}
