//! Key prefixes of one test (or benchmark run) each, and the cleanup of exactly their keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionLike;

/// Keys per `SCAN` step and per `UNLINK`.
const BATCH: usize = 1000;

/// A key prefix no other test or run uses, in this process or another one on the same
/// server: `twtest:{label}:{pid}-{nanos}-{n}:`. `label` names the test, for whoever looks at
/// the server.
pub fn unique_prefix(label: &str) -> String {
    format!("twtest:{label}:{}:", unique_id('-'))
}

/// `{pid}{sep}{nanos}{sep}{n}` (nanoseconds in hex): no other call returns the same, in this
/// process or another one on the machine. Key prefixes and test schemas are named with it.
pub(crate) fn unique_id(sep: char) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{sep}{nanos:x}{sep}{n}", std::process::id())
}

/// `s` with the glob metacharacters of `SCAN MATCH` escaped.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The keys under `prefix`, sorted (`SCAN MATCH`, never `KEYS`).
pub async fn keys_under(
    conn: &mut impl ConnectionLike,
    prefix: &str,
) -> redis::RedisResult<Vec<String>> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Deletes every key under `prefix` and only those (`SCAN MATCH` + `UNLINK`; never
/// `FLUSHALL`); returns how many were deleted.
pub async fn delete_prefix(
    conn: &mut impl ConnectionLike,
    prefix: &str,
) -> redis::RedisResult<usize> {
    let keys = keys_under(conn, prefix).await?;
    let mut deleted = 0;
    for batch in keys.chunks(BATCH) {
        let n: usize = redis::cmd("UNLINK").arg(batch).query_async(conn).await?;
        deleted += n;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_globs_escaped() {
        let p = unique_prefix("x");
        assert!(p.starts_with("twtest:x:") && p.ends_with(':'), "{p}");
        assert_ne!(p, unique_prefix("x"));
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }

    /// Cleanup deletes exactly the prefix's keys, on the shared Redis (fails, saying how to
    /// get one, if there is none).
    #[tokio::test]
    async fn delete_prefix_deletes_only_its_own_keys() {
        let mut conn = crate::shared_redis().await;
        let mine = unique_prefix("cleanup-test");
        // A sibling prefix that merely starts like a glob of ours must survive.
        let sibling = format!("{}[x]", mine.trim_end_matches(':'));
        for key in [
            format!("{mine}a"),
            format!("{mine}b*"),
            format!("{sibling}c"),
        ] {
            let () = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("EX")
                .arg(60)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        assert_eq!(keys_under(&mut conn, &mine).await.unwrap().len(), 2);
        assert_eq!(delete_prefix(&mut conn, &mine).await.unwrap(), 2);
        assert!(keys_under(&mut conn, &mine).await.unwrap().is_empty());
        assert_eq!(delete_prefix(&mut conn, &sibling).await.unwrap(), 1);
    }
}
