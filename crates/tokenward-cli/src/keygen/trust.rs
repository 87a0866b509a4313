//! Whether `keygen` may write into a key directory and extend the `jwks.json` it finds there.
//!
//! A directory others can write to, or a key set tokenward did not write, may hold a key
//! someone planted: extending that key set would publish their key as the operator's, and
//! every verifier would accept tokens they sign. So `keygen` writes only into directories
//! only their owner can write to, and extends only a `jwks.json` it recognises: one whose
//! SHA-256 the `jwks.json.sha256` it wrote next to it records (`sha256sum` format), or —
//! a key directory of an earlier tokenward, or one whose retired keys were removed by hand —
//! one whose every key has its matching private key file in the directory.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::Path;

use serde_json::Value;
use tokenward_claims::JwksOptions;

use crate::error::CliError;
use crate::files;
use crate::keys::{self, Jwks};

/// The file next to `jwks.json` that records the SHA-256 of the `jwks.json` keygen wrote.
pub(crate) const MANIFEST: &str = "jwks.json.sha256";

/// How an existing `jwks.json` was recognised as one `keygen` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provenance {
    /// [`MANIFEST`] records its SHA-256.
    Manifest,
    /// Every key it holds has its matching private key file in the directory.
    PrivateKeys,
}

/// What an existing `jwks.json` turned out to be.
#[derive(Debug)]
pub(crate) enum Recognised {
    /// A key set `keygen` may extend.
    Trusted(Jwks, Provenance),
    /// Not recognisably `keygen`'s: why, and what would make it so.
    Untrusted(String),
}

/// The line of [`MANIFEST`] for a `jwks.json` holding `content`, as `sha256sum` writes it.
pub(crate) fn manifest_line(content: &[u8]) -> String {
    format!("{}  jwks.json\n", sha256_hex(content))
}

fn sha256_hex(content: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, content);
    let mut hex = String::with_capacity(64);
    for byte in digest.as_ref() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Reads `dir/jwks.json` once and tells whether `keygen` may extend it. `Err` when it cannot
/// be read or is not a key set at all.
pub(crate) fn recognise(dir: &Path, jwks_path: &Path) -> Result<Recognised, CliError> {
    if let Some(why) = files::not_owner_only_file(jwks_path)? {
        return Ok(Recognised::Untrusted(format!(
            "{why}; a key set keygen wrote is a regular file only its owner can change"
        )));
    }
    let bytes = files::read_key_file(jwks_path)?;
    let jwks = keys::parse_jwks(jwks_path, &bytes, &JwksOptions::new())?;
    let no_manifest = match manifest_matches(dir, &bytes)? {
        None => return Ok(Recognised::Trusted(jwks, Provenance::Manifest)),
        Some(why) => why,
    };
    Ok(match private_keys_match(dir, &jwks) {
        None => Recognised::Trusted(jwks, Provenance::PrivateKeys),
        Some(why) => Recognised::Untrusted(format!(
            "not recognisably written by tokenward keygen: {no_manifest}, and {why}. Check its \
             keys; if every one is yours, record the file with `sha256sum jwks.json > \
             {MANIFEST}` in {}",
            dir.display()
        )),
    })
}

/// `None` when [`MANIFEST`] records the SHA-256 of `content`, otherwise why not.
fn manifest_matches(dir: &Path, content: &[u8]) -> Result<Option<String>, CliError> {
    let path = dir.join(MANIFEST);
    match files::not_owner_only_file(&path) {
        Ok(None) => {}
        Ok(Some(why)) => return Ok(Some(format!("{MANIFEST} {why}"))),
        Err(CliError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(Some(format!("there is no {MANIFEST} next to it")));
        }
        Err(e) => return Err(e),
    }
    let recorded = files::read_key_file(&path)?;
    let recorded = String::from_utf8_lossy(&recorded);
    let hash = recorded.split_whitespace().next().unwrap_or_default();
    Ok(if hash.eq_ignore_ascii_case(&sha256_hex(content)) {
        None
    } else {
        Some(format!(
            "{MANIFEST} records another SHA-256 (was it changed since keygen wrote it?)"
        ))
    })
}

/// `None` when every key of `jwks` has its matching private key file in `dir` (and the set
/// holds nothing else), otherwise why not.
fn private_keys_match(dir: &Path, jwks: &Jwks) -> Option<String> {
    let entries = jwks
        .doc
        .get("keys")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if entries != jwks.order.len() {
        return Some(format!(
            "it holds {} entries keygen does not write",
            entries.saturating_sub(jwks.order.len())
        ));
    }
    for (kid, alg) in &jwks.order {
        if !keys::is_file_safe_kid(kid) {
            return Some(format!("key {kid:?} cannot have a key file"));
        }
        let path = keys::private_key_path(dir, kid, *alg);
        match files::not_owner_only_file(&path) {
            Ok(None) => {}
            Ok(Some(why)) => return Some(format!("the key file of {kid:?} {why}")),
            Err(_) => return Some(format!("key {kid:?} has no private key file here")),
        }
        let matches = keys::load_private(&path, kid, *alg)
            .ok()
            .zip(jwks.set.get(kid))
            .is_some_and(|(private, published)| keys::same_key(&private, published));
        if !matches {
            return Some(format!(
                "the key file of {kid:?} does not hold its published key"
            ));
        }
    }
    None
}
