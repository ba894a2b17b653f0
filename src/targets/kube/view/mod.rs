//! The observed view a long-running octostage keeps between passes. Each pass updates it from
//! the keys its watches touched since the last one, so a pass after one workload became ready
//! costs that workload, not every object of every staging. A listing (no watch yet, or one that
//! cannot answer) rebuilds the part it listed whole, through the same code: there is one way
//! to turn what the cluster holds into what a pass sees.
//!
//! Pure data: no I/O; the unit tests feed it entries and compare it with a view built anew.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::sync::Arc;

use tracing::warn;

use super::cache::{Store, Touched};
use super::health::{self, Workload};
use super::live::Live;
use super::state;
use super::watch::{Kept, NsEntry, ObjKey};
use crate::consts;
use crate::plan::{Foreign, Observed, Readiness, StagingRecord};

/// Where entries come from: a watch's store, or what was just listed.
pub(super) trait Entries<K, V> {
    /// Every key that has an entry.
    fn keys(&self) -> Vec<K>;
    /// The entry of `k`, if any.
    fn at(&self, k: &K) -> Option<&V>;
}

impl<K: Eq + std::hash::Hash + Clone, V: Clone> Entries<K, V> for Store<K, V> {
    fn keys(&self) -> Vec<K> {
        self.view().map(|(k, _)| k.clone()).collect()
    }
    fn at(&self, k: &K) -> Option<&V> {
        self.current(k)
    }
}

impl<K: Eq + std::hash::Hash + Clone, V> Entries<K, V> for HashMap<K, V> {
    fn keys(&self) -> Vec<K> {
        HashMap::keys(self).cloned().collect()
    }
    fn at(&self, k: &K) -> Option<&V> {
        self.get(k)
    }
}

/// Workload watches: Deployments, StatefulSets, Jobs.
pub(super) const WORKLOAD_KINDS: usize = 3;

/// A workload's place: which of the [`WORKLOAD_KINDS`] and its key.
type WorkloadKey = (usize, ObjKey);

/// What the last pass saw, kept to be updated by what changed since.
#[derive(Debug, Default)]
pub(super) struct View {
    /// This instance's stagings, by namespace.
    stagings: BTreeMap<String, Arc<StagingRecord>>,
    /// The other namespaces, and why they are not this instance's.
    foreign: BTreeMap<String, Foreign>,
    /// Per staging, its namespace and the workload kinds that namespace records.
    expect: HashMap<String, health::Expect>,
    /// Per staging, the namespaces whose record names it (two while it moves): the first is
    /// the one its health is read in.
    homes: HashMap<String, BTreeSet<String>>,
    /// The object kinds the namespaces record, with how many record each.
    kinds: BTreeMap<String, usize>,
    /// Kinds whose objects the view holds: `true` as their watch answered, `false` as listed
    /// (taken whole again next time).
    held: BTreeMap<String, bool>,
    /// Per staging, its workloads: where they are and how they are doing.
    workloads: HashMap<String, BTreeMap<WorkloadKey, (String, Workload)>>,
    /// The staging of each workload held.
    workload_of: HashMap<WorkloadKey, String>,
    /// Which workload kinds the view holds as their watch answered.
    workloads_followed: [bool; WORKLOAD_KINDS],
    /// Stagings whose readiness must be worked out again.
    affected: BTreeSet<String>,
    readiness: crate::plan::ReadinessMap,
}

impl View {
    /// The namespaces that `touched` names (all when `touched` is `All`), as `src` has them now.
    /// Returns whether a namespace came, went or changed its staging: which objects are at home
    /// may then have changed, so every kind must be taken whole.
    pub fn namespaces(
        &mut self,
        live: &mut Live,
        src: &impl Entries<String, NsEntry>,
        touched: Touched<String>,
    ) -> bool {
        let (keys, mut moved) = match touched {
            Touched::All => {
                self.stagings.clear();
                self.foreign.clear();
                self.expect.clear();
                self.homes.clear();
                self.kinds.clear();
                live.namespaces.clear();
                live.staging_namespaces.clear();
                (src.keys(), true)
            }
            Touched::Keys(k) => (k.into_iter().collect(), false),
        };
        for ns in keys {
            let label = |live: &Live| {
                live.namespaces
                    .get(&ns)
                    .and_then(|l| l.labels.get(consts::LABEL_STAGING).cloned())
            };
            let before = label(live);
            self.forget_namespace(live, &ns);
            match src.at(&ns) {
                Some(Ok((staging, l))) => self.add_namespace(live, &ns, staging, l),
                Some(Err(f)) => {
                    if matches!(f, Foreign::Unreadable(_)) {
                        warn!(namespace = %ns, "leaving alone a namespace octostage created: {f}");
                    }
                    self.foreign.insert(ns.clone(), f.clone());
                }
                None => {}
            }
            moved |= before != label(live);
        }
        moved
    }

    fn forget_namespace(&mut self, live: &mut Live, ns: &str) {
        self.foreign.remove(ns);
        let Some(l) = live.namespaces.remove(ns) else {
            return;
        };
        if let Some(staging) = self.stagings.remove(ns) {
            if let Some(homes) = self.homes.get_mut(&staging.name) {
                homes.remove(ns);
                if homes.is_empty() {
                    self.homes.remove(&staging.name);
                }
            }
            self.settle_home(live, &staging.name);
        }
        for kind in state::kinds(&l.annotations) {
            if let Some(n) = self.kinds.get_mut(&kind) {
                *n -= 1;
                if *n == 0 {
                    self.kinds.remove(&kind);
                }
            }
        }
        if let Some(s) = l.labels.get(consts::LABEL_STAGING) {
            if let Some(n) = live.staging_namespaces.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    live.staging_namespaces.remove(s);
                }
            }
        }
    }

    fn add_namespace(
        &mut self,
        live: &mut Live,
        ns: &str,
        staging: &StagingRecord,
        l: &Arc<super::live::LiveNs>,
    ) {
        for kind in state::kinds(&l.annotations) {
            *self.kinds.entry(kind).or_default() += 1;
        }
        if let Some(s) = l.labels.get(consts::LABEL_STAGING) {
            *live.staging_namespaces.entry(s.clone()).or_default() += 1;
        }
        self.stagings
            .insert(ns.to_string(), Arc::new(staging.clone()));
        live.namespaces.insert(ns.to_string(), l.clone());
        let homes = self.homes.entry(staging.name.clone()).or_default();
        homes.insert(ns.to_string());
        self.settle_home(live, &staging.name);
    }

    /// Where `staging`'s health is read: the first of its namespaces, and the workload kinds
    /// that one records.
    fn settle_home(&mut self, live: &Live, staging: &str) {
        self.affected.insert(staging.to_string());
        let home = self.homes.get(staging).and_then(|h| h.first());
        let Some((ns, l)) = home.and_then(|ns| Some((ns, live.namespaces.get(ns)?))) else {
            self.expect.remove(staging);
            return;
        };
        let expect = health::Expect {
            namespace: ns.clone(),
            kinds: health::workload_kinds(&state::kinds(&l.annotations)),
        };
        self.expect.insert(staging.to_string(), expect);
    }

    /// The object kinds the namespaces record now.
    pub fn kinds(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// Whether the objects of `key` are held as their watch last answered.
    pub fn follows(&self, key: &str) -> bool {
        self.held.get(key) == Some(&true)
    }

    /// Drop the objects of kinds no namespace records any more, and of `key` (it could not be
    /// read).
    pub fn drop_kinds(&mut self, live: &mut Live, key: Option<&str>) {
        let gone: Vec<String> = self
            .held
            .keys()
            .filter(|k| !self.kinds.contains_key(*k) || Some(k.as_str()) == key)
            .cloned()
            .collect();
        for k in gone {
            self.held.remove(&k);
            remove_kind(live, &k);
        }
    }

    /// The objects of kind `key` that `touched` names, as `src` has them now; `followed`: `src`
    /// is the kind's watch, which tells what changes from now on.
    pub fn objects(
        &mut self,
        live: &mut Live,
        key: &str,
        src: &impl Entries<ObjKey, Kept>,
        touched: Touched<ObjKey>,
        followed: bool,
    ) {
        let keys = match touched {
            Touched::All => {
                remove_kind(live, key);
                src.keys()
            }
            Touched::Keys(k) => k.into_iter().collect(),
        };
        self.held.insert(key.to_string(), followed);
        for (ns, name) in keys {
            let id = (key.to_string(), name);
            if let Some(objects) = live.objects.get_mut(&ns) {
                objects.remove(&id);
                if objects.is_empty() {
                    live.objects.remove(&ns);
                }
            }
            let Some(kept) = src.at(&(ns.clone(), id.1.clone())) else {
                continue;
            };
            // Only an object in its own staging's namespace is the staging's.
            let at_home = live
                .namespaces
                .get(&ns)
                .and_then(|n| n.labels.get(consts::LABEL_STAGING))
                == Some(&kept.staging);
            if at_home {
                live.objects
                    .entry(ns)
                    .or_default()
                    .insert(id, kept.live.clone());
            }
        }
    }

    /// Whether the workloads of kind `index` are held as their watch last answered.
    pub fn follows_workloads(&self, index: usize) -> bool {
        self.workloads_followed[index]
    }

    /// The workloads of kind `index` that `touched` names, as `src` has them now.
    pub fn workloads(
        &mut self,
        index: usize,
        src: &impl Entries<ObjKey, Workload>,
        touched: Touched<ObjKey>,
        followed: bool,
    ) {
        let keys = match touched {
            Touched::All => {
                let held: Vec<WorkloadKey> = self
                    .workload_of
                    .keys()
                    .filter(|(i, _)| *i == index)
                    .cloned()
                    .collect();
                for k in held {
                    self.forget_workload(&k);
                }
                src.keys()
            }
            Touched::Keys(k) => k.into_iter().collect(),
        };
        self.workloads_followed[index] = followed;
        for k in keys {
            let wk = (index, k);
            self.forget_workload(&wk);
            if let Some(w) = src.at(&wk.1) {
                self.affected.insert(w.staging.clone());
                self.workload_of.insert(wk.clone(), w.staging.clone());
                let namespace = wk.1 .0.clone();
                self.workloads
                    .entry(w.staging.clone())
                    .or_default()
                    .insert(wk, (namespace, w.clone()));
            }
        }
    }

    /// The workloads of kind `index` could not be read: take them whole next time.
    pub fn unfollow_workloads(&mut self, index: usize) {
        self.workloads_followed[index] = false;
    }

    fn forget_workload(&mut self, k: &WorkloadKey) {
        let Some(staging) = self.workload_of.remove(k) else {
            return;
        };
        if let Some(w) = self.workloads.get_mut(&staging) {
            w.remove(k);
            if w.is_empty() {
                self.workloads.remove(&staging);
            }
        }
        self.affected.insert(staging);
    }

    /// What a pass sees: the stagings, the other namespaces, and how each staging's workloads
    /// are doing (every one `Unknown` with `workloads_failed`: they could not be read).
    pub fn observed(&mut self, workloads_failed: Option<&str>) -> Observed {
        for s in std::mem::take(&mut self.affected) {
            let Some(e) = self.expect.get(&s) else {
                self.readiness.remove(&s);
                continue;
            };
            let one = HashMap::from([(s.clone(), e.clone())]);
            let held = self.workloads.get(&s).into_iter().flatten();
            let mut r = health::readiness(held.map(|(_, (ns, w))| (ns.as_str(), w)), &one);
            if let Some(r) = r.remove(&s) {
                self.readiness.insert(s, r);
            }
        }
        let readiness = match workloads_failed {
            None => self.readiness.clone(),
            Some(e) => self
                .expect
                .keys()
                .map(|s| (s.clone(), Readiness::Unknown(e.to_string())))
                .collect(),
        };
        Observed {
            stagings: self.stagings.values().cloned().collect(),
            foreign_namespaces: self.foreign.clone(),
            foreign_names: BTreeMap::new(),
            readiness: Some(readiness),
        }
    }
}

fn remove_kind(live: &mut Live, key: &str) {
    live.objects.retain(|_, objects| {
        objects.retain(|(k, _), _| k != key);
        !objects.is_empty()
    });
}

#[cfg(test)]
mod tests;
