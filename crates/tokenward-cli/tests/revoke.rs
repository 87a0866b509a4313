//! `tokenward revoke` / `tokenward check` against a real Redis (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`), each test under its own key prefix, and a real PostgreSQL
//! (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), each test in its
//! own schema: every rule revoked through the CLI is seen by the CLI and by the library store
//! the applications use; `revoke --import` (`import.rs`), `--postgres` and both stores
//! (`postgres.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokenward_core::{IssuerScope, TokenRef, UnixTime};
use tokenward_redis::{RedisConfig, RedisRevocationStore};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};
use tokenward_testsupport::{
    BlackHole, ThrowawayRedis, ThrowawayTlsRedis, cluster_urls, delete_prefix, free_port,
    redis_url, shared_redis, unique_prefix,
};

/// The issuer the tests revoke for (given as `TOKENWARD_ISSUER` unless a test says otherwise).
const ISSUER: &str = "https://issuer.cli-tests.example";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenward"));
    cmd.args(args)
        .env_remove("TOKENWARD_REDIS_URL")
        .env_remove("TOKENWARD_POSTGRES_URL")
        .env("TOKENWARD_ISSUER", ISSUER)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run tokenward");
    let out = Out {
        code: output.status.code().expect("exited with a status"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "tokenward {args:?} panicked: {}",
        out.stderr
    );
    out
}

fn run(args: &[&str]) -> Out {
    run_env(args, &[])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The test Redis under a fresh prefix: `(url, prefix)`. Fails (never skips), saying how to
/// get one, without Redis.
fn redis() -> (String, String) {
    block_on(shared_redis());
    (redis_url(), unique_prefix("cli"))
}

fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

/// What the library store (as an application would configure it) says about a token.
fn library_check(url: &str, prefix: &str, token: TokenRef<'_>) -> RevocationStatus {
    let config = RedisConfig::new(url)
        .key_prefix(prefix)
        .operation_timeout(Duration::from_secs(5));
    let store = RedisRevocationStore::connect(&config).unwrap();
    block_on(store.check(&token)).unwrap()
}

/// A token of [`ISSUER`], its ids scoped as the Guard scopes them.
fn token(
    jti: Option<&str>,
    sid: Option<&str>,
    sub: Option<&str>,
    iat: Option<u64>,
) -> TokenRef<'static> {
    token_of(ISSUER, jti, sid, sub, iat)
}

fn token_of(
    iss: &str,
    jti: Option<&str>,
    sid: Option<&str>,
    sub: Option<&str>,
    iat: Option<u64>,
) -> TokenRef<'static> {
    IssuerScope::new(iss)
        .token_ref(
            jti,
            sid,
            sub,
            iat.map(UnixTime::from_secs),
            UnixTime::from_secs(now() + 900),
        )
        .unwrap()
}

/// `tokenward check` with `parts`, as text and as JSON: returns (exit code, the answer line,
/// JSON), having checked that both name `prefix` (and taken it out of the JSON).
fn check(url: &str, prefix: &str, parts: &[&str]) -> (i32, String, Value) {
    let mut args = vec!["check", "--redis", url, "--prefix", prefix];
    args.extend_from_slice(parts);
    let text = run(&args);
    args.push("--json");
    let json = run(&args);
    assert_eq!(
        text.code, json.code,
        "{parts:?}: {} / {}",
        text.stderr, json.stderr
    );
    let mut value: Value = serde_json::from_str(json.stdout.trim())
        .unwrap_or_else(|e| panic!("{parts:?}: not JSON ({e}): {:?}", json.stdout));
    assert_eq!(
        value.as_object_mut().unwrap().remove("key_prefix"),
        Some(json!(prefix)),
        "{parts:?}: {}",
        json.stdout
    );
    assert_eq!(
        value.as_object_mut().unwrap().remove("iss"),
        Some(json!(ISSUER)),
        "{parts:?}: {}",
        json.stdout
    );
    (text.code, answer_line(&text.stdout, prefix), value)
}

/// The first line of `stdout` (a `revoke` or `check` answer), having checked that the next
/// names the issuer and the last one the key prefix used.
fn answer_line(stdout: &str, prefix: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let tag = IssuerScope::new(ISSUER);
    assert_eq!(
        lines[1],
        format!("issuer: {ISSUER} (key tag {})", tag.tag()),
        "{stdout}"
    );
    assert_eq!(lines[2], format!("redis key prefix: {prefix}"), "{stdout}");
    lines[0].to_owned()
}

#[test]
fn token_revocation() {
    let (url, prefix) = redis();
    let exp = (now() + 600).to_string();
    let out = run(&[
        "revoke", "--redis", &url, "--prefix", &prefix, "--jti", "j-1", "--exp", &exp,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The entry outlives exp by the verifiers' leeway (5 minutes).
    let until = (exp.parse::<u64>().unwrap() + 300).to_string();
    assert!(
        out.stdout.starts_with("revoked token \"j-1\" until ") && out.stdout.contains(&until),
        "{}",
        out.stdout
    );

    let (code, text, value) = check(&url, &prefix, &["--jti", "j-1", "--sub", "alice"]);
    assert_eq!((code, text.as_str()), (1, "revoked by token"));
    assert_eq!(value, json!({"revoked": true, "rule": "token"}));
    let (code, text, value) = check(&url, &prefix, &["--jti", "j-2"]);
    assert_eq!((code, text.as_str()), (0, "active"));
    assert_eq!(value, json!({"revoked": false}));

    assert_eq!(
        library_check(
            &url,
            &prefix,
            token(Some("j-1"), None, Some("alice"), Some(now()))
        ),
        RevocationStatus::Revoked(RevokedBy::Token)
    );
    assert_eq!(
        library_check(&url, &prefix, token(Some("j-2"), None, None, None)),
        RevocationStatus::Active
    );
}

#[test]
fn session_revocation_defaults_to_a_day() {
    let (url, prefix) = redis();
    let before = now();
    let out = run(&[
        "revoke", "--redis", &url, "--prefix", &prefix, "--sid", "fam-1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let day_later: Vec<String> = (before..=now()).map(|t| (t + 86_400).to_string()).collect();
    assert!(
        out.stdout.starts_with("revoked session \"fam-1\" until ")
            && day_later.iter().any(|t| out.stdout.contains(t.as_str())),
        "{}",
        out.stdout
    );

    let (code, text, value) = check(&url, &prefix, &["--jti", "any", "--sid", "fam-1"]);
    assert_eq!((code, text.as_str()), (1, "revoked by session"));
    assert_eq!(value, json!({"revoked": true, "rule": "session"}));
    let (code, _, _) = check(&url, &prefix, &["--sid", "fam-2"]);
    assert_eq!(code, 0);
    assert_eq!(
        library_check(&url, &prefix, token(Some("any"), Some("fam-1"), None, None)),
        RevocationStatus::Revoked(RevokedBy::Session)
    );

    // An explicit --until in the past is not an error: nothing is left to revoke.
    let out = run(&[
        "revoke", "--redis", &url, "--prefix", &prefix, "--sid", "fam-3", "--until", "1000",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("nothing to revoke"),
        "{}",
        out.stdout
    );
    assert_eq!(check(&url, &prefix, &["--sid", "fam-3"]).0, 0);
}

#[test]
fn subject_revocation_signs_out_everywhere() {
    let (url, prefix) = redis();
    let issued = now();
    let out = run(&[
        "revoke", "--redis", &url, "--prefix", &prefix, "--sub", "alice",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("revoked every token of subject \"alice\" issued before "),
        "{}",
        out.stdout
    );
    // Default cutoff: now + the default leeway (30 s) + 1 s, so a token issued this very
    // second is revoked, and so is one from an issuer whose clock runs up to 30 s ahead.
    let (code, text, value) = check(
        &url,
        &prefix,
        &["--sub", "alice", "--iat", &issued.to_string()],
    );
    assert_eq!(code, 1, "{text}");
    let cutoff = value["before"].as_u64().unwrap();
    assert!((issued + 31..=now() + 31).contains(&cutoff), "{value}");
    assert_eq!(
        value,
        json!({"revoked": true, "rule": "subject", "before": cutoff})
    );
    assert!(
        text.starts_with(&format!("revoked by subject (cutoff {cutoff}, ")),
        "{text}"
    );
    let ahead = (issued + 29).to_string();
    assert_eq!(
        check(&url, &prefix, &["--sub", "alice", "--iat", &ahead]).0,
        1,
        "an iat 29 s ahead, within the verifiers' leeway"
    );
    // A token issued at or after the cutoff (after signing in again) is active.
    let later = (cutoff + 5).to_string();
    assert_eq!(
        check(&url, &prefix, &["--sub", "alice", "--iat", &later]).0,
        0
    );
    // Without iat a token cannot prove it is newer.
    assert_eq!(check(&url, &prefix, &["--sub", "alice"]).0, 1);
    assert_eq!(check(&url, &prefix, &["--sub", "bob"]).0, 0);
    assert_eq!(
        library_check(
            &url,
            &prefix,
            token(None, None, Some("alice"), Some(issued))
        ),
        RevocationStatus::Revoked(RevokedBy::Subject {
            before: UnixTime::from_secs(cutoff)
        })
    );
    assert_eq!(
        library_check(
            &url,
            &prefix,
            token(None, None, Some("alice"), Some(cutoff))
        ),
        RevocationStatus::Active
    );
}

#[test]
fn subject_revocation_with_explicit_times() {
    let (url, prefix) = redis();
    let before = now() - 3600;
    let until = now() + 600;
    let out = run(&[
        "revoke",
        "--redis",
        &url,
        "--prefix",
        &prefix,
        "--sub",
        "carol",
        "--before",
        &before.to_string(),
        "--until",
        &until.to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&until.to_string()), "{}", out.stdout);
    let (code, _, value) = check(
        &url,
        &prefix,
        &["--sub", "carol", "--iat", &(before - 1).to_string()],
    );
    assert_eq!(code, 1);
    assert_eq!(value["before"], json!(before));
    assert_eq!(
        check(
            &url,
            &prefix,
            &["--sub", "carol", "--iat", &before.to_string()]
        )
        .0,
        0
    );
}

/// Deletes one key on the test Redis when dropped (also when the test fails).
struct DeleteOnDrop(String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let deleted = block_on(async { delete_prefix(&mut shared_redis().await, &self.0).await });
        deleted.unwrap();
    }
}

/// Without `--prefix`, the CLI works under the prefix every tokenward component defaults to
/// (`RedisConfig::DEFAULT_KEY_PREFIX`, which the demo uses too), and says so. The prefix
/// cannot be a test's own here; the subject is, and its one key is deleted at the end.
#[test]
fn the_default_prefix_is_the_applications_and_is_named() {
    let (url, _) = redis();
    let subject = unique_prefix("cli-default-prefix");
    let default = RedisConfig::new(&url).operation_timeout(Duration::from_secs(5));
    let store = RedisRevocationStore::connect(&default).unwrap();
    let scoped = IssuerScope::new(ISSUER).id(&subject).unwrap();
    let key = store.subject_key(scoped.as_str());
    let _cleanup = DeleteOnDrop(key.clone());
    let tag = IssuerScope::new(ISSUER);
    assert!(
        key.starts_with(&format!("tokenward:rv:u:{}:twtest:", tag.tag())),
        "{key}"
    );

    let out = run(&["revoke", "--redis", &url, "--sub", &subject]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let answer = answer_line(&out.stdout, RedisConfig::DEFAULT_KEY_PREFIX);
    assert!(
        answer.starts_with("revoked every token of subject"),
        "{answer}"
    );

    let out = run(&["check", "--redis", &url, "--sub", &subject]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let answer = answer_line(&out.stdout, RedisConfig::DEFAULT_KEY_PREFIX);
    assert!(answer.starts_with("revoked by subject"), "{answer}");
    let out = run(&["check", "--redis", &url, "--sub", &subject, "--json"]);
    let value: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(value["key_prefix"], "tokenward:", "{value}");

    // What an application (the demo included) configured with the defaults sees.
    let status = block_on(store.check(&token(None, None, Some(&subject), Some(now() - 5))));
    assert!(
        matches!(
            status,
            Ok(RevocationStatus::Revoked(RevokedBy::Subject { .. }))
        ),
        "{status:?}"
    );
}

#[test]
fn url_from_the_environment() {
    let (url, prefix) = redis();
    let env = [("TOKENWARD_REDIS_URL", url.as_str())];
    let exp = (now() + 600).to_string();
    let out = run_env(
        &["revoke", "--prefix", &prefix, "--jti", "e-1", "--exp", &exp],
        &env,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_env(&["check", "--prefix", &prefix, "--jti", "e-1"], &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(answer_line(&out.stdout, &prefix), "revoked by token");
}

#[test]
fn unreachable_redis_exits_2_quickly_without_the_password() {
    let url = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    for args in [
        vec!["revoke", "--redis", &url, "--sub", "alice"],
        vec!["check", "--redis", &url, "--jti", "j"],
        vec!["check", "--redis", &url, "--jti", "j", "--json"],
    ] {
        let start = Instant::now();
        let out = run(&args);
        let took = start.elapsed();
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains("unavailable"), "{}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
        assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
    }

    // A server that accepts and never answers: exit 2 after --timeout-ms.
    let hole = BlackHole::start();
    let url = hole.redis_url();
    let start = Instant::now();
    let out = run(&[
        "check",
        "--redis",
        &url,
        "--timeout-ms",
        "300",
        "--sid",
        "s",
    ]);
    let took = start.elapsed();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("did not answer within 300ms"),
        "{}",
        out.stderr
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn usage_errors_exit_2() {
    // A real server and a fresh prefix: a case that wrongly succeeds must not leave a
    // revocation in anybody's namespace.
    let (url, prefix) = redis();
    let exp = (now() + 600).to_string();
    for args in [
        vec!["revoke", "--redis", &url, "--jti", "j"],
        vec!["revoke", "--redis", &url, "--exp", &exp],
        vec![
            "revoke", "--redis", &url, "--jti", "j", "--exp", &exp, "--sid", "s",
        ],
        vec![
            "revoke", "--redis", &url, "--jti", "j", "--exp", &exp, "--until", &exp,
        ],
        vec!["revoke", "--redis", &url, "--sid", "s", "--before", "1"],
        vec!["revoke", "--redis", &url],
        vec!["revoke", "--sid", "s"],
        vec!["check", "--redis", &url],
        vec!["check", "--redis", &url, "--iat", "1"],
        vec!["check", "--redis", &url, "--jti", "j", "--iat", "1"],
        vec!["revoke", "--redis", "http://example.com", "--sid", "s"],
        vec!["revoke", "--redis", &url, "--sid", ""],
        vec!["check", "--redis", &url, "--sub", ""],
    ] {
        let mut args = args;
        args.extend(["--prefix", prefix.as_str()]);
        let out = run(&args);
        assert_eq!(
            out.code, 2,
            "{args:?} should be a usage error: {}",
            out.stdout
        );
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

/// Revocations are per issuer (issue 17, item 1): tenant A's `alice` revoked through the CLI
/// leaves tenant B's `alice` alone, for the CLI's `check` and for the applications' store.
#[test]
fn revocations_are_scoped_by_issuer() {
    let (url, prefix) = redis();
    let tenant_b = "https://tenant-b.cli-tests.example";
    let issued = now().to_string();
    for what in [
        vec!["--sub", "alice"],
        vec!["--sid", "shared-session"],
        vec!["--jti", "shared-jti", "--exp", &issued],
    ] {
        let mut args = vec!["revoke", "--redis", &url, "--prefix", &prefix];
        args.extend_from_slice(&what);
        let out = run(&args);
        assert_eq!(out.code, 0, "{what:?}: {}", out.stderr);
    }
    let b = [("TOKENWARD_ISSUER", tenant_b)];
    for what in [
        vec!["--sub", "alice", "--iat", &issued],
        vec!["--sid", "shared-session"],
        vec!["--jti", "shared-jti"],
    ] {
        assert_eq!(
            check(&url, &prefix, &what).0,
            1,
            "{what:?} of the revoked issuer"
        );
        let mut args = vec!["check", "--redis", &url, "--prefix", &prefix];
        args.extend_from_slice(&what);
        let out = run_env(&args, &b);
        assert_eq!(out.code, 0, "{what:?} of another issuer: {}", out.stdout);
        let mut args = vec![
            "check", "--iss", tenant_b, "--redis", &url, "--prefix", &prefix,
        ];
        args.extend_from_slice(&what);
        assert_eq!(run(&args).code, 0, "{what:?} with --iss");
    }
    let iat = Some(now());
    let a_token = token(
        Some("shared-jti"),
        Some("shared-session"),
        Some("alice"),
        iat,
    );
    let b_token = token_of(
        tenant_b,
        Some("shared-jti"),
        Some("shared-session"),
        Some("alice"),
        iat,
    );
    assert!(library_check(&url, &prefix, a_token).is_revoked());
    assert_eq!(
        library_check(&url, &prefix, b_token),
        RevocationStatus::Active
    );
}

/// Without an issuer nothing can be revoked where the Guard looks: a usage error (exit 2)
/// naming --iss, and nothing written.
#[test]
fn the_issuer_is_required() {
    let (url, prefix) = redis();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenward"));
    let output = cmd
        .args([
            "revoke", "--redis", &url, "--prefix", &prefix, "--sub", "alice",
        ])
        .env_remove("TOKENWARD_REDIS_URL")
        .env_remove("TOKENWARD_POSTGRES_URL")
        .env_remove("TOKENWARD_ISSUER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--iss"), "{stderr}");
    let keys = block_on(async {
        tokenward_testsupport::keys_under(&mut shared_redis().await, &prefix).await
    });
    assert_eq!(keys.unwrap(), Vec::<String>::new());
}

/// `rediss://` with a private CA (--redis-ca), and mutual TLS (--redis-client-cert /
/// --redis-client-key): revoke and check work; a wrong CA exits 2 with the TLS error, naming
/// the server and never the password.
#[test]
fn tls_with_a_private_ca_and_client_certificates() {
    let server = ThrowawayTlsRedis::builder().require_client_certs().start();
    let prefix = unique_prefix("cli-tls");
    let ca = server.ca_file();
    let cert = server.client_cert_file();
    let key = server.client_key_file();
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let url = server.tls_url();
    let tls = [
        "--redis",
        url.as_str(),
        "--prefix",
        prefix.as_str(),
        "--redis-ca",
        ca,
        "--redis-client-cert",
        cert,
        "--redis-client-key",
        key,
    ];
    let out = run(&[&["revoke"][..], &tls, &["--sid", "s-1"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&[&["check"][..], &tls, &["--sid", "s-1"]].concat());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("revoked by session"),
        "{}",
        out.stdout
    );
    let out = run(&[&["check"][..], &tls, &["--sid", "s-2"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Without the client certificate the server refuses; with the wrong CA the handshake
    // fails. Both exit 2 naming the server, never the password.
    let secret_url = format!("rediss://:hunter2@127.0.0.1:{}", server.tls_port());
    let other_ca = server.other_ca_file();
    for (args, says) in [
        (
            vec![
                "check",
                "--redis",
                &secret_url,
                "--redis-ca",
                ca,
                "--sid",
                "s",
            ],
            "TLS connection failed",
        ),
        (
            vec![
                "check",
                "--redis",
                &secret_url,
                "--redis-ca",
                other_ca.to_str().unwrap(),
                "--redis-client-cert",
                cert,
                "--redis-client-key",
                key,
                "--sid",
                "s",
            ],
            "TLS handshake failed: invalid peer certificate: UnknownIssuer",
        ),
        (
            vec![
                "check",
                "--redis",
                &secret_url,
                "--redis-client-cert",
                cert,
                "--sid",
                "s",
            ],
            "--redis-client-key",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    }
}

/// A Redis whose maxmemory-policy evicts is refused (exit 2, naming the policy and the fix)
/// unless --dangerous-allow-eviction.
#[test]
fn an_evicting_redis_is_refused_unless_dangerously_allowed() {
    let server = ThrowawayRedis::builder()
        .arg("--maxmemory-policy")
        .arg("volatile-lru")
        .start();
    let url = server.url();
    for command in [
        vec!["revoke", "--redis", &url, "--sid", "s-1"],
        vec!["check", "--redis", &url, "--sid", "s-1"],
    ] {
        let out = run(&command);
        assert_eq!(out.code, 2, "{command:?}: {}", out.stderr);
        for says in ["maxmemory-policy is volatile-lru", "noeviction"] {
            assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
        }
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    // Nothing was written.
    let keys = block_on(async {
        let mut conn = tokenward_testsupport::connect(&url).await.unwrap();
        tokenward_testsupport::keys_under(&mut conn, "").await
    });
    assert_eq!(keys.unwrap(), Vec::<String>::new());

    let out = run(&[
        "revoke",
        "--redis",
        &url,
        "--sid",
        "s-1",
        "--dangerous-allow-eviction",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&[
        "check",
        "--redis",
        &url,
        "--sid",
        "s-1",
        "--dangerous-allow-eviction",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: redis at 127.0.0.1:") && out.stderr.contains("volatile-lru"),
        "{}",
        out.stderr
    );
}

#[path = "revoke/cluster.rs"]
mod cluster;
#[path = "revoke/import.rs"]
mod import;
#[path = "revoke/postgres.rs"]
mod postgres;
