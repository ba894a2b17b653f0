//! `copy`: a Secret or ConfigMap read from its source namespace, reduced to what a staging's
//! copy carries (its data and type, none of its metadata: labels, annotations and owners stay
//! with the source). Errors name the object, never a value.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::json;

use super::retry::not_found;
use super::{api_err, KubeTarget};
use crate::config::{Copy, CopyKind};
use crate::render::Object;
use crate::targets::TargetError;

impl KubeTarget {
    pub(super) async fn read_copy_async(&self, c: &Copy) -> Result<Object, TargetError> {
        let missing = || TargetError::Io {
            path: c.source(),
            cause: crate::targets::Cause::other("not found; create it, or remove it from `copy`"),
        };
        let body = match c.kind {
            CopyKind::Secret => {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &c.namespace);
                let s = match self.call(|| api.get(&c.name)).await {
                    Ok(s) => s,
                    Err(e) if not_found(&e) => return Err(missing()),
                    Err(e) => return Err(api_err(c.source(), e)),
                };
                json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": c.as_name},
                    "type": s.type_,
                    "data": s.data.unwrap_or_default(),
                })
            }
            CopyKind::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &c.namespace);
                let m = match self.call(|| api.get(&c.name)).await {
                    Ok(m) => m,
                    Err(e) if not_found(&e) => return Err(missing()),
                    Err(e) => return Err(api_err(c.source(), e)),
                };
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": c.as_name},
                    "data": m.data.unwrap_or_default(),
                    "binaryData": m.binary_data.unwrap_or_default(),
                })
            }
        };
        let serde_json::Value::Object(mut o) = body else {
            unreachable!("built as an object")
        };
        o.retain(|_, v| !v.is_null());
        Ok(o)
    }
}
