//! The JSON Schema of `environments.yaml`, generated from [`super::raw`], and the check of a
//! parsed file against it (types and unknown keys, every error with its position).

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;

use super::raw::RawFile;
use super::Problem;
use crate::yaml::{escape, Positions};

/// The schema as pretty JSON, exactly as committed in `schema/environments.schema.json`.
pub fn json() -> String {
    let schema = schemars::schema_for!(RawFile);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    s.push('\n');
    s
}

/// The compiled schema, every key it knows, and for each key the places it belongs.
struct Known {
    validator: jsonschema::Validator,
    keys: Vec<String>,
    places: std::collections::BTreeMap<String, Vec<&'static str>>,
}

/// Where the keys of each part of the schema are written, for "it belongs in ..." hints.
const PLACES: &[(&str, &str)] = &[
    ("", "the file root"),
    ("RawSettings", "`defaults`"),
    ("RawEnvironment", "an environment (`environments.<name>`)"),
    ("RawStatic", "a static staging (`static.<name>`)"),
    ("RawBranches", "`branches`"),
    ("RawSleep", "`sleep`"),
    ("RawSafety", "`safety`"),
    ("RawRepositoryFull", "`repository` (beside `url`)"),
    ("RawCredentials", "`repository.credentials`"),
];

fn known() -> &'static Known {
    static V: OnceLock<Known> = OnceLock::new();
    V.get_or_init(|| {
        let schema = serde_json::to_value(schemars::schema_for!(RawFile)).expect("schema");
        let mut keys = Vec::new();
        known_keys(&schema, &mut keys);
        keys.sort();
        keys.dedup();
        let mut places: std::collections::BTreeMap<String, Vec<&'static str>> = Default::default();
        for (def, place) in PLACES {
            let node = if def.is_empty() {
                &schema
            } else {
                &schema["$defs"][def]
            };
            if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
                for k in props.keys() {
                    places.entry(k.clone()).or_default().push(place);
                }
            }
        }
        let validator = compile(&schema);
        Known {
            validator,
            keys,
            places,
        }
    })
}

/// The validator, compiled as draft 7. Compiled as the draft 2020-12 it declares, jsonschema
/// first checks it against the 2020-12 meta-schema, whose dynamic references it compiles
/// into about 40 MiB kept for the life of the process (measured with heaptrack: 44.5 MiB
/// against 7.0 MiB as draft 7, the same time per check). The keywords in use mean the same
/// in both drafts (a test holds the schema to them and the two validators to the
/// same errors).
fn compile(schema: &serde_json::Value) -> jsonschema::Validator {
    let mut schema = schema.clone();
    if let Some(m) = schema.as_object_mut() {
        m.remove("$schema");
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(false)
        .build(&schema)
        .expect("the generated schema compiles")
}

/// "did you mean ...", "it belongs in ...", or what to check, for an unknown `key`.
fn hint(known: &Known, key: &str) -> String {
    if let Some(places) = known.places.get(key) {
        return format!("; `{key}` belongs in {}", places.join(" or "));
    }
    known
        .keys
        .iter()
        .map(|k| (strsim::levenshtein(k, key), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_else(|| "; remove it or check its indentation".to_string())
}

fn known_keys(schema: &serde_json::Value, out: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            m.values().for_each(|v| known_keys(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| known_keys(v, out)),
        _ => {}
    }
}

/// Every place where `value` breaks the schema.
pub fn check(value: &serde_json::Value, positions: &Positions, file: &str) -> Vec<Problem> {
    let known = known();
    let mut out = Vec::new();
    for err in known.validator.iter_errors(value) {
        let pointer = err.instance_path.as_str().to_string();
        let at = display_path(&pointer);
        match &err.kind {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for key in unexpected {
                    let hint = hint(known, key);
                    out.push(Problem {
                        file: file.to_string(),
                        pos: positions.key(&format!("{pointer}/{}", escape(key))),
                        message: format!("unknown key `{key}` in {at}{hint}"),
                    });
                }
            }
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => out
                .push(Problem {
                    file: file.to_string(),
                    pos: positions.value(&pointer),
                    message: format!(
                        "{at}: {} is none of the accepted forms (see the schema)",
                        err.instance
                    ),
                }),
            _ => out.push(Problem {
                file: file.to_string(),
                pos: positions.value(&pointer),
                message: format!("{at}: {err}"),
            }),
        }
    }
    out
}

/// `/environments/shop/ttl` as `environments.shop.ttl` (`the file root` for the root).
pub fn display_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the file root".to_string();
    }
    pointer[1..]
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keywords the generated schema uses: each means the same in draft 7 as in draft 2020-12
    /// (`$ref`'s siblings are only `description` and `default`, `items` is always one schema).
    const KEYWORDS: &[&str] = &[
        "$defs",
        "$ref",
        "$schema",
        "additionalProperties",
        "anyOf",
        "const",
        "default",
        "description",
        "format",
        "items",
        "minimum",
        "oneOf",
        "properties",
        "required",
        "title",
        "type",
    ];

    fn keywords(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "properties" || k == "$defs" {
                        out.insert(k.clone());
                        if let serde_json::Value::Object(inner) = v {
                            inner.values().for_each(|v| keywords(v, out));
                        }
                        continue;
                    }
                    if k == "$ref" {
                        let others: Vec<&String> = m.keys().filter(|k| *k != "$ref").collect();
                        assert!(
                            others
                                .iter()
                                .all(|o| *o == "description" || *o == "default"),
                            "$ref beside {others:?}: draft 7 would ignore them"
                        );
                    }
                    if k == "items" {
                        assert!(v.is_object(), "items as a list reads otherwise in draft 7");
                    }
                    out.insert(k.clone());
                    // Values, not schemas.
                    if !matches!(k.as_str(), "default" | "const" | "required" | "enum") {
                        keywords(v, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keywords(v, out)),
            _ => {}
        }
    }

    /// `example`, then `example` with each of its values replaced in turn by a value of another
    /// type, and each of its objects given an unknown key.
    fn broken(example: &serde_json::Value) -> Vec<serde_json::Value> {
        let mut docs = vec![example.clone()];
        fn mutate(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            out.push(path.clone());
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        path.push(k.clone());
                        mutate(v, path, out);
                        path.pop();
                    }
                }
                serde_json::Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        path.push(i.to_string());
                        mutate(v, path, out);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let mut paths = Vec::new();
        mutate(example, &mut Vec::new(), &mut paths);
        let odd = [
            serde_json::json!(null),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!("text"),
            serde_json::json!(true),
            serde_json::json!([1, "a"]),
            serde_json::json!({"unknown_key": 1}),
        ];
        for (i, path) in paths.iter().enumerate() {
            let mut doc = example.clone();
            let pointer: String = path.iter().map(|p| format!("/{}", escape(p))).collect();
            let slot = doc.pointer_mut(&pointer).unwrap();
            match slot {
                serde_json::Value::Object(m) => {
                    m.insert("unknown_key".into(), serde_json::json!(1));
                }
                _ => *slot = odd[i % odd.len()].clone(),
            }
            docs.push(doc);
        }
        docs
    }

    /// The schema is checked as draft 7 to save 40 MiB: it must mean the same as the draft
    /// 2020-12 it declares, on the keywords it uses and on the errors it finds.
    #[test]
    fn the_schema_checks_as_draft_7_what_it_checks_as_draft_2020_12() {
        let schema = serde_json::to_value(schemars::schema_for!(RawFile)).unwrap();
        let mut used = Default::default();
        keywords(&schema, &mut used);
        let unknown: Vec<&String> = used
            .iter()
            .filter(|k| !KEYWORDS.contains(&k.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "keywords not known to mean the same in draft 7: {unknown:?}"
        );
        let full = jsonschema::validator_for(&schema).unwrap();
        let seven = compile(&schema);
        let example: serde_json::Value = crate::yaml::document(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/example-repo/environments.yaml"
            ))
            .unwrap(),
        )
        .unwrap();
        let docs = broken(&example);
        assert!(docs.len() > 100, "{}", docs.len());
        let errors = |v: &jsonschema::Validator, doc: &serde_json::Value| {
            let mut e: Vec<String> = v
                .iter_errors(doc)
                .map(|e| {
                    format!(
                        "{} {:?}",
                        e.instance_path.as_str(),
                        std::mem::discriminant(&e.kind)
                    )
                })
                .collect();
            e.sort();
            e
        };
        let mut failing = 0;
        for doc in &docs {
            let (a, b) = (errors(&full, doc), errors(&seven, doc));
            assert_eq!(a, b, "{doc}");
            failing += usize::from(!a.is_empty());
        }
        assert!(failing > docs.len() / 2, "{failing} of {}", docs.len());
    }
}
