//! End-to-end tests of the `tokenward` binary: keygen → issue → verify, typed rejections,
//! stdin mode, exit statuses, inspect lints, key rotation, identity providers' key sets and
//! tokens. (`tests/revoke.rs`, which needs
//! Redis, is the other test binary.)
// Test helpers outside `#[test]` functions (clippy.toml allows these inside them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod inspect;
mod keygen;
mod providers;
mod verify;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::common::{Out, run, run_with};

/// The time tokens are issued at in these tests.
const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://auth.example";
const AUD: &str = "orders-api";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn keygen(dir: &Path, alg: &str, kid: &str) {
    let out = run(&["keygen", "--alg", alg, "--kid", kid, "--out", s(dir)]);
    assert_eq!(out.code, 0, "keygen {alg}: {}", out.stderr);
}

/// A temporary key directory with one key, `kid` of `alg`, written by `keygen`.
fn key_dir(alg: &str, kid: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), alg, kid);
    dir
}

/// Fails unless `text` (a command's output) starts with `prefix`.
fn assert_starts_with(text: &str, prefix: &str) {
    assert!(
        text.starts_with(prefix),
        "expected {prefix:?} first: {text}"
    );
}

/// A token for alice from the key directory `dir`, issued at `NOW`.
fn issue(dir: &Path, extra: &[&str]) -> String {
    let now = NOW.to_string();
    let mut args = vec!["issue", "--keys", s(dir), "--iss", ISS, "--aud", AUD];
    args.extend(["--sub", "alice", "--now", &now]);
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_eq!(out.code, 0, "issue: {}", out.stderr);
    let token = out.stdout.strip_suffix('\n').unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}

/// `verify --jwks DIR/jwks.json --json [extra] [token]`, with `--iss ISS`, `--aud AUD` and
/// `--now NOW+60` unless `extra` sets them.
fn verify(dir: &Path, token: Option<&str>, extra: &[&str], stdin: Option<Vec<u8>>) -> Out {
    let jwks = dir.join("jwks.json");
    let now = (NOW + 60).to_string();
    let mut args = vec!["verify", "--jwks", s(&jwks), "--json"];
    for (flag, default) in [("--iss", ISS), ("--aud", AUD), ("--now", now.as_str())] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    args.extend(token);
    run_with(&args, stdin, &[])
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The class of a `{"valid":false,...}` line, or "valid".
fn class_of(line: &Value) -> String {
    if line["valid"] == Value::Bool(true) {
        "valid".to_owned()
    } else {
        line["class"].as_str().unwrap().to_owned()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A token with `header` and `claims` as given and `signature` (base64url) appended.
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The `kid`s of a JWKS file, in document order.
fn kids(jwks: &Path) -> Vec<String> {
    let set: Value = serde_json::from_slice(&std::fs::read(jwks).unwrap()).unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
