//! Writing one staging: its namespace, its objects, prunes and deletions, each write conditional
//! on the very object octostage created (its UID), so nothing else is ever adopted, overwritten
//! or deleted.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::discovery::ApiResource;
use serde_json::json;

use super::drift::Ownership;
use super::drift::{drift, drops_created_fields, Drift};
use super::live::{Convert, LiveObject};
use super::memo::Applied;
use super::retry::{already_exists, not_found, precondition};
use super::state;
use super::{api_err, err, KubeTarget};
use crate::consts;
use crate::plan::Planned;
use crate::render::{object_id, Object};
use crate::targets::{Change, ChangeKind, Clash, TargetError};

/// A rendered object ready to send.
struct Rendered {
    key: String,
    name: String,
    hash: String,
    body: Object,
    resource: ApiResource,
}

/// Managed fields with octostage's create entry turned into (or merged with) its apply entry,
/// so that fields later dropped from a template are removed by the next apply.
fn converted(fields: &[ManagedFieldsEntry]) -> Vec<ManagedFieldsEntry> {
    let mut out: Vec<ManagedFieldsEntry> = Vec::new();
    let mut ours: Option<ManagedFieldsEntry> = None;
    for e in fields {
        if e.manager.as_deref() != Some(consts::MANAGER) {
            out.push(e.clone());
            continue;
        }
        match &mut ours {
            None => {
                let mut e = e.clone();
                e.operation = Some("Apply".into());
                ours = Some(e);
            }
            Some(o) => {
                let mut merged = o.fields_v1.clone().map(|f| f.0).unwrap_or(json!({}));
                if let Some(f) = &e.fields_v1 {
                    merge(&mut merged, &f.0);
                }
                o.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                    merged,
                ));
            }
        }
    }
    out.extend(ours);
    out
}

fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
    if let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in bm {
            merge(am.entry(k.clone()).or_insert(json!({})), v);
        }
    }
}

impl KubeTarget {
    /// [`Self::seen_namespace`] for an object of kind `key`.
    fn seen_object(&self, key: &str, ns: &str, name: &str, written: Option<&ObjectMeta>) {
        if let Some(w) = self.watches.get() {
            w.wrote_object(key, ns, name, written);
        }
    }

    /// The managed fields of the object octostage created (`uid`), which the watch cache does
    /// not keep; none when it is gone or replaced (the write that follows then says so).
    async fn managed_fields(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        uid: &str,
    ) -> Result<Vec<ManagedFieldsEntry>, TargetError> {
        match self.call(|| api.get_metadata(name)).await {
            Ok(m) if m.metadata.uid.as_deref() == Some(uid) => {
                Ok(m.metadata.managed_fields.unwrap_or_default())
            }
            Ok(_) => Ok(Vec::new()),
            Err(e) if not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(api_err(format!("reading {name}"), e)),
        }
    }

    pub(super) async fn apply_async(
        &self,
        p: &Planned,
        r: &crate::targets::Rendered<'_>,
        dry_run: bool,
    ) -> Result<Vec<Change>, TargetError> {
        let (objects, fingerprint) = (r.objects, r.fingerprint);
        let w = state::Writing {
            p,
            usage: Some(r.usage),
        };
        // Forgotten until this apply has finished.
        self.applied.lock().expect("applied").remove(&p.name);
        let ns = p
            .namespace
            .clone()
            .ok_or_else(|| err(&p.name, "staging has no namespace"))?;
        let rendered = self.checked(objects).await?;
        let (live_ns, live_objects) = self.live_of(&ns);
        let unlistable = self.live.lock().expect("live").unlistable.clone();
        let mut new_kinds: BTreeSet<String> = rendered.iter().map(|r| r.key.clone()).collect();
        let old_kinds: BTreeSet<String> = live_ns
            .as_ref()
            .map(|l| state::kinds(&l.annotations).into_iter().collect())
            .unwrap_or_default();
        let union: Vec<String> = new_kinds.union(&old_kinds).cloned().collect();
        // Objects of a kind that could not be listed may still exist: keep recording it.
        new_kinds.extend(old_kinds.intersection(&unlistable).cloned());
        let mut changes = Vec::new();
        // The namespace first, recording every kind that may hold objects of this staging, so a
        // pass interrupted half-way still prunes next time.
        let ns_live = self
            .ensure_namespace(&w, &ns, &union, live_ns.as_deref(), dry_run, &mut changes)
            .await?;
        let mut held = std::collections::HashMap::new();
        if self
            .apply_waves(
                &ns,
                &rendered,
                &live_objects,
                dry_run,
                &mut changes,
                &mut held,
            )
            .await?
        {
            // Nothing pruned and nothing remembered: the next pass goes on from here.
            return Ok(changes);
        }
        let keep: BTreeSet<(&str, &str)> = rendered
            .iter()
            .map(|r| (r.key.as_str(), r.name.as_str()))
            .collect();
        for ((key, name), live) in &live_objects {
            if !keep.contains(&(key.as_str(), name.as_str())) {
                changes.push(self.prune(&ns, key, name, live, dry_run).await?);
            }
        }
        let kinds: Vec<String> = new_kinds.into_iter().collect();
        if let Some(l) = ns_live.filter(|_| kinds.len() != union.len()) {
            // Everything of the dropped kinds is pruned: stop listing them.
            self.apply_namespace(&w, &ns, &kinds, &l, dry_run).await?;
        }
        self.leave_old_namespaces(p, &ns, dry_run, &mut changes)
            .await?;
        if let (Some(fingerprint), false) = (fingerprint, dry_run) {
            let applied = Applied {
                fingerprint: fingerprint.to_string(),
                namespace: ns,
                kinds,
                objects: held,
            };
            self.applied
                .lock()
                .expect("applied")
                .insert(p.name.clone(), applied);
        }
        Ok(changes)
    }

    /// Apply `rendered` wave by wave; `true` when a wave waits for the one before it to be
    /// ready (the rest is left for the next pass).
    async fn apply_waves(
        &self,
        ns: &str,
        rendered: &[Rendered],
        live_objects: &super::live::LiveObjects,
        dry_run: bool,
        changes: &mut Vec<Change>,
        held: &mut std::collections::HashMap<(String, String), (String, u64)>,
    ) -> Result<bool, TargetError> {
        let waves = super::waves::waves(rendered, |r| &r.body);
        for (i, (wave, group)) in waves.iter().enumerate() {
            for &k in group {
                let r = &rendered[k];
                let id = (r.key.clone(), r.name.clone());
                let (change, digest) = self
                    .apply_object(ns, r, live_objects.get(&id).map(|l| &**l), dry_run)
                    .await?;
                changes.extend(change);
                held.insert(id, (r.hash.clone(), digest));
            }
            let Some((next, _)) = waves.get(i + 1).filter(|_| !dry_run) else {
                continue;
            };
            let ids: Vec<(&str, &str)> = group
                .iter()
                .map(|&k| (rendered[k].key.as_str(), rendered[k].name.as_str()))
                .collect();
            if let Some(why) = self.wave_blocked(ns, &ids).await? {
                let mut c = Change::new(ChangeKind::Wait, format!("wave {next}"));
                c.detail = Some(format!("after wave {wave}: {why}"));
                tracing::info!(namespace = ns, "{c}");
                changes.push(c);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Each object stamped with octostage's record, its kind checked against discovery before
    /// anything is written.
    async fn checked(&self, objects: &[Object]) -> Result<Vec<Rendered>, TargetError> {
        let mut rendered = Vec::with_capacity(objects.len());
        for o in objects {
            let mut body = o.clone();
            let key = state::kind_key(&body);
            let resource = self
                .resource(&key)
                .await
                .map_err(|e| err(object_id(&body), e))?;
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let hash = state::stamp(&mut body, &self.instance);
            rendered.push(Rendered {
                key,
                name,
                hash,
                body,
                resource,
            });
        }
        Ok(rendered)
    }

    /// Turn octostage's create entry into its apply entry when `body` drops a field the create
    /// wrote (one request, at most once per object): the apply then removes that field.
    pub(super) async fn convert_if_needed<K>(
        &self,
        api: &Api<K>,
        body: &Object,
        uid: &str,
        fields: &[ManagedFieldsEntry],
        ns: &str,
    ) -> Result<(), TargetError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let created = fields
            .iter()
            .filter(|e| {
                e.manager.as_deref() == Some(consts::MANAGER)
                    && e.operation.as_deref() == Some("Update")
            })
            .filter_map(|e| e.fields_v1.as_ref().map(|f| f.0.clone()))
            .fold(json!({}), |mut a, b| {
                merge(&mut a, &b);
                a
            });
        if !drops_created_fields(body, &created) {
            return Ok(());
        }
        let id = object_id(body);
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        let patch = json!({ "metadata": { "uid": uid, "managedFields": converted(fields) } });
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&patch));
        self.call_in_namespace(|| api.patch(name, &pp, &patch))
            .await
            .map_err(|e| gone_or(e, format!("{ns}/{id}")))?;
        self.wrote("take over own create", &id, ns);
        Ok(())
    }

    /// Create an object octostage does not hold yet (refused when one of that name exists), or
    /// apply it over the one it created when its content changed or someone changed fields
    /// octostage applies.
    async fn apply_object(
        &self,
        ns: &str,
        r: &Rendered,
        live: Option<&LiveObject>,
        dry_run: bool,
    ) -> Result<(Option<Change>, u64), TargetError> {
        let id = object_id(&r.body);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r.resource);
        let Some(live) = live else {
            let digest = match dry_run {
                true => 0,
                false => self.create_object(&api, ns, r).await?,
            };
            return Ok((Some(Change::new(ChangeKind::Create, id)), digest));
        };
        let digest = live.ownership.others_digest;
        let drifted: Vec<Drift> = drift(&r.body, &live.ownership);
        let kind = if live.hash != r.hash {
            ChangeKind::Update
        } else if !drifted.is_empty() {
            ChangeKind::Restore
        } else {
            return Ok((None, digest));
        };
        let change = Change {
            kind,
            object: id.clone(),
            detail: (!drifted.is_empty()).then(|| {
                drifted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        };
        if dry_run {
            return Ok((Some(change), digest));
        }
        let fields = match &live.convert {
            Convert::No => None,
            Convert::With(f) => Some(f.clone()),
            Convert::Fetch => Some(self.managed_fields(&api, &r.name, &live.uid).await?),
        };
        if let Some(fields) = fields {
            self.convert_if_needed(&api, &r.body, &live.uid, &fields, ns)
                .await?;
        }
        let mut body = r.body.clone();
        body["metadata"]["uid"] = live.uid.clone().into();
        let pp = PatchParams::apply(consts::MANAGER).force();
        let patch = Patch::Apply(&body);
        let digest = match self
            .call_in_namespace(|| api.patch(&r.name, &pp, &patch))
            .await
        {
            Ok(o) => {
                self.wrote("apply", &id, ns);
                self.seen_object(&r.key, ns, &r.name, Some(&o.metadata));
                others_digest(&o.metadata)
            }
            // Deleted since this pass looked: created again (refused if another took its place).
            Err(e) if precondition(&e) => self.create_object(&api, ns, r).await?,
            Err(e) => return Err(api_err(format!("{ns}/{id}"), e)),
        };
        Ok((Some(change), digest))
    }

    async fn create_object(
        &self,
        api: &Api<DynamicObject>,
        ns: &str,
        r: &Rendered,
    ) -> Result<u64, TargetError> {
        let id = object_id(&r.body);
        let obj: DynamicObject = serde_json::from_value(serde_json::Value::Object(r.body.clone()))
            .map_err(|e| err(&id, e))?;
        let pp = PostParams {
            field_manager: Some(consts::MANAGER.into()),
            ..Default::default()
        };
        match self.call_in_namespace(|| api.create(&pp, &obj)).await {
            Ok(o) => {
                self.wrote("create", &id, ns);
                self.seen_object(&r.key, ns, &r.name, Some(&o.metadata));
                Ok(others_digest(&o.metadata))
            }
            Err(e) if already_exists(&e) => Err(TargetError::Conflict {
                what: format!("{id} in namespace {ns:?}"),
                whose: Clash::NotCreated,
            }),
            Err(e) => Err(api_err(format!("{ns}/{id}"), e)),
        }
    }

    /// Delete an owned object that is no longer rendered: only the one octostage created.
    async fn prune(
        &self,
        ns: &str,
        key: &str,
        name: &str,
        live: &LiveObject,
        dry_run: bool,
    ) -> Result<Change, TargetError> {
        let (_, _, kind) = state::split_kind(key).unwrap_or(("", "", key));
        let id = format!("{kind}/{name}");
        let change = Change::new(ChangeKind::Prune, id.clone());
        if dry_run {
            return Ok(change);
        }
        let ar = self.resource(key).await.map_err(|e| err(&id, e))?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(live.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.call(|| api.delete(name, &dp)).await {
            Ok(gone) => {
                self.wrote("prune", &id, ns);
                let left = gone.left();
                self.seen_object(key, ns, name, left.as_ref().map(|o| &o.metadata));
            }
            Err(e) if not_found(&e) || precondition(&e) => {}
            Err(e) => return Err(api_err(format!("{ns}/{id}"), e)),
        }
        Ok(change)
    }
}

/// The digest of the fields other managers own, as a write returned them.
fn others_digest(m: &ObjectMeta) -> u64 {
    Ownership::read(m.managed_fields.as_deref().unwrap_or_default()).map_or(0, |o| o.others_digest)
}

/// An error of a write conditional on a UID: the object vanished or was replaced.
pub(super) fn gone_or(e: kube::Error, what: String) -> TargetError {
    if precondition(&e) || not_found(&e) {
        TargetError::Conflict {
            what,
            whose: Clash::Replaced,
        }
    } else {
        api_err(what, e)
    }
}
