//! What this process applied to each staging and from which render inputs, so a pass can tell,
//! from its observation alone, that a staging still holds exactly that and skip rendering it.
//! A thousand unchanged stagings then cost a thousand comparisons, not a thousand renders (or
//! a thousand helm runs).
//!
//! Only what the object says counts: the namespace must carry the labels and record this
//! staging would get, and every object the apply left must still be there, octostage's, with
//! the content hash it applied and the same set of fields other managers own (a change there
//! may be drift: the staging is rendered again and drift is checked field by field). Anything
//! else there (an extra object, a moved namespace, a kind that could not be listed) means
//! render and compare as usual.

use std::collections::HashMap;

use super::live::Live;
use super::state;
use crate::consts;
use crate::plan::Planned;

/// One staging's last successful apply in this process.
#[derive(Debug, Clone)]
pub struct Applied {
    /// What it was rendered from (see `render::fingerprint`).
    pub fingerprint: String,
    pub namespace: String,
    /// Kinds recorded on the namespace.
    pub kinds: Vec<String>,
    /// (kind key, name) → (content hash, digest of other managers' fields) after the apply.
    pub objects: HashMap<(String, String), (String, u64)>,
}

/// Whether `p` still holds exactly what `a` applied, rendered from `fingerprint`.
pub fn holds(a: &Applied, p: &Planned, fingerprint: &str, instance: &str, live: &Live) -> bool {
    if a.fingerprint != fingerprint || p.namespace.as_deref() != Some(a.namespace.as_str()) {
        return false;
    }
    let Some(ns) = live.namespaces.get(&a.namespace) else {
        return false;
    };
    let labels = state::namespace_labels(p, instance);
    let w = state::Writing { p, usage: p.usage };
    let annotations = state::namespace_annotations(&w, &a.kinds, &ns.created);
    let same_ns = labels.iter().all(|(k, v)| ns.labels.get(k) == Some(v))
        && state::recorded(&ns.annotations) == annotations;
    if !same_ns || a.kinds.iter().any(|k| live.unlistable.contains(k)) {
        return false;
    }
    // A namespace the staging moved away from is still to be deleted.
    if live.staging_namespaces.get(&p.name).copied().unwrap_or(0) != 1 {
        return false;
    }
    let objects = live.objects.get(&a.namespace);
    if objects.map_or(0, HashMap::len) != a.objects.len() {
        return false;
    }
    a.objects.iter().all(|(id, (hash, digest))| {
        objects
            .and_then(|o| o.get(id))
            .is_some_and(|l| l.hash == *hash && l.ownership.others_digest == *digest)
    }) && ns.labels.get(consts::LABEL_STAGING) == Some(&p.name)
}
