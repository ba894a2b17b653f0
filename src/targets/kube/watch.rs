//! The live view a long-running octostage keeps of the cluster: one metadata-only watch of
//! namespaces and one per kind of object in use (labelled for this instance), each feeding a
//! [`Store`] with only what a pass needs. A pass that changes nothing then reads the stores and
//! sends no request; a `run --once`, which would pay a full listing to start a watch, lists.
//!
//! Each watch lists, then follows changes. On any error it marks its store unusable (passes
//! list instead), backs off and lists again: after an error the store is never trusted on the
//! assumption that nothing was missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::slim::Job;
use super::slim::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::ApiResource;
use kube::runtime::watcher::{self};
use kube::Client;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::cache::Store;
use super::follow::{follow, Tell};
use super::health::{self, Workload};
use super::live::{self, LiveNs, LiveObject};
use crate::consts;
use crate::plan::{Foreign, StagingRecord};
use crate::targets::Dirty;

/// A namespace as the store keeps it: already sorted into this instance's or not.
pub type NsEntry = Result<(StagingRecord, Arc<LiveNs>), Foreign>;

/// An object of this instance as the store keeps it: the staging its labels name, and what a
/// pass needs of it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub staging: String,
    /// Shared with every pass that reads it.
    pub live: Arc<LiveObject>,
}

/// A namespaced object's key.
pub type ObjKey = (String, String);

type Shared<K, V> = Arc<Mutex<Store<K, V>>>;

/// One kind's watch.
struct KindWatch {
    store: Shared<ObjKey, Kept>,
    restart: Arc<Notify>,
}

/// The watches of one kube target.
pub struct Watches {
    client: Client,
    instance: String,
    namespaces: Shared<String, NsEntry>,
    ns_restart: Arc<Notify>,
    kinds: Mutex<HashMap<String, KindWatch>>,
    /// Deployments, StatefulSets and Jobs of this instance, reduced to their readiness.
    workloads: [(Shared<ObjKey, Workload>, Arc<Notify>); 3],
    /// Told when a workload's readiness changes: a pass may have a health to record.
    pub changed: Arc<Notify>,
    /// Which stagings changed since the controller last asked (see [`Dirty`]).
    pub dirty: Arc<Mutex<Dirty>>,
    stop: CancellationToken,
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Watches {
    /// Stop every watch; the stores keep what they hold.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Start watching namespaces. `client` must allow reads longer than [`WATCH_TIMEOUT_SECS`].
    pub fn start(client: Client, instance: &str) -> Watches {
        let w = Watches {
            client,
            instance: instance.to_string(),
            namespaces: Shared::default(),
            ns_restart: Arc::new(Notify::new()),
            kinds: Mutex::default(),
            workloads: Default::default(),
            changed: Arc::new(Notify::new()),
            dirty: Arc::default(),
            stop: CancellationToken::new(),
        };
        w.follow_workloads();
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(w.client.clone());
        let inst = w.instance.clone();
        let tell = Tell::new(&w.changed, &w.dirty);
        tokio::spawn(follow(
            api,
            watcher::Config::default(),
            w.namespaces.clone(),
            w.ns_restart.clone(),
            w.stop.clone(),
            tell.clone(),
            move |o: &PartialObjectMeta<Namespace>| {
                let m = &o.metadata;
                let name = m.name.clone().unwrap_or_default();
                let entry = live::classify(m, &inst);
                (name, Some(entry))
            },
            move |a: Option<&NsEntry>, b: Option<&NsEntry>| {
                let before = a.and_then(|e| e.as_ref().ok());
                let after = b.and_then(|e| e.as_ref().ok());
                let asked =
                    |e: Option<&(StagingRecord, Arc<LiveNs>)>| e.map(|(r, _)| r.requests.clone());
                let now = asked(after);
                let requested = now.as_ref().is_some_and(|r| !r.is_empty()) && asked(before) != now;
                // A staging's namespace deleted by someone else: its pass must see it gone.
                let deleted = before.is_some() && after.is_none();
                if requested || deleted {
                    if let Some((r, _)) = before.or(after) {
                        tell.staging(
                            &r.name,
                            if requested {
                                "a request"
                            } else {
                                "its namespace deleted"
                            },
                        );
                    }
                }
            },
        ));
        w
    }

    fn follow_workloads(&self) {
        let selector = super::state::instance_selector(&self.instance);
        let config = watcher::Config::default().labels(&selector);
        let [(d, dr), (s, sr), (j, jr)] = &self.workloads;
        let tell = Tell::new(&self.changed, &self.dirty);
        let changed = |t: Tell| {
            move |a: Option<&Workload>, b: Option<&Workload>| {
                if a.map(|w| &w.readiness) != b.map(|w| &w.readiness) {
                    if let Some(w) = b.or(a) {
                        t.health(&w.staging);
                    }
                }
            }
        };
        tokio::spawn(follow(
            Api::<Deployment>::all(self.client.clone()),
            config.clone(),
            d.clone(),
            dr.clone(),
            self.stop.clone(),
            tell.clone(),
            |o: &Deployment| (obj_key(&o.metadata), health::deployment(o)),
            changed(tell.clone()),
        ));
        tokio::spawn(follow(
            Api::<StatefulSet>::all(self.client.clone()),
            config.clone(),
            s.clone(),
            sr.clone(),
            self.stop.clone(),
            tell.clone(),
            |o: &StatefulSet| (obj_key(&o.metadata), health::stateful_set(o)),
            changed(tell.clone()),
        ));
        tokio::spawn(follow(
            Api::<Job>::all(self.client.clone()),
            config,
            j.clone(),
            jr.clone(),
            self.stop.clone(),
            tell.clone(),
            |o: &Job| (obj_key(&o.metadata), health::job(o)),
            changed(tell),
        ));
    }

    /// This instance's workloads (namespace, reduced), or `None` when a watch cannot answer.
    pub fn workloads(&self) -> Option<Vec<(String, Workload)>> {
        let mut out = Vec::new();
        for (store, restart) in &self.workloads {
            out.extend(
                read(store, restart)?
                    .into_iter()
                    .map(|((ns, _), w)| (ns, w)),
            );
        }
        Some(out)
    }

    /// `f` of the store of workload kind `index` (see [`super::view::WORKLOAD_KINDS`]), or
    /// `None` when its watch cannot answer.
    pub fn with_workloads<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut Store<ObjKey, Workload>) -> R,
    ) -> Option<R> {
        let (store, restart) = &self.workloads[index];
        answer(store, restart, f)
    }

    /// `f` of the namespace store, or `None` when its watch cannot answer.
    pub fn with_namespaces<R>(
        &self,
        f: impl FnOnce(&mut Store<String, NsEntry>) -> R,
    ) -> Option<R> {
        answer(&self.namespaces, &self.ns_restart, f)
    }

    /// `f` of the store of kind `key`, or `None` when its watch cannot answer yet (it is started
    /// on first use).
    pub fn with_objects<R>(
        &self,
        key: &str,
        resource: &ApiResource,
        f: impl FnOnce(&mut Store<ObjKey, Kept>) -> R,
    ) -> Option<R> {
        let mut kinds = self.kinds.lock().expect("kinds");
        let kw = kinds
            .entry(key.to_string())
            .or_insert_with(|| self.follow_kind(key, resource));
        answer(&kw.store, &kw.restart, f)
    }

    /// Whether a workload watch is still making its first listing.
    pub fn workloads_starting(&self) -> bool {
        self.workloads
            .iter()
            .any(|(s, _)| s.lock().expect("store").starting())
    }

    /// Whether the namespace watch, or the watch of kind `key`, is still making its first
    /// listing.
    pub fn starting(&self, key: Option<&str>) -> bool {
        match key {
            None => self.namespaces.lock().expect("store").starting(),
            Some(k) => self
                .kinds
                .lock()
                .expect("kinds")
                .get(k)
                .is_some_and(|kw| kw.store.lock().expect("store").starting()),
        }
    }

    fn follow_kind(&self, key: &str, resource: &ApiResource) -> KindWatch {
        debug!(kind = key, "watching");
        let kw = KindWatch {
            store: Shared::default(),
            restart: Arc::new(Notify::new()),
        };
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), resource);
        let selector = super::state::instance_selector(&self.instance);
        let tell = Tell::new(&self.changed, &self.dirty);
        tokio::spawn(follow(
            api,
            watcher::Config::default().labels(&selector),
            kw.store.clone(),
            kw.restart.clone(),
            self.stop.clone(),
            tell.clone(),
            |o: &PartialObjectMeta<DynamicObject>| (obj_key(&o.metadata), kept(&o.metadata)),
            move |a: Option<&Kept>, b: Option<&Kept>| {
                // Someone else deleted an object of a staging, took it over, or changed what
                // octostage applied (its hash or its fields: possible drift): that staging's
                // pass checks it. octostage's own writes are in the store already, so their
                // echo compares equal; another manager's fields of its own are no drift.
                let same = |a: &Kept, b: &Kept| {
                    a.staging == b.staging
                        && a.live.hash == b.live.hash
                        && !a.live.ownership.may_have_drifted(&b.live.ownership)
                };
                match (a, b) {
                    (Some(a), Some(b)) if same(a, b) => {}
                    (None, None) => {}
                    (a, b) => {
                        for k in a.into_iter().chain(b) {
                            tell.staging(&k.staging, "an object changed by someone else");
                        }
                    }
                }
            },
        ));
        kw
    }

    /// Record octostage's write of a namespace: what it returned, or `None` once deleted.
    pub fn wrote_namespace(&self, name: &str, written: Option<&ObjectMeta>) {
        let (version, value) = match written {
            Some(m) => (
                m.resource_version.clone(),
                Some(live::classify(m, &self.instance)),
            ),
            None => (None, None),
        };
        self.namespaces.lock().expect("store").wrote(
            name.to_string(),
            version,
            value,
            Instant::now(),
        );
    }

    /// Record octostage's write of an object of kind `key`: what it returned, or `None` once
    /// deleted.
    pub fn wrote_object(&self, key: &str, ns: &str, name: &str, written: Option<&ObjectMeta>) {
        let kinds = self.kinds.lock().expect("kinds");
        // A kind not watched yet is listed by the next pass, which then sees the write.
        let Some(kw) = kinds.get(key) else { return };
        let (version, value) = match written {
            Some(m) => (m.resource_version.clone(), kept(m)),
            None => (None, None),
        };
        kw.store.lock().expect("store").wrote(
            (ns.to_string(), name.to_string()),
            version,
            value,
            Instant::now(),
        );
    }

    /// Namespaces and objects held, and events taken, for the logs and benchmarks.
    pub fn size(&self) -> (usize, u64) {
        let ns = self.namespaces.lock().expect("store");
        let kinds = self.kinds.lock().expect("kinds");
        kinds.values().fold((ns.len(), ns.events()), |(n, e), k| {
            let s = k.store.lock().expect("store");
            (n + s.len(), e + s.events())
        })
    }
}

fn obj_key(m: &ObjectMeta) -> ObjKey {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// What the store keeps of one object: only an object that carries octostage's full ownership
/// record, and of its managed fields only what drift detection needs.
fn kept(m: &ObjectMeta) -> Option<Kept> {
    let staging = m.labels.as_ref()?.get(consts::LABEL_STAGING)?.clone();
    let mut live = live::owned_object(m, &staging)?;
    live.compact();
    Some(Kept {
        staging,
        live: Arc::new(live),
    })
}

/// The store's view, or `None` (and a restart when a write went unconfirmed too long).
fn read<K: Clone + Eq + std::hash::Hash, V: Clone>(
    store: &Shared<K, V>,
    restart: &Notify,
) -> Option<Vec<(K, V)>> {
    answer(store, restart, |s| {
        s.view().map(|(k, v)| (k.clone(), v.clone())).collect()
    })
}

/// `f` of the store, under its lock, or `None` when it cannot answer (and a restart when a
/// write went unconfirmed too long).
fn answer<K: Clone + Eq + std::hash::Hash, V: Clone, R>(
    store: &Shared<K, V>,
    restart: &Notify,
    f: impl FnOnce(&mut Store<K, V>) -> R,
) -> Option<R> {
    let mut s = store.lock().expect("store");
    let now = Instant::now();
    if s.answers(now) {
        return Some(f(&mut s));
    }
    if s.stale(now) {
        restart.notify_one();
    }
    None
}
