//! Drift, read off `metadata.managedFields`: when someone else writes a field octostage
//! applies (`kubectl set image`, `kubectl edit`, a server-side apply by another field manager),
//! the API server moves that field's ownership to them. A field that octostage renders, that
//! another manager owns and that octostage no longer owns has been changed behind its back.
//!
//! This needs no request beyond the metadata listing a pass makes anyway, and no memory of past
//! applies: the object says it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

use crate::consts;

/// Who owns which fields of one object, reduced to what drift detection needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ownership {
    /// Fields octostage owns (its apply entry and its create entry, merged).
    pub ours: Value,
    /// Other managers and the fields they own outside `status`.
    pub others: Vec<(String, Value)>,
    /// Whether octostage's create (an `Update` entry) still owns fields: converted to an apply
    /// entry before the first update, so fields later dropped from a template are removed.
    pub create_entry: bool,
    /// A digest of `others`: while it stays the same, no drift can have appeared.
    pub others_digest: u64,
    /// A digest of every field octostage owns (before [`Ownership::compact`]): a field someone
    /// else changed leaves this set.
    pub ours_digest: u64,
}

impl Ownership {
    /// Read the managed fields of an object. `None` when octostage owns no field of it (it did
    /// not write it, whatever its labels say).
    pub fn read(entries: &[ManagedFieldsEntry]) -> Option<Ownership> {
        // Every watch event of an object runs this: fields are cloned only where kept, and
        // digested in place (a Deployment's managed fields are most of its bytes).
        let mut own = Ownership {
            ours: Value::Object(Default::default()),
            ..Default::default()
        };
        let mut any_ours = false;
        for e in entries {
            let fields = e.fields_v1.as_ref().map(|f| &f.0);
            if e.manager.as_deref() == Some(consts::MANAGER) {
                any_ours = true;
                if let Some(f) = fields {
                    merge(&mut own.ours, f);
                }
                own.create_entry |= e.operation.as_deref() == Some("Update");
                continue;
            }
            let Some(map) = fields.and_then(Value::as_object) else {
                continue;
            };
            let kept: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| *k != "f:status")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !kept.is_empty() {
                let manager = e.manager.clone().unwrap_or_else(|| "unknown".into());
                own.others.push((manager, Value::Object(kept)));
            }
        }
        own.others_digest = digest(own.others.iter().map(|(m, f)| (m.as_str(), f)));
        own.ours_digest = digest(std::iter::once(("", &own.ours)));
        any_ours.then_some(own)
    }

    /// Whether drift may have appeared between `self` and `later` (of one object): a field
    /// left octostage's set, which is what changing its value does (the changer takes it).
    /// Another manager's fields beside octostage's (an annotation of its own, a status) and
    /// fields shared at the same value are not drift.
    pub fn may_have_drifted(&self, later: &Ownership) -> bool {
        self.ours_digest != later.ours_digest
    }

    /// Drop what drift detection never reads: octostage's fields away from every field
    /// another manager owns. `drift` answers the same; an object takes a few bytes instead of
    /// a tree of every field it has.
    pub fn compact(&mut self) {
        let theirs: Vec<&Value> = self.others.iter().map(|(_, f)| f).collect();
        self.ours = restrict(&self.ours, &theirs);
    }
}

fn digest<'a>(sets: impl Iterator<Item = (&'a str, &'a Value)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (manager, fields) in sets {
        manager.hash(&mut h);
        hash_value(fields, &mut h);
    }
    h.finish()
}

/// Hash a field set as its text would hash, without writing the text: each kind of value is
/// told apart by a tag, and maps keep the order they were read in.
fn hash_value(v: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            a.iter().for_each(|x| hash_value(x, h));
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            for (k, x) in m {
                k.hash(h);
                hash_value(x, h);
            }
        }
    }
}

/// The part of field set `ours` along the paths of the field sets `theirs`.
fn restrict(ours: &Value, theirs: &[&Value]) -> Value {
    let Some(map) = ours.as_object() else {
        return Value::Null;
    };
    let mut out = serde_json::Map::new();
    for (k, sub) in map {
        let next: Vec<&Value> = theirs.iter().filter_map(|t| t.get(k)).collect();
        if !next.is_empty() {
            out.insert(k.clone(), restrict(sub, &next));
        }
    }
    Value::Object(out)
}

/// One drifted field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// `spec.template.spec.containers[name=web].image`.
    pub field: String,
    /// The field manager that owns it now.
    pub manager: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} changed by {}", self.field, self.manager)
    }
}

/// The fields of `rendered` that another manager took over from octostage.
pub fn drift(rendered: &serde_json::Map<String, Value>, own: &Ownership) -> Vec<Drift> {
    let mut out = Vec::new();
    let rendered = Value::Object(rendered.clone());
    for (manager, fields) in &own.others {
        walk(fields, &rendered, Some(&own.ours), "", manager, &mut out);
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out.dedup();
    out
}

/// Walk a manager's field set `theirs` alongside the rendered value and octostage's field set.
fn walk(
    theirs: &Value,
    rendered: &Value,
    ours: Option<&Value>,
    path: &str,
    manager: &str,
    out: &mut Vec<Drift>,
) {
    let Some(children) = theirs.as_object() else {
        return;
    };
    let leaf = children.keys().all(|k| k == ".");
    if leaf {
        if ours.is_none() && !path.is_empty() {
            out.push(Drift {
                field: path.trim_start_matches('.').to_string(),
                manager: manager.to_string(),
            });
        }
        return;
    }
    for (key, sub) in children {
        if key == "." {
            continue;
        }
        let Some((next, label)) = step(rendered, key) else {
            // Octostage does not render this field: it is theirs to have.
            continue;
        };
        let ours_sub = ours.and_then(|o| o.get(key));
        walk(sub, next, ours_sub, &format!("{path}{label}"), manager, out);
    }
}

/// The part of `rendered` a managed-fields key names, and how to show it.
fn step<'a>(rendered: &'a Value, key: &str) -> Option<(&'a Value, String)> {
    if let Some(name) = key.strip_prefix("f:") {
        return rendered.get(name).map(|v| (v, format!(".{name}")));
    }
    if let Some(k) = key.strip_prefix("k:") {
        let want: serde_json::Map<String, Value> = serde_json::from_str(k).ok()?;
        let item = rendered
            .as_array()?
            .iter()
            .find(|item| want.iter().all(|(f, v)| item.get(f) == Some(v)))?;
        let label: Vec<String> = want
            .iter()
            .map(|(f, v)| format!("{f}={}", v.as_str().map_or(v.to_string(), str::to_string)))
            .collect();
        return Some((item, format!("[{}]", label.join(","))));
    }
    if let Some(v) = key.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        let item = rendered.as_array()?.iter().find(|x| **x == want)?;
        return Some((item, format!("[{v}]")));
    }
    if let Some(i) = key.strip_prefix("i:") {
        let i: usize = i.parse().ok()?;
        return rendered.as_array()?.get(i).map(|v| (v, format!("[{i}]")));
    }
    None
}

/// Whether `rendered` leaves out a field that octostage's create entry (`created`, a field
/// set) owns: only then must that entry become an apply entry before the update, or the
/// dropped field would stay.
pub fn drops_created_fields(rendered: &serde_json::Map<String, Value>, created: &Value) -> bool {
    fn missing(fields: &Value, rendered: &Value) -> bool {
        let Some(children) = fields.as_object() else {
            return false;
        };
        children
            .iter()
            .filter(|(k, _)| k.as_str() != ".")
            .any(|(k, sub)| match step(rendered, k) {
                None => true,
                Some((next, _)) => missing(sub, next),
            })
    }
    let mut fields = created.clone();
    if let Some(m) = fields.as_object_mut() {
        m.remove("f:status");
    }
    missing(&fields, &Value::Object(rendered.clone()))
}

/// Merge field set `b` into `a`.
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            for (k, v) in bm {
                merge(
                    am.entry(k.clone())
                        .or_insert(Value::Object(Default::default())),
                    v,
                );
            }
        }
        (a, b) if a.is_null() => *a = b.clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    fn entry(manager: &str, op: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    fn web() -> serde_json::Map<String, Value> {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": "web:1"}]}}}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn containers(fields: Value) -> Value {
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": fields}}}}})
    }

    #[test]
    fn a_field_taken_over_by_another_manager_is_drift() {
        let own = Ownership::read(&[
            entry("octostage", "Apply", json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}}}}}}})),
            entry("kubectl-set", "Update", containers(json!({"f:image": {}}))),
            entry("kube-controller-manager", "Update", json!({"f:status": {"f:replicas": {}}, "f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}})),
        ])
        .unwrap();
        let d = drift(&web(), &own);
        assert_eq!(
            d,
            [Drift {
                field: "spec.template.spec.containers[name=web].image".into(),
                manager: "kubectl-set".into()
            }]
        );
    }

    #[test]
    fn shared_fields_and_fields_octostage_does_not_render_are_not_drift() {
        let own = Ownership::read(&[
            entry(
                "octostage",
                "Apply",
                containers(json!({"f:image": {}, "f:name": {}})),
            ),
            // Same value applied by someone else: both own it.
            entry("other", "Apply", containers(json!({"f:image": {}}))),
            // A field octostage never renders.
            entry("kubectl-edit", "Update", containers(json!({"f:env": {}}))),
        ])
        .unwrap();
        assert!(drift(&web(), &own).is_empty());
    }

    #[test]
    fn a_compact_ownership_finds_the_same_drift_in_less() {
        let entries = [
            entry(
                "octostage",
                "Apply",
                json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}),
            ),
            entry("kubectl-set", "Update", containers(json!({"f:image": {}}))),
            entry(
                "kubectl-edit",
                "Update",
                json!({"f:metadata": {"f:labels": {"f:x": {}}}}),
            ),
        ];
        let mut own = Ownership::read(&entries).unwrap();
        let full = own.clone();
        own.compact();
        assert_eq!(drift(&web(), &own), drift(&web(), &full));
        assert_eq!(
            own.ours,
            containers(json!({"f:image": {}})),
            "only the paths others own"
        );
        // Taken over: drift in both.
        let mut taken = entries.clone();
        taken[0] = entry("octostage", "Apply", json!({"f:spec": {"f:replicas": {}}}));
        let mut own = Ownership::read(&taken).unwrap();
        let full = own.clone();
        own.compact();
        assert_eq!(drift(&web(), &own), drift(&web(), &full));
        assert_eq!(drift(&web(), &own).len(), 1);
        assert_ne!(
            own.others_digest,
            Ownership::read(&entries[..1]).unwrap().others_digest
        );
    }

    #[test]
    fn a_create_entry_needs_converting_only_when_a_field_is_dropped() {
        let created = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}});
        assert!(!drops_created_fields(&web(), &created));
        let mut fewer = web();
        fewer["spec"].as_object_mut().unwrap().remove("replicas");
        assert!(drops_created_fields(&fewer, &created));
    }

    #[test]
    fn an_object_octostage_owns_no_field_of_is_not_its() {
        assert!(Ownership::read(&[entry("kubectl", "Update", json!({"f:data": {}}))]).is_none());
        let created =
            Ownership::read(&[entry("octostage", "Update", json!({"f:data": {}}))]).unwrap();
        assert!(created.create_entry);
    }

    #[test]
    fn only_a_change_along_octostages_fields_may_be_drift() {
        let ours = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}});
        let read = |entries: &[ManagedFieldsEntry]| {
            let mut o = Ownership::read(entries).unwrap();
            o.compact();
            o
        };
        let before = read(&[entry("octostage", "Apply", ours.clone())]);
        // Another manager's annotation, and its status: no field of octostage's moves.
        let annotated = read(&[
            entry("octostage", "Apply", ours.clone()),
            entry(
                "autoscaler",
                "Update",
                json!({"f:metadata": {"f:annotations": {"f:touched": {}}}}),
            ),
            entry(
                "kube-controller-manager",
                "Update",
                json!({"f:status": {"f:replicas": {}}}),
            ),
        ]);
        assert!(!before.may_have_drifted(&annotated));
        // `kubectl set image`: the field leaves octostage's set.
        let taken = read(&[
            entry(
                "octostage",
                "Apply",
                json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}}}}}}}),
            ),
            entry("kubectl-set", "Update", containers(json!({"f:image": {}}))),
        ]);
        assert!(before.may_have_drifted(&taken));
        // The same value applied by someone else: shared, octostage's still.
        let shared = read(&[
            entry("octostage", "Apply", ours),
            entry("other", "Apply", containers(json!({"f:image": {}}))),
        ]);
        assert!(!before.may_have_drifted(&shared));
    }
}
