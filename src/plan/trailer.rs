//! `Staging:` trailers: a developer steers their own branch's staging from the head commit's
//! message, without access to the config repository. The value is untrusted text; anything but
//! the three forms below is reported as a hint and otherwise ignored.

use std::time::Duration;

/// What a head commit's `Staging:` trailer asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// `Staging: skip`: no staging for this branch (an existing one is deleted, guarded).
    Skip,
    /// `Staging: keep 14d`: keep it at least this long after the commit was first seen
    /// (capped by `max_extension`).
    Keep(Duration),
    /// `Staging: sleep`: keep it asleep until a later commit says otherwise (or `wake`).
    Sleep,
}

/// What is wrong with a trailer's value, for a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SteerError {
    /// `keep` without a positive duration: what came instead.
    #[error("\"keep\" needs a duration such as 14d, not {0:?}")]
    Keep(String),
    /// None of the three forms.
    #[error("expected \"skip\", \"sleep\" or \"keep <duration>\"")]
    Form,
}

/// Parse a trailer value.
pub fn parse(value: &str) -> Result<Steer, SteerError> {
    let v = value.trim();
    let mut words = v.split_ascii_whitespace();
    let first = words.next().unwrap_or("").to_ascii_lowercase();
    let rest: Vec<&str> = words.collect();
    match (first.as_str(), rest.as_slice()) {
        ("skip", []) => Ok(Steer::Skip),
        ("sleep", []) => Ok(Steer::Sleep),
        ("keep", [d]) => match humantime::parse_duration(d) {
            Ok(d) if d > Duration::ZERO => Ok(Steer::Keep(d)),
            _ => Err(SteerError::Keep(d.to_string())),
        },
        _ => Err(SteerError::Form),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse_and_anything_else_is_refused() {
        assert_eq!(parse("skip"), Ok(Steer::Skip));
        assert_eq!(parse(" Sleep "), Ok(Steer::Sleep));
        assert_eq!(
            parse("keep 14d"),
            Ok(Steer::Keep(Duration::from_secs(14 * 86400)))
        );
        for bad in [
            "",
            "keep",
            "keep 0s",
            "keep forever",
            "skip now",
            "$(rm -rf /)",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
