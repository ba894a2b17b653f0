//! The last line against YAML injection: a branch name, commit subject or author (chosen by
//! whoever pushes) that reaches rendered YAML must stay inside one string. Whatever path it took
//! (`{{ commit.subject }}` unquoted, a `values` entry that holds it, `{% set %}`), if its text
//! appears in the rendered output more often than it appears whole inside the parsed strings
//! and keys, it was cut apart by YAML syntax: it added keys, closed a mapping, started a
//! comment, or became an anchor or a tag. The render is refused.
//!
//! Text that YAML cannot read as syntax (letters, digits, ` ._/-`) is not checked; neither is
//! text a template transformed (`| upper`): validate's warning covers those uses.

use super::RenderError;

/// Whether YAML could read part of `s` as syntax.
fn special(s: &str) -> bool {
    s.starts_with(['-', '?', ' '])
        || s.chars()
            .any(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '/' | '-' | '+' | '=')))
}

/// Check that every untrusted text of `untrusted` (name, text) that the output `text` of
/// `source_name` contains stayed whole inside the strings of its parsed `docs`.
pub fn intact(
    source_name: &str,
    text: &str,
    docs: &[serde_json::Value],
    untrusted: &[(&str, &str)],
) -> Result<(), RenderError> {
    for (name, u) in untrusted {
        if u.is_empty() || !special(u) {
            continue;
        }
        // An escaped use (`| tojson`) puts the text in a parsed string without the text
        // itself being in the output: counted too, or it would cover an unescaped use.
        let mut forms = escaped_forms(u);
        forms.push(u.to_string());
        let in_text = occurrences(text, &forms);
        if in_text == 0 {
            continue;
        }
        let mut in_strings = 0;
        for d in docs {
            count(d, u, &mut in_strings);
        }
        if in_strings < in_text {
            return Err(RenderError::Object {
                source_name: source_name.to_string(),
                object: "(output)".into(),
                message: format!(
                    "{name} ({}) is written into the YAML where it is read as YAML syntax, not as a string; write it with `| tojson`",
                    crate::text::printable(&truncate(u))
                ),
            });
        }
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    format!("{t:?}")
}

/// The ways a template writes `u` escaped that YAML reads back as `u`: JSON (`tojson` as
/// serde writes it, and as minijinja writes it, `'`, `&`, `<` and `>` as `\u00XX`) and YAML's
/// single-quoted form (`''`). Only forms that differ from `u`.
fn escaped_forms(u: &str) -> Vec<String> {
    let json = serde_json::to_string(u).unwrap_or_default();
    let json = json[1..json.len().saturating_sub(1).max(1)].to_string();
    let html_safe = json
        .replace('\'', "\\u0027")
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    let mut out: Vec<String> = vec![json, html_safe, u.replace('\'', "''")];
    out.retain(|e| e != u && !e.is_empty());
    out.sort();
    out.dedup();
    out
}

/// Occurrences of any of `forms` in `text`, none overlapping another, the longest form first
/// at each place: an escaped form that contains the text itself (`C:\\` holds `C:\`) is one
/// use, not two.
fn occurrences(text: &str, forms: &[String]) -> usize {
    let mut forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let (mut n, mut i) = (0, 0);
    while i < text.len() {
        let rest = &text[i..];
        if let Some(f) = forms.iter().find(|f| rest.starts_with(**f)) {
            n += 1;
            i += f.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    n
}

fn count(v: &serde_json::Value, u: &str, n: &mut usize) {
    match v {
        serde_json::Value::String(s) => *n += s.matches(u).count(),
        serde_json::Value::Array(a) => a.iter().for_each(|x| count(x, u, n)),
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                *n += k.matches(u).count();
                count(x, u, n);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, subject: &str) -> Result<(), RenderError> {
        let docs = super::super::parse_documents("t", yaml)?;
        intact("t", yaml, &docs, &[("commit.subject", subject)])
    }

    #[test]
    fn a_subject_that_stays_a_string_passes() {
        let s = "Fix login: handle \"empty\" passwords";
        check(&format!("a: {}\n", serde_json::to_string(s).unwrap()), s).unwrap();
        check("a: \"Fix login: handle it\"\n", "Fix login: handle it").unwrap();
        check("a: plain words\n", "plain words").unwrap();
        // Its JSON form holds it (`C:\\` holds `C:\`): one use, not two.
        let s = "Fix path C:\\";
        check(&format!("a: {}\n", serde_json::to_string(s).unwrap()), s).unwrap();
    }

    #[test]
    fn a_subject_that_becomes_yaml_structure_is_refused() {
        let s = "hi}, spec: {hostNetwork: true}, x: {y: z";
        let e = check(&format!("metadata: {{annotations: {{subject: {s}}}}}\n"), s).unwrap_err();
        assert!(e.to_string().contains("read as YAML syntax"), "{e}");
        let s = "work #no comment";
        assert!(check(&format!("a: {s}\n"), s).is_err());
        let s = "&anchor";
        assert!(check(&format!("a: {s}\n"), s).is_err());
        // An escaped use does not cover an unescaped one (tojson writes ' as \u0027).
        let s = "it's}}, spec: {hostNetwork: true, nodeSelector: {kubernetes.io/os: linux";
        let escaped = serde_json::to_string(s).unwrap().replace('\'', "\\u0027");
        let yaml = format!(
            "metadata: {{name: web, annotations: {{subject: {escaped}}}}}\nspec: {{template: {{metadata: {{annotations: {{note: {s}}}}}}}}}\n"
        );
        let e = check(&yaml, s).unwrap_err();
        assert!(e.to_string().contains("read as YAML syntax"), "{e}");
        check(&format!("a: {escaped}\n"), s).unwrap();
    }
}
