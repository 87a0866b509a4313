//! "Sign out everywhere" against clocks (issue 17, item 7), over HTTP on memory and on Redis:
//! every token issued before `POST /logout-all` is refused — also one minted by an instance
//! whose clock runs ahead (within the verifiers' leeway), with or without a session — and a
//! login right afterwards works at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokenward_claims::{AccessToken, KeySet, TokenIssuer};
use tokenward_core::{ManualClock, UnixTime};
use tokenward_demo::client::Client;
use tokenward_demo::server::{AUDIENCE, ISSUER};

use crate::common::{config, keys, login, start};

/// A token for `alice` from an instance whose clock runs `ahead`.
fn minted_ahead(keys: &KeySet, ahead: Duration, sid: Option<&str>) -> String {
    let clock = ManualClock::new(UnixTime::from(SystemTime::now() + ahead));
    let mut request = AccessToken::new("alice");
    if let Some(sid) = sid {
        request = request.sid(sid);
    }
    TokenIssuer::builder(keys.clone(), ISSUER)
        .audience(AUDIENCE)
        .clock(Arc::new(clock))
        .build()
        .unwrap()
        .issue(&request)
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_everywhere_holds_against_clocks_and_a_new_login_works_at_once() {
    tokenward_testsupport::shared_redis().await;
    for redis in [false, true] {
        let mut config = config();
        if redis {
            config.redis = Some(tokenward_testsupport::redis_url());
            config.redis_prefix = tokenward_testsupport::unique_prefix("demo-signout");
        }
        let keys = keys();
        let server = start(&config, keys.clone()).await;
        let base = server.url();
        let client = Client::new();
        let me = |token: String| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                client
                    .get(&format!("{base}/me"), Some(&token))
                    .await
                    .unwrap()
            }
        };
        let first = login(&client, &base, "alice", "alice-password")
            .await
            .unwrap();
        let access = first.str_field("access_token").unwrap();
        let other_device = login(&client, &base, "alice", "alice-password")
            .await
            .unwrap();
        let other_access = other_device.str_field("access_token").unwrap();
        let sid = me(access.clone()).await.json()["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        // Minted before the sign-out by an instance 20 s ahead: iat after the sign-out's
        // second, still accepted by the verifiers' 30 s leeway.
        let ahead = Duration::from_secs(20);
        let ahead_with_session = minted_ahead(&keys, ahead, Some(&sid));
        let ahead_without_session = minted_ahead(&keys, ahead, None);
        for token in [
            &access,
            &other_access,
            &ahead_with_session,
            &ahead_without_session,
        ] {
            assert_eq!(me(token.clone()).await.status, 200, "redis={redis}: before");
        }

        let r = client
            .post(
                &format!("{base}/logout-all"),
                &[("authorization", &format!("Bearer {access}"))],
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 204, "redis={redis}: {}", r.text());
        // A login right away (same second as the sign-out) works at once.
        let again = login(&client, &base, "alice", "alice-password")
            .await
            .unwrap();
        assert_eq!(again.status, 200, "redis={redis}: {}", again.text());
        let fresh = again.str_field("access_token").unwrap();
        assert_eq!(
            me(fresh).await.status,
            200,
            "redis={redis}: a login right after the sign-out"
        );
        for (what, token) in [
            ("this device", access),
            ("another device", other_access),
            ("a clock ahead, with a session", ahead_with_session),
            ("a clock ahead, without a session", ahead_without_session),
        ] {
            let r = me(token).await;
            assert_eq!(r.status, 401, "redis={redis}: {what}: {}", r.text());
        }
        // The old families cannot refresh either.
        for reply in [&first, &other_device] {
            let refresh = reply.str_field("refresh_token").unwrap();
            let r = client
                .post(
                    &format!("{base}/refresh"),
                    &[],
                    Some(&serde_json::json!({ "refresh_token": refresh })),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 401, "redis={redis}: {}", r.text());
        }
        server.stop().await.unwrap();
        if redis {
            crate::common::delete_redis_keys(&config.redis_prefix).await;
        }
    }
}

/// Issue 17, item 2, over HTTP on memory and on Redis: one account cannot hold more than
/// `--max-sessions-per-user` live sessions — a login beyond it signs out the oldest (its
/// refresh token and its access tokens are refused) — and a logged-out session's refresh
/// token is refused while the user's other sessions keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_user_are_capped_and_the_oldest_is_signed_out() {
    tokenward_testsupport::shared_redis().await;
    const CAP: usize = 3;
    for redis in [false, true] {
        let mut config = config();
        config.max_sessions_per_user = CAP;
        if redis {
            config.redis = Some(tokenward_testsupport::redis_url());
            config.redis_prefix = tokenward_testsupport::unique_prefix("demo-session-cap");
        }
        let server = start(&config, keys()).await;
        let base = server.url();
        let client = Client::new();
        let mut logins = Vec::new();
        for _ in 0..CAP + 2 {
            let r = login(&client, &base, "alice", "alice-password")
                .await
                .unwrap();
            assert_eq!(r.status, 200, "redis={redis}: {}", r.text());
            logins.push(r);
        }
        let refresh = |token: String| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let body = serde_json::json!({ "refresh_token": token });
                client
                    .post(&format!("{base}/refresh"), &[], Some(&body))
                    .await
                    .unwrap()
            }
        };
        for (i, reply) in logins.iter().enumerate() {
            let access = reply.str_field("access_token").unwrap();
            let me = client
                .get(&format!("{base}/me"), Some(&access))
                .await
                .unwrap();
            let r = refresh(reply.str_field("refresh_token").unwrap()).await;
            if i < 2 {
                assert_eq!(r.status, 401, "redis={redis}: session {i} is over the cap");
                assert_eq!(me.status, 401, "redis={redis}: its access token too");
            } else {
                assert_eq!(r.status, 200, "redis={redis}: session {i}: {}", r.text());
                assert_eq!(me.status, 200, "redis={redis}: session {i}");
            }
        }
        // Logging out one session frees it: its token is refused, the others still work.
        let newest = logins.last().unwrap().str_field("access_token").unwrap();
        let r = client
            .post(
                &format!("{base}/logout"),
                &[("authorization", &format!("Bearer {newest}"))],
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 204, "redis={redis}: {}", r.text());
        let r = login(&client, &base, "alice", "alice-password")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "redis={redis}: a login after a logout");
        server.stop().await.unwrap();
        if redis {
            crate::common::delete_redis_keys(&config.redis_prefix).await;
        }
    }
}
