//! Template errors people can act on: which name is undefined, what the context holds instead,
//! and where in the file the expression stands.

use minijinja::ErrorKind;

/// Most keys listed when a name is missing.
const MAX_KEYS: usize = 16;

/// The message of a template error, with the missing name and what the context holds when a
/// value is undefined.
pub fn message(e: &minijinja::Error, source: Option<&str>, ctx: &serde_json::Value) -> String {
    match e.kind() {
        ErrorKind::OutOfFuel => format!(
            "the template ran more than {} instructions (a loop too large or endless) and was stopped",
            crate::consts::TEMPLATE_FUEL
        ),
        ErrorKind::UndefinedError => {
            let expr = expression(e, source);
            match expr.as_deref().map(|x| missing(x, ctx)) {
                Some(Some(why)) => why,
                _ => e
                    .detail()
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "undefined value".to_string())
                    + &expr.map(|x| format!(" in `{x}`")).unwrap_or_default(),
            }
        }
        _ => {
            let mut m = e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.kind().to_string());
            if let Some(src) = std::error::Error::source(e) {
                m.push_str(&format!(": {src}"));
            }
            m
        }
    }
}

/// Line and column (from 1; 0 when unknown) of the failing expression.
pub fn line_column(e: &minijinja::Error, source: Option<&str>) -> (usize, usize) {
    let line = e.line().unwrap_or(0);
    let column = match (e.range(), source.or(e.template_source())) {
        (Some(r), Some(src)) if r.start <= src.len() => {
            let before = &src[..r.start];
            before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1
        }
        _ => 0,
    };
    (line, column)
}

fn expression(e: &minijinja::Error, source: Option<&str>) -> Option<String> {
    let src = source.or(e.template_source())?;
    let r = e.range()?;
    src.get(r).map(|s| s.trim().to_string())
}

/// Why the first dotted name in `expr` (`values.imag`, `comit.sha`) is undefined in `ctx`, if
/// it is.
fn missing(expr: &str, ctx: &serde_json::Value) -> Option<String> {
    let path = dotted_path(expr)?;
    let mut node = ctx;
    let mut walked = String::new();
    for seg in path.split('.') {
        match node.get(seg) {
            Some(next) => {
                node = next;
                if !walked.is_empty() {
                    walked.push('.');
                }
                walked.push_str(seg);
            }
            None => {
                let holds = keys(node);
                return Some(if walked.is_empty() {
                    format!("undefined variable `{seg}`; the context holds: {holds}")
                } else if node.is_object() {
                    format!("`{walked}` has no key `{seg}`; it holds: {holds}")
                } else {
                    format!("`{walked}` is {}, which has no key `{seg}`", kind(node))
                });
            }
        }
    }
    None
}

/// The first `name(.name)*` in an expression.
fn dotted_path(expr: &str) -> Option<&str> {
    let start = expr.find(|c: char| c.is_ascii_alphabetic() || c == '_')?;
    let rest = &expr[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.'))
}

fn keys(node: &serde_json::Value) -> String {
    match node.as_object() {
        Some(m) if m.is_empty() => "nothing".into(),
        Some(m) => {
            let mut k: Vec<&str> = m.keys().map(String::as_str).take(MAX_KEYS).collect();
            if m.len() > MAX_KEYS {
                k.push("...");
            }
            k.join(", ")
        }
        None => kind(node).into(),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_missing_name_and_what_is_there_instead() {
        let ctx = json!({"commit": {"sha": "a"}, "values": {"image": "x", "tag": "y"}});
        assert_eq!(
            missing("comit.sha", &ctx).unwrap(),
            "undefined variable `comit`; the context holds: commit, values"
        );
        assert_eq!(
            missing("values.imag | upper", &ctx).unwrap(),
            "`values` has no key `imag`; it holds: image, tag"
        );
        assert_eq!(
            missing("values.image.x", &ctx).unwrap(),
            "`values.image` is a string, which has no key `x`"
        );
        assert!(missing("values.image", &ctx).is_none());
    }
}
