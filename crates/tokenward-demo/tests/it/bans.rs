//! What the failure ban counts, over real HTTP (issue 17, items 6 and 10): the login's
//! password gate keys clients as the ban does (an IPv6 /64 is one client), and guessed
//! refresh tokens are counted while parallel refreshes are not.
//!
//! Clients are told apart by `X-Forwarded-For`, trusted from the loopback proxy (the test
//! client), so one test can speak from many addresses.

use std::time::Duration;

use serde_json::json;
use tokenward_demo::client::{Client, Reply};
use tokenward_demo::server::DemoConfig;

use crate::common::{GRACE, config, keys, start};

/// The test's config: `X-Forwarded-For` trusted from the test client; the stores in memory,
/// or on the test Redis under a fresh prefix.
fn behind_proxy(redis: bool) -> DemoConfig {
    let mut config = config();
    config.trusted_proxies = vec!["127.0.0.1".to_owned()];
    if redis {
        config.redis = Some(tokenward_testsupport::redis_url());
        config.redis_prefix = tokenward_testsupport::unique_prefix("demo-bans");
    }
    config
}

/// Deletes a Redis test's keys at its end.
async fn cleanup(config: &DemoConfig) {
    if config.redis.is_some() {
        crate::common::delete_redis_keys(&config.redis_prefix).await;
    }
}

/// `POST {base}{path}` with `body`, as client `ip`.
async fn post_as(
    client: &Client,
    base: &str,
    path: &str,
    ip: &str,
    body: &serde_json::Value,
) -> Reply {
    client
        .post(
            &format!("{base}{path}"),
            &[("x-forwarded-for", ip)],
            Some(body),
        )
        .await
        .unwrap()
}

/// Parallel logins per round from one /64: far more than the gate's permits.
const FLOOD: usize = 200;

fn credentials(username: &str, password: &str) -> serde_json::Value {
    json!({ "username": username, "password": password })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ipv6_network_gets_maxretry_password_checks_and_cannot_crowd_out_others() {
    one_ipv6_network(behind_proxy(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ipv6_network_gets_maxretry_password_checks_on_redis() {
    tokenward_testsupport::shared_redis().await;
    one_ipv6_network(behind_proxy(true)).await;
}

async fn one_ipv6_network(config: DemoConfig) {
    let maxretry = usize::try_from(config.ban_maxretry).unwrap();
    let server = start(&config, keys()).await;
    let base = server.url();
    let client = Client::new();

    // Rounds of FLOOD parallel wrong passwords, each from its own address in one /64, and
    // meanwhile a login from another network each round.
    let mut checked = 0;
    for round in 0..(maxretry + 2) {
        let mut guesses = Vec::new();
        for i in 0..FLOOD {
            let ip = format!("2001:db8:1:2::{:x}", round * FLOOD + i + 1);
            let (client, base) = (client.clone(), base.clone());
            guesses.push(tokio::spawn(async move {
                post_as(
                    &client,
                    &base,
                    "/login",
                    &ip,
                    &credentials("alice", "guess"),
                )
                .await
            }));
        }
        let victim_ip = format!("2001:db8:{:x}::7", 0x100 + round);
        let victim = post_as(
            &client,
            &base,
            "/login",
            &victim_ip,
            &credentials("bob", "bob-password"),
        )
        .await;
        assert_eq!(
            victim.status,
            200,
            "a login from {victim_ip} while one /64 floods: {}",
            victim.text()
        );
        for guess in guesses {
            let r = guess.await.unwrap();
            match r.status.as_u16() {
                401 => checked += 1,
                // Banned, or another login of the network was being checked.
                429 => assert!(r.header("retry-after").is_some(), "{}", r.text()),
                other => panic!("unexpected status {other}: {}", r.text()),
            }
        }
    }
    assert_eq!(
        checked, maxretry,
        "password checks for one IPv6 /64; the ban allows {maxretry}"
    );

    // The whole /64 is banned, right password or not; other networks are not.
    let r = post_as(
        &client,
        &base,
        "/login",
        "2001:db8:1:2:ffff::1",
        &credentials("alice", "alice-password"),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    let admin = post_as(
        &client,
        &base,
        "/login",
        "203.0.113.5",
        &credentials("admin", "admin-password"),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.text());
    let stats = client
        .get(
            &format!("{base}/admin/stats"),
            admin.str_field("access_token").as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(stats.json()["login_failures"], maxretry);
    server.stop().await.unwrap();
    cleanup(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_refresh_tokens_are_banned_parallel_refreshes_are_not_counted() {
    guessed_refresh_tokens(behind_proxy(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_refresh_tokens_are_banned_on_redis() {
    tokenward_testsupport::shared_redis().await;
    guessed_refresh_tokens(behind_proxy(true)).await;
}

async fn guessed_refresh_tokens(config: DemoConfig) {
    let maxretry = usize::try_from(config.ban_maxretry).unwrap();
    let server = start(&config, keys()).await;
    let base = server.url();
    let client = Client::new();
    let refresh = |ip: &'static str, token: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            post_as(
                &client,
                &base,
                "/refresh",
                ip,
                &json!({ "refresh_token": token }),
            )
            .await
        }
    };

    // An app resuming: more parallel refreshes with one token than maxretry, all answered
    // by the grace window, none counted.
    let owner = "192.0.2.10";
    let login = post_as(
        &client,
        &base,
        "/login",
        owner,
        &credentials("alice", "alice-password"),
    )
    .await;
    let first = login.str_field("refresh_token").unwrap();
    let parallel: Vec<_> = (0..=maxretry)
        .map(|_| tokio::spawn(refresh(owner, first.clone())))
        .collect();
    let mut successors = Vec::new();
    for r in parallel {
        let r = r.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        successors.push(r.str_field("refresh_token").unwrap());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor for parallel refreshes");
    let r = refresh(owner, successors.remove(0)).await;
    assert_eq!(r.status, 200, "the owner is not banned: {}", r.text());
    let mut latest = r.str_field("refresh_token").unwrap();

    // Guessing: maxretry unknown or malformed tokens, then even a valid token is refused.
    let guesser = "192.0.2.20";
    let guesses = ["twr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x", ""];
    for guess in guesses.iter().cycle().take(maxretry) {
        let r = refresh(guesser, (*guess).to_owned()).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.str_field("error").as_deref(), Some("invalid_grant"));
    }
    let r = refresh(guesser, latest.clone()).await;
    assert_eq!(
        r.status,
        429,
        "banned after {maxretry} guesses: {}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    let r = post_as(
        &client,
        &base,
        "/login",
        guesser,
        &credentials("alice", "alice-password"),
    )
    .await;
    assert_eq!(r.status, 429, "the same ban covers the login: {}", r.text());
    // The refused request did not use the token up.
    let r = refresh(owner, latest).await;
    assert_eq!(r.status, 200, "{}", r.text());
    latest = r.str_field("refresh_token").unwrap();

    // Reuse outside the grace window (theft) counts; the revoked family's newest token,
    // presented afterwards, is an honest client's leftover and does not.
    tokio::time::sleep(GRACE + Duration::from_secs(1)).await;
    let thief = "192.0.2.30";
    let r = refresh(thief, first).await;
    assert_eq!(r.status, 401, "reuse detected: {}", r.text());
    for _ in 1..maxretry {
        let r = refresh(thief, "twr_guess".to_owned()).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let r = refresh(thief, "twr_guess".to_owned()).await;
    assert_eq!(
        r.status,
        429,
        "reuse counted with the guesses: {}",
        r.text()
    );
    for _ in 0..=maxretry {
        let r = refresh(owner, latest.clone()).await;
        assert_eq!(
            r.status,
            401,
            "a revoked family's token: refused, never banned: {}",
            r.text()
        );
    }
    server.stop().await.unwrap();
    cleanup(&config).await;
}

/// A token of the demo's issuer and keys, dated by `clock` instead of now.
fn token_at(keys: &tokenward_claims::KeySet, at: std::time::SystemTime) -> String {
    let clock = tokenward_core::ManualClock::new(tokenward_core::UnixTime::from(at));
    tokenward_claims::TokenIssuer::builder(keys.clone(), tokenward_demo::server::ISSUER)
        .audience(tokenward_demo::server::AUDIENCE)
        .clock(std::sync::Arc::new(clock))
        .build()
        .unwrap()
        .issue(&tokenward_claims::AccessToken::new("alice").sid("an-old-session"))
        .unwrap()
        .token
}

/// Issue 17, item 5, on memory and on Redis: expired (and not-yet-valid) tokens are a late
/// client, not an attack — many of them never ban, so `/refresh` and `/login` keep working;
/// forged tokens still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_do_not_ban_forged_ones_do() {
    tokenward_testsupport::shared_redis().await;
    for redis in [false, true] {
        let mut config = config();
        if redis {
            config.redis = Some(tokenward_testsupport::redis_url());
            config.redis_prefix = tokenward_testsupport::unique_prefix("demo-expired-ban");
        }
        let maxretry = usize::try_from(config.ban_maxretry).unwrap();
        let keys = keys();
        let server = start(&config, keys.clone()).await;
        let base = server.url();
        let client = Client::new();
        let login = crate::common::login(&client, &base, "alice", "alice-password")
            .await
            .unwrap();
        assert_eq!(login.status, 200, "{}", login.text());
        let refresh_token = login.str_field("refresh_token").unwrap();

        let hour = Duration::from_secs(3600);
        let expired = token_at(&keys, std::time::SystemTime::now() - 2 * hour);
        let not_yet = token_at(&keys, std::time::SystemTime::now() + 2 * hour);
        for i in 0..3 * maxretry {
            let token = if i % 2 == 0 { &expired } else { &not_yet };
            let r = client
                .get(&format!("{base}/me"), Some(token))
                .await
                .unwrap();
            assert_eq!(r.status, 401, "redis={redis} attempt {i}: {}", r.text());
        }
        let r = post_as(
            &client,
            &base,
            "/refresh",
            "127.0.0.1",
            &json!({ "refresh_token": refresh_token }),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "redis={redis}: refresh after expired tokens: {}",
            r.text()
        );
        let access = r.str_field("access_token").unwrap();
        let r = crate::common::login(&client, &base, "alice", "alice-password")
            .await
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "redis={redis}: login after expired tokens: {}",
            r.text()
        );

        // Forged tokens (another key) count: maxretry of them ban the client.
        let forged = {
            let other = tokenward_demo::keys::ephemeral().unwrap();
            token_at(&other, std::time::SystemTime::now())
        };
        for i in 0..maxretry {
            let r = client
                .get(&format!("{base}/me"), Some(&forged))
                .await
                .unwrap();
            assert!(
                r.status == 401 || i + 1 == maxretry,
                "redis={redis}: {}",
                r.text()
            );
        }
        let r = client
            .get(&format!("{base}/me"), Some(&access))
            .await
            .unwrap();
        assert_eq!(
            r.status,
            429,
            "redis={redis}: banned after forged tokens: {}",
            r.text()
        );
        server.stop().await.unwrap();
        if redis {
            crate::common::delete_redis_keys(&config.redis_prefix).await;
        }
    }
}
