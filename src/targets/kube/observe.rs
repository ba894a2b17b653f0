//! Observing the cluster: from the watch cache when it answers, else with metadata-only lists
//! (every namespace in one request, and per kind in use the objects labelled for this
//! instance), sorted into this instance's stagings and the rest (see `live`).

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::{Api, DynamicObject, ListParams};
use tracing::{debug, warn};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;

use super::health::{self, Workload};
use super::live::{classify, owned_object, Live};
use super::state;
use super::watch::{Kept, NsEntry, ObjKey};
use super::{api_err, KubeTarget};
use crate::consts;
use crate::plan::{Foreign, Observed, Readiness};
use crate::targets::TargetError;

impl KubeTarget {
    /// What the cluster holds: from the watches where they can answer (no request), else
    /// listed (one request for the namespaces, one per kind in use).
    pub(super) async fn observe_async(&self) -> Result<Observed, TargetError> {
        let mut live = Live::default();
        let mut out = Observed::default();
        let mut kinds = BTreeSet::new();
        let mut expect = std::collections::HashMap::new();
        for (name, entry) in self.namespace_entries().await? {
            match entry {
                Ok((staging, l)) => {
                    let recorded = state::kinds(&l.annotations);
                    expect.insert(
                        staging.name.clone(),
                        health::Expect {
                            namespace: name.clone(),
                            kinds: health::workload_kinds(&recorded),
                        },
                    );
                    kinds.extend(recorded);
                    if let Some(s) = l.labels.get(consts::LABEL_STAGING) {
                        *live.staging_namespaces.entry(s.clone()).or_default() += 1;
                    }
                    out.stagings.push(staging);
                    live.namespaces.insert(name, l);
                }
                Err(f) => {
                    if matches!(f, Foreign::Unreadable(_)) {
                        warn!(namespace = %name, "leaving alone a namespace octostage created: {f}");
                    }
                    out.foreign_namespaces.insert(name, f);
                }
            }
        }
        for key in kinds {
            // A kind that cannot be listed (not served any more, or forbidden) fails only the
            // stagings that render it: its objects count as unknown, so none is pruned, and a
            // create over one of them is refused as a conflict.
            let objects = match self.object_entries(&key).await {
                Ok(o) => o,
                Err(e) => {
                    warn!(kind = %key, "cannot list: {e}");
                    live.unlistable.insert(key);
                    continue;
                }
            };
            for ((ns, name), kept) in objects {
                let in_own_namespace = live
                    .namespaces
                    .get(&ns)
                    .and_then(|n| n.labels.get(consts::LABEL_STAGING))
                    == Some(&kept.staging);
                if in_own_namespace {
                    live.objects
                        .entry(ns)
                        .or_default()
                        .insert((key.clone(), name), kept.live);
                }
            }
        }
        *self.live.lock().expect("live") = live;
        out.readiness = Some(match self.workloads().await {
            Ok(workloads) => {
                health::readiness(workloads.iter().map(|(ns, w)| (ns.as_str(), w)), &expect)
            }
            Err(e) => {
                // Health waits; the pass goes on (its writes do not depend on it).
                warn!("cannot read how workloads are doing: {e}");
                expect
                    .into_keys()
                    .map(|s| (s, Readiness::Unknown(e.to_string())))
                    .collect()
            }
        });
        Ok(out)
    }

    /// This instance's Deployments, StatefulSets and Jobs, reduced to their readiness: from
    /// the watches, else listed (one request per kind).
    async fn workloads(&self) -> Result<Vec<(String, Workload)>, TargetError> {
        if let Some(w) = self.watches.get() {
            let deadline = tokio::time::Instant::now() + consts::WATCH_FIRST_LIST_WAIT;
            while w.workloads_starting() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if let Some(v) = w.workloads() {
                return Ok(v);
            }
        }
        let selector = state::instance_selector(&self.instance);
        let lp = ListParams::default().labels(&selector);
        let mut out = Vec::new();
        let d: Api<Deployment> = Api::all(self.client.clone());
        for o in self
            .call(|| d.list(&lp))
            .await
            .map_err(|e| api_err("listing Deployments", e))?
        {
            out.extend(
                health::deployment(&o).map(|w| (o.metadata.namespace.unwrap_or_default(), w)),
            );
        }
        let s: Api<StatefulSet> = Api::all(self.client.clone());
        for o in self
            .call(|| s.list(&lp))
            .await
            .map_err(|e| api_err("listing StatefulSets", e))?
        {
            out.extend(
                health::stateful_set(&o).map(|w| (o.metadata.namespace.unwrap_or_default(), w)),
            );
        }
        let j: Api<Job> = Api::all(self.client.clone());
        for o in self
            .call(|| j.list(&lp))
            .await
            .map_err(|e| api_err("listing Jobs", e))?
        {
            out.extend(health::job(&o).map(|w| (o.metadata.namespace.unwrap_or_default(), w)));
        }
        Ok(out)
    }

    /// Every namespace, sorted into this instance's and the rest.
    async fn namespace_entries(&self) -> Result<Vec<(String, NsEntry)>, TargetError> {
        if let Some(w) = self.watches.get() {
            settle(w, None).await;
            if let Some(v) = w.namespaces() {
                let (held, events) = w.size();
                debug!(held, events, "read from the watch cache");
                return Ok(v);
            }
        }
        Ok(self
            .namespaces()
            .await?
            .into_iter()
            .map(|ns| {
                let name = ns.metadata.name.clone().unwrap_or_default();
                (name, classify(&ns.metadata, &self.instance))
            })
            .collect())
    }

    /// This instance's objects of one kind that carry octostage's full ownership record.
    async fn object_entries(&self, key: &str) -> Result<Vec<(ObjKey, Kept)>, String> {
        let ar = self.resource(key).await?;
        if let Some(w) = self.watches.get() {
            if w.objects(key, &ar).is_none() {
                settle(w, Some(key)).await;
            }
            if let Some(v) = w.objects(key, &ar) {
                return Ok(v);
            }
        }
        // Only objects labelled for this instance; ownership is then checked object by object.
        let selector = state::instance_selector(&self.instance);
        let lp = ListParams::default().labels(&selector);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let list = self
            .call(|| api.list_metadata(&lp))
            .await
            .map_err(|e| api_err(format!("listing {key}"), e).to_string())?;
        Ok(list
            .into_iter()
            .filter_map(|o| {
                let m = o.metadata;
                let staging = m.labels.as_ref()?.get(consts::LABEL_STAGING)?.clone();
                let live = owned_object(&m, &staging)?;
                let live = Arc::new(live);
                Some(((m.namespace?, m.name?), Kept { staging, live }))
            })
            .collect())
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
