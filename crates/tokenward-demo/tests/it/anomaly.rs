//! The anomaly detectors over real HTTP: the demo binary (memory) with JSON logs and
//! `/metrics` counted exactly, two in-process instances on one Redis, networks banned — every
//! address of the /24, not only the offending one — for replays and forgery bursts while
//! expired tokens count for nothing (memory and Redis), and state that expires (memory
//! and Redis). Clients are told apart by `X-Forwarded-For`, trusted from the test client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenward_claims::{AccessToken, KeySet, TokenIssuer};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_demo::client::{Client, Reply};
use tokenward_demo::server::{AUDIENCE, DemoConfig, ISSUER, Running};
use tokenward_testsupport::LogCapture;

use crate::common::{config, keys, start};
use crate::telemetry::{DemoProcess, samples};

/// `GET {base}/me` with `token` as client `ip`.
async fn me(client: &Client, base: &str, token: &str, ip: &str) -> Reply {
    let auth = format!("Bearer {token}");
    client
        .send(
            http::Method::GET,
            &format!("{base}/me"),
            &[("authorization", &auth), ("x-forwarded-for", ip)],
            None,
        )
        .await
        .unwrap()
}

/// `POST {base}/login` as `user` from `ip`; the reply's JSON.
async fn login_as(client: &Client, base: &str, user: &str, ip: &str) -> Value {
    let body = json!({ "username": user, "password": format!("{user}-password") });
    let r = client
        .post(
            &format!("{base}/login"),
            &[("x-forwarded-for", ip)],
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Polls `GET /me` with `token` from `ip` until it answers `status` (the detectors act
/// after the response); returns how many requests that took.
async fn until(client: &Client, base: &str, token: &str, ip: &str, status: u16) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let r = me(client, base, token, ip).await;
        if r.status == status {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "still {} from {ip}: {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A token with the demo's issuer and audience signed by another key under the same `kid`.
fn forged_like(token: &str) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    // Flip the signature: still base64url, no longer the key's.
    format!("{signed}.{}", "A".repeat(43))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_detects_and_answers_shared_replayed_and_forged_tokens() {
    let demo = DemoProcess::start_with(&["--trusted-proxy", "127.0.0.1", "--refresh-grace", "1"]);
    let base = demo.url.as_str();
    let client = Client::new();

    // Token shared: alice's token from 4 networks (3 allowed) → her session is revoked.
    let alice = login_as(&client, base, "alice", "10.1.1.1").await;
    let token = alice["access_token"].as_str().unwrap().to_owned();
    for ip in ["10.1.1.1", "10.1.1.2", "10.1.2.1", "10.1.3.1", "10.1.4.1"] {
        assert_eq!(me(&client, base, &token, ip).await.status, 200);
    }
    let allowed_polls = until(&client, base, &token, "10.1.1.1", 401).await - 1;
    let shared = demo
        .wait_for(|v| v["target"] == "tokenward::anomaly" && v["fields"]["kind"] == "token_shared");
    let f = &shared["fields"];
    assert_eq!(f["action"], "revoke_session", "{shared}");
    assert_eq!(f["sub"], "alice", "{shared}");
    assert_eq!(f["sid"], alice_sid(&token), "{shared}");
    assert_eq!(f["client_ip"], "10.1.4.1", "{shared}");
    assert_eq!(f["count"], 4, "{shared}");
    let jti = f["jti"].as_str().unwrap();
    assert!(
        jti.len() == 12 && jti.bytes().all(|b| b.is_ascii_hexdigit()),
        "{shared}"
    );
    // Her refresh token went with the session.
    let refresh = client
        .post(
            &format!("{base}/refresh"),
            &[("x-forwarded-for", "10.1.1.1")],
            Some(&json!({ "refresh_token": alice["refresh_token"] })),
        )
        .await
        .unwrap();
    assert_eq!(refresh.status, 401, "{}", refresh.text());

    // Revoked-token replay: 5 replays from one network ban it.
    let bob = login_as(&client, base, "bob", "10.2.0.1").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&client, base, &bob, "10.2.0.1").await.status, 200);
    for _ in 0..5 {
        assert_eq!(me(&client, base, &token, "10.2.0.7").await.status, 401);
    }
    let bob_polls = until(&client, base, &bob, "10.2.0.7", 429).await;
    let ban = demo.wait_for(|v| {
        v["target"] == "tokenward::anomaly"
            && v["fields"]["kind"] == "revoked_token_replay"
            && v["fields"]["action"] == "ban"
    });
    assert_eq!(ban["fields"]["client_ip"], "10.2.0.7", "{ban}");
    // The network is banned, not only the address: another address of the /24 that never
    // replayed is refused as banned; an address of another network is not.
    let other = me(&client, base, &bob, "10.2.0.8").await;
    assert_eq!(other.status, 429, "{}", other.text());
    assert_eq!(me(&client, base, &bob, "10.2.1.8").await.status, 200);

    // Forgery burst: 20 forged tokens from one /24 (from 20 addresses: no address reaches
    // the Guard's own ban of 5) → the network is banned, the addresses that never forged
    // included.
    let carol = login_as(&client, base, "carol", "10.3.0.20").await;
    let carol = carol["access_token"].as_str().unwrap().to_owned();
    let forged = forged_like(&carol);
    for n in 1..=20 {
        let r = me(&client, base, &forged, &format!("10.3.0.{n}")).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let carol_polls = until(&client, base, &carol, "10.3.0.20", 429).await;
    demo.wait_for(|v| {
        v["target"] == "tokenward::anomaly" && v["fields"]["kind"] == "forgery_burst"
    });
    assert_eq!(me(&client, base, &carol, "10.3.0.200").await.status, 429);

    // Refresh reuse: admin's family issued from 10.5.1.1, rotated from 10.5.2.1, its first
    // token replayed after the grace window from 10.5.3.1 → reported with the three networks.
    let admin = login_as(&client, base, "admin", "10.5.1.1").await;
    let first = admin["refresh_token"].as_str().unwrap().to_owned();
    let refresh_from = |ip: &'static str, token: String| {
        let client = client.clone();
        let url = format!("{base}/refresh");
        async move {
            client
                .post(
                    &url,
                    &[("x-forwarded-for", ip)],
                    Some(&json!({ "refresh_token": token })),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(refresh_from("10.5.2.1", first.clone()).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(refresh_from("10.5.3.1", first).await.status, 401);
    let reuse = demo.wait_for(|v| {
        v["target"] == "tokenward::anomaly" && v["fields"]["kind"] == "refresh_reuse"
    });
    assert_eq!(reuse["fields"]["sub"], "admin", "{reuse}");
    assert_eq!(
        reuse["fields"]["networks"], "10.5.1.0/24,10.5.2.0/24,10.5.3.0/24",
        "{reuse}"
    );
    assert_eq!(
        reuse["fields"]["sid"],
        alice_sid(admin["access_token"].as_str().unwrap()),
        "{reuse}"
    );

    // The counters match the requests made.
    let expected_anomalies = BTreeMap::from([
        (
            r#"tokenward_anomalies_total{action="revoke_session",kind="token_shared"}"#,
            1.0,
        ),
        // One replay from 10.1.1.0/24 (the poll that saw the revocation), four from 10.2.0.0/24.
        (
            r#"tokenward_anomalies_total{action="alert",kind="revoked_token_replay"}"#,
            5.0,
        ),
        (
            r#"tokenward_anomalies_total{action="ban",kind="revoked_token_replay"}"#,
            1.0,
        ),
        (
            r#"tokenward_anomalies_total{action="ban",kind="forgery_burst"}"#,
            1.0,
        ),
        // Alice from 10.1.2, 10.1.3 and 10.1.4 after 10.1.1; bob from 10.2.1 after 10.2.0;
        // carol from 10.3.0.0/24 only.
        (
            r#"tokenward_anomalies_total{action="alert",kind="new_network"}"#,
            4.0,
        ),
        (
            r#"tokenward_anomalies_total{action="alert",kind="refresh_reuse"}"#,
            1.0,
        ),
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let text = client
            .get(&format!("{base}/metrics"), None)
            .await
            .unwrap()
            .text();
        let s = samples(&text);
        let anomalies: BTreeMap<String, f64> = s
            .iter()
            .filter(|(k, _)| k.starts_with("tokenward_anomalies_total{"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let want: BTreeMap<String, f64> = expected_anomalies
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        if anomalies == want {
            break s;
        }
        assert!(Instant::now() < deadline, "{anomalies:#?}\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Alice's calls and polls; bob's first call, his polls before the ban and his call from
    // another network; carol's polls before the ban.
    let allowed = 5 + allowed_polls + 1 + (bob_polls - 1) + 1 + (carol_polls - 1);
    assert_eq!(
        s[r#"tokenward_decisions_total{class="none",outcome="allowed"}"#],
        f64::from(allowed)
    );
    assert_eq!(
        s[r#"tokenward_decisions_total{class="revoked",outcome="denied"}"#],
        6.0
    );
    assert_eq!(
        s[r#"tokenward_decisions_total{class="signature",outcome="denied"}"#],
        20.0
    );
    assert_eq!(
        s[r#"tokenward_decisions_total{class="banned",outcome="denied"}"#],
        // Bob's last poll and his neighbour in the banned network; carol's last poll and
        // hers.
        4.0
    );
    assert!(!s.contains_key("tokenward_anomaly_action_failures_total{action=\"ban\"}"));

    // Every anomaly line: the contract's fields, no token anywhere.
    let lines: Vec<Value> = demo
        .json_lines()
        .into_iter()
        .filter(|v| v["target"] == "tokenward::anomaly" && v["fields"]["kind"].is_string())
        .collect();
    assert_eq!(lines.len(), 1 + 6 + 1 + 4 + 1, "{lines:#?}");
    for line in &lines {
        for field in ["kind", "action", "sub", "sid", "jti", "client_ip"] {
            assert!(
                line["fields"].get(field).is_some(),
                "{field} missing: {line}"
            );
        }
    }
    let all = demo.lines.lock().unwrap().join("\n");
    for secret in [&token, &bob, &carol] {
        let (_, signature) = secret.rsplit_once('.').unwrap();
        assert!(!all.contains(signature));
    }
}

/// The `sid` claim of a token (its payload, unverified: the test's own token).
fn alice_sid(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

/// Two instances on one Redis, under a fresh prefix.
async fn two_on_redis(
    label: &str,
    tune: impl Fn(&mut DemoConfig),
) -> (DemoConfig, KeySet, Running, Running) {
    let mut config = config();
    config.trusted_proxies = vec!["127.0.0.1".to_owned()];
    config.redis = Some(tokenward_testsupport::redis_url());
    config.redis_prefix = tokenward_testsupport::unique_prefix(label);
    tune(&mut config);
    let keys = keys();
    let a = start(&config, keys.clone()).await;
    let b = start(&config, keys.clone()).await;
    (config, keys, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_share_one_detection_state() {
    let logs = LogCapture::global();
    let (config, keys, a, b) = two_on_redis("demo-anomaly", |c| {
        c.anomaly_forgery_ban = 3;
        // Only the detectors' 429s: bob's checks below stay under the subject limit.
        c.subject_limit = 1000;
    })
    .await;
    let (a_url, b_url) = (a.url(), b.url());
    let client = Client::new();

    // A token used from two networks on each instance: four in all → revoked on both.
    let alice = login_as(&client, &a_url, "alice", "10.4.1.1").await;
    let token = alice["access_token"].as_str().unwrap().to_owned();
    for (base, ip) in [
        (&a_url, "10.4.1.1"),
        (&a_url, "10.4.2.1"),
        (&b_url, "10.4.3.1"),
        (&b_url, "10.4.4.1"),
    ] {
        assert_eq!(me(&client, base, &token, ip).await.status, 200);
    }
    until(&client, &a_url, &token, "10.4.1.1", 401).await;
    assert_eq!(me(&client, &b_url, &token, "10.4.1.1").await.status, 401);
    let sid = alice_sid(&token);
    let shared = logs
        .lines_with(&sid)
        .into_iter()
        .filter(|l| l.contains("token_shared"))
        .count();
    assert_eq!(shared, 1, "{}", logs.lines_with(&sid).join("\n"));
    // Her networks after the first were new for her, each reported once.
    let new_here = logs
        .lines_with("10.4.3.0/24")
        .into_iter()
        .filter(|l| l.contains("new_network"))
        .count();
    assert_eq!(new_here, 1, "{}", logs.lines_with("10.4.3.0/24").join("\n"));

    // Her revoked token replayed from one network, on both instances: the 5th bans it there.
    let carol_early = login_as(&client, &b_url, "carol", "10.13.0.1").await;
    let carol_early = carol_early["access_token"].as_str().unwrap().to_owned();
    for n in 0..5 {
        let base = if n % 2 == 0 { &a_url } else { &b_url };
        assert_eq!(me(&client, base, &token, "10.13.0.9").await.status, 401);
    }
    until(&client, &a_url, &carol_early, "10.13.0.9", 429).await;
    // The network is banned on both instances: the address that replayed, and another.
    for ip in ["10.13.0.9", "10.13.0.77"] {
        assert_eq!(
            me(&client, &b_url, &carol_early, ip).await.status,
            429,
            "{ip}"
        );
    }
    assert_eq!(
        me(&client, &a_url, &carol_early, "10.13.0.77").await.status,
        429
    );

    // Forgeries split between the instances: the third bans (threshold 3); expired tokens
    // count for nothing.
    expired_tokens_count_for_nothing_forgeries_do(&client, &a_url, &b_url, keys).await;

    // Refresh reuse: issued from 10.9.1.1, rotated from 10.9.2.1, the old token replayed
    // after the grace window from 10.9.3.1 → reported with all three networks.
    let carol = login_as(&client, &a_url, "carol", "10.9.1.1").await;
    let first = carol["refresh_token"].as_str().unwrap().to_owned();
    let rotated = client
        .post(
            &format!("{b_url}/refresh"),
            &[("x-forwarded-for", "10.9.2.1")],
            Some(&json!({ "refresh_token": first })),
        )
        .await
        .unwrap();
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    tokio::time::sleep(crate::common::GRACE + Duration::from_millis(500)).await;
    let reused = client
        .post(
            &format!("{a_url}/refresh"),
            &[("x-forwarded-for", "10.9.3.1")],
            Some(&json!({ "refresh_token": first })),
        )
        .await
        .unwrap();
    assert_eq!(reused.status, 401, "{}", reused.text());
    let family = alice_sid(carol["access_token"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(line) = logs
            .lines_with(&family)
            .into_iter()
            .find(|l| l.contains("refresh_reuse") && l.contains("tokenward::anomaly"))
        {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            logs.lines_with(&family).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        line.contains("10.9.1.0/24,10.9.2.0/24,10.9.3.0/24"),
        "{line}"
    );

    a.stop().await.unwrap();
    b.stop().await.unwrap();
    crate::common::delete_redis_keys(&config.redis_prefix).await;
}

/// Expired tokens, however many from one network, count for nothing; forgeries from it do:
/// with a threshold of 3 the third forgery bans its network — every address of it, also one
/// that never forged — and no other network. `a` and `b` are two instances (or one, twice);
/// requests alternate between them.
async fn expired_tokens_count_for_nothing_forgeries_do(
    client: &Client,
    a: &str,
    b: &str,
    keys: KeySet,
) {
    let bob = login_as(client, a, "bob", "10.12.0.100").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();
    let stale = TokenIssuer::builder(keys, ISSUER)
        .audience(AUDIENCE)
        .ttl(Duration::from_secs(60))
        .clock(Arc::new(ManualClock::new(
            UnixTime::from(std::time::SystemTime::now()).saturating_sub(Duration::from_secs(3600)),
        )))
        .build()
        .unwrap();
    for n in 1..=10 {
        let expired = stale.issue(&AccessToken::new("bob")).unwrap().token;
        let base = if n % 2 == 0 { a } else { b };
        let r = me(client, base, &expired, &format!("10.12.0.{n}")).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let forged = forged_like(&bob);
    for (base, n) in [(a, 11), (b, 12)] {
        let r = me(client, base, &forged, &format!("10.12.0.{n}")).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    // Had the expired tokens counted, the first forgery would have banned the network: give
    // the detectors time to act, it stays open.
    for (base, n) in [(a, 1), (b, 10), (a, 11), (b, 12), (a, 11)] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = me(client, base, &bob, &format!("10.12.0.{n}")).await;
        assert_eq!(r.status, 200, "10.12.0.{n}: {}", r.text());
    }
    let r = me(client, a, &forged, "10.12.0.13").await;
    assert_eq!(r.status, 401, "{}", r.text());
    // The third bans the whole /24: an address that never forged, on both instances.
    until(client, b, &bob, "10.12.0.200", 429).await;
    for (base, n) in [(a, 200), (a, 1), (b, 13)] {
        let r = me(client, base, &bob, &format!("10.12.0.{n}")).await;
        assert_eq!(r.status, 429, "10.12.0.{n}: {}", r.text());
    }
    // Another network is not banned.
    let r = me(client, a, &bob, "10.14.0.1").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// On memory too: a forgery burst is banned while expired-token retries are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_forgeries_are_banned_and_expired_tokens_are_not() {
    let mut config = config();
    config.trusted_proxies = vec!["127.0.0.1".to_owned()];
    config.anomaly_forgery_ban = 3;
    config.subject_limit = 1000;
    let keys = keys();
    let demo = start(&config, keys.clone()).await;
    let url = demo.url();
    expired_tokens_count_for_nothing_forgeries_do(&Client::new(), &url, &url, keys).await;
    demo.stop().await.unwrap();
}

/// Networks seen more than a window (2 s) ago no longer count: two networks, a pause, two
/// more — allowed; a third within the window revokes. `a` and `b` as above.
async fn state_expires(client: &Client, a: &str, b: &str) {
    let alice = login_as(client, a, "alice", "10.11.1.1").await;
    let token = alice["access_token"].as_str().unwrap().to_owned();
    for (base, ip) in [(a, "10.11.1.1"), (b, "10.11.2.1")] {
        assert_eq!(me(client, base, &token, ip).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Two more networks: two within the window, not three.
    for (base, ip) in [(b, "10.11.3.1"), (a, "10.11.4.1")] {
        assert_eq!(me(client, base, &token, ip).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(me(client, b, &token, "10.11.4.1").await.status, 200);
    // A third within this window is one too many.
    assert_eq!(me(client, a, &token, "10.11.5.1").await.status, 200);
    until(client, b, &token, "10.11.5.1", 401).await;
}

/// The detectors' state expires with its window, on memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_state_expires_with_its_window() {
    let mut config = config();
    config.trusted_proxies = vec!["127.0.0.1".to_owned()];
    config.anomaly_window = Duration::from_secs(2);
    config.anomaly_max_networks = 2;
    let demo = start(&config, keys()).await;
    let url = demo.url();
    state_expires(&Client::new(), &url, &url).await;
    demo.stop().await.unwrap();
}

/// The detectors' state expires with its window on Redis too (its keys' TTLs), for two
/// instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_state_expires_with_its_window_on_redis() {
    let (config, _keys, a, b) = two_on_redis("demo-anomaly-expiry", |c| {
        c.anomaly_window = Duration::from_secs(2);
        c.anomaly_max_networks = 2;
    })
    .await;
    state_expires(&Client::new(), &a.url(), &b.url()).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    crate::common::delete_redis_keys(&config.redis_prefix).await;
}
