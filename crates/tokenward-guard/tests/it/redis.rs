//! The Guard on real Redis stores (REDIS_URL, default 127.0.0.1:6379; a random key prefix per
//! test): the combined one-call check decides like the in-memory stores, and two Guards on two
//! connection pools share revocations and limits.

#[cfg(feature = "redis")]
mod on_redis {

    use std::net::IpAddr;
    use std::time::Duration;

    use tokenward_claims::AccessToken;
    use tokenward_core::IssuerScope;
    use tokenward_core::UnixTime;
    use tokenward_guard::{AuthRequest, Credentials, Denial, Guard, GuardConfig, GuardStores};
    use tokenward_redis::{RedisConfig, RedisStores};
    use tokenward_testsupport::{redis_url, shared_redis, unique_prefix};

    use crate::common::{issuer, keys};

    fn redis_config(test: &str) -> RedisConfig {
        RedisConfig::new(redis_url()).key_prefix(unique_prefix(&format!("guard-{test}")))
    }

    async fn guard(config: &RedisConfig, requests: u32) -> (Guard, GuardStores) {
        shared_redis().await; // fails, saying how to get one, if there is no Redis
        let stores = RedisStores::connect(config).unwrap();
        let stores = GuardStores::redis(&stores);
        assert_eq!(stores.backend(), tokenward_guard::Backend::Redis);
        assert!(stores.combined.is_some());
        let mut c = GuardConfig::new("iss", "aud");
        c.subject_limit.requests = requests;
        let guard = c
            .guard_builder(keys(), stores.clone(), None)
            .unwrap()
            .build()
            .unwrap();
        (guard, stores)
    }

    fn req(creds: Credentials<'_>) -> AuthRequest<'_> {
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        AuthRequest::new("GET", "/me", ip, creds)
    }

    #[tokio::test]
    async fn two_guards_share_revocations_and_limits() {
        two_guards_share(redis_config("share")).await;
    }

    /// The same over TLS (a throwaway `redis-server` speaking only TLS, its own CA).
    #[tokio::test]
    async fn two_guards_share_revocations_and_limits_over_tls() {
        let server = tokenward_testsupport::ThrowawayTlsRedis::start();
        let config = RedisConfig::new(server.tls_url())
            .tls_ca_file(server.ca_file())
            .key_prefix(unique_prefix("guard-share-tls"))
            .operation_timeout(Duration::from_secs(2));
        two_guards_share(config).await;
    }

    /// The same on a Redis Cluster (`REDIS_CLUSTER_URLS`, or a throwaway 3-primary one),
    /// under an untagged prefix: each subject's keys spread over the nodes.
    #[tokio::test]
    async fn two_guards_share_revocations_and_limits_on_a_cluster() {
        let seeds = tokenward_testsupport::cluster_urls();
        let prefix = unique_prefix("guard-share-cluster");
        let config = RedisConfig::default()
            .cluster(seeds.clone())
            .key_prefix(&prefix)
            .operation_timeout(Duration::from_secs(2));
        two_guards_share(config).await;
        let deleted = tokenward_testsupport::delete_prefix_on_cluster(&seeds, &prefix)
            .await
            .unwrap();
        assert!(deleted > 0);
    }

    async fn two_guards_share(config: RedisConfig) {
        let (a, stores_a) = guard(&config, 4).await;
        let (b, _) = guard(&config, 4).await;
        let issuer = issuer(&keys());
        let token = issuer
            .issue(&AccessToken::new("alice").sid("fam-1"))
            .unwrap()
            .token;

        // The limit of 4 is shared: 2 on each instance, then both refuse.
        for guard in [&a, &b, &a, &b] {
            let auth = guard
                .authenticate(&req(Credentials::Bearer(&token)))
                .await
                .unwrap();
            assert!(auth.limit.is_some());
        }
        for guard in [&a, &b] {
            let d = guard
                .authenticate(&req(Credentials::Bearer(&token)))
                .await
                .unwrap_err();
            assert!(matches!(d, Denial::RateLimited { .. }), "{d:?}");
            assert!(d.headers().iter().any(|(n, _)| *n == "retry-after"));
        }

        // A session revoked through one instance's stores is refused by the other; a revoked
        // token consumes no cell of its subject's budget (bob keeps all 4).
        let bob = issuer
            .issue(&AccessToken::new("bob").sid("fam-2"))
            .unwrap()
            .token;
        stores_a
            .revocation
            .revoke_session(
                &IssuerScope::new("iss").id("fam-2").unwrap(),
                UnixTime::from_secs(u64::from(u32::MAX)),
            )
            .await
            .unwrap();
        for _ in 0..10 {
            let d = b
                .authenticate(&req(Credentials::Bearer(&bob)))
                .await
                .unwrap_err();
            assert!(matches!(d, Denial::Revoked { .. }), "{d:?}");
        }
        let carol_like_bob = issuer.issue(&AccessToken::new("bob")).unwrap().token;
        let auth = a
            .authenticate(&req(Credentials::Bearer(&carol_like_bob)))
            .await
            .unwrap();
        assert_eq!(auth.limit.unwrap().remaining, 3);
    }

    #[tokio::test]
    async fn redis_down_is_503_within_the_timeout() {
        // Nothing listens on port 1.
        let config = RedisConfig::new("redis://127.0.0.1:1")
            .key_prefix("tw-test:guard:down:")
            .operation_timeout(Duration::from_millis(200));
        let stores = GuardStores::redis(&RedisStores::connect(&config).unwrap());
        let mut c = GuardConfig::new("iss", "aud");
        c.ban.enabled = false;
        let guard = c
            .guard_builder(keys(), stores, None)
            .unwrap()
            .build()
            .unwrap();
        let issuer = issuer(&keys());
        let token = issuer.issue(&AccessToken::new("alice")).unwrap().token;
        let started = std::time::Instant::now();
        let d = guard
            .authenticate(&req(Credentials::Bearer(&token)))
            .await
            .unwrap_err();
        assert_eq!(d.status(), 503, "{d:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Bad tokens are still 401 while Redis is down.
        let d = guard
            .authenticate(&req(Credentials::Bearer("x.y.z")))
            .await
            .unwrap_err();
        assert_eq!(d.status(), 401);
    }

    #[tokio::test]
    async fn config_selects_redis() {
        let config = redis_config("config");
        let toml = format!(
            "[validation]\nissuers = [\"iss\"]\naudiences = [\"aud\"]\n[stores]\nbackend = \"redis\"\n[stores.redis]\nurl = \"{}\"\nkey_prefix = \"{}\"\noperation_timeout = \"300ms\"\n",
            config.url, config.key_prefix
        );
        let c: GuardConfig = toml::from_str(&toml).unwrap();
        c.validate().unwrap();
        let stores = c.connect_stores().unwrap();
        assert_eq!(stores.backend(), tokenward_guard::Backend::Redis);
        let guard = c
            .guard_builder(keys(), stores, None)
            .unwrap()
            .build()
            .unwrap();
        let issuer = issuer(&keys());
        let token = issuer.issue(&AccessToken::new("alice")).unwrap().token;
        guard
            .authenticate(&req(Credentials::Bearer(&token)))
            .await
            .unwrap();
    }
}
