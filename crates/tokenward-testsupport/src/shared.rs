//! The Redis the tests and benchmarks share: where it is, and a checked connection to it.

use std::time::Duration;

use redis::IntoConnectionInfo as _;
use redis::aio::MultiplexedConnection;

/// The Redis used when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How long [`connect`] waits for the connection and its `PING`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis the tests and benchmarks use: `REDIS_URL`, or [`DEFAULT_REDIS_URL`].
/// `cargo xtask ci` sets `REDIS_URL` (to a throwaway server when there is no other).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// Why the shared Redis could not be used, with what to do about it. Shows the server's
/// address only, never the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error(
    "this needs a Redis >= 7.0 at {addr} (set REDIS_URL to use another one), and it failed: \
     {why}. Start one with `redis-server` (Debian/Ubuntu: `apt-get install redis-server`) or \
     `docker run --rm -p 6379:6379 redis:7`, or run `cargo xtask ci`, which provides one."
)]
pub struct RedisUnavailable {
    /// `host:port` of the server (no credentials).
    pub addr: String,
    /// What went wrong.
    pub why: String,
}

/// A multiplexed connection to `url` that answered `PING` within 5 s.
pub async fn connect(url: &str) -> Result<MultiplexedConnection, RedisUnavailable> {
    let Ok(info) = url.into_connection_info() else {
        return Err(RedisUnavailable {
            addr: "(unparsable URL)".to_owned(),
            why: "the URL is not a Redis URL".to_owned(),
        });
    };
    let addr = info.addr().to_string();
    let attempt = async {
        let client = redis::Client::open(info)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>(conn)
    };
    let why = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(conn)) => return Ok(conn),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
    };
    Err(RedisUnavailable { addr, why })
}

/// A connection to the shared test Redis ([`redis_url`]); fails the calling test, saying how
/// to get a Redis, if none answers. Tests never skip.
pub async fn shared_redis() -> MultiplexedConnection {
    connect(&redis_url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nobody_listening_is_unavailable_without_the_password() {
        let port = crate::free_port();
        let err = connect(&format!("redis://:hunter2@127.0.0.1:{port}"))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("apt-get install redis-server"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = connect("http://hunter2@example.com")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("not a Redis URL") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_shared_redis_answers() {
        let mut conn = shared_redis().await;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        assert_eq!(pong, "PONG");
    }
}
