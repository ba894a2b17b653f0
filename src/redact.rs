//! Keeping credentials out of every message: URL checks that refuse credentials where they do
//! not belong, and redaction of any URL user information, query or fragment in free text as a
//! second line of defence (errors, logs, tables).
//!
//! Credentials belong in `credentials.token_env` / `token_file` / `ssh_key_file`; a URL carries
//! only where the repository is.

use std::borrow::Cow;

/// What replaces user information, a query or a fragment in a shown URL.
pub const MASK: &str = "***";

/// Why a repository URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// `https://user@host`, `https://user:token@host`, `ssh://user:secret@host`.
    #[error("the URL carries user information (a user name, token or password before `@`); give the bare URL and reference credentials with `credentials.token_env` or `credentials.token_file` (and `credentials.username`)")]
    UserInfo,
    /// `?access_token=...`, `#...`.
    #[error("the URL carries a query or fragment (`?` or `#`), where tokens hide; give the bare URL and reference credentials with `credentials.token_env` or `credentials.token_file`")]
    Query,
    /// `user:secret@host:path`.
    #[error("the URL carries a password before `@`; give `user@host:path` and an SSH key (`credentials.ssh_key_file`) or the SSH agent")]
    ScpPassword,
    /// A token would travel over plain `http://`.
    #[error("credentials would be sent over plain http://; use https://, or set `credentials.allow_plain_http: true` if this network is trusted")]
    PlainHttp,
}

/// Whether `url` names a remote repository rather than a local path: `scheme://...`, or
/// scp-like `[user[:password]@]host:path` (an `@` before a `:`, no `/` before the `@`).
pub fn is_remote(url: &str) -> bool {
    if url.contains("://") {
        return true;
    }
    match url.split_once('@') {
        Some((user, rest)) => !user.contains('/') && rest.contains(':'),
        None => false,
    }
}

/// The scheme and host (with port) of a URL, lowercased: credentials for a repository go only
/// where this is the same. scp-like `user@host:path` is `ssh` at `host`.
pub fn origin(url: &str) -> Option<(String, String)> {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        return Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()));
    }
    let (user_host, _) = url.split_once(':')?;
    let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
    Some(("ssh".into(), host.to_ascii_lowercase()))
}

/// Check a repository URL for credentials it must not carry. `has_token` says whether a token
/// is configured for it (refused over plain `http://`); `allow_plain_http` lifts that rule.
pub fn check_url(url: &str, has_token: bool, allow_plain_http: bool) -> Result<(), UrlError> {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some((user, _)) = authority.rsplit_once('@') {
            let ssh = scheme.eq_ignore_ascii_case("ssh") || scheme.starts_with("git+ssh");
            if !ssh || user.contains(':') {
                return Err(UrlError::UserInfo);
            }
        }
        if rest.contains(['?', '#']) {
            return Err(UrlError::Query);
        }
        if scheme.eq_ignore_ascii_case("http") && has_token && !allow_plain_http {
            return Err(UrlError::PlainHttp);
        }
        return Ok(());
    }
    // scp-like `user@host:path`: a `:` before the `@` means `user:password@`.
    if let Some((user, _)) = url.split_once('@') {
        if !user.contains('/') && user.contains(':') {
            return Err(UrlError::ScpPassword);
        }
    }
    Ok(())
}

/// A URL as it may be shown: user information, query and fragment masked.
/// `https://tok@host/x?a=b` → `https://***@host/x?***`.
pub fn url(u: &str) -> String {
    text(u).into_owned()
}

/// `text` with every URL in it shown as [`url`] does, and every scp-like `user:secret@host`
/// masked. Text without anything to mask is returned as it is, without copying.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.contains("://") && !s.contains('@') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    for token in split_keep(s) {
        let masked = mask_token(token);
        changed |= masked != token;
        out.push_str(&masked);
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// An error and its causes as one line, redacted as [`text`] does. A cause whose words the
/// error right above it already shows (`"{path}: {cause}"` with the cause also its
/// `source()`) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut above = out.clone();
    let mut next = e.source();
    while let Some(cause) = next {
        let words = cause.to_string();
        if !above.contains(&words) {
            out.push_str(": ");
            out.push_str(&words);
        }
        above = words;
        next = cause.source();
    }
    text(&out).into_owned()
}

/// Split on whitespace and quoting characters, keeping the separators, so the text can be put
/// back together exactly.
fn split_keep(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '(' | ')' | ',') {
            if start < i {
                parts.push(&s[start..i]);
            }
            parts.push(&s[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < s.len() {
        parts.push(&s[start..]);
    }
    parts
}

fn mask_token(t: &str) -> Cow<'_, str> {
    if let Some(pos) = t.find("://") {
        let (head, rest) = t.split_at(pos + 3);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let mut out = String::from(head);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str(MASK);
                out.push('@');
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        match tail.find(['?', '#']) {
            Some(q) => {
                out.push_str(&tail[..q]);
                out.push_str(&tail[q..q + 1]);
                out.push_str(MASK);
            }
            None => out.push_str(tail),
        }
        return if out == t {
            Cow::Borrowed(t)
        } else {
            Cow::Owned(out)
        };
    }
    // `user:secret@host:path`, also at the end of a path it was mistaken for.
    if let Some((user, host)) = t.split_once('@') {
        let (dir, user) = user.rsplit_once('/').map_or(("", user), |(d, u)| (d, u));
        if let Some((name, _)) = user.split_once(':') {
            if !name.is_empty() && host.contains(':') {
                let dir = if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                };
                return Cow::Owned(format!("{dir}{name}:{MASK}@{host}"));
            }
        }
    }
    Cow::Borrowed(t)
}

/// A `tracing` writer that redacts what it writes: logs are a place secrets end up in when a
/// library puts a URL into an error message. Unless the log goes to a terminal with colours
/// (`raw`), control characters a message carries (from a branch name, a git error) are escaped.
pub struct RedactingWriter<W> {
    /// Where the log goes.
    pub out: W,
    /// Whether escape sequences are octostage's own colours, to be kept.
    pub raw: bool,
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) => {
                let t = text(s);
                if self.raw || !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                    self.out.write_all(t.as_bytes())?
                } else {
                    let escaped: String = t
                        .chars()
                        .map(|c| match c {
                            '\n' | '\t' => c.to_string(),
                            c if c.is_control() => c.escape_unicode().to_string(),
                            c => c.to_string(),
                        })
                        .collect();
                    self.out.write_all(escaped.as_bytes())?
                }
            }
            Err(_) => self
                .out
                .write_all(&buf.escape_ascii().to_string().into_bytes())?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner at https://user:tok@example.com/x")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Outer);

    #[derive(Debug, thiserror::Error)]
    #[error("timed out")]
    struct TimedOut;

    #[derive(Debug, thiserror::Error)]
    #[error("reading: {0}")]
    struct Reading(#[source] TimedOut);

    #[derive(Debug, thiserror::Error)]
    #[error("the pass timed out")]
    struct Pass(#[source] Reading);

    #[test]
    fn an_error_chain_shows_each_cause_once_and_redacted() {
        let chain = error_chain(&Wrapper(Outer(Inner)));
        assert_eq!(chain, "wrapper: outer inner at https://***@example.com/x");
        // A cause is left out only where the error right above it shows it, not because the
        // same words appear higher up.
        assert_eq!(
            error_chain(&Pass(Reading(TimedOut))),
            "the pass timed out: reading: timed out"
        );
    }

    #[test]
    fn credentials_in_urls_are_refused() {
        for (u, e) in [
            ("https://tok@github.com/a/b.git", UrlError::UserInfo),
            ("https://user:pw@github.com/a/b.git", UrlError::UserInfo),
            (
                "https://github.com/a/b.git?access_token=abc",
                UrlError::Query,
            ),
            ("https://github.com/a/b.git#tok", UrlError::Query),
            ("ssh://git:secret@host/a.git", UrlError::UserInfo),
            ("git:secret@host:a/b.git", UrlError::ScpPassword),
        ] {
            assert_eq!(check_url(u, false, false), Err(e), "{u}");
        }
        for ok in [
            "https://github.com/a/b.git",
            "ssh://git@host/a.git",
            "git@github.com:a/b.git",
            "/srv/repos/a.git",
            "file:///srv/a.git",
            "relative/path",
        ] {
            assert_eq!(check_url(ok, true, false), Ok(()), "{ok}");
        }
        assert_eq!(
            check_url("http://git.local/a.git", true, false),
            Err(UrlError::PlainHttp)
        );
        assert_eq!(check_url("http://git.local/a.git", true, true), Ok(()));
        assert_eq!(check_url("http://git.local/a.git", false, false), Ok(()));
        assert!(is_remote("git:secret@host:a/b.git") && is_remote("git@host:a/b.git"));
        assert_eq!(
            origin("https://Git.Example.com:8443/a.git?x"),
            Some(("https".into(), "git.example.com:8443".into()))
        );
        assert_eq!(
            origin("git@github.com:a/b.git"),
            Some(("ssh".into(), "github.com".into()))
        );
        assert_ne!(origin("https://a.example/x"), origin("http://a.example/x"));
        assert!(!is_remote("/srv/a@b/c") && !is_remote("relative/path"));
    }

    #[test]
    fn text_is_redacted_wherever_a_url_stands() {
        assert_eq!(
            text("fetching https://tok3n@github.com/a/b.git?x=secret failed"),
            "fetching https://***@github.com/a/b.git?*** failed"
        );
        assert_eq!(
            text("\"ssh://git:pw@h/x\" and git:pw@host:a/b"),
            "\"ssh://***@h/x\" and git:***@host:a/b"
        );
        let plain = "no url here, mail dev@example.com";
        assert!(matches!(text(plain), Cow::Borrowed(_)));
        assert_eq!(
            url("https://github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
    }
}
