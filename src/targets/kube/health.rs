//! How a staging's workloads are doing, from their status as the controllers and kubelets
//! report it: pure reductions of Deployments, StatefulSets and Jobs to what the planner needs.

use std::collections::HashMap;

use super::slim::{Deployment, Job, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::consts;
use crate::plan::Readiness;

/// One workload, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The staging its labels name.
    pub staging: String,
    /// `Deployment/web`.
    pub id: String,
    /// Ready, or what is missing.
    pub readiness: Readiness,
}

fn staging_of(m: &ObjectMeta) -> Option<String> {
    m.labels.as_ref()?.get(consts::LABEL_STAGING).cloned()
}

/// A rollout is seen by its controller only once `observedGeneration` reaches `generation`.
fn observed(m: &ObjectMeta, observed: Option<i64>) -> bool {
    m.generation
        .map_or(true, |g| observed.is_some_and(|o| o >= g))
}

/// Ready replicas against wanted ones, as `kind/name: 1 of 2 ready`.
fn replicas(id: &str, want: i32, ready: i32, updated: i32, seen: bool) -> Readiness {
    if !seen {
        Readiness::Unobserved(format!("{id}: change not yet seen by its controller"))
    } else if ready < want || updated < want {
        Readiness::NotReady(format!("{id}: {} of {want} ready", ready.min(updated)))
    } else {
        Readiness::Ready
    }
}

/// A Deployment: its replicas ready and updated, or its rollout given up.
pub fn deployment(d: &Deployment) -> Option<Workload> {
    let staging = staging_of(&d.metadata)?;
    let id = format!("Deployment/{}", d.metadata.name.as_deref()?);
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.as_ref().cloned().unwrap_or_default();
    let gave_up = st.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    let readiness = match gave_up {
        Some(c) => Readiness::Failed(format!(
            "{id}: ProgressDeadlineExceeded: {}",
            c.message.as_deref().unwrap_or("")
        )),
        None => replicas(
            &id,
            want,
            st.ready_replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            observed(&d.metadata, st.observed_generation),
        ),
    };
    Some(Workload {
        staging,
        id,
        readiness,
    })
}

/// A StatefulSet: its replicas ready and on the current revision.
pub fn stateful_set(s: &StatefulSet) -> Option<Workload> {
    let staging = staging_of(&s.metadata)?;
    let id = format!("StatefulSet/{}", s.metadata.name.as_deref()?);
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let readiness = replicas(
        &id,
        want,
        st.ready_replicas.unwrap_or(0),
        st.updated_replicas
            .unwrap_or(st.current_replicas.unwrap_or(0)),
        observed(&s.metadata, st.observed_generation),
    );
    Some(Workload {
        staging,
        id,
        readiness,
    })
}

/// A Job: complete, failed (with its reason), or still running.
pub fn job(j: &Job) -> Option<Workload> {
    let staging = staging_of(&j.metadata)?;
    let id = format!("Job/{}", j.metadata.name.as_deref()?);
    let conditions = j
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let readiness = if let Some(c) = is("Failed") {
        Readiness::Failed(format!(
            "{id} failed: {}: {}",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or("")
        ))
    } else if is("Complete").is_some() {
        Readiness::Ready
    } else {
        Readiness::NotReady(format!("{id}: not complete"))
    };
    Some(Workload {
        staging,
        id,
        readiness,
    })
}

/// Where a staging lives and which workload kinds it recorded applying (`Deployment`, ...).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Its namespace.
    pub namespace: String,
    /// Workload kinds its namespace records.
    pub kinds: Vec<&'static str>,
}

/// The workload kinds among recorded `apiVersion/Kind` keys.
pub fn workload_kinds(keys: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (key, kind) in [
        ("apps/v1/Deployment", "Deployment"),
        ("apps/v1/StatefulSet", "StatefulSet"),
        ("batch/v1/Job", "Job"),
    ] {
        if keys.iter().any(|k| k == key) {
            out.push(kind);
        }
    }
    out
}

/// Per staging: the first failed workload, else the first not ready (a recorded workload kind
/// with none left counts as not ready: it is being put back), else ready. A workload outside
/// its staging's namespace does not count for it.
pub fn readiness<'a>(
    workloads: impl IntoIterator<Item = (&'a str, &'a Workload)>,
    stagings: &HashMap<String, Expect>,
) -> HashMap<String, Readiness> {
    let mut sorted: Vec<(&str, &Workload)> = workloads
        .into_iter()
        .filter(|(ns, w)| stagings.get(&w.staging).is_some_and(|e| e.namespace == *ns))
        .collect();
    sorted.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    // Kinds present per staging, indexed once: a lookup per staging over every workload was
    // quadratic (a thousand stagings, three thousand workloads: most of a pass's CPU).
    let mut present: HashMap<&str, Vec<&str>> = HashMap::new();
    for (_, w) in &sorted {
        let kind = w.id.split('/').next().unwrap_or_default();
        let kinds = present.entry(w.staging.as_str()).or_default();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut out: HashMap<String, Readiness> = stagings
        .iter()
        .map(|(s, e)| {
            let has = present.get(s.as_str());
            let missing = e.kinds.iter().find(|k| !has.is_some_and(|h| h.contains(k)));
            let r = match missing {
                Some(k) => Readiness::NotReady(format!("no {k} left of those applied")),
                None => Readiness::Ready,
            };
            (s.clone(), r)
        })
        .collect();
    for (_, w) in sorted {
        let slot = out.entry(w.staging.clone()).or_insert(Readiness::Ready);
        match (&*slot, &w.readiness) {
            (Readiness::Failed(_), _) | (_, Readiness::Ready | Readiness::Unknown(_)) => {}
            // The first of the worst: failed, not ready, then not yet seen.
            (Readiness::NotReady(_), Readiness::NotReady(_) | Readiness::Unobserved(_)) => {}
            (Readiness::Unobserved(_), Readiness::Unobserved(_)) => {}
            (_, r) => *slot = r.clone(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> serde_json::Value {
        json!({"octostage.dev/staging": "shop-a"})
    }

    #[test]
    fn deployments_are_ready_when_rolled_out_and_fail_when_the_rollout_gives_up() {
        let d = |status: serde_json::Value| -> Deployment {
            serde_json::from_value(json!({"metadata": {"name": "web", "generation": 2, "labels": labels()}, "spec": {"replicas": 2, "selector": {}, "template": {}}, "status": status})).unwrap()
        };
        let r = |status| deployment(&d(status)).unwrap().readiness;
        assert_eq!(
            r(json!({"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2})),
            Readiness::Ready
        );
        assert_eq!(
            r(json!({"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 2})),
            Readiness::NotReady("Deployment/web: 1 of 2 ready".into())
        );
        assert_eq!(
            r(json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2})),
            Readiness::Unobserved("Deployment/web: change not yet seen by its controller".into())
        );
        assert!(matches!(
            r(
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}]})
            ),
            Readiness::Failed(_)
        ));
    }

    #[test]
    fn jobs_and_the_staging_summary() {
        let j = |conds: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "migrate", "labels": labels()}, "status": {"conditions": conds}})).unwrap()
        };
        let failed = job(&j(json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]))).unwrap();
        assert_eq!(failed.readiness, Readiness::Failed("Job/migrate failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into()));
        let done = job(&j(json!([{"type": "Complete", "status": "True"}]))).unwrap();
        assert_eq!(done.readiness, Readiness::Ready);
        let at = |ns: &str, kinds: Vec<&'static str>| Expect {
            namespace: ns.into(),
            kinds,
        };
        let ns: HashMap<String, Expect> = [
            ("shop-a".to_string(), at("shop-a", vec!["Job"])),
            ("shop-b".to_string(), at("shop-b", vec![])),
            ("shop-c".to_string(), at("shop-c", vec!["Deployment"])),
        ]
        .into();
        let r = readiness(
            [
                ("shop-a", &done),
                ("shop-a", &failed),
                ("elsewhere", &failed),
            ],
            &ns,
        );
        assert!(matches!(r["shop-a"], Readiness::Failed(_)));
        assert_eq!(r["shop-b"], Readiness::Ready);
        assert_eq!(
            r["shop-c"],
            Readiness::NotReady("no Deployment left of those applied".into())
        );
    }
}
