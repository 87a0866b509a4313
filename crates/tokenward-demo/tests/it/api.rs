//! The API's edges over real HTTP: error bodies, the binary's flags and first line, the key
//! directory `tokenward keygen` writes, graceful shutdown.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokenward_claims::{Algorithm, Key, KeySet, generate_pkcs8};
use tokenward_demo::client::Client;

use crate::common::{config, keys, login, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_refresh_errors_are_json_and_never_echo_secrets() {
    // Two wrong logins and a guessed refresh token below are failures for the ban.
    let mut config = config();
    config.ban_maxretry = 10;
    let server = start(&config, keys()).await;
    let base = server.url();
    let client = Client::new();

    let r = login(&client, &base, "alice", "hunter2-secret")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.str_field("error").as_deref(), Some("invalid_credentials"));
    assert!(!r.text().contains("hunter2-secret"));
    assert_eq!(r.header("content-type"), Some("application/json"));

    // Unknown routes and methods answer JSON too.
    let r404 = client.get(&format!("{base}/nope"), None).await.unwrap();
    assert_eq!(r404.status, 404);
    assert_eq!(r404.str_field("error").as_deref(), Some("not_found"));
    let r405 = client.get(&format!("{base}/login"), None).await.unwrap();
    assert_eq!(r405.status, 405);
    assert_eq!(
        r405.str_field("error").as_deref(),
        Some("method_not_allowed")
    );

    // An unknown user gets exactly the same answer.
    let r2 = login(&client, &base, "nobody", "hunter2-secret")
        .await
        .unwrap();
    assert_eq!((r2.status, r2.text()), (r.status, r.text()));

    let r = client
        .post(
            &format!("{base}/login"),
            &[],
            Some(&json!({ "username": "alice" })),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.str_field("error").as_deref(), Some("invalid_request"));

    let garbage = "twr_not-a-real-token-but-secret-looking";
    let r = client
        .post(
            &format!("{base}/refresh"),
            &[],
            Some(&json!({ "refresh_token": garbage })),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.str_field("error").as_deref(), Some("invalid_grant"));
    assert!(!r.text().contains(garbage));

    let r = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json()["expires_in"], 900);
    let refresh = r.str_field("refresh_token").unwrap();
    let too_long = "k".repeat(256);
    let r = client
        .post(
            &format!("{base}/refresh"),
            &[("idempotency-key", &too_long)],
            Some(&json!({ "refresh_token": refresh })),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    // Admin: the scope is in the token and opens /admin/stats.
    let r = login(&client, &base, "admin", "admin-password")
        .await
        .unwrap();
    let access = r.str_field("access_token").unwrap();
    let me = client
        .get(&format!("{base}/me"), Some(&access))
        .await
        .unwrap();
    assert_eq!(me.json()["scopes"], json!(["admin"]));
    let stats = client
        .get(&format!("{base}/admin/stats"), Some(&access))
        .await
        .unwrap();
    assert_eq!(stats.status, 200);
    assert_eq!(stats.json()["logins"], 2);
    assert_eq!(stats.json()["login_failures"], 2);
    server.stop().await.unwrap();
}

/// A key directory as `tokenward keygen` writes it: `KID.pem` (PKCS#8) and `jwks.json`.
fn keygen(dir: &std::path::Path, kid: &str, jwks: &mut Vec<serde_json::Value>) -> Key {
    let der = generate_pkcs8(Algorithm::EdDSA).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&*der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    std::fs::write(dir.join(format!("{kid}.pem")), pem).unwrap();
    let key = Key::from_pkcs8_der(kid, Algorithm::EdDSA, &der).unwrap();
    jwks.push(serde_json::to_value(key.public_jwk().unwrap()).unwrap());
    std::fs::write(
        dir.join("jwks.json"),
        serde_json::to_string_pretty(&json!({ "keys": jwks })).unwrap(),
    )
    .unwrap();
    key
}

#[test]
fn key_directory_newest_private_key_signs_every_key_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut jwks = Vec::new();
    keygen(dir.path(), "2026-10", &mut jwks);
    keygen(dir.path(), "2026-11", &mut jwks);
    let keys: KeySet = tokenward_demo::keys::load_dir(dir.path()).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.active().unwrap().kid(), "2026-11");
    assert!(keys.get("2026-10").is_some());

    // A published key whose private part lives elsewhere verifies only.
    let other = tempfile::tempdir().unwrap();
    let mut foreign = Vec::new();
    keygen(other.path(), "elsewhere", &mut foreign);
    jwks.extend(foreign);
    std::fs::write(
        dir.path().join("jwks.json"),
        serde_json::to_string(&json!({ "keys": jwks })).unwrap(),
    )
    .unwrap();
    let keys = tokenward_demo::keys::load_dir(dir.path()).unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.active().unwrap().kid(), "2026-11");

    // A private key file that does not match its published key is refused.
    let stray = generate_pkcs8(Algorithm::EdDSA).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&*stray);
    std::fs::write(
        dir.path().join("2026-11.pem"),
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let err = tokenward_demo::keys::load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    assert!(tokenward_demo::keys::load_dir(empty.path()).is_err());
}

#[test]
fn binary_prints_its_address_first_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut jwks = Vec::new();
    keygen(dir.path(), "k1", &mut jwks);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenward-demo"))
        .args(["--bind", "127.0.0.1:0", "--access-ttl", "120", "--keys"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_owned();
    assert!(!url.ends_with(":0"), "{url}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new();
        let jwks = client
            .get(&format!("http://{url}/.well-known/jwks.json"), None)
            .await
            .unwrap();
        assert_eq!(jwks.json()["keys"][0]["kid"], "k1");
        let r = login(&client, &format!("http://{url}"), "bob", "bob-password")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["expires_in"], 120);
    });

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_password_guesses_cannot_outrun_the_ban() {
    let config = config();
    let maxretry = usize::try_from(config.ban_maxretry).unwrap();
    let server = start(&config, keys()).await;
    let base = server.url();
    let client = Client::new();
    let wrong = json!({ "username": "alice", "password": "guess" });
    // Bursts of parallel guesses from one address: every guess that reaches the password
    // check is counted before the next one may run, so the total is exactly maxretry.
    let mut checked = 0;
    for _ in 0..(maxretry + 3) {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let client = client.clone();
            let url = format!("{base}/login");
            let body = wrong.clone();
            tasks.push(tokio::spawn(async move {
                client.post(&url, &[], Some(&body)).await.unwrap()
            }));
        }
        for task in tasks {
            let r = task.await.unwrap();
            match r.status.as_u16() {
                // Only these reached the password check.
                401 => checked += 1,
                // Banned, or another guess from this address was being checked.
                429 => assert!(r.header("retry-after").is_some(), "{}", r.text()),
                other => panic!("unexpected status {other}: {}", r.text()),
            }
        }
    }
    assert_eq!(
        checked, maxretry,
        "parallel guesses reaching the password check; the ban allows {maxretry}"
    );
    // The right password is refused now: the address is banned.
    let r = login(&client, &base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
}
