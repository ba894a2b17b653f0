//! Observing the cluster: from the watch cache when it answers, else with metadata-only lists
//! (every namespace in one request, and per kind in use the objects labelled for this
//! instance), sorted into this instance's stagings and the rest (see `live`).

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::{Api, DynamicObject, ListParams};
use tracing::{debug, warn};

use super::live::{classify, owned_object, Live};
use super::state;
use super::watch::{Kept, NsEntry, ObjKey};
use super::{api_err, KubeTarget};
use crate::consts;
use crate::plan::{Foreign, Observed};
use crate::targets::TargetError;

impl KubeTarget {
    /// What the cluster holds: from the watches where they can answer (no request), else
    /// listed (one request for the namespaces, one per kind in use).
    pub(super) async fn observe_async(&self) -> Result<Observed, TargetError> {
        let mut live = Live::default();
        let mut out = Observed::default();
        let mut kinds = BTreeSet::new();
        for (name, entry) in self.namespace_entries().await? {
            match entry {
                Ok((staging, l)) => {
                    kinds.extend(state::kinds(&l.annotations));
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
