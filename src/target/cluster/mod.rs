//! The `kube` target: one namespace per staging, every rendered object applied with server-side
//! apply (field manager `octostage`), unchanged objects skipped by content hash, owned objects no
//! longer rendered pruned, stagings deleted by deleting their namespace.
//!
//! One pass costs one namespace list and one list per kind in use (cluster-wide, by label) in
//! [`Target::observe`]; after that only writes are sent, and only for what changed. Objects
//! without octostage's labels are never listed, so never touched.

mod retry;
mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use kube::Client;
use tracing::{info, warn};

use super::{Change, ChangeKind, StagingStatus, Target, TargetError};
use crate::consts::{self, ANNOTATION_HASH};
use crate::plan::{ObservedStaging, Planned};
use crate::render::{object_id, Object};
use retry::{not_found, retryable, with_retries, RETRY_FIRST_DELAY};

pub use state::{DELETE_REASON, KINDS};

/// Labels and annotations of a namespace.
type Meta = (BTreeMap<String, String>, BTreeMap<String, String>);

/// What `observe` saw, kept for the applies of the same pass.
#[derive(Default)]
struct Live {
    namespaces: HashMap<String, Meta>,
    /// Per namespace: (kind key, name) → content hash (empty when the object has none).
    objects: HashMap<String, HashMap<(String, String), String>>,
}

/// A Kubernetes cluster.
pub struct KubeTarget {
    rt: tokio::runtime::Runtime,
    client: Client,
    instance: String,
    describe: String,
    writes: AtomicU64,
    requests: AtomicU64,
    resources: Mutex<HashMap<String, Result<ApiResource, String>>>,
    live: Mutex<Live>,
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> TargetError {
    TargetError::Io {
        path: what.into(),
        message: e.to_string(),
    }
}

/// The API server's own words for an API error, not the client's debug dump.
fn api_err(what: impl Into<String>, e: kube::Error) -> TargetError {
    match &e {
        kube::Error::Api(s) => err(what, format!("{} ({} {})", s.message, s.code, s.reason)),
        _ => err(what, e),
    }
}

impl KubeTarget {
    /// Connect with a kubeconfig file, or the usual inference (KUBECONFIG, ~/.kube/config,
    /// in-cluster service account) when `None`.
    pub fn connect(kubeconfig: Option<&Path>, instance: &str) -> Result<KubeTarget, TargetError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| err("tokio runtime", e))?;
        let (client, describe) = rt.block_on(async {
            let config = match kubeconfig {
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
            let describe = format!("kube:{} (instance {instance})", config.cluster_url);
            let client = Client::try_from(config).map_err(|e| err("kube client", e))?;
            Ok::<_, TargetError>((client, describe))
        })?;
        Ok(KubeTarget {
            rt,
            client,
            instance: instance.to_string(),
            describe,
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            resources: Mutex::default(),
            live: Mutex::default(),
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

    /// [`Self::call`] for applies into a namespace: also retries 404, which the API server
    /// answers while a namespace created a moment ago has not reached its admission cache.
    async fn apply_call<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
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
    async fn resource(&self, key: &str) -> Result<ApiResource, String> {
        if let Some(r) = self.resources.lock().expect("resources").get(key) {
            return r.clone();
        }
        let (group, version, kind) =
            state::split_kind(key).ok_or_else(|| format!("malformed kind {key:?}"))?;
        let gvk = GroupVersionKind::gvk(group, version, kind);
        // Answers are remembered (a kind's scope does not change); failed lookups are not,
        // since a starting API server may not list every group yet.
        let (found, remember) = match self.call(|| kube::discovery::pinned_kind(&self.client, &gvk)).await {
            Ok((ar, caps)) if caps.scope == Scope::Namespaced => (Ok(ar), true),
            Ok(_) => (Err(format!("{key} is cluster-scoped; a staging may only create objects in its own namespace")), true),
            Err(e) => (Err(format!("the cluster does not serve {key}: {e}")), false),
        };
        if remember {
            self.resources
                .lock()
                .expect("resources")
                .insert(key.to_string(), found.clone());
        }
        found
    }

    /// Selector of this instance's namespaces.
    fn mine(&self) -> String {
        format!(
            "{}={},{}={}",
            consts::LABEL_MANAGED_BY,
            consts::MANAGER,
            consts::LABEL_INSTANCE,
            self.instance
        )
    }

    /// This instance's namespaces.
    async fn my_namespaces(&self) -> Result<Vec<Namespace>, TargetError> {
        let mine = ListParams::default().labels(&self.mine());
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = self
            .call(|| api.list(&mine))
            .await
            .map_err(|e| api_err("listing namespaces", e))?;
        Ok(list.items)
    }

    async fn observe_async(&self) -> Result<Vec<ObservedStaging>, TargetError> {
        let list = self.my_namespaces().await?;
        // Objects carry no instance label; they are matched to this instance's namespaces below.
        let managed = format!("{}={}", consts::LABEL_MANAGED_BY, consts::MANAGER);
        let lp = ListParams::default().labels(&managed);
        let mut live = Live::default();
        let mut out = Vec::new();
        let mut kinds = BTreeSet::new();
        for ns in list {
            let name = ns.metadata.name.clone().unwrap_or_default();
            if ns.metadata.deletion_timestamp.is_some() {
                continue; // leaving already
            }
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            let ann = ns.metadata.annotations.clone().unwrap_or_default();
            match state::observed(&name, &labels, &ann) {
                Ok(o) => out.push(o),
                Err(e) => {
                    // Never act on a namespace whose state cannot be read: not ours to guess.
                    warn!(namespace = %name, "skipping namespace labelled as octostage's: {e}");
                    continue;
                }
            }
            kinds.extend(state::kinds(&ann));
            live.namespaces.insert(name, (labels, ann));
        }
        for key in kinds {
            let ar = match self.resource(&key).await {
                Ok(ar) => ar,
                Err(e) => {
                    warn!(kind = %key, "cannot list: {e}");
                    continue;
                }
            };
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
            let objects = self
                .call(|| api.list(&lp))
                .await
                .map_err(|e| api_err(format!("listing {key}"), e))?;
            for o in objects {
                let (Some(ns), Some(name)) =
                    (o.metadata.namespace.clone(), o.metadata.name.clone())
                else {
                    continue;
                };
                if !live.namespaces.contains_key(&ns) {
                    continue;
                }
                let hash = o
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_HASH))
                    .cloned()
                    .unwrap_or_default();
                live.objects
                    .entry(ns)
                    .or_default()
                    .insert((key.clone(), name), hash);
            }
        }
        *self.live.lock().expect("live") = live;
        Ok(out)
    }

    async fn apply_async(
        &self,
        p: &Planned,
        objects: &[Object],
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError> {
        let ns = p
            .namespace
            .clone()
            .ok_or_else(|| err(&p.name, "staging has no namespace"))?;
        // Every object's kind is checked against discovery before anything is written.
        let mut rendered: Vec<(String, String, String, Object, ApiResource)> = Vec::new(); // kind, name, hash, body
        for o in objects {
            let mut o = o.clone();
            let key = state::kind_key(&o);
            let ar = self
                .resource(&key)
                .await
                .map_err(|e| err(object_id(&o), e))?;
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let hash = state::stamp(&mut o);
            rendered.push((key, name, hash, o, ar));
        }
        let (live_ns, live_objects) = {
            let live = self.live.lock().expect("live");
            (
                live.namespaces.get(&ns).cloned(),
                live.objects.get(&ns).cloned().unwrap_or_default(),
            )
        };
        let new_kinds: BTreeSet<String> = rendered.iter().map(|r| r.0.clone()).collect();
        let old_kinds: BTreeSet<String> = live_ns
            .as_ref()
            .map(|(_, a)| state::kinds(a).into_iter().collect())
            .unwrap_or_default();
        let union: Vec<String> = new_kinds.union(&old_kinds).cloned().collect();
        let mut changes = Vec::new();
        // The namespace first, recording every kind that may hold objects of this staging, so a
        // pass interrupted half-way still prunes next time.
        self.apply_namespace(p, &ns, &union, live_ns.as_ref(), dry_run)
            .await?;
        for (key, name, hash, body, ar) in &rendered {
            let current = live_objects.get(&(key.clone(), name.clone()));
            if current == Some(hash) {
                continue;
            }
            let kind = if current.is_some() {
                ChangeKind::Update
            } else {
                ChangeKind::Create
            };
            changes.push(Change {
                kind,
                object: object_id(body),
            });
            if dry_run {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, ar);
            let pp = PatchParams::apply(consts::MANAGER).force();
            let patch = Patch::Apply(body);
            self.apply_call(|| api.patch(name, &pp, &patch))
                .await
                .map_err(|e| api_err(format!("{ns}/{}", object_id(body)), e))?;
            self.wrote("apply", &object_id(body), &ns);
        }
        let keep: BTreeSet<(&str, &str)> = rendered
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str()))
            .collect();
        for (key, name) in live_objects.keys() {
            if keep.contains(&(key.as_str(), name.as_str())) {
                continue;
            }
            let (_, _, kind) = state::split_kind(key).unwrap_or(("", "", key));
            changes.push(Change {
                kind: ChangeKind::Prune,
                object: format!("{kind}/{name}"),
            });
            if dry_run {
                continue;
            }
            let ar = self
                .resource(key)
                .await
                .map_err(|e| err(format!("{kind}/{name}"), e))?;
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, &ar);
            let dp = DeleteParams::background();
            match self.call(|| api.delete(name, &dp)).await {
                Ok(_) => self.wrote("prune", &format!("{kind}/{name}"), &ns),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(api_err(format!("{ns}/{kind}/{name}"), e)),
            }
        }
        if new_kinds.len() != union.len() {
            // Everything of the dropped kinds is pruned: stop listing them.
            let kinds: Vec<String> = new_kinds.into_iter().collect();
            self.apply_namespace(p, &ns, &kinds, None, dry_run).await?;
        }
        // A changed namespace template moves the staging: its old namespace goes once the new
        // one holds everything.
        let moved_from: Vec<String> = {
            let live = self.live.lock().expect("live");
            live.namespaces
                .iter()
                .filter(|(name, (labels, _))| {
                    *name != &ns && labels.get(consts::LABEL_STAGING) == Some(&p.name)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        for old in moved_from {
            changes.push(Change {
                kind: ChangeKind::Prune,
                object: format!("Namespace/{old}"),
            });
            self.delete_namespace(
                &old,
                &format!("staging {} moved to namespace {ns}", p.name),
                dry_run,
            )
            .await?;
            if !dry_run {
                self.live.lock().expect("live").namespaces.remove(&old);
            }
        }
        Ok(changes)
    }

    async fn apply_namespace(
        &self,
        p: &Planned,
        ns: &str,
        kinds: &[String],
        live: Option<&Meta>,
        dry_run: bool,
    ) -> Result<(), TargetError> {
        let labels = state::namespace_labels(p, &self.instance);
        let annotations = state::namespace_annotations(p, kinds);
        let same = live.is_some_and(|(l, a)| {
            labels.iter().all(|(k, v)| l.get(k) == Some(v)) && state::recorded(a) == annotations
        });
        if same || dry_run {
            return Ok(());
        }
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": ns, "labels": labels, "annotations": annotations },
        });
        let api: Api<Namespace> = Api::all(self.client.clone());
        let pp = PatchParams::apply(consts::MANAGER).force();
        let patch = Patch::Apply(&body);
        self.call(|| api.patch(ns, &pp, &patch))
            .await
            .map_err(|e| api_err(format!("namespace {ns}"), e))?;
        self.wrote("apply", &format!("Namespace/{ns}"), ns);
        let mut live = self.live.lock().expect("live");
        live.namespaces
            .insert(ns.to_string(), (labels, annotations));
        Ok(())
    }

    async fn delete_async(&self, p: &Planned, dry_run: bool) -> Result<(), TargetError> {
        let ns = p.namespace.clone().unwrap_or_else(|| p.name.clone());
        self.delete_namespace(&ns, &p.reason, dry_run).await
    }

    /// Delete a staging's namespace, recording `reason` on it first.
    async fn delete_namespace(
        &self,
        ns: &str,
        reason: &str,
        dry_run: bool,
    ) -> Result<(), TargetError> {
        let ns = ns.to_string();
        if dry_run {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        // Record why before the namespace goes, for whoever looks at it while it terminates.
        let annotation =
            serde_json::json!({ "metadata": { "annotations": { DELETE_REASON: reason } } });
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&annotation));
        match self.call(|| api.patch(&ns, &pp, &patch)).await {
            Ok(_) => self.wrote("record delete reason", &format!("Namespace/{ns}"), &ns),
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(api_err(format!("namespace {ns}"), e)),
        }
        let dp = DeleteParams::background();
        match self.call(|| api.delete(&ns, &dp)).await {
            Ok(_) => {
                self.wrote("delete", &format!("Namespace/{ns}"), &ns);
                info!(namespace = %ns, reason, "staging deleted");
                Ok(())
            }
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(api_err(format!("namespace {ns}"), e)),
        }
    }

    async fn status_async(&self) -> Result<Vec<StagingStatus>, TargetError> {
        let list = self.my_namespaces().await?;
        let mut out = Vec::new();
        for ns in list {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            let ann = ns.metadata.annotations.clone().unwrap_or_default();
            let Ok(staging) = state::observed(&name, &labels, &ann) else {
                continue;
            };
            out.push(StagingStatus {
                staging,
                created: ns
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .and_then(|t| t.0.to_string().parse().ok()),
                links: state::links(&ann),
                deleting: ns
                    .metadata
                    .deletion_timestamp
                    .is_some()
                    .then(|| ann.get(DELETE_REASON).cloned().unwrap_or_default()),
            });
        }
        out.sort_by(|a, b| a.staging.name.cmp(&b.staging.name));
        Ok(out)
    }
}

impl Target for KubeTarget {
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn observe(&self) -> Result<Vec<ObservedStaging>, TargetError> {
        self.rt.block_on(self.observe_async())
    }
    fn apply(
        &self,
        staging: &Planned,
        objects: &[Object],
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError> {
        self.rt
            .block_on(self.apply_async(staging, objects, dry_run))
    }
    fn delete(&self, staging: &Planned, dry_run: bool) -> Result<(), TargetError> {
        self.rt.block_on(self.delete_async(staging, dry_run))
    }
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    fn status(&self) -> Result<Vec<StagingStatus>, TargetError> {
        self.rt.block_on(self.status_async())
    }
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}
