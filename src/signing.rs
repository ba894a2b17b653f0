//! HMAC-SHA256 signatures in hex, as webhooks carry them: what octostage's notifications send,
//! what GitHub and Gitea deliveries are checked against, what replicas sign forwarded actions
//! with. One place, so that every signer agrees byte for byte.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// HMAC-SHA256 with `key` of `parts` one after the other, in hex.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_published_example() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
