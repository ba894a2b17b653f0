//! Rules that hold back what the plan would otherwise do, across the whole configuration.

use std::collections::BTreeMap;

use super::{Action, Observed, PlanError, Planned, State};

/// Turn a deletion into a held noop, saying why and how to confirm it.
pub fn hold(p: &mut Planned, why: &str) {
    p.action = Action::Noop;
    p.state = p.observed_state.or(Some(State::Active));
    p.held = true;
    p.reason = format!(
        "{}, but deletion held: {why}; if that is right, run once with --confirm-deletions",
        p.reason
    );
}

/// Two stagings with one name or one namespace would overwrite each other forever: both are
/// blocked, naming each other, and neither is written.
pub fn collisions(stagings: &mut [Planned]) {
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut by_namespace: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in stagings.iter().enumerate() {
        if !p.exists_after() {
            continue;
        }
        by_name.entry(p.name.clone()).or_default().push(i);
        if let Some(ns) = &p.namespace {
            by_namespace.entry(ns.clone()).or_default().push(i);
        }
    }
    for (name, group) in by_name.into_iter().filter(|(_, g)| g.len() > 1) {
        let labels: Vec<String> = group.iter().map(|&i| stagings[i].label()).collect();
        for (k, &i) in group.iter().enumerate() {
            let other = others(&labels, k);
            stagings[i].block(PlanError::NameCollision {
                name: name.clone(),
                other,
            });
        }
    }
    for (namespace, group) in by_namespace.into_iter().filter(|(_, g)| g.len() > 1) {
        let labels: Vec<String> = group.iter().map(|&i| stagings[i].label()).collect();
        for (k, &i) in group.iter().enumerate() {
            if stagings[i].error.is_some() {
                continue;
            }
            let other = others(&labels, k);
            stagings[i].block(PlanError::NamespaceCollision {
                namespace: namespace.clone(),
                other,
            });
        }
    }
}

fn others(labels: &[String], skip: usize) -> String {
    labels
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != skip)
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A staging whose namespace (or folder) exists and is not this instance's is a conflict:
/// reported, never adopted.
pub fn conflicts(stagings: &mut [Planned], observed: &Observed) {
    for p in stagings.iter_mut() {
        if !p.exists_after() || p.error.is_some() {
            continue;
        }
        let found = p
            .namespace
            .as_ref()
            .and_then(|ns| observed.foreign_namespaces.get(ns).map(|f| (ns.clone(), f)))
            .or_else(|| {
                observed
                    .foreign_names
                    .get(&p.name)
                    .map(|f| (p.name.clone(), f))
            });
        if let Some((place, why)) = found {
            p.block(PlanError::Conflict {
                place,
                why: why.clone(),
            });
        }
    }
}

/// Turn deletions beyond the per-pass limit into noops; the first ones by name go first.
pub fn limit_deletions(stagings: &mut [Planned], max: u32) {
    let mut idx: Vec<usize> = (0..stagings.len())
        .filter(|&i| stagings[i].action == Action::Delete)
        .collect();
    idx.sort_by(|&a, &b| {
        (&stagings[a].environment, &stagings[a].name)
            .cmp(&(&stagings[b].environment, &stagings[b].name))
    });
    for &i in idx.iter().skip(max as usize) {
        let s = &mut stagings[i];
        s.action = Action::Noop;
        s.state = s.observed_state.or(Some(State::Active));
        s.held = true;
        s.reason = format!(
            "deletion deferred to a later pass (safety.max_deletions_per_pass is {max}): {}",
            s.reason
        );
    }
}
