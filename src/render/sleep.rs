//! Asleep, declaratively: a sleeping staging's rendered objects are applied with Deployments
//! and StatefulSets at 0 replicas and CronJobs suspended, so octostage never fights itself
//! (the next pass renders the same), edits of the templates during sleep are applied (asleep)
//! and waking applies exactly the rendered replicas again. Services, Ingresses, ConfigMaps,
//! Secrets and PersistentVolumeClaims are applied as rendered. The rendered replicas are kept
//! in an annotation on the object so that anyone looking at it sees what waking restores.
//!
//! Also what a staging costs awake: the resources its workloads request.

use serde_json::Value;

use super::Object;
use serde::{Deserialize, Serialize};

/// What a staging's workloads request when awake: every container's requests times the
/// rendered replicas of Deployments and StatefulSets (and once for Jobs and CronJobs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU, millicores.
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

/// The annotation that keeps a sleeping workload's rendered replicas (or a CronJob's rendered
/// `suspend`).
pub const ANNOTATION_AWAKE: &str = "octostage.dev/awake";

fn kind(o: &Object) -> (&str, &str) {
    let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    (group, o.get("kind").and_then(Value::as_str).unwrap_or(""))
}

fn annotate(o: &mut Object, value: String) {
    let meta = o.entry("metadata").or_insert_with(|| serde_json::json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if !ann.is_object() {
        *ann = serde_json::json!({});
    }
    if let Some(a) = ann.as_object_mut() {
        a.insert(ANNOTATION_AWAKE.into(), value.into());
    }
}

/// Scale `objects` to zero: what a sleeping staging applies.
pub fn put_to_sleep(objects: &mut [Object]) {
    for o in objects.iter_mut() {
        match kind(o) {
            ("apps", "Deployment" | "StatefulSet") => {
                let replicas = replicas(o);
                if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("replicas".into(), 0.into());
                    annotate(o, format!("replicas={replicas}"));
                }
            }
            ("batch", "CronJob") => {
                let suspended = o
                    .get("spec")
                    .and_then(|s| s.get("suspend"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("suspend".into(), true.into());
                    annotate(o, format!("suspend={suspended}"));
                }
            }
            _ => {}
        }
    }
}

/// A workload a HorizontalPodAutoscaler of the same render scales has no `spec.replicas`
/// applied: the autoscaler owns it, and an applied count would undo its work at every change
/// (the two fight). Kubernetes' own advice for server-side apply with an HPA.
pub fn leave_replicas_to_autoscalers(objects: &mut [Object]) {
    let scaled: Vec<(String, String)> = objects
        .iter()
        .filter(|o| kind(o) == ("autoscaling", "HorizontalPodAutoscaler"))
        .filter_map(|o| {
            let target = o.get("spec")?.get("scaleTargetRef")?;
            Some((
                target.get("kind")?.as_str()?.to_string(),
                target.get("name")?.as_str()?.to_string(),
            ))
        })
        .collect();
    if scaled.is_empty() {
        return;
    }
    for o in objects.iter_mut() {
        let (group, k) = kind(o);
        if group != "apps" || !matches!(k, "Deployment" | "StatefulSet") {
            continue;
        }
        let name = o
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if scaled.iter().any(|(sk, sn)| sk == k && sn == name) {
            if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("replicas");
            }
        }
    }
}

/// Rendered replicas of a Deployment or StatefulSet (Kubernetes' default is 1).
fn replicas(o: &Object) -> u64 {
    o.get("spec")
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

/// What `objects`, awake, request: each Deployment's and StatefulSet's containers times its
/// replicas, each Job's, CronJob's and Pod's containers once (init containers do not run
/// alongside, and a Job's pods run a while at most).
pub fn usage(objects: &[Object]) -> Usage {
    let mut total = Usage::default();
    for o in objects {
        let (times, pod) = match kind(o) {
            ("apps", "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet") => {
                (replicas(o), pointer(o, "/spec/template/spec"))
            }
            ("batch", "Job") => (1, pointer(o, "/spec/template/spec")),
            ("batch", "CronJob") => (1, pointer(o, "/spec/jobTemplate/spec/template/spec")),
            ("", "Pod") => (1, pointer(o, "/spec")),
            _ => continue,
        };
        let containers = pod
            .and_then(|p| p.get("containers"))
            .and_then(Value::as_array);
        for c in containers.into_iter().flatten() {
            let req = c.pointer("/resources/requests");
            let cpu = req.and_then(|r| r.get("cpu")).and_then(quantity_milli);
            let mem = req.and_then(|r| r.get("memory")).and_then(quantity_milli);
            total.cpu_millis = total
                .cpu_millis
                .saturating_add(cpu.unwrap_or(0).saturating_mul(times));
            total.memory_bytes = total
                .memory_bytes
                .saturating_add((mem.unwrap_or(0) / 1000).saturating_mul(times));
        }
    }
    total
}

fn pointer<'o>(o: &'o Object, path: &str) -> Option<&'o Value> {
    let mut cur: Option<&Value> = None;
    for part in path.trim_start_matches('/').split('/') {
        cur = match cur {
            None => o.get(part),
            Some(v) => v.get(part),
        };
        cur?;
    }
    cur
}

/// A Kubernetes quantity (`250m`, `0.5`, `128Mi`, `1G`, `1e3`) in thousandths of its unit;
/// `None` when it is not one.
fn quantity_milli(v: &Value) -> Option<u64> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "u" => 1e-6,
        "n" => 1e-9,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().ok()?.clamp(-30, 30)),
        _ => return None,
    };
    let milli = (number * factor * 1000.0).round();
    (milli.is_finite() && milli >= 0.0).then(|| milli.min(u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_autoscaled_workload_leaves_its_replicas_to_the_autoscaler() {
        let mut objects = vec![
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
            ),
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"}, "spec": {"replicas": 2}}),
            ),
            obj(
                json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5}}),
            ),
        ];
        leave_replicas_to_autoscalers(&mut objects);
        assert!(objects[0]["spec"].get("replicas").is_none());
        assert_eq!(objects[1]["spec"]["replicas"], 2);
    }

    #[test]
    fn asleep_workloads_scale_to_zero_and_keep_their_size_in_an_annotation() {
        let mut objects = vec![
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
            ),
            obj(
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {}}),
            ),
            obj(
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"}, "spec": {"schedule": "0 1 * * *"}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": []}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": {}}),
            ),
            obj(
                json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 2}}),
            ),
        ];
        let before = objects.clone();
        put_to_sleep(&mut objects);
        assert_eq!(objects[0]["spec"]["replicas"], 0);
        assert_eq!(
            objects[0]["metadata"]["annotations"][ANNOTATION_AWAKE],
            "replicas=3"
        );
        assert_eq!(objects[1]["spec"]["replicas"], 0);
        assert_eq!(
            objects[1]["metadata"]["annotations"][ANNOTATION_AWAKE],
            "replicas=1"
        );
        assert_eq!(objects[2]["spec"]["suspend"], true);
        assert_eq!(
            objects[2]["metadata"]["annotations"][ANNOTATION_AWAKE],
            "suspend=false"
        );
        // Everything else, another group's "Deployment" included, is applied as rendered.
        assert_eq!(objects[3..], before[3..]);
    }

    #[test]
    fn usage_counts_requests_times_replicas() {
        let objects = vec![
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": 0.5, "memory": "1G"}}},
                    {"name": "c"}
                ]}}}}),
            ),
            obj(
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "n"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1e6"}}}
                ]}}}}}}),
            ),
            obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
        ];
        let u = usage(&objects);
        assert_eq!(u.cpu_millis, 2 * (250 + 500) + 1000);
        assert_eq!(
            u.memory_bytes,
            2 * (128 * 1024 * 1024 + 1_000_000_000) + 1_000_000
        );
        for bad in ["", "abc", "1Zi", "-1"] {
            assert_eq!(quantity_milli(&json!(bad)), None, "{bad}");
        }
    }
}
