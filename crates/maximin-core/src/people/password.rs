//! Passwords: Argon2id hashes (the `argon2` crate's defaults: 19 MiB, two
//! passes, OWASP's minimum) in the PHC string format, and the strength
//! check a new password passes.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::{Error, Result};

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 256;

/// Passwords people pick first; refused whatever their length.
const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "iloveyou",
    "letmein",
    "welcome",
    "admin",
    "changeme",
    "abc123",
    "qwerty123",
    "password1",
    "trustno1",
    "football",
    "baseball",
    "dragon",
    "monkey",
    "sunshine",
    "princess",
    "whatever",
    "superman",
    "starwars",
    "maximin",
    "minimax",
];

/// Why a password is too weak, or nothing.
pub fn weakness(password: &str, email: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Some(format!("The password needs at least {MIN_LEN} characters."));
    }
    if chars > MAX_LEN {
        return Some(format!(
            "The password may have at most {MAX_LEN} characters."
        ));
    }
    let lower = password.to_lowercase();
    let stripped: String = lower.chars().filter(|c| c.is_alphanumeric()).collect();
    if COMMON
        .iter()
        .any(|c| stripped == *c || (stripped.starts_with(c) && stripped.len() - c.len() <= 4))
    {
        return Some("The password is one of the most common ones; pick another.".into());
    }
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    if local.chars().count() >= 4 && lower.contains(&local) {
        return Some("The password must not contain your e-mail address.".into());
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some("The password repeats too few characters; use more different ones.".into());
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_numeric()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if chars < 16 && classes < 3 {
        return Some(
            "Use at least three of: lower case, upper case, digits, symbols (or 16 characters or more)."
                .into(),
        );
    }
    None
}

/// Hashes on the blocking pool (Argon2 is meant to be slow).
pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

/// Whether the password matches the hash; a hash that does not parse
/// matches nothing.
pub async fn verify(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(Error::internal)
}

/// A hash of nothing anyone knows: verified against when the e-mail is
/// unknown, so that an unknown address takes as long as a wrong password.
pub fn decoy() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8Jm0s6Zs2SS3YyVfr0GSsTmRbIXMPuUNGoRGxhAxbsY"
}

pub fn check(password: &str, email: &str) -> Result<()> {
    match weakness(password, email) {
        Some(why) => Err(Error::invalid("password", why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named() {
        let e = "alice@example.com";
        assert!(weakness("short1!", e).is_some());
        assert!(weakness("Password123", e).is_some(), "common with a suffix");
        assert!(
            weakness("Alice-2026-xyz", e).is_some(),
            "contains the e-mail"
        );
        assert!(weakness("aaaaaaaaaaaaaaaaaa", e).is_some(), "few distinct");
        assert!(weakness("lowercaseonly", e).is_some(), "one class, short");
        assert!(weakness("Tr0ub4dor&3x", e).is_none());
        assert!(weakness("correct horse battery staple", e).is_none());
    }

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let h1 = hash("Tr0ub4dor&3x").await.expect("hash");
        let h2 = hash("Tr0ub4dor&3x").await.expect("hash");
        assert!(h1.starts_with("$argon2id$"));
        assert_ne!(h1, h2, "salted");
        assert!(verify("Tr0ub4dor&3x", &h1).await.expect("verify"));
        assert!(!verify("Tr0ub4dor&3y", &h1).await.expect("verify"));
        assert!(!verify("x", "not a hash").await.expect("verify"));
        assert!(
            PasswordHash::new(decoy()).is_ok(),
            "the decoy costs a real verification"
        );
        assert!(!verify("x", decoy()).await.expect("decoy"));
    }
}
