//! Rules that hold back what the plan would otherwise do, across the whole configuration.

use super::{Action, Hold, Observed, PlanError, Planned, State};

/// Turn a deletion into a held noop: the staging stays as it is, with the rule that holds it.
pub fn hold(p: &mut Planned, hold: Hold) {
    p.action = Action::Noop;
    p.state = p.present_state().or(Some(State::Active));
    p.hold = Some(hold);
}

/// Two stagings with one name or one namespace would overwrite each other forever: both are
/// blocked, naming each other, and neither is written.
pub fn collisions(stagings: &mut [Planned]) {
    let live: Vec<usize> = (0..stagings.len())
        .filter(|&i| stagings[i].exists_after())
        .collect();
    for group in same(&live, |i| Some(stagings[i].name.as_str())) {
        let labels: Vec<String> = group.iter().map(|&i| stagings[i].label()).collect();
        let name = stagings[group[0]].name.clone();
        for (k, &i) in group.iter().enumerate() {
            stagings[i].block(PlanError::NameCollision {
                name: name.clone(),
                other: others(&labels, k),
            });
        }
    }
    let live: Vec<usize> = live
        .into_iter()
        .filter(|&i| stagings[i].error.is_none())
        .collect();
    leaving(stagings, &live);
    let live: Vec<usize> = live
        .into_iter()
        .filter(|&i| stagings[i].error.is_none())
        .collect();
    for group in same(&live, |i| stagings[i].namespace.as_deref()) {
        let labels: Vec<String> = group.iter().map(|&i| stagings[i].label()).collect();
        let namespace = stagings[group[0]].namespace.clone().unwrap_or_default();
        for (k, &i) in group.iter().enumerate() {
            stagings[i].block(PlanError::NamespaceCollision {
                namespace: namespace.clone(),
                other: others(&labels, k),
            });
        }
    }
}

/// A namespace (or name) this pass deletes is not free until it is gone: a staging that would
/// move into it or be created in it waits for a later pass, rather than write into what is
/// about to be deleted.
fn leaving(stagings: &mut [Planned], live: &[usize]) {
    let deleted: Vec<(String, String, String)> = stagings
        .iter()
        .filter(|p| p.action == Action::Delete)
        .map(|p| {
            (
                p.name.clone(),
                p.namespace.clone().unwrap_or_default(),
                p.label(),
            )
        })
        .collect();
    if deleted.is_empty() {
        return;
    }
    for &i in live {
        let p = &stagings[i];
        let hit = deleted.iter().find(|(name, ns, label)| {
            *label != p.label() && (*name == p.name || p.namespace.as_deref() == Some(ns.as_str()))
        });
        if let Some((name, ns, label)) = hit.cloned() {
            let place = if name == p.name { name } else { ns };
            stagings[i].block(PlanError::Leaving {
                place,
                other: label,
            });
        }
    }
}

/// Groups of two or more of `idx` that share a key, without copying the keys (this runs over
/// every staging of every pass).
fn same<'a>(idx: &[usize], key: impl Fn(usize) -> Option<&'a str>) -> Vec<Vec<usize>> {
    let mut sorted: Vec<(&str, usize)> = idx.iter().filter_map(|&i| Some((key(i)?, i))).collect();
    sorted.sort_unstable();
    let mut out = Vec::new();
    for run in sorted.chunk_by(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            out.push(run.iter().map(|(_, i)| *i).collect());
        }
    }
    out
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
        hold(&mut stagings[i], Hold::Deferred { max });
    }
}
