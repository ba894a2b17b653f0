//! Observing the cluster: from the watch cache when it answers (only what changed since the
//! last pass is looked at again, see `view`), else with metadata-only lists (every namespace in
//! one request, and per kind in use the objects labelled for this instance), sorted into this
//! instance's stagings and the rest (see `live`).

use std::collections::HashMap;
use std::sync::Arc;

use super::slim::Job;
use super::slim::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams};
use tracing::{debug, warn};

use super::cache::{Store, Touched};
use super::health::{self, Workload};
use super::live::{classify, owned_object, Live};
use super::state;
use super::view::{View, WORKLOAD_KINDS};
use super::watch::{Kept, NsEntry, ObjKey};
use super::{api_err, err, KubeTarget};
use crate::consts;
use crate::plan::Observed;
use crate::targets::TargetError;

impl KubeTarget {
    /// What the cluster holds: the view the last pass saw, updated by what the watches saw
    /// change since (no request), else listed (one request for the namespaces, one per kind in
    /// use).
    pub(super) async fn observe_async(&self) -> Result<Observed, TargetError> {
        // Taken out while the pass reads: one that fails half-way leaves none, and the next
        // builds it anew.
        let taken = self.view.lock().expect("view").take();
        let fresh = taken.is_none();
        let mut view = taken.unwrap_or_default();
        if fresh {
            *self.live.lock().expect("live") = Live::default();
        }
        let moved = self.observe_namespaces(&mut view, fresh).await?;
        self.observe_objects(&mut view, fresh || moved).await;
        let failed = self.observe_workloads(&mut view, fresh).await;
        let out = view.observed(failed.as_deref());
        *self.view.lock().expect("view") = Some(view);
        Ok(out)
    }

    /// Every namespace, sorted into this instance's and the rest; whether one came, went or
    /// changed its staging.
    async fn observe_namespaces(&self, view: &mut View, all: bool) -> Result<bool, TargetError> {
        if let Some(w) = self.watches.get() {
            settle(w, None).await;
            let moved = w.with_namespaces(|store| {
                let touched = whole_if(all, store.take_touched());
                view.namespaces(&mut self.live.lock().expect("live"), &*store, touched)
            });
            if let Some(moved) = moved {
                let (held, events) = w.size();
                debug!(held, events, "read from the watch cache");
                return Ok(moved);
            }
        }
        let listed: HashMap<String, NsEntry> = self
            .namespaces()
            .await?
            .into_iter()
            .map(|ns| {
                let name = ns.metadata.name.clone().unwrap_or_default();
                (name, classify(&ns.metadata, &self.instance))
            })
            .collect();
        let mut live = self.live.lock().expect("live");
        Ok(view.namespaces(&mut live, &listed, Touched::All))
    }

    /// The objects of every kind the namespaces record; `all`: take each kind whole.
    async fn observe_objects(&self, view: &mut View, all: bool) {
        self.live.lock().expect("live").unlistable.clear();
        view.drop_kinds(&mut self.live.lock().expect("live"), None);
        for key in view.kinds() {
            let whole = all || !view.follows(&key);
            // A kind that cannot be listed (not served any more, or forbidden) fails only the
            // stagings that render it: its objects count as unknown, so none is pruned, and a
            // create over one of them is refused as a conflict.
            if let Err(e) = self.observe_kind(view, &key, whole).await {
                warn!(kind = %key, "cannot list: {e}");
                let mut live = self.live.lock().expect("live");
                live.unlistable.insert(key.clone());
                view.drop_kinds(&mut live, Some(&key));
            }
        }
    }

    async fn observe_kind(
        &self,
        view: &mut View,
        key: &str,
        whole: bool,
    ) -> Result<(), TargetError> {
        let ar = self.resource(key).await.map_err(|e| err(key, e))?;
        if let Some(w) = self.watches.get() {
            let mut take = |store: &mut Store<ObjKey, Kept>| {
                let touched = whole_if(whole, store.take_touched());
                let mut live = self.live.lock().expect("live");
                view.objects(&mut live, key, &*store, touched, true);
            };
            if w.with_objects(key, &ar, &mut take).is_some() {
                return Ok(());
            }
            settle(w, Some(key)).await;
            if w.with_objects(key, &ar, take).is_some() {
                return Ok(());
            }
        }
        let listed = self.list_kind(key, &ar).await?;
        let mut live = self.live.lock().expect("live");
        view.objects(&mut live, key, &listed, Touched::All, false);
        Ok(())
    }

    /// How this instance's Deployments, StatefulSets and Jobs are doing: from the watches,
    /// else listed (one request per kind). The error, when they could not be read.
    async fn observe_workloads(&self, view: &mut View, all: bool) -> Option<String> {
        if let Some(w) = self.watches.get() {
            let deadline = tokio::time::Instant::now() + consts::WATCH_FIRST_LIST_WAIT;
            while w.workloads_starting() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        for index in 0..WORKLOAD_KINDS {
            let whole = all || !view.follows_workloads(index);
            let answered = self.watches.get().and_then(|w| {
                w.with_workloads(index, |store| {
                    let touched = whole_if(whole, store.take_touched());
                    view.workloads(index, &*store, touched, true);
                })
            });
            if answered.is_some() {
                continue;
            }
            match self.list_workloads(index).await {
                Ok(listed) => view.workloads(index, &listed, Touched::All, false),
                Err(e) => {
                    // Health waits; the pass goes on (its writes do not depend on it).
                    warn!("cannot read how workloads are doing: {e}");
                    view.unfollow_workloads(index);
                    return Some(e.to_string());
                }
            }
        }
        None
    }

    /// This instance's workloads of kind `index` (see [`WORKLOAD_KINDS`]), listed.
    async fn list_workloads(&self, index: usize) -> Result<HashMap<ObjKey, Workload>, TargetError> {
        let selector = state::instance_selector(&self.instance);
        let lp = ListParams::default().labels(&selector);
        let key = |m: &ObjectMeta| {
            let (ns, name) = (m.namespace.clone(), m.name.clone());
            (ns.unwrap_or_default(), name.unwrap_or_default())
        };
        let mut out = HashMap::new();
        match index {
            0 => {
                let api: Api<Deployment> = Api::all(self.client.clone());
                let listed = self.call(|| api.list(&lp)).await;
                for o in listed.map_err(|e| api_err("listing Deployments", e))? {
                    out.extend(health::deployment(&o).map(|w| (key(&o.metadata), w)));
                }
            }
            1 => {
                let api: Api<StatefulSet> = Api::all(self.client.clone());
                let listed = self.call(|| api.list(&lp)).await;
                for o in listed.map_err(|e| api_err("listing StatefulSets", e))? {
                    out.extend(health::stateful_set(&o).map(|w| (key(&o.metadata), w)));
                }
            }
            _ => {
                let api: Api<Job> = Api::all(self.client.clone());
                let listed = self.call(|| api.list(&lp)).await;
                for o in listed.map_err(|e| api_err("listing Jobs", e))? {
                    out.extend(health::job(&o).map(|w| (key(&o.metadata), w)));
                }
            }
        }
        Ok(out)
    }

    /// This instance's objects of one kind that carry octostage's full ownership record, listed.
    async fn list_kind(
        &self,
        key: &str,
        ar: &kube::discovery::ApiResource,
    ) -> Result<HashMap<ObjKey, Kept>, TargetError> {
        // Only objects labelled for this instance; ownership is then checked object by object.
        let selector = state::instance_selector(&self.instance);
        let lp = ListParams::default().labels(&selector);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), ar);
        let list = self
            .call(|| api.list_metadata(&lp))
            .await
            .map_err(|e| api_err(format!("listing {key}"), e))?;
        Ok(list
            .into_iter()
            .filter_map(|o| {
                let m = o.metadata;
                let staging = m.labels.as_ref()?.get(consts::LABEL_STAGING)?.clone();
                let live = Arc::new(owned_object(&m, &staging)?);
                Some(((m.namespace?, m.name?), Kept { staging, live }))
            })
            .collect())
    }
}

/// `Touched::All` when `whole`, else `touched`.
fn whole_if<K: Eq + std::hash::Hash>(whole: bool, touched: Touched<K>) -> Touched<K> {
    if whole {
        Touched::All
    } else {
        touched
    }
}

/// Wait, at most [`consts::WATCH_FIRST_LIST_WAIT`], while a watch makes its first listing: a
/// listing beside it would hold every object twice (with all their managed fields) at start.
async fn settle(w: &super::watch::Watches, key: Option<&str>) {
    let deadline = tokio::time::Instant::now() + consts::WATCH_FIRST_LIST_WAIT;
    while w.starting(key) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
