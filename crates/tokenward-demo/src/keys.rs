//! The demo's signing keys: a directory written by `tokenward keygen`, or an ephemeral key.
//!
//! `tokenward keygen --alg ALG --kid KID --out DIR` writes the private key to `DIR/KID.pem`
//! (PKCS#8 PEM) or, for HMAC, the raw secret to `DIR/KID.secret`, and adds the key's public
//! part (or, for HMAC, the secret) to `DIR/jwks.json`; running it again with a new kid adds
//! the next key (rotation). [`load_dir`] reads exactly that: every key of `jwks.json`
//! verifies, and the **last** key of `jwks.json` that has a private key file signs — the
//! newest key `keygen` added, as `tokenward issue --keys DIR` chooses it.

use std::path::{Path, PathBuf};

use tokenward_claims::jwk::JwkSet;
use tokenward_claims::{Algorithm, Key, KeyError, KeySet, KeySetError, alg, generate_pkcs8};

/// Why the keys could not be loaded. Messages name the file, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// A file could not be read.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is not what `tokenward keygen` writes.
    #[error("{}: {message}", .path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key was refused.
    #[error("{}: {source}", .path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The key set was refused (a duplicate kid).
    #[error("key set: {0}")]
    Set(#[from] KeySetError),
}

/// Loads a key directory written by `tokenward keygen` (see the [module docs](self)).
pub fn load_dir(dir: &Path) -> Result<KeySet, KeysError> {
    let jwks_path = dir.join("jwks.json");
    let text = std::fs::read_to_string(&jwks_path).map_err(|source| KeysError::Read {
        path: jwks_path.clone(),
        source,
    })?;
    let jwks: JwkSet = serde_json::from_str(&text).map_err(|e| KeysError::Bad {
        path: jwks_path.clone(),
        // Position only: a secret key set holds secrets.
        message: format!(
            "not a JWKS document (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    let mut set = KeySet::new();
    let mut signer = None;
    for jwk in &jwks.keys {
        let published = Key::from_jwk(jwk, None, None).map_err(|source| KeysError::Key {
            path: jwks_path.clone(),
            source,
        })?;
        let kid = published.kid().to_owned();
        let algorithm = published.algorithm();
        let key = match private_key_file(dir, &kid, algorithm) {
            Some(path) => {
                let private = load_private(&path, &kid, algorithm)?;
                check_same(&private, &published, &path)?;
                signer = Some(kid.clone());
                private
            }
            None => published,
        };
        set.insert(key)?;
    }
    let signer = signer.ok_or_else(|| KeysError::Bad {
        path: dir.to_owned(),
        message: "no private key file (KID.pem or KID.secret, as written by `tokenward \
                  keygen`) for any key of jwks.json"
            .to_owned(),
    })?;
    set.activate(&signer)?;
    Ok(set)
}

/// A fresh Ed25519 key that lives as long as the process: tokens do not survive a restart,
/// and two instances started without `--keys` do not accept each other's tokens.
pub fn ephemeral() -> Result<KeySet, KeyError> {
    let der = generate_pkcs8(Algorithm::EdDSA)?;
    let mut kid = String::from("ephemeral-");
    let mut random = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| KeyError::Rejected("the system RNG failed".into()))?;
    for b in random {
        kid.push_str(&format!("{b:02x}"));
    }
    Ok(KeySet::single(Key::from_pkcs8_der(
        kid,
        Algorithm::EdDSA,
        &der,
    )?))
}

/// `DIR/KID.pem` or `DIR/KID.secret` when it exists and `kid` can name a file.
fn private_key_file(dir: &Path, kid: &str, algorithm: Algorithm) -> Option<PathBuf> {
    let file_safe = !kid.is_empty()
        && !kid.starts_with('.')
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !file_safe {
        return None;
    }
    let ext = if alg::is_hmac(algorithm) {
        "secret"
    } else {
        "pem"
    };
    let path = dir.join(format!("{kid}.{ext}"));
    path.is_file().then_some(path)
}

fn load_private(path: &Path, kid: &str, algorithm: Algorithm) -> Result<Key, KeysError> {
    let bytes = std::fs::read(path).map_err(|source| KeysError::Read {
        path: path.to_owned(),
        source,
    })?;
    let key = if alg::is_hmac(algorithm) {
        Key::hmac(kid, algorithm, &bytes)
    } else {
        Key::from_pem(kid, algorithm, &bytes)
    }
    .map_err(|source| KeysError::Key {
        path: path.to_owned(),
        source,
    })?;
    if !key.can_sign() {
        return Err(KeysError::Bad {
            path: path.to_owned(),
            message: "holds a public key; the demo signs tokens and needs the private key"
                .to_owned(),
        });
    }
    Ok(key)
}

/// The private key must be the one `jwks.json` publishes: sign with it, verify with that.
fn check_same(private: &Key, published: &Key, path: &Path) -> Result<(), KeysError> {
    let message = b"tokenward-demo key check";
    let matches = private
        .sign(message)
        .is_ok_and(|signature| published.verify(message, &signature));
    if matches {
        Ok(())
    } else {
        Err(KeysError::Bad {
            path: path.to_owned(),
            message: format!(
                "does not match the key {:?} published in jwks.json",
                private.kid()
            ),
        })
    }
}
