//! The demo's users: Argon2id password hashes made at startup, never a plaintext comparison.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::{SecureRandom, SystemRandom};

/// One demo user.
#[derive(Debug)]
struct User {
    name: &'static str,
    /// The PHC string (`$argon2id$v=19$m=...$salt$hash`).
    hash: String,
    scopes: &'static [&'static str],
}

/// The demo users: `alice`, `bob` and `carol` with password `<name>-password`, and `admin`
/// with `admin-password` and the `admin` scope.
#[derive(Debug)]
pub(crate) struct Users {
    users: Vec<User>,
    /// Verified when the user is unknown, so an unknown name costs the same as a known one.
    dummy: String,
}

/// The demo accounts: (name, password, scopes).
pub(crate) const ACCOUNTS: &[(&str, &str, &[&str])] = &[
    ("alice", "alice-password", &[]),
    ("bob", "bob-password", &[]),
    ("carol", "carol-password", &[]),
    ("admin", "admin-password", &["admin"]),
];

/// Why the users could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("hashing the demo passwords failed: {0}")]
pub(crate) struct HashError(String);

impl Users {
    /// Hashes every demo password with a fresh random salt (Argon2id, default parameters).
    pub(crate) fn new() -> Result<Users, HashError> {
        let rng = SystemRandom::new();
        let mut users = Vec::with_capacity(ACCOUNTS.len());
        for (name, password, scopes) in ACCOUNTS {
            users.push(User {
                name,
                hash: hash(&rng, password)?,
                scopes,
            });
        }
        let mut unguessable = [0u8; 32];
        rng.fill(&mut unguessable)
            .map_err(|_| HashError("the system RNG failed".into()))?;
        let dummy = hash(&rng, &format!("{unguessable:?}"))?;
        Ok(Users { users, dummy })
    }

    /// The user `name` if `password` is theirs. Always exactly one Argon2 verification,
    /// whether the user exists or not. CPU-heavy: call it from a blocking thread.
    pub(crate) fn verify(&self, name: &str, password: &str) -> Option<&'static str> {
        let user = self.users.iter().find(|u| u.name == name);
        let phc = user.map_or(self.dummy.as_str(), |u| u.hash.as_str());
        let ok = PasswordHash::new(phc).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        match user {
            Some(user) if ok => Some(user.name),
            _ => None,
        }
    }

    /// The scopes of `name` (none for an unknown name).
    pub(crate) fn scopes(&self, name: &str) -> &'static [&'static str] {
        self.users
            .iter()
            .find(|u| u.name == name)
            .map_or(&[], |u| u.scopes)
    }
}

fn hash(rng: &SystemRandom, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| HashError("the system RNG failed".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    #[test]
    fn passwords_verify_against_salted_hashes_only() {
        let users = Users::new().unwrap();
        assert_eq!(users.verify("alice", "alice-password"), Some("alice"));
        assert_eq!(users.verify("alice", "bob-password"), None);
        assert_eq!(users.verify("mallory", "mallory-password"), None);
        assert_eq!(users.verify("admin", "admin-password"), Some("admin"));
        assert_eq!(users.scopes("admin"), ["admin"]);
        assert!(users.scopes("alice").is_empty());
        for user in &users.users {
            assert!(user.hash.starts_with("$argon2id$"), "{}", user.hash);
            assert!(!user.hash.contains("password"));
        }
        // A random salt per hash: the same password never hashes the same twice.
        let again = Users::new().unwrap();
        assert_ne!(users.users[0].hash, again.users[0].hash);
    }
}
