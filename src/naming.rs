//! Staging names: DNS-1123 labels derived from environment and branch, deterministic and
//! collision-free.
//!
//! `feature/Login` in `shop` becomes `shop-feature-login`. A short hash of the full branch name is
//! appended when the name had to be shortened to 63 characters, when the slug is empty, or when
//! two branches would meet (`feature/a` and `feature-a`). A staging keeps the name it was created
//! with for as long as it exists, so a later colliding branch never renames it. The hash is the
//! first hex digits of SHA-256 and will not change between releases.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::consts::MAX_LABEL;

/// Why a name is not a DNS-1123 label; reads after the name ("`x` must not be empty").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than 63 characters: how long it is.
    #[error("is {0} characters long; at most {MAX_LABEL} are allowed")]
    Long(usize),
    /// A character a label may not hold.
    #[error("contains {0:?}; only lowercase letters, digits and '-' are allowed")]
    Char(char),
    /// It starts or ends with `-`.
    #[error("must start and end with a letter or digit")]
    Ends,
}

/// Check a DNS-1123 label: 1 to 63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
pub fn check_label(s: &str) -> Result<(), LabelError> {
    if s.is_empty() {
        return Err(LabelError::Empty);
    }
    if s.len() > MAX_LABEL {
        return Err(LabelError::Long(s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(LabelError::Char(c));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(LabelError::Ends);
    }
    Ok(())
}

/// Whether `s` is a DNS-1123 label.
pub fn is_dns_label(s: &str) -> bool {
    check_label(s).is_ok()
}

/// Whether `s` is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Lowercase ASCII letters and digits of `branch`, every other run of characters as one `-`.
pub fn slug(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `s` as a DNS label of at most `max` (1 to 63) characters: its [`slug`], and when that is
/// longer, cut and ended with `-` and eight hex digits of a hash of the whole `s`, so that two
/// long values that share a beginning still differ. `branch.slug` is this at 63; templates
/// have it as the filter `dns_label` (`{{ ("c16-" ~ staging) | dns_label }}`).
pub fn fit_label(s: &str, max: usize) -> String {
    let max = max.clamp(1, MAX_LABEL);
    let slug = slug(s);
    if slug.len() <= max && !slug.is_empty() {
        return slug;
    }
    let hash = short_hash(s, 8.min(max));
    let room = max.saturating_sub(hash.len() + 1);
    let cut = slug[..slug.len().min(room)].trim_end_matches('-');
    if cut.is_empty() {
        hash
    } else {
        format!("{cut}-{hash}")
    }
}

/// The first `len` hex digits of SHA-256 of `s`.
pub fn short_hash(s: &str, len: usize) -> String {
    let mut hex = crate::signing::hex(&Sha256::digest(s.as_bytes()));
    hex.truncate(len);
    hex
}

/// `env-slug`, or `None` when it needs a hash (empty slug or too long).
fn plain(env: &str, slug: &str) -> Option<String> {
    let name = format!("{env}-{slug}");
    (!slug.is_empty() && name.len() <= MAX_LABEL).then_some(name)
}

/// `env-slug-hash`, the slug shortened so the whole fits in 63 characters.
fn hashed(env: &str, slug: &str, branch: &str, hash_len: usize) -> String {
    let hash = short_hash(branch, hash_len);
    let room = MAX_LABEL.saturating_sub(env.len() + 2 + hash_len);
    let cut = slug[..slug.len().min(room)].trim_end_matches('-');
    if cut.is_empty() {
        format!("{env}-{hash}")
    } else {
        format!("{env}-{cut}-{hash}")
    }
}

/// The name of a static staging.
pub fn static_name(env: &str, name: &str) -> String {
    format!("{env}-{name}")
}

/// Assign names to the branches of one environment.
///
/// `reserved` are names already spoken for (static stagings); `held` maps branches to the names
/// their existing stagings carry, which they keep. Everyone else gets the plain name when it is
/// free, else a hashed one. The result is the same whatever order the inputs come in.
pub fn assign<'b>(
    env: &str,
    branches: impl IntoIterator<Item = &'b str>,
    reserved: &HashSet<String>,
    held: &HashMap<&str, &str>,
) -> HashMap<&'b str, String> {
    let mut taken: HashSet<String> = reserved.clone();
    let mut out = HashMap::new();
    // Branches that hold a name first, then those whose slug is the branch itself (`main`), then
    // the rest; each group sorted by branch name so the input order never matters.
    let mut order: BTreeMap<(u8, &str), String> = BTreeMap::new();
    for b in branches {
        let s = slug(b);
        let rank = if held.contains_key(b) {
            0
        } else if s == b {
            1
        } else {
            2
        };
        order.insert((rank, b), s);
    }
    for ((rank, b), s) in order {
        if rank == 0 {
            let name = held[b];
            if check_label(name).is_ok() && taken.insert(name.to_string()) {
                out.insert(b, name.to_string());
                continue;
            }
        }
        let mut name = plain(env, &s).filter(|n| !taken.contains(n));
        let mut len = 6;
        while name.is_none() {
            let n = hashed(env, &s, b, len);
            if !taken.contains(&n) {
                name = Some(n);
            }
            len += 4;
            if len > 64 {
                // All 64 hex digits taken by other branches would need a SHA-256 collision.
                unreachable!("no free name for branch {b:?}");
            }
        }
        let name = name.expect("loop ends with a name");
        taken.insert(name.clone());
        out.insert(b, name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_value_fits_a_dns_label_with_a_hash_only_when_it_must() {
        assert_eq!(fit_label("feature/Login", 63), "feature-login");
        let long = format!("feature/{}", "x".repeat(70));
        let fitted = fit_label(&long, 63);
        assert_eq!(fitted.len(), 63);
        assert!(is_dns_label(&fitted));
        // Two long values with one beginning stay apart.
        assert_ne!(fitted, fit_label(&format!("{long}y"), 63));
        let prefixed = fit_label(&format!("c16-{}", "a".repeat(70)), 63);
        assert!(prefixed.starts_with("c16-aaa") && prefixed.len() == 63);
        assert!(is_dns_label(&fit_label("///", 63)));
        assert_eq!(fit_label("abc", 200), "abc");
    }

    proptest! {
        #[test]
        fn fit_label_always_gives_a_dns_label(s in ".{0,200}", max in 1usize..80) {
            let l = fit_label(&s, max);
            prop_assert!(is_dns_label(&l), "{l:?}");
            prop_assert!(l.len() <= max.clamp(1, 63));
        }
    }

    fn names<'a>(env: &str, branches: &[&'a str]) -> HashMap<&'a str, String> {
        assign(
            env,
            branches.iter().copied(),
            &HashSet::new(),
            &HashMap::new(),
        )
    }

    #[test]
    fn plain_names_for_ordinary_branches() {
        let n = names("shop", &["main", "feature/Login-Page", "fix/cart_total"]);
        assert_eq!(n["main"], "shop-main");
        assert_eq!(n["feature/Login-Page"], "shop-feature-login-page");
        assert_eq!(n["fix/cart_total"], "shop-fix-cart-total");
    }

    #[test]
    fn colliding_branches_get_a_hash_and_the_exact_slug_keeps_the_plain_name() {
        let n = names("shop", &["feature/a", "feature-a", "Feature_A"]);
        assert_eq!(n["feature-a"], "shop-feature-a");
        assert!(n["feature/a"].starts_with("shop-feature-a-") && n["feature/a"].len() == 21);
        assert_ne!(n["feature/a"], n["Feature_A"]);
    }

    #[test]
    fn a_held_name_is_kept_when_a_colliding_branch_appears() {
        let held = [("feature/a", "shop-feature-a")].into();
        let n = assign("shop", ["feature/a", "feature-a"], &HashSet::new(), &held);
        assert_eq!(n["feature/a"], "shop-feature-a");
        assert_ne!(n["feature-a"], "shop-feature-a");
    }

    #[test]
    fn long_and_empty_slugs_are_hashed_and_fit() {
        let long = "feature/".to_string() + &"x".repeat(240);
        let n = names("shop", &[&long, "日本語", "---"]);
        assert_eq!(n[long.as_str()].len(), 63);
        assert!(check_label(&n[long.as_str()]).is_ok());
        assert!(n["日本語"].starts_with("shop-") && check_label(&n["日本語"]).is_ok());
        assert_ne!(n["日本語"], n["---"]);
    }

    #[test]
    fn the_hash_is_stable() {
        // Changing this breaks the names of every running staging: do not.
        assert_eq!(short_hash("feature/a", 6), "951d42");
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_label("shop-main").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn names_are_valid_and_distinct(
            branches in proptest::collection::hash_set("[a-zA-Z0-9/._\\-é日]{1,250}", 1..40),
            env in "[a-z][a-z0-9]{0,23}",
        ) {
            let list: Vec<&str> = branches.iter().map(String::as_str).collect();
            let n = names(&env, &list);
            let distinct: HashSet<&String> = n.values().collect();
            prop_assert_eq!(distinct.len(), list.len());
            for name in n.values() {
                prop_assert!(check_label(name).is_ok(), "{}", name);
            }
            // Deterministic whatever the order.
            let mut rev = list.clone();
            rev.reverse();
            prop_assert_eq!(names(&env, &rev), n);
        }
    }
}
