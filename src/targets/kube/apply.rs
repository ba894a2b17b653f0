//! Writing one staging: its namespace, its objects, prunes and deletions, each write conditional
//! on the very object octostage created (its UID), so nothing else is ever adopted, overwritten
//! or deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::discovery::ApiResource;
use serde_json::json;
use tracing::info;

use super::drift::{drift, drops_created_fields, Drift};
use super::observe::{LiveNs, LiveObject};
use super::retry::{already_exists, not_found, precondition};
use super::state::{self, CreatedBy};
use super::{api_err, err, KubeTarget};
use crate::consts;
use crate::plan::Planned;
use crate::render::{object_id, Object};
use crate::targets::{Change, ChangeKind, TargetError};

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
    pub(super) async fn apply_async(
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
            .ensure_namespace(p, &ns, &union, live_ns.as_ref(), dry_run, &mut changes)
            .await?;
        for r in &rendered {
            let live = live_objects.get(&(r.key.clone(), r.name.clone()));
            if let Some(c) = self.apply_object(&ns, r, live, dry_run).await? {
                changes.push(c);
            }
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
        if let Some(l) = ns_live.filter(|_| new_kinds.len() != union.len()) {
            // Everything of the dropped kinds is pruned: stop listing them.
            let kinds: Vec<String> = new_kinds.into_iter().collect();
            self.apply_namespace(p, &ns, &kinds, &l, dry_run).await?;
        }
        self.leave_old_namespaces(p, &ns, dry_run, &mut changes)
            .await?;
        Ok(changes)
    }

    /// Create the namespace if octostage does not hold it yet (refused when anything of that
    /// name exists), else apply what changed on it. Its live state after the pass.
    async fn ensure_namespace(
        &self,
        p: &Planned,
        ns: &str,
        kinds: &[String],
        live: Option<&LiveNs>,
        dry_run: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Option<LiveNs>, TargetError> {
        if let Some(l) = live {
            own_staging(l, p, ns)?;
            self.apply_namespace(p, ns, kinds, l, dry_run).await?;
            return Ok(Some(l.clone()));
        }
        changes.push(Change::new(ChangeKind::Create, format!("Namespace/{ns}")));
        if dry_run {
            return Ok(None);
        }
        let created = CreatedBy::new(&self.instance, chrono::Utc::now());
        let labels = state::namespace_labels(p, &self.instance);
        let annotations = state::namespace_annotations(p, kinds, &created);
        let body: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": ns, "labels": labels, "annotations": annotations },
        }))
        .map_err(|e| err(format!("namespace {ns}"), e))?;
        let api: Api<Namespace> = Api::all(self.client.clone());
        let pp = PostParams {
            field_manager: Some(consts::MANAGER.into()),
            ..Default::default()
        };
        let made = match self.call(|| api.create(&pp, &body)).await {
            Ok(n) => n,
            Err(e) if already_exists(&e) => {
                return Err(TargetError::Conflict {
                    what: format!("namespace {ns:?}"),
                    message: crate::plan::Foreign::NotCreated.to_string(),
                })
            }
            Err(e) => return Err(api_err(format!("namespace {ns}"), e)),
        };
        self.wrote("create", &format!("Namespace/{ns}"), ns);
        let l = LiveNs {
            uid: made.metadata.uid.clone().unwrap_or_default(),
            labels,
            annotations,
            created,
            convert: made.metadata.managed_fields.clone(),
        };
        self.live
            .lock()
            .expect("live")
            .namespaces
            .insert(ns.to_string(), l.clone());
        Ok(Some(l))
    }

    /// Apply the namespace's labels and annotations when they differ from what it carries,
    /// on the namespace octostage created (its UID).
    async fn apply_namespace(
        &self,
        p: &Planned,
        ns: &str,
        kinds: &[String],
        live: &LiveNs,
        dry_run: bool,
    ) -> Result<(), TargetError> {
        let labels = state::namespace_labels(p, &self.instance);
        let annotations = state::namespace_annotations(p, kinds, &live.created);
        let same = labels.iter().all(|(k, v)| live.labels.get(k) == Some(v))
            && state::recorded(&live.annotations) == annotations;
        if same || dry_run {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let body = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": ns, "uid": live.uid, "labels": labels, "annotations": annotations },
        });
        if let Some(fields) = &live.convert {
            self.convert_if_needed(
                &api,
                body.as_object().expect("a map"),
                &live.uid,
                fields,
                ns,
            )
            .await?;
        }
        let pp = PatchParams::apply(consts::MANAGER).force();
        let patch = Patch::Apply(&body);
        self.call(|| api.patch(ns, &pp, &patch))
            .await
            .map_err(|e| gone_or(e, format!("namespace {ns}")))?;
        self.wrote("apply", &format!("Namespace/{ns}"), ns);
        let mut live_all = self.live.lock().expect("live");
        if let Some(l) = live_all.namespaces.get_mut(ns) {
            l.labels = labels;
            l.annotations = annotations;
            l.convert = None;
        }
        Ok(())
    }

    /// Turn octostage's create entry into its apply entry when `body` drops a field the create
    /// wrote (one request, at most once per object): the apply then removes that field.
    async fn convert_if_needed<K>(
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
    ) -> Result<Option<Change>, TargetError> {
        let id = object_id(&r.body);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r.resource);
        let Some(live) = live else {
            if !dry_run {
                self.create_object(&api, ns, r).await?;
            }
            return Ok(Some(Change::new(ChangeKind::Create, id)));
        };
        let drifted: Vec<Drift> = drift(&r.body, &live.ownership);
        let kind = if live.hash != r.hash {
            ChangeKind::Update
        } else if !drifted.is_empty() {
            ChangeKind::Restore
        } else {
            return Ok(None);
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
            return Ok(Some(change));
        }
        if let Some(fields) = &live.convert {
            self.convert_if_needed(&api, &r.body, &live.uid, fields, ns)
                .await?;
        }
        let mut body = r.body.clone();
        body["metadata"]["uid"] = live.uid.clone().into();
        let pp = PatchParams::apply(consts::MANAGER).force();
        let patch = Patch::Apply(&body);
        match self
            .call_in_namespace(|| api.patch(&r.name, &pp, &patch))
            .await
        {
            Ok(_) => self.wrote("apply", &id, ns),
            // Deleted since this pass looked: created again (refused if another took its place).
            Err(e) if precondition(&e) => self.create_object(&api, ns, r).await?,
            Err(e) => return Err(api_err(format!("{ns}/{id}"), e)),
        }
        Ok(Some(change))
    }

    async fn create_object(
        &self,
        api: &Api<DynamicObject>,
        ns: &str,
        r: &Rendered,
    ) -> Result<(), TargetError> {
        let id = object_id(&r.body);
        let obj: DynamicObject = serde_json::from_value(serde_json::Value::Object(r.body.clone()))
            .map_err(|e| err(&id, e))?;
        let pp = PostParams {
            field_manager: Some(consts::MANAGER.into()),
            ..Default::default()
        };
        match self.call_in_namespace(|| api.create(&pp, &obj)).await {
            Ok(_) => {
                self.wrote("create", &id, ns);
                Ok(())
            }
            Err(e) if already_exists(&e) => Err(TargetError::Conflict {
                what: format!("{id} in namespace {ns:?}"),
                message: "exists and octostage did not create it (it lacks octostage's ownership record); octostage never adopts what it did not create: remove or rename it, or stop rendering it".into(),
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
            Ok(_) => self.wrote("prune", &id, ns),
            Err(e) if not_found(&e) || precondition(&e) => {}
            Err(e) => return Err(api_err(format!("{ns}/{id}"), e)),
        }
        Ok(change)
    }

    /// A changed namespace template moves the staging: its old namespaces go once the new one
    /// holds everything.
    async fn leave_old_namespaces(
        &self,
        p: &Planned,
        ns: &str,
        dry_run: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), TargetError> {
        let old: Vec<(String, String)> = {
            let live = self.live.lock().expect("live");
            live.namespaces
                .iter()
                .filter(|(name, l)| {
                    *name != ns && l.labels.get(consts::LABEL_STAGING) == Some(&p.name)
                })
                .map(|(name, l)| (name.clone(), l.uid.clone()))
                .collect()
        };
        for (name, uid) in old {
            changes.push(Change::new(ChangeKind::Prune, format!("Namespace/{name}")));
            if dry_run {
                continue;
            }
            self.delete_namespace(
                &name,
                &uid,
                &format!("staging {} moved to namespace {ns}", p.name),
            )
            .await?;
            self.live.lock().expect("live").namespaces.remove(&name);
        }
        Ok(())
    }

    pub(super) async fn delete_async(&self, p: &Planned, dry_run: bool) -> Result<(), TargetError> {
        let ns = p.namespace.clone().unwrap_or_else(|| p.name.clone());
        let Some(live) = self.live_of(&ns).0 else {
            // Not a namespace this pass proved octostage's: never deleted.
            return Ok(());
        };
        own_staging(&live, p, &ns)?;
        if dry_run {
            return Ok(());
        }
        self.delete_namespace(&ns, &live.uid, &p.reason()).await
    }

    /// Delete the namespace octostage created (its UID), recording `reason` on it first.
    async fn delete_namespace(&self, ns: &str, uid: &str, reason: &str) -> Result<(), TargetError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        // Record why before the namespace goes, for whoever looks at it while it terminates.
        let annotation =
            json!({ "metadata": { "uid": uid, "annotations": { state::DELETE_REASON: reason } } });
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&annotation));
        match self.call(|| api.patch(ns, &pp, &patch)).await {
            Ok(_) => self.wrote("record delete reason", &format!("Namespace/{ns}"), ns),
            Err(e) if not_found(&e) || precondition(&e) => return Ok(()),
            Err(e) => return Err(api_err(format!("namespace {ns}"), e)),
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.call(|| api.delete(ns, &dp)).await {
            Ok(_) => {
                self.wrote("delete", &format!("Namespace/{ns}"), ns);
                info!(namespace = %ns, reason, "staging deleted");
                Ok(())
            }
            Err(e) if not_found(&e) || precondition(&e) => Ok(()),
            Err(e) => Err(api_err(format!("namespace {ns}"), e)),
        }
    }
}

/// A namespace of this instance is one staging's: another staging never writes into it or
/// deletes it (the planner keeps them apart; this is the last line).
fn own_staging(l: &LiveNs, p: &Planned, ns: &str) -> Result<(), TargetError> {
    match l.labels.get(consts::LABEL_STAGING) {
        Some(s) if *s == p.name => Ok(()),
        other => Err(TargetError::Conflict {
            what: format!("namespace {ns:?}"),
            message: format!(
                "belongs to staging {:?} of this instance, not to {:?}; nothing was written",
                other.map(String::as_str).unwrap_or("?"),
                p.name
            ),
        }),
    }
}

/// An error of a write conditional on a UID: the object vanished or was replaced.
fn gone_or(e: kube::Error, what: String) -> TargetError {
    if precondition(&e) || not_found(&e) {
        TargetError::Conflict {
            what,
            message: "is no longer the one octostage created (deleted or replaced since this pass looked); nothing was written, the next pass looks again".into(),
        }
    } else {
        api_err(what, e)
    }
}
