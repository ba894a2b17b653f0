//! How octostage writes text at its edges: times (RFC 3339), durations as people write them,
//! untrusted text made safe for a terminal, and text read from files (a byte order mark
//! dropped).

use std::borrow::Cow;

use chrono::{DateTime, Utc};

/// A time as octostage writes it everywhere: RFC 3339, whole seconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A duration the way people write them in environments.yaml: `7d`, `36h`, `1d12h`, `90m`.
pub fn human(d: chrono::Duration) -> String {
    let mut secs = d.num_seconds().max(0);
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
            // Two units are precise enough for a reason text.
            if out.chars().filter(|c| c.is_ascii_alphabetic()).count() == 2 {
                break;
            }
        }
    }
    out
}

/// [`human`] for a std duration.
pub fn human_std(d: std::time::Duration) -> String {
    human(chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

/// A size as written in the configuration: `1GiB`, `512MiB`, `100KiB` when exact, else bytes.
pub fn bytes(n: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// Whether output to a stream may be styled (colors, a progress line): it is a terminal and
/// `NO_COLOR` asks for nothing plain.
pub fn styled(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty())
}

/// Text without a leading UTF-8 byte order mark, which some editors write.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Text safe for a terminal: control characters and bidirectional overrides (which anyone who
/// can push can put in a commit subject or a link) are shown escaped, not obeyed.
pub fn printable(s: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                // The escapes people read (a multi-line value in a drift line), not `\u{a}`.
                '\n' => "\\n".to_string(),
                '\t' => "\\t".to_string(),
                '\r' => "\\r".to_string(),
                c if bad(c) => c.escape_unicode().to_string(),
                c => c.to_string(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_breaks_print_as_people_write_them_and_other_controls_as_escapes() {
        assert_eq!(super::printable("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(super::printable("x\u{1b}[31m"), "x\\u{1b}[31m");
        assert_eq!(super::printable("plain"), "plain");
    }

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(super::bytes(1 << 30), "1GiB");
        assert_eq!(super::bytes(1536 << 20), "1536MiB");
        assert_eq!(super::bytes(100 << 10), "100KiB");
        assert_eq!(super::bytes(1000), "1000 bytes");
    }

    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(chrono::Duration::days(7)), "7d");
        assert_eq!(human(chrono::Duration::hours(36)), "1d12h");
        assert_eq!(human(chrono::Duration::minutes(90)), "1h30m");
        assert_eq!(human(chrono::Duration::seconds(0)), "0s");
    }

    #[test]
    fn untrusted_text_is_shown_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(strip_bom("\u{feff}x"), "x");
    }
}
