//! A staging's namespace: created once (never over an existing one), its labels and record
//! applied on the very namespace octostage created (its UID), and deleted only when this pass
//! proved it octostage's, with the reason recorded on it first.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tracing::info;

use super::apply::gone_or;
use super::live::LiveNs;
use super::retry::{already_exists, not_found, precondition};
use super::state::{self, CreatedBy};
use super::{api_err, err, KubeTarget};
use crate::consts;
use crate::plan::Planned;
use crate::targets::{Change, ChangeKind, Clash, TargetError};

impl KubeTarget {
    /// Tell the watch cache what a write of a namespace returned (`None`: it is gone), so the
    /// next pass sees it before the watch does.
    fn seen_namespace(&self, name: &str, written: Option<&ObjectMeta>) {
        if let Some(w) = self.watches.get() {
            w.wrote_namespace(name, written);
        }
    }

    /// Create the namespace if octostage does not hold it yet (refused when anything of that
    /// name exists), else apply what changed on it. Its live state after the pass.
    pub(super) async fn ensure_namespace(
        &self,
        w: &state::Writing<'_>,
        ns: &str,
        kinds: &[String],
        live: Option<&LiveNs>,
        dry_run: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Option<LiveNs>, TargetError> {
        if let Some(l) = live {
            own_staging(l, w.p, ns)?;
            self.apply_namespace(w, ns, kinds, l, dry_run).await?;
            return Ok(Some(l.clone()));
        }
        changes.push(Change::new(ChangeKind::Create, format!("Namespace/{ns}")));
        if dry_run {
            return Ok(None);
        }
        let created = CreatedBy::new(&self.instance, chrono::Utc::now());
        let labels = state::namespace_labels(w.p, &self.instance);
        let annotations = state::namespace_annotations(w, kinds, &created);
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
                    whose: Clash::Foreign(crate::plan::Foreign::NotCreated),
                })
            }
            Err(e) => return Err(api_err(format!("namespace {ns}"), e)),
        };
        self.wrote("create", &format!("Namespace/{ns}"), ns);
        self.seen_namespace(ns, Some(&made.metadata));
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
            .insert(ns.to_string(), Arc::new(l.clone()));
        Ok(Some(l))
    }

    /// Apply the namespace's labels and annotations when they differ from what it carries,
    /// on the namespace octostage created (its UID).
    pub(super) async fn apply_namespace(
        &self,
        w: &state::Writing<'_>,
        ns: &str,
        kinds: &[String],
        live: &LiveNs,
        dry_run: bool,
    ) -> Result<(), TargetError> {
        let labels = state::namespace_labels(w.p, &self.instance);
        let annotations = state::namespace_annotations(w, kinds, &live.created);
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
        let applied = self
            .call(|| api.patch(ns, &pp, &patch))
            .await
            .map_err(|e| gone_or(e, format!("namespace {ns}")))?;
        self.wrote("apply", &format!("Namespace/{ns}"), ns);
        self.seen_namespace(ns, Some(&applied.metadata));
        let mut live_all = self.live.lock().expect("live");
        if let Some(l) = live_all.namespaces.get_mut(ns).map(Arc::make_mut) {
            l.labels = labels;
            l.annotations = annotations;
            l.convert = None;
        }
        Ok(())
    }

    /// A changed namespace template moves the staging: its old namespaces go once the new one
    /// holds everything.
    pub(super) async fn leave_old_namespaces(
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
        self.applied.lock().expect("applied").remove(&p.name);
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
            Ok(n) => {
                self.wrote("record delete reason", &format!("Namespace/{ns}"), ns);
                self.seen_namespace(ns, Some(&n.metadata));
            }
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
            Ok(gone) => {
                self.wrote("delete", &format!("Namespace/{ns}"), ns);
                let left = gone.left();
                self.seen_namespace(ns, left.as_ref().map(|n| &n.metadata));
                info!(namespace = %ns, reason, "staging deleted");
                Ok(())
            }
            Err(e) if not_found(&e) || precondition(&e) => Ok(()),
            Err(e) => Err(api_err(format!("namespace {ns}"), e)),
        }
    }
}

impl KubeTarget {
    /// Write the requests annotation on the namespace of staging `name`, found and proved
    /// this instance's from a fresh listing; the UID and resourceVersion of that listing are
    /// preconditions, so a namespace replaced or changed since is not written.
    pub(super) async fn request_async(
        &self,
        name: &str,
        expected: &crate::plan::Requests,
        requests: &crate::plan::Requests,
    ) -> Result<bool, TargetError> {
        let found = self.namespaces().await?.into_iter().find_map(|ns| {
            let (staging, _) = super::live::classify(&ns.metadata, &self.instance).ok()?;
            (staging.name == name && ns.metadata.deletion_timestamp.is_none())
                .then_some((ns, staging.requests))
        });
        let Some((ns, current)) = found else {
            return Err(TargetError::Conflict {
                what: format!("staging {name:?}"),
                whose: Clash::NoSuchStaging {
                    instance: self.instance.clone(),
                },
            });
        };
        if current != *expected {
            return Ok(false);
        }
        let ns_name = ns.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_string(requests).expect("requests serialize");
        let patch = json!({ "metadata": {
            "uid": ns.metadata.uid,
            "resourceVersion": ns.metadata.resource_version,
            "annotations": { state::REQUESTS: value },
        } });
        let api: Api<Namespace> = Api::all(self.client.clone());
        let pp = PatchParams {
            field_manager: Some(crate::consts::REQUESTS_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(&patch);
        match api.patch(&ns_name, &pp, &patch).await {
            Ok(_) => {}
            // Changed since it was read (another request, a pass): read it again.
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
            Err(e) => return Err(api_err(format!("namespace {ns_name}"), e)),
        }
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.wrote("record requests", &format!("Namespace/{ns_name}"), &ns_name);
        Ok(true)
    }
}

/// A namespace of this instance is one staging's: another staging never writes into it or
/// deletes it (the planner keeps them apart; this is the last line).
pub(super) fn own_staging(l: &LiveNs, p: &Planned, ns: &str) -> Result<(), TargetError> {
    match l.labels.get(consts::LABEL_STAGING) {
        Some(s) if *s == p.name => Ok(()),
        other => Err(TargetError::Conflict {
            what: format!("namespace {ns:?}"),
            whose: Clash::OtherStaging {
                owner: other.map_or("?", String::as_str).to_string(),
                wanted: p.name.clone(),
            },
        }),
    }
}
