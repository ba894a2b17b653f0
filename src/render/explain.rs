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
            let src = source.or(e.template_source());
            // A filter's name is not a variable (`x | tojson` fails at `tojson`).
            let is_filter = e
                .range()
                .zip(src)
                .and_then(|(r, s)| s.get(..r.start))
                .is_some_and(|b| b.trim_end().ends_with('|'));
            let exact = expression(e, src).filter(|_| !is_filter);
            let tag = e.range().zip(src).and_then(|(r, s)| enclosing_tag(s, r));
            exact
                .as_deref()
                .and_then(|x| missing(x, ctx, true))
                .or_else(|| tag.and_then(|t| missing_in(t, ctx)))
                .unwrap_or_else(|| {
                    e.detail()
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "undefined value".to_string())
                        + &tag
                            .or(exact.as_deref())
                            .map(|x| format!(" in `{}`", x.trim()))
                            .unwrap_or_default()
                })
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
    source?.get(e.range()?).map(|s| s.trim().to_string())
}

/// The `{{ ... }}` or `{% ... %}` around a byte range of `src`, without its delimiters.
fn enclosing_tag(src: &str, r: std::ops::Range<usize>) -> Option<&str> {
    let before = src.get(..r.start)?;
    let open = before.rfind("{{").max(before.rfind("{%"))?;
    let close = src[r.start..].find(['}', '%']).map(|i| r.start + i)?;
    let end = src[close..]
        .find("}}")
        .or_else(|| src[close..].find("%}"))?
        + close;
    src.get(open + 2..end)
}

/// Words of the template language, never context names.
const KEYWORDS: &[&str] = &[
    "if",
    "elif",
    "else",
    "endif",
    "for",
    "in",
    "endfor",
    "set",
    "endset",
    "not",
    "and",
    "or",
    "is",
    "defined",
    "undefined",
    "none",
    "true",
    "false",
    "loop",
    "with",
    "endwith",
    "macro",
    "call",
    "filter",
    "block",
    "include",
    "import",
    "from",
    "as",
    "raw",
    "recursive",
];

/// The first name of a tag that is missing a key in a map of the context. Names whose root is
/// not in the context may be template locals (`item` of a loop): they are not guessed at.
fn missing_in(tag: &str, ctx: &serde_json::Value) -> Option<String> {
    let mut rest = tag;
    while let Some(path) = dotted_path(rest) {
        let start = rest.find(path).unwrap_or(0) + path.len();
        let root = path.split('.').next().unwrap_or("");
        if !KEYWORDS.contains(&root) && ctx.get(root).is_some() {
            if let Some(why) = missing(path, ctx, false) {
                return Some(why);
            }
        }
        rest = &rest[start..];
    }
    None
}

/// Why the first dotted name in `expr` (`values.imag`, `comit.sha`) is undefined in `ctx`, if
/// it is. A missing root is only reported when `root_ok` (the name is the failing expression
/// itself, not a neighbour that may be a local).
fn missing(expr: &str, ctx: &serde_json::Value, root_ok: bool) -> Option<String> {
    let path = dotted_path(expr)?;
    if KEYWORDS.contains(&path.split('.').next().unwrap_or("")) {
        return None;
    }
    if !root_ok && ctx.get(path.split('.').next().unwrap_or("")).is_none() {
        return None;
    }
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
            missing("comit.sha", &ctx, true).unwrap(),
            "undefined variable `comit`; the context holds: commit, values"
        );
        assert_eq!(
            missing("values.imag | upper", &ctx, true).unwrap(),
            "`values` has no key `imag`; it holds: image, tag"
        );
        assert_eq!(
            missing("values.image.x", &ctx, true).unwrap(),
            "`values.image` is a string, which has no key `x`"
        );
        assert!(missing("values.image", &ctx, true).is_none());
        assert_eq!(
            missing_in(" if item.x and values.imag ", &ctx).unwrap(),
            "`values` has no key `imag`; it holds: image, tag"
        );
        let src = "a {{ values.typo | tojson }} b";
        let r = src.find("tojson").unwrap();
        assert_eq!(enclosing_tag(src, r..r + 6), Some(" values.typo | tojson "));
    }
}
