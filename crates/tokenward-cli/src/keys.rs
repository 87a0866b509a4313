//! Loading keys from the files `keygen` writes (and from the user's own PEM, secret and JWKS
//! files). Errors name the file and the problem, never the key material.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokenward_claims::{Algorithm, JwksOptions, Key, KeyResolver, KeySet, alg};

use crate::error::CliError;
use crate::files::read_key_file;

/// Parses an algorithm name exactly as RFC 7518 spells it (`EdDSA`, `ES256`, `RS256`, ...).
pub(crate) fn parse_alg(s: &str) -> Result<Algorithm, String> {
    if s.eq_ignore_ascii_case("none") {
        return Err("`none` is never accepted: an unsigned token proves nothing".into());
    }
    alg::parse(s).ok_or_else(|| {
        let names: Vec<&str> = alg::SUPPORTED.iter().map(|a| alg::name(*a)).collect();
        format!("unknown algorithm; expected one of {}", names.join(", "))
    })
}

/// The longest `kid` usable as a file name.
const MAX_FILE_KID: usize = 128;

/// Whether `kid` can name a key file in a key directory: 1–128 of `A–Z a–z 0–9 . _ -`, not
/// starting with `.` (so no paths, no hidden files, no `..`).
pub(crate) fn is_file_safe_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_FILE_KID
        && !kid.starts_with('.')
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) fn check_file_safe_kid(kid: &str) -> Result<(), CliError> {
    if is_file_safe_kid(kid) {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "--kid {kid:?}: a key id that names a key file must be 1-{MAX_FILE_KID} characters \
             of A-Z a-z 0-9 . _ - and must not start with '.'"
        )))
    }
}

/// The file `keygen` writes the private key (or HMAC secret) of `kid` to.
pub(crate) fn private_key_path(dir: &Path, kid: &str, alg: Algorithm) -> PathBuf {
    let ext = if alg::is_hmac(alg) { "secret" } else { "pem" };
    dir.join(format!("{kid}.{ext}"))
}

/// Loads a PEM key (private or public) bound to `alg`.
pub(crate) fn load_pem(path: &Path, kid: &str, alg: Algorithm) -> Result<Key, CliError> {
    let pem = read_key_file(path)?;
    Key::from_pem(kid, alg, &pem).map_err(|source| CliError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Loads a raw HMAC secret (the file's bytes, exactly) bound to `alg`.
pub(crate) fn load_secret(path: &Path, kid: &str, alg: Algorithm) -> Result<Key, CliError> {
    if !alg::is_hmac(alg) {
        return Err(CliError::Usage(format!(
            "--secret-file needs an HMAC algorithm (HS256, HS384, HS512), not {}",
            alg::name(alg)
        )));
    }
    let secret = read_key_file(path)?;
    Key::hmac(kid, alg, &secret).map_err(|source| CliError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Loads the private key (or secret) of `kid` from a key file of either kind.
pub(crate) fn load_private(path: &Path, kid: &str, alg: Algorithm) -> Result<Key, CliError> {
    let key = if alg::is_hmac(alg) {
        load_secret(path, kid, alg)?
    } else {
        load_pem(path, kid, alg)?
    };
    if !key.can_sign() {
        return Err(CliError::bad_file(
            path,
            "holds a public key; signing needs the private key",
        ));
    }
    Ok(key)
}

/// The kid a key file names when `--kid` is not given: its file name without extension.
pub(crate) fn kid_from_file_name(path: &Path) -> Result<String, CliError> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{}: cannot derive a key id from the file name; give --kid",
                path.display()
            ))
        })
}

/// A parsed JWKS file: the document as written (to extend it without rewriting the other
/// keys) and the keys loaded from it.
#[derive(Debug)]
pub(crate) struct Jwks {
    /// The top-level JSON object, `keys` included.
    pub(crate) doc: serde_json::Map<String, Value>,
    /// The loaded keys.
    pub(crate) set: KeySet,
    /// `(kid, alg)` of every key, in document order (the last one is the newest `keygen`
    /// added).
    pub(crate) order: Vec<(String, Algorithm)>,
}

/// Loads a JWKS file as providers publish it, with the default [`JwksOptions`].
pub(crate) fn load_jwks(path: &Path) -> Result<Jwks, CliError> {
    load_jwks_with(path, &JwksOptions::new())
}

/// Loads a JWKS file with the rules of [`KeySet::load_jwks`]: keys without `alg` bind to their
/// key type's one algorithm, encryption keys and unsupported key types are skipped with a
/// warning on stderr, a broken key (malformed, weak, no `kid`, duplicate `kid`) is an error.
///
/// Parse errors give a position and a category, never the document's content (a secret
/// JWKS holds the secrets).
pub(crate) fn load_jwks_with(path: &Path, options: &JwksOptions) -> Result<Jwks, CliError> {
    parse_jwks(path, &read_key_file(path)?, options)
}

/// [`load_jwks_with`] of the content `bytes`, already read from `path`.
pub(crate) fn parse_jwks(
    path: &Path,
    bytes: &[u8],
    options: &JwksOptions,
) -> Result<Jwks, CliError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        CliError::bad_file(
            path,
            format!(
                "not valid JSON (line {}, column {}); expected a JWKS {{\"keys\": [...]}}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(doc) = doc else {
        return Err(CliError::bad_file(
            path,
            "not a JWKS: expected a JSON object {\"keys\": [...]}",
        ));
    };
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err(CliError::bad_file(
            path,
            "not a JWKS: no `keys` array in the top-level object",
        ));
    };
    let load =
        KeySet::load_jwks(bytes, options).map_err(|e| CliError::bad_file(path, e.to_string()))?;
    for skipped in &load.skipped {
        eprintln!("tokenward: warning: {}: {skipped}", path.display());
    }
    let order = entries
        .iter()
        .filter_map(|entry| entry.get("kid")?.as_str())
        .filter_map(|kid| Some((kid.to_owned(), load.keys.get(kid)?.algorithm())))
        .collect();
    Ok(Jwks {
        doc,
        set: load.keys,
        order,
    })
}

/// Whether two keys are the same key (same public part, or same secret).
pub(crate) fn same_key(a: &Key, b: &Key) -> bool {
    if a.algorithm() != b.algorithm() {
        return false;
    }
    match (a.public_jwk(), b.public_jwk()) {
        (Some(a), Some(b)) => a.algorithm == b.algorithm,
        (None, None) => match (a.dangerous_secret_jwk(), b.dangerous_secret_jwk()) {
            (Some(a), Some(b)) => a.algorithm == b.algorithm,
            _ => false,
        },
        _ => false,
    }
}

/// Loads the signing key of a key directory written by `keygen`: `kid` if given, otherwise
/// the newest key of `DIR/jwks.json` (the last one) that has a private key file. The private
/// key must match its published entry.
pub(crate) fn load_from_dir(
    dir: &Path,
    kid: Option<&str>,
    alg: Option<Algorithm>,
) -> Result<Key, CliError> {
    let jwks_path = dir.join("jwks.json");
    let jwks = load_jwks(&jwks_path)?;
    let has_private = |kid: &str, alg: Algorithm| {
        is_file_safe_kid(kid) && private_key_path(dir, kid, alg).is_file()
    };
    let (kid, key_alg) = match kid {
        Some(wanted) => {
            check_file_safe_kid(wanted)?;
            jwks.order
                .iter()
                .find(|(k, _)| k == wanted)
                .cloned()
                .ok_or_else(|| {
                    CliError::bad_file(&jwks_path, format!("no key with kid {wanted:?}"))
                })?
        }
        None => jwks
            .order
            .iter()
            .rev()
            .find(|(k, a)| has_private(k, *a))
            .cloned()
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: no private key file for any key of jwks.json (expected KID.pem or \
                     KID.secret as written by `tokenward keygen`)",
                    dir.display()
                ))
            })?,
    };
    if let Some(alg) = alg.filter(|a| *a != key_alg) {
        return Err(CliError::Usage(format!(
            "key {kid:?} is bound to {}, not {}",
            alg::name(key_alg),
            alg::name(alg)
        )));
    }
    let path = private_key_path(dir, &kid, key_alg);
    let key = load_private(&path, &kid, key_alg)?;
    let matches = jwks.set.get(&kid).is_some_and(|p| same_key(&key, p));
    if !matches {
        return Err(CliError::bad_file(
            &path,
            format!("does not match the key {kid:?} published in jwks.json"),
        ));
    }
    Ok(key)
}

/// One trusted key that verifies a token whatever `kid` it names (or none): what
/// `verify --key FILE` without `--kid` means. The algorithm is still pinned by the key.
#[derive(Debug)]
pub(crate) struct AnyKid(pub(crate) Arc<Key>);

impl KeyResolver for AnyKid {
    fn resolve(&self, _kid: Option<&str>) -> Option<Arc<Key>> {
        Some(Arc::clone(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_safe_kids() {
        for ok in ["k1", "2026-11", "a.b_c-D"] {
            assert!(is_file_safe_kid(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "..\\x",
            "a b",
            "k\n",
            "é",
            &"k".repeat(129),
        ] {
            assert!(!is_file_safe_kid(bad), "{bad:?}");
        }
    }

    #[test]
    fn alg_names_are_exact_and_none_is_refused() {
        assert_eq!(parse_alg("EdDSA"), Ok(Algorithm::EdDSA));
        for bad in ["none", "NONE", "eddsa", "HS256 ", "ES512"] {
            assert!(parse_alg(bad).is_err(), "{bad:?}");
        }
    }
}
