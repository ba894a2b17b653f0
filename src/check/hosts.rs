//! The host names a staging is reached at, as `validate` sees them: every label a DNS label
//! (at most 63 characters, or certificates and Ingress controllers refuse the host), and the
//! part that names the branch one label under the preview domain, the depth a wildcard
//! certificate (`*.preview.example.com`) covers. A host the same for every branch is left
//! alone: stagings may share one host by path.

use crate::render::{Context, Object};

/// Where a host was found (`links.web`, `Ingress/web spec.rules[0].host`) and the host.
pub type Hosts = Vec<(String, String)>;

/// The hosts of a staging's links.
pub fn of_links(ctx: &Context) -> Hosts {
    ctx.links
        .iter()
        .filter_map(|(name, link)| {
            let host = url::Url::parse(link).ok()?.host_str()?.to_string();
            Some((format!("links.{name}"), host))
        })
        .collect()
}

/// The hosts rendered objects route: Ingress rules and TLS hosts, Gateway API route
/// hostnames.
pub fn of_objects(objects: &[Object]) -> Hosts {
    let mut out = Hosts::new();
    for o in objects {
        let kind = o.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
        let name = o
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or_default();
        let spec = o.get("spec");
        let at = |path: &str| format!("{kind}/{name} {path}");
        let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
            v.and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        };
        match kind {
            "Ingress" => {
                let rules = spec.and_then(|s| s.get("rules")).and_then(|r| r.as_array());
                for (i, r) in rules.into_iter().flatten().enumerate() {
                    if let Some(h) = r.get("host").and_then(|h| h.as_str()) {
                        out.push((at(&format!("spec.rules[{i}].host")), h.to_string()));
                    }
                }
                let tls = spec.and_then(|s| s.get("tls")).and_then(|t| t.as_array());
                for (i, t) in tls.into_iter().flatten().enumerate() {
                    for (j, h) in strings(t.get("hosts")).into_iter().enumerate() {
                        out.push((at(&format!("spec.tls[{i}].hosts[{j}]")), h));
                    }
                }
            }
            "HTTPRoute" | "GRPCRoute" | "TLSRoute" => {
                for (i, h) in strings(spec.and_then(|s| s.get("hostnames")))
                    .into_iter()
                    .enumerate()
                {
                    out.push((at(&format!("spec.hostnames[{i}]")), h));
                }
            }
            _ => {}
        }
    }
    out
}

/// What is wrong with one host by itself.
pub fn label_problem(host: &str) -> Option<String> {
    let long = host.split('.').find(|l| l.len() > 63)?;
    Some(format!(
        "host {host:?} has a label of {} characters ({long:?}); DNS, certificates and Ingress controllers allow 63: build it from `branch.slug` (at most 63) without adding to it in the same label, or fit it with `| dns_label`",
        long.len()
    ))
}

/// What is wrong with a host, seen for two branches: `short` for a branch of a usual name,
/// `long` for one with a long name.
pub fn across_branches(short: &str, long: &str) -> Option<String> {
    let a: Vec<&str> = short.split('.').rev().collect();
    let b: Vec<&str> = long.split('.').rev().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let depth = a.len() - common;
    if depth <= 1 || common == 0 {
        return None;
    }
    let domain: Vec<&str> = a[..common].iter().rev().copied().collect();
    let domain = domain.join(".");
    Some(format!(
        "host {short:?} has {depth} labels under {domain:?}, where the branch changes it; a wildcard certificate for \"*.{domain}\" covers one: join them into one label, e.g. \"{{{{ branch.slug }}}}-{}.{domain}\"",
        a[common + 1..].iter().rev().copied().collect::<Vec<_>>().join("-")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_over_63_characters_is_named() {
        assert!(label_problem("feature-login.preview.example.com").is_none());
        let long = format!("{}-shop.preview.example.com", "a".repeat(63));
        let said = label_problem(&long).unwrap();
        assert!(said.contains("68 characters"), "{said}");
    }

    #[test]
    fn the_branch_part_must_be_one_label_under_the_preview_domain() {
        assert!(across_branches(
            "feature-a.preview.example.com",
            "feature-a-long-name.preview.example.com"
        )
        .is_none());
        assert!(
            across_branches("shop-feature-a.example.com", "shop-feature-b.example.com").is_none()
        );
        let said = across_branches(
            "api.feature-a.preview.example.com",
            "api.feature-a-long.preview.example.com",
        )
        .unwrap();
        assert!(
            said.contains("2 labels under \"preview.example.com\""),
            "{said}"
        );
        assert!(
            said.contains("\"{{ branch.slug }}-api.preview.example.com\""),
            "{said}"
        );
        // One host for all, told apart by path.
        assert!(across_branches("docs.example.com", "docs.example.com").is_none());
    }

    #[test]
    fn hosts_are_found_in_ingresses_and_routes() {
        let objects: Vec<Object> = serde_json::from_str(
            r#"[{"kind":"Ingress","metadata":{"name":"web"},"spec":{"rules":[{"host":"a.x.io"}],"tls":[{"hosts":["a.x.io"]}]}},
                {"kind":"HTTPRoute","metadata":{"name":"api"},"spec":{"hostnames":["b.x.io"]}},
                {"kind":"Service","metadata":{"name":"web"},"spec":{}}]"#,
        )
        .unwrap();
        let hosts = of_objects(&objects);
        assert_eq!(
            hosts,
            vec![
                (
                    "Ingress/web spec.rules[0].host".to_string(),
                    "a.x.io".to_string()
                ),
                (
                    "Ingress/web spec.tls[0].hosts[0]".to_string(),
                    "a.x.io".to_string()
                ),
                (
                    "HTTPRoute/api spec.hostnames[0]".to_string(),
                    "b.x.io".to_string()
                ),
            ]
        );
    }
}
