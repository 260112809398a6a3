//! API key secrets and ids: generation, hashing, display prefixes.
//!
//! A secret is `mmx_live_` or `mmx_test_` followed by 40 base62 characters (about
//! 238 bits). Only its SHA-256 is stored; with that much entropy a fast hash is
//! enough, and a lookup by hash needs no per-key salt. The stored hash is compared
//! again in constant time after the indexed lookup.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const LIVE_PREFIX: &str = "mmx_live_";
pub const TEST_PREFIX: &str = "mmx_test_";
const SECRET_BODY_LEN: usize = 40;
/// How many characters of the body are kept for display.
const DISPLAY_BODY_LEN: usize = 4;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` characters drawn uniformly from `rng`; bytes from 248 (4 × 62) up
/// are dropped, so that every character is equally likely.
fn base62_from(rng: &mut impl RngCore, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        rng.fill_bytes(&mut bytes);
        for b in bytes.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    out
}

/// Characters for ids: from the thread's CSPRNG (ChaCha, seeded and
/// reseeded from the OS). Reading the OS generator for every id cost a
/// system call per id, two or three per request.
fn base62(len: usize) -> String {
    base62_from(&mut rand::thread_rng(), len)
}

/// A new random id such as `acct_3hF9…` (16 base62 characters after the prefix).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", base62(16))
}

/// A token for a browser to hold (a hub session, an invitation link):
/// `len` base62 characters from the OS generator (43 hold 256 bits).
pub fn random_token(len: usize) -> String {
    base62_from(&mut rand::rngs::OsRng, len)
}

/// A new request id, `req_` and 24 base62 characters.
pub fn new_request_id() -> String {
    format!("req_{}", base62(24))
}

pub fn generate_secret(test: bool) -> String {
    let prefix = if test { TEST_PREFIX } else { LIVE_PREFIX };
    format!(
        "{prefix}{}",
        base62_from(&mut rand::rngs::OsRng, SECRET_BODY_LEN)
    )
}

/// Whether a bearer token has the shape of a maximin key. A token that does not is
/// rejected as malformed before any lookup.
pub fn is_well_formed(token: &str) -> bool {
    let body = token
        .strip_prefix(LIVE_PREFIX)
        .or_else(|| token.strip_prefix(TEST_PREFIX));
    match body {
        Some(body) => {
            body.len() == SECRET_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

pub fn is_test_secret(secret: &str) -> bool {
    secret.starts_with(TEST_PREFIX)
}

/// Hex SHA-256 of a secret: what the store keeps and looks keys up by.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The part of a secret safe to show in lists: `mmx_live_AbCd`.
pub fn display_prefix(secret: &str) -> String {
    secret
        .chars()
        .take(LIVE_PREFIX.len() + DISPLAY_BODY_LEN)
        .collect()
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_well_formed_and_distinct() {
        let a = generate_secret(false);
        let b = generate_secret(true);
        assert!(a.starts_with("mmx_live_") && is_well_formed(&a));
        assert!(b.starts_with("mmx_test_") && is_well_formed(&b));
        assert_ne!(a, generate_secret(false));
        assert!(!is_well_formed("mmx_live_short"));
        assert!(!is_well_formed(&a.replace("mmx_live_", "sk-")));
        assert_eq!(display_prefix(&a).len(), 13);
        assert_eq!(hash_secret(&a).len(), 64);
        assert!(constant_time_eq(&hash_secret(&a), &hash_secret(&a)));
        assert!(!constant_time_eq(&hash_secret(&a), &hash_secret(&b)));
    }

    #[test]
    fn ids_have_their_length_and_use_every_character_alike() {
        let mut counts = [0u32; 62];
        for _ in 0..4000 {
            let id = new_request_id();
            assert_eq!(id.len(), "req_".len() + 24, "{id}");
            for b in id["req_".len()..].bytes() {
                counts[BASE62.iter().position(|&c| c == b).expect("base62")] += 1;
            }
        }
        // 96,000 characters: 1,548 each on average (5 standard deviations:
        // ±195); a skewed draw (b % 62 over all 256 byte values) would give
        // the first eight about 1,875.
        assert!(
            counts.iter().all(|&n| (1350..1750).contains(&n)),
            "{counts:?}"
        );
        assert_eq!(new_id("acct").len(), "acct_".len() + 16);
    }
}
