//! What the failure ban counts, over real HTTP (issue 17, item 6): the login's password
//! gate keys clients as the ban does (an IPv6 /64 is one client).
//!
//! Clients are told apart by `X-Forwarded-For`, trusted from the loopback proxy (the test
//! client), so one test can speak from many addresses.

use serde_json::json;
use tokenward_demo::client::{Client, Reply};
use tokenward_demo::server::DemoConfig;

use crate::common::{config, keys, start};

/// The test's config: `X-Forwarded-For` trusted from the test client.
fn behind_proxy() -> DemoConfig {
    let mut config = config();
    config.trusted_proxies = vec!["127.0.0.1".to_owned()];
    config
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
    let config = behind_proxy();
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
}
