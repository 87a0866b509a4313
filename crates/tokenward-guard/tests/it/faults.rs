//! Fault injection with a real Redis (issue 9): a throwaway `redis-server` (append-only file,
//! so a SIGKILL + restart keeps its data; or one speaking only TLS, for the black-hole and
//! dropped-connection scenarios over `rediss://`; or a 3-primary Redis Cluster, one primary
//! killed and restarted), a TCP fault proxy in front of it
//! (`fault_proxy::FaultProxy`: pass / delay / drop / black-hole), and under each fault 32
//! tasks authenticating through one `Guard` on `RedisStores` — valid tokens (including the
//! latest access token of each refresh family), a revoked token, forged and garbage tokens —
//! while one task per family keeps rotating it through a `RefreshEngine` on the same Redis.
//!
//! Checked for every answer: a valid token gets 200 or 503 (never 401, never 429: the
//! subject limit is far above the load); the revoked token 401 or 503 (never 200); an
//! invalid token 401 (verification fails before any store is asked, and the failed store
//! write that counts the failure for the ban is ignored); every call returns within
//! [`BOUND`] (the operation timeout plus a generous margin for a loaded 2-core machine).
//! After the fault: valid tokens get 200 again within [`RECOVERY`] without restarting
//! anything; no family was revoked or corrupted (a rotation that failed with a store error is
//! retried with the same token, within the grace window, and every family still rotates).
//!
//! Each scenario prints its counts (`cargo nextest run -p tokenward-guard --all-features
//! --test it faults:: --no-capture`); docs/operations.md records a run.

#[cfg(feature = "redis")]
mod on_redis {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use tokenward_claims::{AccessToken, Algorithm, Key, KeySet, TokenIssuer};
    use tokenward_core::UnixTime;
    use tokenward_core::{IssuerScope, StoreId};
    use tokenward_guard::{AuthRequest, Credentials, Guard, GuardConfig, GuardStores};
    use tokenward_redis::{RedisConfig, RedisStores};
    use tokenward_refresh::{MintRequest, MintedToken, RefreshEngine, RotationKind};

    use tokenward_testsupport::{ThrowawayRedis, unique_prefix};

    use crate::common::{issuer, keys};
    use crate::fault_proxy::{FaultProxy, Mode};

    /// The Redis operation timeout of every store here.
    const TIMEOUT: Duration = Duration::from_millis(200);
    /// The longest any single call may take: the timeout plus slack for a loaded machine.
    const BOUND: Duration = Duration::from_millis(1500);
    /// How long valid tokens may take to get 200 again once the fault is gone.
    const RECOVERY: Duration = Duration::from_secs(10);
    /// Concurrent authenticating tasks.
    const WORKERS: usize = 32;
    /// Refresh families rotated throughout.
    const FAMILIES: usize = 4;
    /// Traffic before the fault, during it, and after recovery.
    const BEFORE: Duration = Duration::from_millis(800);
    const DURING: Duration = Duration::from_secs(2);
    const AFTER: Duration = Duration::from_millis(800);

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Valid,
        Revoked,
        Invalid,
    }

    const PHASES: [&str; 3] = ["before", "fault", "after"];
    /// Status columns: 200, 401, 429, 503, other.
    const STATUSES: [u16; 4] = [200, 401, 429, 503];

    fn column(status: u16) -> usize {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len())
    }

    #[derive(Default)]
    struct Stats {
        /// [phase][kind][status column]
        counts: [[[AtomicU64; 5]; 3]; 3],
        max_latency_us: AtomicU64,
        violations: AtomicU64,
        examples: Mutex<Vec<String>>,
        rotations: AtomicU64,
        rotation_store_errors: AtomicU64,
        rotations_grace: AtomicU64,
    }

    impl Stats {
        fn violation(&self, what: String) {
            self.violations.fetch_add(1, Ordering::Relaxed);
            let mut ex = self.examples.lock().unwrap();
            if ex.len() < 20 {
                ex.push(what);
            }
        }

        fn count(&self, phase: usize, kind: Kind, status: u16) -> u64 {
            self.counts[phase][kind as usize][column(status)].load(Ordering::Relaxed)
        }

        fn total(&self, status: Option<u16>) -> u64 {
            let mut n = 0;
            for phase in &self.counts {
                for kind in phase {
                    for (i, c) in kind.iter().enumerate() {
                        if status.is_none_or(|s| column(s) == i) {
                            n += c.load(Ordering::Relaxed);
                        }
                    }
                }
            }
            n
        }
    }

    struct Family {
        sub: String,
        refresh: Mutex<String>,
        access: Mutex<String>,
    }

    struct Shared {
        guard: Guard,
        engine: RefreshEngine,
        issuer: TokenIssuer,
        families: Vec<Family>,
        fixed_valid: Vec<String>,
        revoked: String,
        forged: String,
        stats: Stats,
        phase: AtomicUsize,
        stop: AtomicBool,
        next_bad_ip: AtomicU64,
    }

    /// An access token of `sub` in session `family`, with its `exp`.
    fn mint_with(issuer: &TokenIssuer, family: &str, sub: &str) -> MintedToken {
        let issued = issuer.issue(&AccessToken::new(sub).sid(family)).unwrap();
        MintedToken::new(
            issued.token,
            UnixTime::from_secs(issued.claims.exp.unwrap()),
        )
    }

    impl Shared {
        fn mint(&self, family: &str, sub: &str) -> MintedToken {
            mint_with(&self.issuer, family, sub)
        }

        /// One authentication, checked against the rules; returns the status.
        async fn check(&self, kind: Kind, token: &str, ip: IpAddr) -> u16 {
            let req = AuthRequest::new("GET", "/me", ip, Credentials::Bearer(token));
            let started = Instant::now();
            let status = match self.guard.authenticate(&req).await {
                Ok(_) => 200,
                Err(d) => d.status(),
            };
            let took = started.elapsed();
            let phase = self.phase.load(Ordering::Relaxed);
            self.stats.counts[phase][kind as usize][column(status)].fetch_add(1, Ordering::Relaxed);
            self.stats
                .max_latency_us
                .fetch_max(u64::try_from(took.as_micros()).unwrap(), Ordering::Relaxed);
            let allowed: &[u16] = match kind {
                Kind::Valid => &[200, 503],
                Kind::Revoked => &[401, 503],
                Kind::Invalid => &[401],
            };
            if !allowed.contains(&status) {
                self.stats.violation(format!(
                    "{kind:?} token answered {status} in phase {}",
                    PHASES[phase]
                ));
            }
            if took > BOUND {
                self.stats.violation(format!(
                    "{kind:?} token took {took:?} (> {BOUND:?}) in phase {}",
                    PHASES[phase]
                ));
            }
            status
        }

        fn bad_ip(&self) -> IpAddr {
            // A fresh address per invalid request: the failure ban must not turn the invalid
            // requests' 401s into 429s (a ban is per address; valid traffic uses others).
            let n = self.next_bad_ip.fetch_add(1, Ordering::Relaxed);
            let n = u32::try_from(n % (1 << 24)).unwrap();
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
        }
    }

    async fn auth_worker(shared: Arc<Shared>, worker: usize) {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, u8::try_from(worker).unwrap()));
        let mut i = worker;
        while !shared.stop.load(Ordering::Relaxed) {
            i += 1;
            match i % 10 {
                0..=2 => {
                    let f = &shared.families[i % FAMILIES];
                    let token = f.access.lock().unwrap().clone();
                    shared.check(Kind::Valid, &token, ip).await;
                }
                3..=5 => {
                    let token = &shared.fixed_valid[i % shared.fixed_valid.len()];
                    shared.check(Kind::Valid, token, ip).await;
                }
                6 | 7 => {
                    shared.check(Kind::Revoked, &shared.revoked, ip).await;
                }
                8 => {
                    shared
                        .check(Kind::Invalid, &shared.forged, shared.bad_ip())
                        .await;
                }
                _ => {
                    shared
                        .check(Kind::Invalid, "not.a.token", shared.bad_ip())
                        .await;
                }
            }
            // Keeps the load modest on a shared 2-core machine.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Rotates family `n` once; `Some(kind)` on success. A store error keeps the presented
    /// token, to be retried (within the grace window) on the next call.
    async fn rotate_once(shared: &Shared, n: usize) -> Option<RotationKind> {
        let f = &shared.families[n];
        let presented = f.refresh.lock().unwrap().clone();
        let result = shared
            .engine
            .rotate(&presented, None, |m| {
                Ok::<_, std::convert::Infallible>(shared.mint(m.family_id.as_str(), m.sub.as_str()))
            })
            .await;
        match result {
            Ok(r) => {
                assert_eq!(r.sub, f.sub.as_str());
                *f.refresh.lock().unwrap() = r.refresh_token.expose().to_owned();
                *f.access.lock().unwrap() = r.access_token;
                shared.stats.rotations.fetch_add(1, Ordering::Relaxed);
                if r.kind == RotationKind::Grace {
                    shared.stats.rotations_grace.fetch_add(1, Ordering::Relaxed);
                }
                Some(r.kind)
            }
            Err(e) if e.is_transient() => {
                shared
                    .stats
                    .rotation_store_errors
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                shared
                    .stats
                    .violation(format!("family {n}: rotation failed with {e}"));
                None
            }
        }
    }

    async fn refresh_worker(shared: Arc<Shared>, n: usize) {
        while !shared.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let started = Instant::now();
            rotate_once(&shared, n).await;
            let took = started.elapsed();
            if took > BOUND {
                shared
                    .stats
                    .violation(format!("family {n}: a rotation took {took:?}"));
            }
        }
    }

    struct Harness {
        name: &'static str,
        shared: Arc<Shared>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        started: Instant,
    }

    impl Harness {
        /// Sets up tokens and families on `url` (while it is healthy) and starts the traffic.
        async fn start(name: &'static str, url: &str) -> Harness {
            Self::start_with(name, RedisConfig::new(url)).await
        }

        /// [`Harness::start`] on `config` (a TLS server: its URL and CA), under a fresh
        /// prefix, with the scenarios' operation timeout.
        async fn start_with(name: &'static str, config: RedisConfig) -> Harness {
            let config = config
                .key_prefix(unique_prefix(&format!("guard-faults-{name}")))
                .operation_timeout(TIMEOUT);
            let redis = RedisStores::connect(&config).unwrap();
            redis.backend().ping().await.unwrap();
            let stores = GuardStores::redis(&redis);
            let mut c = GuardConfig::new("iss", "aud");
            c.subject_limit.requests = 1_000_000;
            let guard = c
                .guard_builder(keys(), stores.clone(), None)
                .unwrap()
                .build()
                .unwrap();
            let issuer = issuer(&keys());
            let engine = RefreshEngine::new(
                Arc::clone(&stores.refresh),
                Arc::clone(&stores.revocation),
                IssuerScope::new("iss"),
            );
            let mut families = Vec::new();
            for n in 0..FAMILIES {
                let sub = format!("user-{n}");
                let id = StoreId::new(sub.as_str()).unwrap();
                let issued = engine
                    .issue(&id, |m: MintRequest<'_>| {
                        Ok::<_, std::convert::Infallible>(mint_with(
                            &issuer,
                            m.family_id.as_str(),
                            m.sub.as_str(),
                        ))
                    })
                    .await
                    .unwrap();
                families.push(Family {
                    sub,
                    refresh: Mutex::new(issued.refresh_token.expose().to_owned()),
                    access: Mutex::new(issued.access_token),
                });
            }
            let fixed_valid = (0..3)
                .map(|n| {
                    issuer
                        .issue(&AccessToken::new(format!("fixed-{n}")))
                        .unwrap()
                        .token
                })
                .collect();
            let revoked = issuer
                .issue(&AccessToken::new("mallory").sid("stolen-laptop"))
                .unwrap()
                .token;
            stores
                .revocation
                .revoke_session(
                    &IssuerScope::new("iss").id("stolen-laptop").unwrap(),
                    UnixTime::from_secs(now_secs() + 3600),
                )
                .await
                .unwrap();
            let other = KeySet::single(Key::hmac("k1", Algorithm::HS256, &[7u8; 32]).unwrap());
            let forged = crate::common::issuer(&other)
                .issue(&AccessToken::new("fixed-0"))
                .unwrap()
                .token;
            let shared = Arc::new(Shared {
                guard,
                engine,
                issuer,
                families,
                fixed_valid,
                revoked,
                forged,
                stats: Stats::default(),
                phase: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
                next_bad_ip: AtomicU64::new(1),
            });
            let mut tasks = Vec::new();
            for w in 0..WORKERS {
                tasks.push(tokio::spawn(auth_worker(Arc::clone(&shared), w)));
            }
            for n in 0..FAMILIES {
                tasks.push(tokio::spawn(refresh_worker(Arc::clone(&shared), n)));
            }
            Harness {
                name,
                shared,
                tasks,
                started: Instant::now(),
            }
        }

        async fn before(&self) {
            tokio::time::sleep(BEFORE).await;
            self.shared.phase.store(1, Ordering::Relaxed);
        }

        /// Marks the fault as over, waits until a valid token gets 200 again (probing with
        /// the Guard itself), lets traffic run on, then stops it and checks the aftermath.
        async fn recover_and_finish(self) -> Stats {
            let fault_ended = Instant::now();
            self.shared.phase.store(2, Ordering::Relaxed);
            let probe_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
            let recovered_in = loop {
                let token = &self.shared.fixed_valid[0];
                if self.shared.check(Kind::Valid, token, probe_ip).await == 200 {
                    break fault_ended.elapsed();
                }
                assert!(
                    fault_ended.elapsed() < RECOVERY,
                    "{}: valid tokens still refused {RECOVERY:?} after the fault",
                    self.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            tokio::time::sleep(AFTER).await;
            self.shared.stop.store(true, Ordering::Relaxed);
            for t in self.tasks {
                t.await.unwrap();
            }
            let shared = Arc::into_inner(self.shared).unwrap();

            // Every family still rotates (a last rotation that timed out but was applied is
            // retried within the grace window), and its newest access token is accepted.
            for n in 0..FAMILIES {
                let deadline = Instant::now() + RECOVERY;
                loop {
                    if rotate_once(&shared, n).await == Some(RotationKind::Rotated) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{}: family {n} no longer rotates",
                        self.name
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let access = shared.families[n].access.lock().unwrap().clone();
                assert_eq!(
                    shared.check(Kind::Valid, &access, probe_ip).await,
                    200,
                    "{}: family {n}'s access token after recovery",
                    self.name
                );
            }
            for (kind, token, want) in [
                (Kind::Revoked, shared.revoked.clone(), 401),
                (Kind::Invalid, shared.forged.clone(), 401),
                (Kind::Valid, shared.fixed_valid[1].clone(), 200),
            ] {
                let ip = if kind == Kind::Invalid {
                    shared.bad_ip()
                } else {
                    probe_ip
                };
                assert_eq!(
                    shared.check(kind, &token, ip).await,
                    want,
                    "{}: {kind:?} token after recovery",
                    self.name
                );
            }
            report(
                self.name,
                &shared.stats,
                self.started.elapsed(),
                recovered_in,
            );
            let examples = shared.stats.examples.lock().unwrap().clone();
            assert_eq!(
                shared.stats.violations.load(Ordering::Relaxed),
                0,
                "{}: violations, first ones: {examples:#?}",
                self.name
            );
            assert!(
                shared.stats.count(2, Kind::Valid, 200) > 0,
                "{}: no valid request got 200 after recovery",
                self.name
            );
            shared.stats
        }
    }

    fn report(name: &str, stats: &Stats, took: Duration, recovered_in: Duration) {
        let mut out = format!(
            "\n== fault scenario {name}: {} requests in {:.1} s; 200: {}, 401: {}, 429: {}, 503: {}, other: {}; max latency {:.0} ms; valid 200 again {:.0} ms after the fault; rotations {} ({} grace), rotation store errors {}\n",
            stats.total(None),
            took.as_secs_f64(),
            stats.total(Some(200)),
            stats.total(Some(401)),
            stats.total(Some(429)),
            stats.total(Some(503)),
            stats.total(Some(0)),
            stats.max_latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
            recovered_in.as_secs_f64() * 1000.0,
            stats.rotations.load(Ordering::Relaxed),
            stats.rotations_grace.load(Ordering::Relaxed),
            stats.rotation_store_errors.load(Ordering::Relaxed),
        );
        for (p, phase) in PHASES.iter().enumerate() {
            for (kind, label) in [
                (Kind::Valid, "valid"),
                (Kind::Revoked, "revoked"),
                (Kind::Invalid, "invalid"),
            ] {
                let c = |s| stats.count(p, kind, s);
                out.push_str(&format!(
                    "   {phase:>6} {label:>7}: 200 {:>6}  401 {:>6}  429 {:>3}  503 {:>6}  other {:>3}\n",
                    c(200),
                    c(401),
                    c(429),
                    c(503),
                    c(0)
                ));
            }
        }
        println!("{out}");
    }

    /// A throwaway Redis with an append-only file, so that a SIGKILL + restart keeps its data.
    fn redis() -> ThrowawayRedis {
        ThrowawayRedis::builder().append_only().start()
    }

    /// The traffic of scenario `name` through a fault proxy in front of a throwaway Redis;
    /// the proxy turns to `mode` for [`DURING`], then passes traffic again.
    async fn through_proxy(name: &'static str, mode: Mode) -> Stats {
        let redis = redis();
        let proxy = FaultProxy::start(redis.addr()).await;
        let h = Harness::start(name, &proxy.url()).await;
        h.before().await;
        proxy.set(mode);
        tokio::time::sleep(DURING).await;
        proxy.recover();
        h.recover_and_finish().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delay_below_the_timeout_changes_nothing() {
        // 2 × 20 ms per round trip, against a 200 ms timeout.
        let stats = through_proxy("delay_below", Mode::Delay(Duration::from_millis(20))).await;
        let ok = stats.count(1, Kind::Valid, 200);
        let unavailable = stats.count(1, Kind::Valid, 503);
        // Correct answers throughout; the odd 503 is scheduling noise of a loaded machine, a
        // lot of them would mean the delay was not below the timeout after all.
        assert!(
            ok > 0 && unavailable * 10 <= ok,
            "under a short delay: {ok} × 200, {unavailable} × 503"
        );
        assert!(stats.count(1, Kind::Revoked, 401) > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delay_above_the_timeout_is_503_within_the_timeout() {
        let stats = through_proxy("delay_above", Mode::Delay(Duration::from_millis(400))).await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_connections_are_503_then_recover() {
        let stats = through_proxy("drop", Mode::Drop).await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn black_hole_is_503_within_the_timeout_then_recovers() {
        let stats = through_proxy("black_hole", Mode::BlackHole).await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_and_restarted_redis_keeps_revocations_and_families() {
        let mut redis = redis();
        let h = Harness::start("kill_restart", &redis.url()).await;
        h.before().await;
        redis.kill();
        tokio::time::sleep(DURING).await;
        // Same port, same append-only file: revocations and families are back.
        redis.restart();
        let stats = h.recover_and_finish().await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }

    /// The same faults over TLS: the proxy forwards the encrypted bytes to a throwaway
    /// `redis-server` speaking only TLS (its certificate names 127.0.0.1, the CA is the
    /// test's own), and the Guard connects with `rediss://` to the proxy.
    async fn through_proxy_over_tls(name: &'static str, mode: Mode) -> Stats {
        let redis = tokenward_testsupport::ThrowawayTlsRedis::start();
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], redis.tls_port()));
        let proxy = FaultProxy::start(upstream).await;
        let url = proxy.url().replacen("redis://", "rediss://", 1);
        let config = RedisConfig::new(url).tls_ca_file(redis.ca_file());
        let h = Harness::start_with(name, config).await;
        h.before().await;
        proxy.set(mode);
        tokio::time::sleep(DURING).await;
        proxy.recover();
        h.recover_and_finish().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn black_hole_over_tls_is_503_within_the_timeout_then_recovers() {
        let stats = through_proxy_over_tls("tls_black_hole", Mode::BlackHole).await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_tls_connections_are_503_then_recover() {
        let stats = through_proxy_over_tls("tls_drop", Mode::Drop).await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }

    /// A Redis Cluster (three primaries, append-only) with one primary killed under load and
    /// restarted: requests whose keys it owned are 503 within the timeout, never 200 for the
    /// revoked token nor 401 for a valid one; the others go on; all recover once it is back
    /// with its keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_cluster_primary_is_503_for_its_keys_then_recovers() {
        let mut cluster =
            tokio::task::spawn_blocking(tokenward_testsupport::ThrowawayCluster::start_append_only)
                .await
                .unwrap();
        let config = RedisConfig::default().cluster(cluster.urls());
        let h = Harness::start_with("cluster_kill", config).await;
        h.before().await;
        tokio::task::block_in_place(|| cluster.kill_node(2));
        tokio::time::sleep(DURING).await;
        tokio::task::block_in_place(|| cluster.restart_node(2));
        let stats = h.recover_and_finish().await;
        // Some requests needed the dead primary, some did not.
        assert!(stats.count(1, Kind::Valid, 503) > 0);
        assert!(stats.count(1, Kind::Valid, 200) > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frozen_redis_is_503_within_the_timeout_then_recovers() {
        let redis = redis();
        let h = Harness::start("sigstop", &redis.url()).await;
        h.before().await;
        redis.freeze();
        tokio::time::sleep(DURING).await;
        redis.thaw();
        let stats = h.recover_and_finish().await;
        assert!(stats.count(1, Kind::Valid, 503) > 0);
    }
}
