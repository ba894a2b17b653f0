//! Rendered YAML to checked Kubernetes objects: one map per document, an API version, a kind
//! and a name that are safe anywhere they are used (URLs, file names), nothing cluster-scoped,
//! nothing outside the staging's namespace, and octostage's ownership labels on everything.

use super::{Context, RenderError};
use crate::consts;

/// One rendered Kubernetes object.
pub type Object = serde_json::Map<String, serde_json::Value>;

/// Kinds that are cluster-scoped; octostage refuses them because a staging may only touch its
/// own namespace. The kube target also asks discovery, so this list is what protects a folder
/// of manifests (the dir target) and what a render says before any cluster is asked. Only kinds
/// whose name means the same in every API group: `Provider` or `Cluster` are namespaced in
/// some groups (Flux, CloudNativePG) and cluster-scoped in others.
const CLUSTER_SCOPED: &[&str] = &[
    // Kubernetes itself.
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "VolumeAttributesClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "APIService",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "CertificateSigningRequest",
    "ClusterTrustBundle",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "IPAddress",
    "ServiceCIDR",
    "DeviceClass",
    "ResourceSlice",
    "StorageVersionMigration",
    "ComponentStatus",
    // Widely installed extensions.
    "ClusterIssuer",
    "ClusterPolicy",
    "ClusterSecretStore",
    "ClusterExternalSecret",
    "GatewayClass",
    "ClusterWorkflowTemplate",
    "ConstraintTemplate",
    "GlobalNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
];

/// Parse multi-document YAML into its non-empty documents. A key given twice in one mapping is
/// an error, as the Kubernetes API's own strict decoding would have it.
pub fn parse_documents(
    source_name: &str,
    text: &str,
) -> Result<Vec<serde_json::Value>, RenderError> {
    parse_documents_within(source_name, text, &mut crate::yaml::Budget::default())
}

/// [`parse_documents`] within what is `left` of a budget of YAML nodes (see
/// [`crate::yaml`]) shared by the outputs of one render.
pub fn parse_documents_within(
    source_name: &str,
    text: &str,
    left: &mut crate::yaml::Budget,
) -> Result<Vec<serde_json::Value>, RenderError> {
    crate::yaml::documents(text, left).map_err(|e| match e {
        e if e.is_budget() => RenderError::YamlBudget {
            source_name: source_name.to_string(),
            message: e.to_string(),
        },
        e => RenderError::Yaml {
            source_name: source_name.to_string(),
            message: e.to_string(),
        },
    })
}

/// Check one document (a `List` is opened) and add its objects to `out`.
pub fn collect_object(
    source_name: &str,
    doc: serde_json::Value,
    namespace: &str,
    out: &mut Vec<Object>,
) -> Result<(), RenderError> {
    let err = |object: String, message: &str| RenderError::Object {
        source_name: source_name.to_string(),
        object,
        message: message.to_string(),
    };
    let serde_json::Value::Object(mut o) = doc else {
        return Err(err(
            format!("#{}", out.len() + 1),
            "is not a map; every document must be one Kubernetes object",
        ));
    };
    if o.get("kind").and_then(|k| k.as_str()) == Some("List") {
        return match o.remove("items") {
            Some(serde_json::Value::Array(items)) => {
                for item in items {
                    collect_object(source_name, item, namespace, out)?;
                }
                Ok(())
            }
            None | Some(serde_json::Value::Null) => Ok(()),
            Some(_) => Err(err(
                format!("List #{}", out.len() + 1),
                "has `items` that is not a list; write `items: [...]`",
            )),
        };
    }
    let id = object_id(&o);
    for field in ["apiVersion", "kind"] {
        if !o
            .get(field)
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            return Err(err(id, &format!("has no `{field}`")));
        }
    }
    let api = o["apiVersion"].as_str().unwrap_or_default();
    if !valid_api_version(api) {
        return Err(err(
            id,
            "has an `apiVersion` that is not `version` or `group/version`",
        ));
    }
    let kind = o["kind"].as_str().unwrap_or_default();
    if !(kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(err(id, "has a `kind` that is not a Kubernetes kind name"));
    }
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("");
    if name.is_empty() {
        return Err(err(id, "has no `metadata.name`"));
    }
    if let Err(why) = check_name(name) {
        return Err(err(id, &why.to_string()));
    }
    if CLUSTER_SCOPED.contains(&kind) {
        return Err(err(id, "is cluster-scoped; a staging may only create objects in its own namespace (octostage creates the namespace itself)"));
    }
    check_namespace(source_name, &o, namespace)?;
    wave(&o).map_err(|why| err(object_id(&o), &why.to_string()))?;
    out.push(o);
    Ok(())
}

/// What is wrong with a rendered object's name or wave; reads after the object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectError {
    /// A wave annotation that is not a quoted integer in range: the value as it was.
    #[error("has annotation {key} {value} that is not a quoted integer from -{max} to {max} (such as \"-1\")", key = consts::ANNOTATION_WAVE, value = .0, max = consts::MAX_WAVE)]
    Wave(serde_json::Value),
    /// A name longer than 253 characters.
    #[error("has a `metadata.name` longer than 253 characters")]
    LongName,
    /// A name Kubernetes refuses.
    #[error("has the name {0:?}, which Kubernetes refuses (no `/`, `%`, `.` or `..`)")]
    BadName(String),
}

/// The object's wave (`octostage.dev/wave`, default 0).
pub fn wave(o: &Object) -> Result<i32, ObjectError> {
    let Some(v) = o
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(consts::ANNOTATION_WAVE))
    else {
        return Ok(0);
    };
    let max = consts::MAX_WAVE;
    v.as_str()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|w| (-max..=max).contains(w))
        .ok_or_else(|| ObjectError::Wave(v.clone()))
}

fn valid_api_version(api: &str) -> bool {
    let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
    let version_ok = version.starts_with('v')
        && version
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let group_ok = group
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    version_ok && group_ok && !group.starts_with('.')
}

/// Names Kubernetes accepts are at most 253 characters without `/`; octostage also uses them in
/// file names and URLs, so `.`, `..`, control characters and `%` are refused.
fn check_name(name: &str) -> Result<(), ObjectError> {
    if name.len() > 253 {
        return Err(ObjectError::LongName);
    }
    if name == "."
        || name == ".."
        || name.contains(['/', '%'])
        || name.chars().any(char::is_control)
    {
        return Err(ObjectError::BadName(name.to_string()));
    }
    Ok(())
}

/// `Kind/name` of an object, for messages and ordering.
pub fn object_id(o: &Object) -> String {
    let kind = o.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// Put the object in the staging's namespace and add the ownership labels.
pub fn own(o: &mut Object, ctx: &Context) {
    let meta = o.entry("metadata").or_insert_with(|| serde_json::json!({}));
    let meta = meta
        .as_object_mut()
        .expect("metadata checked to be a map with a name");
    meta.insert("namespace".into(), ctx.namespace.clone().into());
    let labels = meta
        .entry("labels")
        .or_insert_with(|| serde_json::json!({}));
    if !labels.is_object() {
        *labels = serde_json::json!({});
    }
    let labels = labels.as_object_mut().expect("labels is a map");
    labels.insert(consts::LABEL_MANAGED_BY.into(), consts::MANAGER.into());
    labels.insert(
        consts::LABEL_ENVIRONMENT.into(),
        ctx.environment.clone().into(),
    );
    labels.insert(consts::LABEL_STAGING.into(), ctx.staging.clone().into());
}

/// Check that a rendered object does not ask for another namespace than its staging's.
fn check_namespace(source_name: &str, o: &Object, namespace: &str) -> Result<(), RenderError> {
    match o.get("metadata").and_then(|m| m.get("namespace")) {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::String(ns)) if ns == namespace => Ok(()),
        Some(other) => Err(RenderError::Object {
            source_name: source_name.to_string(),
            object: object_id(o),
            message: format!("asks for namespace {other}; objects may only land in the staging's namespace {namespace:?} (leave `metadata.namespace` out)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(yaml: &str) -> Result<Vec<Object>, RenderError> {
        let mut out = Vec::new();
        for d in parse_documents("t", yaml)? {
            collect_object("t", d, "ns", &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn lists_open_and_bad_lists_are_errors() {
        let ok = collect(
            "kind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        let e = collect("kind: List\nitems: {apiVersion: v1}\n").unwrap_err();
        assert!(e.to_string().contains("not a list"), "{e}");
    }

    #[test]
    fn hostile_names_kinds_and_namespaces_are_refused() {
        for (doc, why) in [
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../../x}\n",
                "refuses",
            ),
            (
                "apiVersion: v1\nkind: Config/Map\nmetadata: {name: a}\n",
                "kind",
            ),
            (
                "apiVersion: ../v1\nkind: ConfigMap\nmetadata: {name: a}\n",
                "apiVersion",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kube-system}\n",
                "asks for namespace",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: [x]}\n",
                "asks for namespace",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
                "cluster-scoped",
            ),
            (
                "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: a}\n",
                "cluster-scoped",
            ),
            (
                "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: a}\n",
                "cluster-scoped",
            ),
            (
                "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: a}\n",
                "cluster-scoped",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: 1, k: 2}\n",
                "duplicate",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: {octostage.dev/wave: first}}\n",
                "quoted integer",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: {octostage.dev/wave: \"1000\"}}\n",
                "quoted integer",
            ),
        ] {
            let e = collect(doc).unwrap_err().to_string();
            assert!(e.contains(why), "{doc}: {e}");
        }
    }
}
