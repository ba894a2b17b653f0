//! The JSON Schema of `environments.yaml`, generated from [`super::raw`], and the check of a
//! parsed file against it (types and unknown keys, every error with its position).

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;

use super::position::{escape, Positions};
use super::raw::RawFile;
use super::Problem;

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
        let validator = jsonschema::validator_for(&schema).expect("the generated schema compiles");
        Known {
            validator,
            keys,
            places,
        }
    })
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
