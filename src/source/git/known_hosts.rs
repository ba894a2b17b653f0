//! SSH host keys checked against a known_hosts file (OpenSSH's format): plain and hashed
//! (`|1|salt|hash`) host names, `[host]:port` for other ports than 22, `@revoked` keys.
//! A key the file does not list for the host is refused: a fetch over SSH trusts no server
//! on first use.

use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// Why a host key is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    /// The file could not be read.
    #[error("known_hosts file {path}: {kind}")]
    Unreadable {
        /// The file.
        path: String,
        /// What went wrong (no contents).
        kind: String,
    },
    /// The file lists no key of this host.
    #[error("{host} is not in the known_hosts file {path}: add its key (`ssh-keyscan -p PORT HOST`, checked out of band)")]
    Unknown {
        /// `host` or `[host]:port`.
        host: String,
        /// The file.
        path: String,
    },
    /// The file lists the host with other keys only: the server is not the one recorded.
    #[error("{host} presented a {kind} key that the known_hosts file {path} does not list for it: the server may have been replaced or someone is in the way; nothing was sent")]
    Mismatch {
        /// `host` or `[host]:port`.
        host: String,
        /// The key type presented.
        kind: String,
        /// The file.
        path: String,
    },
    /// The key is marked `@revoked`.
    #[error("{host} presented a key the known_hosts file {path} marks @revoked")]
    Revoked {
        /// `host` or `[host]:port`.
        host: String,
        /// The file.
        path: String,
    },
}

/// How a host is named in known_hosts: `host` on port 22, `[host]:port` otherwise.
pub fn host_entry(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.to_string(),
    }
}

/// Whether one host field (`a,b,[c]:2222`, `|1|salt|hash`, `!neg`, `*.example.com`) names
/// `entry`.
fn names(field: &str, entry: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
            return false;
        };
        mac.update(entry.as_bytes());
        return mac.verify_slice(&hash).is_ok();
    }
    let mut matched = false;
    for pattern in field.split(',') {
        if let Some(neg) = pattern.strip_prefix('!') {
            if glob(neg, entry) {
                return false;
            }
        } else if glob(pattern, entry) {
            matched = true;
        }
    }
    matched
}

/// OpenSSH's host patterns: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Check the key `key` (the raw public key blob) that `entry` presented against `text`,
/// the contents of the file at `path` (named in errors).
pub fn check_text(
    text: &str,
    path: &str,
    entry: &str,
    key: &[u8],
    kind: &str,
) -> Result<(), HostKeyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut listed = false;
    let mut accepted = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = first.strip_prefix('@').map(str::to_string);
        if marker.is_some() {
            first = fields.next().unwrap_or_default();
        }
        let (Some(_kind), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !names(first, entry) {
            continue;
        }
        let same = b64.decode(blob).is_ok_and(|b| b == key);
        match marker.as_deref() {
            Some("revoked") if same => {
                return Err(HostKeyError::Revoked {
                    host: entry.into(),
                    path: path.into(),
                })
            }
            // Certificates are not checked here: a CA line accepts no plain key.
            Some(_) => {}
            None => {
                listed = true;
                accepted |= same;
            }
        }
    }
    match (accepted, listed) {
        (true, _) => Ok(()),
        (false, true) => Err(HostKeyError::Mismatch {
            host: entry.into(),
            kind: kind.into(),
            path: path.into(),
        }),
        (false, false) => Err(HostKeyError::Unknown {
            host: entry.into(),
            path: path.into(),
        }),
    }
}

/// [`check_text`] of the file at `path` (read at most 1 MiB).
pub fn check(path: &Path, entry: &str, key: &[u8], kind: &str) -> Result<(), HostKeyError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| HostKeyError::Unreadable {
        path: shown.clone(),
        kind: e.kind().to_string(),
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
        .map_err(unreadable)?;
    check_text(&text, &shown, entry, key, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIB0iHEG4mJJd8q7bHSHwqgH4MVHOtqVD3Ooz5YeIEz8P";

    fn blob(b: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(b).unwrap()
    }

    #[test]
    fn a_listed_key_is_accepted_and_anything_else_refused_with_why() {
        let file = format!("# comment\ngit.example.com,10.0.0.1 ssh-ed25519 {KEY}\n[127.0.0.1]:2222 ssh-ed25519 {OTHER}\n");
        let ok = |entry: &str, key: &str| check_text(&file, "kh", entry, &blob(key), "ssh-ed25519");
        assert_eq!(ok("git.example.com", KEY), Ok(()));
        assert_eq!(ok("10.0.0.1", KEY), Ok(()));
        assert_eq!(ok(&host_entry("127.0.0.1", Some(2222)), OTHER), Ok(()));
        assert!(matches!(
            ok("git.example.com", OTHER),
            Err(HostKeyError::Mismatch { .. })
        ));
        // The port is part of the name: port 22 of the same address is another host.
        assert!(matches!(
            ok(&host_entry("127.0.0.1", Some(22)), OTHER),
            Err(HostKeyError::Unknown { .. })
        ));
        assert!(matches!(
            ok("evil.example.com", KEY),
            Err(HostKeyError::Unknown { .. })
        ));
    }

    #[test]
    fn hashed_names_wildcards_negations_and_revoked_keys() {
        // `ssh-keygen -H` of "git.example.com" with this salt.
        let salt = [7u8; 20];
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"git.example.com");
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        );
        let file = format!("{hashed} ssh-ed25519 {KEY}\n*.corp.example,!bad.corp.example ssh-ed25519 {OTHER}\n@revoked * ssh-ed25519 {OTHER}\n");
        let ok = |entry: &str, key: &str| check_text(&file, "kh", entry, &blob(key), "ssh-ed25519");
        assert_eq!(ok("git.example.com", KEY), Ok(()));
        assert!(matches!(
            ok("git2.example.com", KEY),
            Err(HostKeyError::Unknown { .. })
        ));
        assert!(matches!(
            ok("a.corp.example", OTHER),
            Err(HostKeyError::Revoked { .. })
        ));
        assert!(matches!(
            ok("bad.corp.example", KEY),
            Err(HostKeyError::Unknown { .. })
        ));
    }
}
