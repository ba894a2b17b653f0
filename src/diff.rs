//! Field-level differences for `plan --diff`: a rendered object against what the target holds,
//! over the fields the rendered object sets (the API server adds defaults, which are not
//! changes), in the spirit of `terraform plan`. A Secret's values are never shown.

use serde_json::Value;

use crate::render::Object;

/// Longest value shown in a line.
const SHOWN: usize = 80;

/// `~ spec.replicas: 1 → 3`, `+ data.b: "x"` for each field that differs.
pub fn fields(desired: &Object, live: &Object) -> Vec<String> {
    let secret = desired.get("kind").and_then(Value::as_str) == Some("Secret");
    let mut out = Vec::new();
    for (k, v) in desired {
        if matches!(k.as_str(), "apiVersion" | "kind" | "status") {
            continue;
        }
        let path = k.clone();
        if k == "metadata" {
            for m in ["labels", "annotations"] {
                let (d, l) = (&v[m], &live.get("metadata").unwrap_or(&Value::Null)[m]);
                walk(&format!("metadata.{m}"), d, l, secret, &mut out);
            }
            continue;
        }
        walk(
            &path,
            v,
            live.get(k).unwrap_or(&Value::Null),
            secret,
            &mut out,
        );
    }
    // octostage's own bookkeeping always moves with the content.
    out.retain(|l| !l.contains("octostage.dev/content-hash"));
    out
}

fn walk(path: &str, desired: &Value, live: &Value, secret: bool, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(_) | Value::Null) if !d.is_empty() => {
            for (k, v) in d {
                let p = format!("{path}.{}", key(k));
                walk(&p, v, live.get(k).unwrap_or(&Value::Null), secret, out);
            }
        }
        (Value::Array(d), Value::Array(l)) if d.iter().all(named) && l.iter().all(named) => {
            for v in d {
                let name = v["name"].as_str().unwrap_or_default();
                let other = l.iter().find(|x| x["name"] == name).unwrap_or(&Value::Null);
                walk(&format!("{path}[name={name}]"), v, other, secret, out);
            }
            for v in l
                .iter()
                .filter(|x| !d.iter().any(|y| y["name"] == x["name"]))
            {
                let name = v["name"].as_str().unwrap_or_default();
                out.push(format!("- {path}[name={name}]"));
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (a, b)) in d.iter().zip(l).enumerate() {
                walk(&format!("{path}[{i}]"), a, b, secret, out);
            }
        }
        (d, Value::Null) if !d.is_null() => {
            out.push(format!("+ {path}: {}", shown(d, secret, path)))
        }
        (d, l) if !same(d, l) => out.push(format!(
            "~ {path}: {} → {}",
            shown(l, secret, path),
            shown(d, secret, path)
        )),
        _ => {}
    }
}

/// An entry of a list the API server merges by name (containers, ports, env).
fn named(v: &Value) -> bool {
    v.get("name").is_some_and(Value::is_string)
}

/// `1` and `"1"` differ; a number written as 1.0 and stored as 1 does not.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn shown(v: &Value, secret: bool, path: &str) -> String {
    if secret && (path.starts_with("data") || path.starts_with("stringData")) {
        return "(sensitive)".into();
    }
    let text = crate::redact::text(&v.to_string()).into_owned();
    let text = crate::text::printable(&text).into_owned();
    if text.chars().count() > SHOWN {
        let cut: String = text.chars().take(SHOWN).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn changed_added_and_removed_fields_are_named_and_defaults_are_not_changes() {
        let desired = obj(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "web", "image": "web:2", "env": [{"name": "A", "value": "1"}]}
            ]}}}
        }));
        let live = obj(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "uid": "u"},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 600, "template": {"spec": {"containers": [
                {"name": "web", "image": "web:1", "imagePullPolicy": "IfNotPresent",
                 "env": [{"name": "A", "value": "1"}, {"name": "OLD", "value": "x"}]},
                {"name": "sidecar", "image": "s"}
            ]}}},
            "status": {"replicas": 1}
        }));
        assert_eq!(
            fields(&desired, &live),
            vec![
                "+ metadata.labels.tier: \"front\"",
                "~ spec.replicas: 1 → 3",
                "~ spec.template.spec.containers[name=web].image: \"web:1\" → \"web:2\"",
                "- spec.template.spec.containers[name=web].env[name=OLD]",
                "- spec.template.spec.containers[name=sidecar]",
            ]
        );
    }

    #[test]
    fn a_secrets_values_are_never_shown() {
        let desired = obj(
            serde_json::json!({"kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "bmV3"}, "stringData": {"token": "plain-new"}}),
        );
        let live = obj(
            serde_json::json!({"kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "b2xk"}}),
        );
        let lines = fields(&desired, &live).join("\n");
        assert!(
            lines.contains("~ data.password: (sensitive) → (sensitive)"),
            "{lines}"
        );
        assert!(lines.contains("+ stringData.token: (sensitive)"), "{lines}");
        assert!(!lines.contains("bmV3") && !lines.contains("b2xk") && !lines.contains("plain-new"));
    }
}
