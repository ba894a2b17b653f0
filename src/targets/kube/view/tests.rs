//! The view kept between passes must always equal one built anew from the same stores: a long
//! run of random events, own writes and listings, compared after each.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};

use super::*;
use crate::targets::kube::cache::Event;
use crate::targets::kube::live::{classify, owned_object};

const INSTANCE: &str = "default";

/// A small deterministic random source (no dependency, same run every time).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn owned_fields() -> Option<Vec<ManagedFieldsEntry>> {
    Some(vec![ManagedFieldsEntry {
        manager: Some("octostage".into()),
        operation: Some("Apply".into()),
        fields_v1: Some(FieldsV1(serde_json::json!({"f:metadata": {}}))),
        ..Default::default()
    }])
}

/// Namespace `ns` of staging `staging`, recording `kinds`; `foreign`: made by someone else.
fn namespace(ns: &str, staging: &str, kinds: &str, foreign: bool) -> NsEntry {
    let labels = [
        ("app.kubernetes.io/managed-by", "octostage"),
        ("octostage.dev/instance", INSTANCE),
        ("octostage.dev/environment", "shop"),
        ("octostage.dev/staging", staging),
    ];
    let record = format!(
        r#"{{"name":"{staging}","environment":"shop","branch":"{staging}","namespace":"{ns}","commit":"c","first_seen":"2026-11-26T00:00:00Z","state":"active"}}"#
    );
    let created = state::CreatedBy::new(INSTANCE, chrono::Utc::now()).to_annotation();
    let mut ann = vec![
        ("octostage.dev/record", record.as_str()),
        (state::KINDS, kinds),
    ];
    if !foreign {
        ann.push(("octostage.dev/created-by", created.as_str()));
    }
    let map = |kv: &[(&str, &str)]| {
        Some(
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let meta = ObjectMeta {
        name: Some(ns.into()),
        uid: Some(format!("u-{ns}")),
        labels: map(&labels),
        annotations: map(&ann),
        managed_fields: owned_fields(),
        ..Default::default()
    };
    classify(&meta, INSTANCE)
}

fn object(staging: &str, hash: &str) -> Kept {
    let labels = [("octostage.dev/staging", staging)];
    let meta = ObjectMeta {
        uid: Some("o".into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        annotations: Some([("octostage.dev/content-hash".to_string(), hash.to_string())].into()),
        managed_fields: owned_fields(),
        ..Default::default()
    };
    Kept {
        staging: staging.into(),
        live: Arc::new(owned_object(&meta, staging).expect("owned")),
    }
}

fn workload(staging: &str, name: &str, ready: u64) -> Workload {
    Workload {
        staging: staging.into(),
        id: format!("Deployment/{name}"),
        readiness: match ready {
            0 => Readiness::Ready,
            1 => Readiness::NotReady(format!("{name} 0/1")),
            _ => Readiness::Failed(format!("{name} failed")),
        },
    }
}

/// What a pass sees, in an order that does not depend on hashing.
fn seen(view: &mut View, live: &Live) -> String {
    let o = view.observed(None);
    let readiness: BTreeMap<_, _> = o.readiness.unwrap_or_default().into_iter().collect();
    let objects: BTreeMap<_, BTreeMap<_, _>> = live
        .objects
        .iter()
        .map(|(ns, objs)| (ns, objs.iter().map(|(k, v)| (k, &v.hash)).collect()))
        .collect();
    let namespaces: BTreeMap<_, _> = live.namespaces.iter().map(|(k, v)| (k, &v.uid)).collect();
    let counts: BTreeMap<_, _> = live.staging_namespaces.iter().collect();
    format!(
        "{:?}\n{:?}\n{readiness:?}\n{objects:?}\n{namespaces:?}\n{counts:?}\n{:?}",
        o.stagings,
        o.foreign_namespaces,
        view.kinds()
    )
}

struct Cluster {
    namespaces: Store<String, NsEntry>,
    objects: Store<ObjKey, Kept>,
    workloads: Store<ObjKey, Workload>,
    version: u64,
}

impl Cluster {
    fn version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn listed() -> Cluster {
        let t = Instant::now();
        let mut c = Cluster {
            namespaces: Store::default(),
            objects: Store::default(),
            workloads: Store::default(),
            version: 0,
        };
        c.namespaces.event(Event::Init, t);
        c.namespaces.event(Event::InitDone, t);
        c.objects.event(Event::Init, t);
        c.objects.event(Event::InitDone, t);
        c.workloads.event(Event::Init, t);
        c.workloads.event(Event::InitDone, t);
        c
    }

    /// One random change: an event, an own write or a listing of one of the stores.
    fn change(&mut self, d: &mut Dice) {
        let t = Instant::now();
        let (i, j) = (d.roll(4), d.roll(3));
        let (ns, staging) = (format!("ns-{i}"), format!("s-{}", d.roll(4)));
        let kinds = ["", "apps/v1/Deployment", "apps/v1/Deployment,v1/ConfigMap"][j as usize];
        let v = self.version();
        match d.roll(9) {
            0 => self.namespaces.event(
                Event::Apply(
                    ns.clone(),
                    v,
                    Some(namespace(&ns, &staging, kinds, d.roll(5) == 0)),
                ),
                t,
            ),
            1 => self.namespaces.event(Event::Delete(ns), t),
            2 => self.namespaces.wrote(
                ns.clone(),
                Some(v),
                Some(namespace(&ns, &staging, kinds, false)),
                t,
            ),
            3 => {
                let k = (ns, format!("o-{j}"));
                self.objects.event(
                    Event::Apply(k, v, Some(object(&staging, &d.roll(3).to_string()))),
                    t,
                )
            }
            4 => self.objects.event(Event::Delete((ns, format!("o-{j}"))), t),
            5 => {
                let k = (ns, format!("d-{j}"));
                self.workloads.event(
                    Event::Apply(k, v, Some(workload(&staging, &format!("d-{j}"), d.roll(3)))),
                    t,
                )
            }
            6 => self
                .workloads
                .event(Event::Delete((ns, format!("d-{j}"))), t),
            7 => self.objects.wrote((ns, format!("o-{j}")), None, None, t),
            _ => {
                // A listing again: what it finds replaces everything.
                let keep: Vec<_> = self
                    .workloads
                    .view()
                    .map(|(k, w)| (k.clone(), w.clone()))
                    .collect();
                self.workloads.event(Event::Init, t);
                for (k, w) in keep.into_iter().filter(|_| d.roll(4) != 0) {
                    let v = self.version();
                    self.workloads.event(Event::InitApply(k, v, Some(w)), t);
                }
                self.workloads.event(Event::InitDone, t);
            }
        }
    }

    /// `view` updated by what changed (`all`: taken whole).
    fn update(&mut self, view: &mut View, live: &mut Live, all: bool) {
        let t = self.namespaces.take_touched();
        let moved = view.namespaces(live, &self.namespaces, if all { Touched::All } else { t });
        view.drop_kinds(live, None);
        // One store stands for every kind: only the kinds the namespaces record count.
        let objects = self.objects.take_touched();
        for key in view.kinds() {
            let whole = all || moved || !view.follows(&key);
            let t = if whole { Touched::All } else { objects.clone() };
            view.objects(live, &key, &self.objects, t, true);
        }
        let t = self.workloads.take_touched();
        view.workloads(0, &self.workloads, if all { Touched::All } else { t }, true);
    }
}

#[test]
fn the_view_kept_between_passes_is_the_view_built_anew() {
    let mut d = Dice(7);
    let mut c = Cluster::listed();
    let (mut kept, mut kept_live) = (View::default(), Live::default());
    for step in 0..3000 {
        for _ in 0..=d.roll(3) {
            c.change(&mut d);
        }
        c.update(&mut kept, &mut kept_live, false);
        let (mut anew, mut anew_live) = (View::default(), Live::default());
        // Built anew without taking what changed from the stores: a second reader.
        let moved = anew.namespaces(&mut anew_live, &c.namespaces, Touched::All);
        assert!(moved || anew_live.namespaces.is_empty());
        for key in anew.kinds() {
            anew.objects(&mut anew_live, &key, &c.objects, Touched::All, true);
        }
        anew.workloads(0, &c.workloads, Touched::All, true);
        assert_eq!(
            seen(&mut kept, &kept_live),
            seen(&mut anew, &anew_live),
            "step {step}"
        );
    }
}
