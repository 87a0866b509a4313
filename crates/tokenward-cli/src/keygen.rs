//! `tokenward keygen`: a new signing key, and its public part added to `DIR/jwks.json`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::Value;
use tokenward_claims::jwk::Jwk;
use tokenward_claims::{
    Algorithm, AlgorithmFamily, Key, KeyError, alg, generate_pkcs8, generate_secret,
};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::escape::escape_controls;
use crate::files::{self, Access};
use crate::keys;

mod trust;

use trust::{MANIFEST, Provenance, Recognised};

/// RSA modulus size for generated keys.
const RSA_BITS: usize = 2048;

/// Generate a signing key: DIR/KID.pem (or DIR/KID.secret) and DIR/jwks.json.
///
/// Writes the private key to DIR/KID.pem (PKCS#8 PEM, mode 0600) or, for HS*, the raw secret
/// to DIR/KID.secret (0600), and adds the key to DIR/jwks.json: the public key, or for HS*
/// the secret itself (the file is then 0600). An existing jwks.json is extended, not
/// replaced — that is how keys are rotated — and DIR/jwks.json.sha256 records the SHA-256 of
/// the jwks.json written.
///
/// Refuses (exit 2), unless --force, a DIR that group or others can write to, and an
/// existing jwks.json it does not recognise as its own (jwks.json.sha256 does not match it
/// and not every key in it has its private key file in DIR): either could hold a planted
/// key that the extended key set would publish.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512, HS256, HS384 or HS512.
    #[arg(long, value_name = "ALG", value_parser = keys::parse_alg)]
    alg: Algorithm,
    /// The key id (names the key file: A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "KID")]
    kid: String,
    /// The key directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Overwrite the key file, replace jwks.json instead of adding to it, and write into a
    /// DIR that group or others can write to.
    #[arg(long)]
    force: bool,
}

/// A freshly generated key: the loaded key and the bytes of its private key file.
struct Generated {
    key: Key,
    file: Zeroizing<Vec<u8>>,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    keys::check_file_safe_kid(&args.kid)?;
    let out = &args.out;
    // What was done, and every check --force overrode, for the report.
    let mut done = Vec::new();
    let dir_existed = fs::symlink_metadata(out).is_ok();
    files::create_dir(out)?;
    if !dir_existed {
        done.push(format!("created directory {} (mode 0700)", out.display()));
    }
    if let Some(mode) = files::writable_by_others(out)? {
        if !args.force {
            return Err(CliError::Untrusted {
                path: out.clone(),
                reason: format!(
                    "writable by group or others (mode {mode:o}): whoever can write there can \
                     plant a key in jwks.json or swap the files keygen writes. Keep keys in a \
                     directory only you can write to (chmod go-w)"
                ),
                action: "write keys into it",
            });
        }
        done.push(format!(
            "--force overrode a check: {} is writable by group or others (mode {mode:o})",
            out.display()
        ));
    }
    let key_path = keys::private_key_path(out, &args.kid, args.alg);
    let jwks_path = out.join("jwks.json");
    let manifest_path = out.join(MANIFEST);
    if !args.force && key_path.exists() {
        return Err(CliError::Exists(key_path));
    }

    // The key set to extend, checked before anything is generated or written.
    let jwks_existed = fs::symlink_metadata(&jwks_path).is_ok();
    let existing = if !jwks_existed {
        None
    } else if args.force {
        // Replaced unread; say whether it would have been refused.
        let why = match trust::recognise(out, &jwks_path) {
            Ok(Recognised::Trusted(..)) => String::new(),
            Ok(Recognised::Untrusted(why)) => format!(" (--force overrode a check on it: {why})"),
            Err(e) => format!(" (--force overrode a check on it: {e})"),
        };
        done.push(format!(
            "replaced {} instead of extending it: the keys it held are no longer published{why}",
            jwks_path.display()
        ));
        None
    } else {
        let (jwks, provenance) = match trust::recognise(out, &jwks_path)? {
            Recognised::Trusted(jwks, provenance) => (jwks, provenance),
            Recognised::Untrusted(reason) => {
                return Err(CliError::Untrusted {
                    path: jwks_path,
                    reason,
                    action: "add a key to it",
                });
            }
        };
        if jwks.set.get(&args.kid).is_some() {
            return Err(CliError::bad_file(
                &jwks_path,
                format!(
                    "already holds a key with kid {:?}; choose a new kid (or --force)",
                    args.kid
                ),
            ));
        }
        // A public key set gets published; slipping a secret into it would leak the secret.
        // (The other way round, an asymmetric key added to a secret key set, is how a
        // deployment migrates from HS256 to EdDSA, and is fine.)
        if alg::is_hmac(args.alg) && jwks.set.iter().any(|k| !k.is_symmetric()) {
            return Err(CliError::bad_file(
                &jwks_path,
                "is a public key set (it may be published); an HMAC secret is not added to \
                 it. Keep HMAC secrets in their own --out directory (or --force to replace \
                 the key set)",
            ));
        }
        done.push(format!(
            "extended {} ({})",
            jwks_path.display(),
            match provenance {
                Provenance::Manifest => format!("recognised by {MANIFEST}"),
                Provenance::PrivateKeys => format!(
                    "no matching {MANIFEST}, but every key in it has its private key file here"
                ),
            }
        ));
        Some(jwks)
    };
    if !jwks_existed {
        done.push(format!("created {}", jwks_path.display()));
    }

    let generated = generate(&args.kid, args.alg)?;
    let entry = published_jwk(&generated.key)?;
    self_test(&generated.key, &entry)?;
    let entry = serde_json::to_value(&entry).map_err(|e| KeyError::Malformed(e.to_string()))?;

    let (mut doc, mut kids) = match existing {
        Some(jwks) => (
            jwks.doc,
            jwks.order.into_iter().map(|(kid, _)| kid).collect(),
        ),
        None => (serde_json::Map::new(), Vec::new()),
    };
    let mut entries = match doc.remove("keys") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    entries.push(entry);
    kids.push(args.kid.clone());
    let holds_secrets = entries
        .iter()
        .any(|e| e.get("kty").and_then(Value::as_str) == Some("oct"));
    doc.insert("keys".into(), Value::Array(entries));
    let mut jwks_text = Zeroizing::new(
        serde_json::to_string_pretty(&doc).map_err(|e| KeyError::Malformed(e.to_string()))?,
    );
    jwks_text.push('\n');

    // The private key first: a key set never names a key whose private part was lost.
    if args.force {
        files::replace(&key_path, Access::Private, &generated.file)?;
    } else {
        files::create_new(&key_path, Access::Private, &generated.file)?;
    }
    let jwks_access = if holds_secrets {
        Access::Private
    } else {
        Access::Public
    };
    files::replace(&jwks_path, jwks_access, jwks_text.as_bytes())?;
    // Last: a crash before it leaves a key set the next run recognises by its private keys.
    let manifest = trust::manifest_line(jwks_text.as_bytes());
    files::replace(&manifest_path, jwks_access, manifest.as_bytes())?;
    done.push(format!(
        "wrote {} (the SHA-256 of jwks.json, by which the next keygen recognises it)",
        manifest_path.display()
    ));

    report(args, &key_path, &jwks_path, &kids, holds_secrets, &done)
}

fn generate(kid: &str, alg: Algorithm) -> Result<Generated, CliError> {
    let (key, file) = match alg.family() {
        AlgorithmFamily::Hmac => {
            let secret = generate_secret(alg)?;
            (Key::hmac(kid, alg, &secret)?, secret)
        }
        AlgorithmFamily::Ec | AlgorithmFamily::Ed => {
            let der = generate_pkcs8(alg)?;
            let pem = pem::Pem::new("PRIVATE KEY", der.to_vec());
            let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
            let text = Zeroizing::new(pem::encode_config(&pem, config).into_bytes());
            drop(Zeroizing::new(pem.into_contents()));
            // Reloaded from the PEM text, as every later command will load it.
            (Key::from_pem(kid, alg, &text)?, text)
        }
        AlgorithmFamily::Rsa => {
            // ring cannot generate RSA keys; the `rsa` crate does (it never decrypts here).
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| KeyError::Unsupported(format!("RSA key generation failed: {e}")))?;
            let text = private
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| KeyError::Malformed(format!("PKCS#8 encoding failed: {e}")))?;
            let text = Zeroizing::new(text.as_bytes().to_vec());
            // Proves the `rsa` crate's PKCS#8 round-trips through ring.
            (Key::from_pem(kid, alg, &text)?, text)
        }
    };
    Ok(Generated { key, file })
}

/// The JWK `jwks.json` gets for `key`: its public part, or for HMAC the secret itself.
fn published_jwk(key: &Key) -> Result<Jwk, CliError> {
    Ok(key
        .public_jwk()
        .or_else(|| key.dangerous_secret_jwk())
        .ok_or_else(|| KeyError::Unsupported("the key has no JWK form".into()))?)
}

/// Signs with the new key and verifies with the key rebuilt from `jwk`, the entry about to be
/// published, so a key set never advertises a key that does not match its private part.
fn self_test(key: &Key, jwk: &Jwk) -> Result<(), CliError> {
    let message = b"tokenward keygen self-test";
    let signature = key.sign(message)?;
    let published = Key::from_jwk(jwk, None, None)?;
    if published.algorithm() == key.algorithm() && published.verify(message, &signature) {
        Ok(())
    } else {
        Err(CliError::KeyGen(KeyError::Rejected(
            "self-test failed: the published key does not verify the new key's signature".into(),
        )))
    }
}

fn report(
    args: &Args,
    key_path: &Path,
    jwks_path: &Path,
    kids: &[String],
    holds_secrets: bool,
    done: &[String],
) -> Result<ExitCode, CliError> {
    let name = alg::name(args.alg);
    let mut out = std::io::stdout().lock();
    let what = if alg::is_hmac(args.alg) {
        "raw HMAC secret, mode 0600 — keep it secret"
    } else {
        "PKCS#8 PEM private key, mode 0600 — keep it secret"
    };
    let set = if holds_secrets {
        "secret key set, mode 0600"
    } else {
        "public key set: publish it to verifiers"
    };
    let kid_list = kids
        .iter()
        .map(|k| escape_controls(k).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        out,
        "generated {name} key {:?}\n  wrote {} ({what})\n  wrote {} ({set}; kids: {kid_list})",
        args.kid,
        key_path.display(),
        jwks_path.display(),
    )
    .map_err(CliError::Output)?;
    for line in done {
        writeln!(out, "  {}", escape_controls(line)).map_err(CliError::Output)?;
    }
    if kids.len() > 1 {
        writeln!(
            out,
            "  rotation: {:?} is now the newest key (`tokenward issue --keys {}` signs with it); \
             remove a retired key from jwks.json once its last token has expired",
            args.kid,
            args.out.display()
        )
        .map_err(CliError::Output)?;
    }
    if holds_secrets {
        eprintln!(
            "tokenward: warning: {} contains the HMAC secret: anyone who can read it can mint \
             tokens. Share it only with services that must verify, over a secure channel; \
             prefer EdDSA/ES256 when several services verify.",
            jwks_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
