//! `--postgres` (and `--pg-schema`): revoke and check on PostgreSQL, each test in a schema of
//! its own on the shared test database (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); and the hybrid deployment, `--postgres`
//! with `--redis`: PostgreSQL written first, both read by `check`.

use std::future::Future;

use tokenward_postgres::{PgConfig, PgRevocationStore, PgStores};
use tokenward_testsupport::{TestSchema, database_url};

use super::*;

/// A test's own schema on the shared PostgreSQL, and the runtime its pool lives on.
pub(crate) struct Pg {
    runtime: tokio::runtime::Runtime,
    schema: TestSchema,
    url: String,
}

impl Pg {
    /// A fresh schema named after `test`; fails (never skips), saying how to get a
    /// PostgreSQL, without one.
    pub(crate) fn new(test: &str) -> Pg {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let schema = runtime.block_on(TestSchema::create(test));
        Pg {
            runtime,
            schema,
            url: database_url(),
        }
    }

    /// `--postgres URL --pg-schema NAME`.
    pub(crate) fn args(&self) -> [&str; 4] {
        ["--postgres", &self.url, "--pg-schema", self.schema.schema()]
    }

    pub(crate) fn name(&self) -> &str {
        self.schema.schema()
    }

    /// A pool on the schema (its `search_path`).
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        &self.schema.pool
    }

    pub(crate) fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        self.runtime.block_on(fut)
    }

    /// Rows in the schema's `revocations` table (which the CLI created).
    pub(crate) fn rows(&self) -> i64 {
        let sql = format!("SELECT count(*) FROM {}.revocations", self.name());
        self.block_on(sqlx::query_scalar::<_, i64>(&sql).fetch_one(&self.schema.pool))
            .unwrap()
    }

    /// `f` on the store an application configured with this schema uses; its pool closed
    /// afterwards.
    pub(crate) fn with_store<T, Fut: Future<Output = T>>(
        &self,
        f: impl FnOnce(PgRevocationStore) -> Fut,
    ) -> T {
        self.block_on(async {
            let config = PgConfig::new(self.url.as_str())
                .schema(self.name())
                .purge_interval(None);
            let stores = PgStores::connect(&config).await.unwrap();
            let result = f(stores.revocation()).await;
            stores.backend().pool().close().await;
            result
        })
    }

    /// What that store says about `token`.
    pub(crate) fn library_check(&self, token: TokenRef<'_>) -> RevocationStatus {
        self.with_store(|store| async move { store.check(&token).await.unwrap() })
    }

    pub(crate) fn drop(self) {
        let Pg {
            runtime, schema, ..
        } = self;
        runtime.block_on(schema.drop());
    }
}

/// `tokenward check` with `stores` (`--redis …`/`--postgres …` arguments) and `parts`, as
/// text and as JSON: (exit code, the text's lines, JSON).
fn check_with(stores: &[&str], parts: &[&str]) -> (i32, Vec<String>, Value) {
    let mut args = vec!["check"];
    args.extend_from_slice(stores);
    args.extend_from_slice(parts);
    let text = run(&args);
    args.push("--json");
    let json = run(&args);
    assert_eq!(
        text.code, json.code,
        "{parts:?}: {} / {}",
        text.stderr, json.stderr
    );
    let value: Value = serde_json::from_str(json.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{parts:?}: not JSON ({e}): {:?} {}",
            json.stdout, json.stderr
        )
    });
    let lines = text.stdout.lines().map(str::to_owned).collect();
    (text.code, lines, value)
}

/// What an application's hybrid stores do at startup (`HybridStores::load`): reload Redis
/// from PostgreSQL and set the loaded mark `check` reads. Whether it reloaded.
fn load_hybrid(pg: &Pg, url: &str, prefix: &str) -> bool {
    pg.block_on(async {
        let config = PgConfig::new(pg.url.as_str())
            .schema(pg.name())
            .purge_interval(None);
        let postgres = PgStores::connect(&config).await.unwrap();
        let redis =
            tokenward_redis::RedisStores::connect(&RedisConfig::new(url).key_prefix(prefix))
                .unwrap();
        let hybrid = tokenward_guard::hybrid::HybridStores::new(&postgres, &redis).unwrap();
        let report = hybrid.load().await.unwrap();
        postgres.backend().pool().close().await;
        report.reloaded
    })
}

fn issuer_line() -> String {
    format!(
        "issuer: {ISSUER} (key tag {})",
        IssuerScope::new(ISSUER).tag()
    )
}

#[test]
fn revoke_and_check_on_postgres() {
    let pg = Pg::new("cli_pg_round_trip");
    let db = pg.args();
    let exp = now() + 600;
    let exp_text = exp.to_string();
    for what in [
        vec!["--jti", "j-1", "--exp", &exp_text],
        vec!["--sid", "fam-1"],
        vec!["--sub", "alice"],
    ] {
        let out = run(&[&["revoke"][..], &db, &what].concat());
        assert_eq!(out.code, 0, "{what:?}: {}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", out.stdout);
        assert!(lines[0].starts_with("revoked "), "{}", out.stdout);
        assert_eq!(lines[1], issuer_line());
        assert_eq!(lines[2], format!("postgres schema: {}", pg.name()));
    }
    assert!(
        run(&[&["revoke"][..], &db, &["--jti", "j-1", "--exp", &exp_text]].concat())
            .stdout
            .contains(&(exp + 300).to_string()),
        "the revocation outlives exp by the verifiers' leeway"
    );

    let (code, lines, value) = check_with(&db, &["--jti", "j-1"]);
    assert_eq!((code, lines[0].as_str()), (1, "revoked by token"));
    assert_eq!(
        lines[1..],
        [issuer_line(), format!("postgres schema: {}", pg.name())]
    );
    assert_eq!(
        value,
        json!({"revoked": true, "rule": "token", "iss": ISSUER, "postgres_schema": pg.name()})
    );
    let (code, lines, _) = check_with(&db, &["--sid", "fam-1", "--jti", "other"]);
    assert_eq!((code, lines[0].as_str()), (1, "revoked by session"));
    let iat = (now() - 5).to_string();
    let (code, lines, value) = check_with(&db, &["--sub", "alice", "--iat", &iat]);
    assert_eq!(code, 1, "{lines:?}");
    assert!(
        lines[0].starts_with("revoked by subject (cutoff "),
        "{lines:?}"
    );
    assert_eq!(value["rule"], "subject");
    let (code, lines, value) = check_with(&db, &["--jti", "j-2", "--sid", "fam-2", "--sub", "bob"]);
    assert_eq!((code, lines[0].as_str()), (0, "active"));
    assert_eq!(
        value,
        json!({"revoked": false, "iss": ISSUER, "postgres_schema": pg.name()})
    );

    // What an application on the same schema sees.
    assert_eq!(
        pg.library_check(token(Some("j-1"), None, None, None)),
        RevocationStatus::Revoked(RevokedBy::Token)
    );
    assert_eq!(
        pg.library_check(token(Some("j-2"), Some("fam-2"), None, None)),
        RevocationStatus::Active
    );
    assert_eq!(pg.rows(), 3);
    pg.drop();
}

/// Both flags: `revoke` writes PostgreSQL and Redis, `check` reads and reports both; when
/// only one of them holds a revocation, `check` says the stores disagree and exits 2, its
/// top-level answer Redis's (what the applications decide by).
#[test]
fn hybrid_revoke_writes_both_and_check_reports_both() {
    let pg = Pg::new("cli_pg_hybrid");
    let (url, prefix) = redis();
    let redis_args = ["--redis", url.as_str(), "--prefix", prefix.as_str()];
    let both = [&redis_args[..], &pg.args()].concat();
    let exp = (now() + 600).to_string();
    let out = run(&[&["revoke"][..], &both, &["--jti", "j-1", "--exp", &exp]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[1..],
        [
            issuer_line(),
            format!("redis key prefix: {prefix}"),
            format!("postgres schema: {}", pg.name())
        ],
        "{}",
        out.stdout
    );
    let revoked = token(Some("j-1"), None, None, None);
    assert_eq!(
        library_check(&url, &prefix, revoked.clone()),
        RevocationStatus::Revoked(RevokedBy::Token)
    );
    assert_eq!(
        pg.library_check(revoked),
        RevocationStatus::Revoked(RevokedBy::Token)
    );

    // Before the applications' hybrid has loaded Redis (no mark), they answer 503 and
    // reload: check gives PostgreSQL's answer and says so, whatever Redis holds.
    let out = run(&[&["revoke"][..], &pg.args(), &["--sid", "before-load"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, lines, value) = check_with(&both, &["--sid", "before-load"]);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(
        lines[0],
        "revoked by session (postgres; redis is not loaded: the applications answer 503 until \
         they have reloaded it from PostgreSQL; redis alone says active)"
    );
    assert_eq!(value["redis_loaded"], false, "{value}");
    assert_eq!(value["revoked"], true, "{value}");
    assert_eq!(value["agree"], false, "{value}");
    assert!(
        load_hybrid(&pg, &url, &prefix),
        "Redis had no mark: reloaded"
    );
    assert!(!load_hybrid(&pg, &url, &prefix), "loaded once");

    let (code, lines, value) = check_with(&both, &["--jti", "j-1"]);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines[0], "revoked by token (redis and postgres agree)");
    assert_eq!(lines.len(), 4, "{lines:?}");
    let token_answer = json!({"revoked": true, "rule": "token"});
    assert_eq!(
        value,
        json!({
            "revoked": true, "rule": "token", "key_prefix": prefix, "iss": ISSUER,
            "postgres_schema": pg.name(),
            "redis": token_answer, "postgres": token_answer, "agree": true,
            "redis_loaded": true
        })
    );
    // The reload brought the session revoked in PostgreSQL only into Redis.
    let (code, lines, _) = check_with(&both, &["--sid", "before-load"]);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines[0], "revoked by session (redis and postgres agree)");
    let (code, lines, value) = check_with(&both, &["--jti", "j-2"]);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0], "active (redis and postgres agree)");
    assert_eq!(value["agree"], true);

    // A session revoked in PostgreSQL only (a Redis write that failed): the applications
    // still accept its tokens, and check says so.
    let out = run(&[&["revoke"][..], &pg.args(), &["--sid", "pg-only"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, lines, value) = check_with(&both, &["--sid", "pg-only"]);
    assert_eq!(code, 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "stores disagree: redis: active; postgres: revoked by session"
    );
    assert_eq!(value["revoked"], false, "{value}");
    assert_eq!(value["agree"], false, "{value}");
    assert_eq!(value["redis"], json!({"revoked": false}));
    assert_eq!(
        value["postgres"],
        json!({"revoked": true, "rule": "session"})
    );
    let out = run(&[&["check"][..], &both, &["--sid", "pg-only"]].concat());
    for says in [
        "the stores disagree",
        "The applications answer as Redis does",
        "idempotent",
    ] {
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    // And the other way round: in Redis only.
    let out = run(&[&["revoke"][..], &redis_args, &["--sid", "redis-only"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, lines, value) = check_with(&both, &["--sid", "redis-only"]);
    assert_eq!(code, 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "stores disagree: redis: revoked by session; postgres: active"
    );
    assert_eq!(value["revoked"], true, "{value}");
    // Revoking again with both flags makes them agree.
    let out = run(&[&["revoke"][..], &both, &["--sid", "pg-only"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(check_with(&both, &["--sid", "pg-only"]).0, 1);
    pg.drop();
}

/// A Redis that refuses writes (`min-replicas-to-write` without replicas) after its startup
/// check passed: PostgreSQL has the revocation, the command exits 2 saying so.
#[test]
fn hybrid_revoke_when_redis_fails_after_postgres() {
    let pg = Pg::new("cli_pg_redis_fails");
    let server = ThrowawayRedis::builder()
        .arg("--min-replicas-to-write")
        .arg("1")
        .start();
    let url = server.url();
    let both = [&["--redis", url.as_str()][..], &pg.args()].concat();
    let out = run(&[&["revoke"][..], &both, &["--sid", "s-1"]].concat());
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for says in [
        "PostgreSQL (the durable copy) has the revocation, but Redis failed",
        "NOREPLICAS",
        "next reloaded from PostgreSQL",
        "run the same command again",
    ] {
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    assert!(
        pg.library_check(token(None, Some("s-1"), None, None))
            .is_revoked()
    );
    // Redis alone: the plain store error.
    let out = run(&["revoke", "--redis", &url, "--sid", "s-2"]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("NOREPLICAS"), "{}", out.stderr);
    assert!(!out.stderr.contains("durable"), "{}", out.stderr);
    pg.drop();
}

/// Usage: a store is required; Redis-only flags need --redis; a bad schema name, an
/// unreachable database: exit 2, nothing on stdout, never the password.
#[test]
fn postgres_usage_and_connection_errors_exit_2() {
    let pg = Pg::new("cli_pg_errors");
    let db = pg.args();
    for (args, says) in [
        (vec!["check", "--jti", "j"], "--postgres URL"),
        (
            [&["check"][..], &db, &["--redis-cluster", "--jti", "j"]].concat(),
            "--redis-cluster needs --redis",
        ),
        (
            [&["revoke"][..], &db, &["--import", "x.csv", "--jti", "j"]].concat(),
            "cannot be used with",
        ),
        (
            [&["revoke"][..], &db, &["--import", "x.csv", "--until", "1"]].concat(),
            "cannot be used with",
        ),
        (
            vec![
                "check",
                "--postgres",
                &pg.url,
                "--pg-schema",
                "Bad-Schema",
                "--jti",
                "j",
            ],
            "schema",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stdout);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    let url = format!("postgres://tw:hunter2@127.0.0.1:{}/db", free_port());
    let out = run(&[
        "check",
        "--postgres",
        &url,
        "--timeout-ms",
        "500",
        "--jti",
        "j",
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("127.0.0.1"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    pg.drop();
}
