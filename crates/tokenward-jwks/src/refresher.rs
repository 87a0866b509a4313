//! The background refresher of a [`RemoteKeySet`]: when a fetch is due (refresh-ahead point,
//! backoff after failures), the task that fetches then, and its end with the last handle.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::error::JwksError;
use crate::remote::{Flight, Inner, RemoteKeySet, Trigger, lock, wait};

/// First retry delay of the background refresher after a failed fetch (doubling per failure).
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay after failed fetches.
const RETRY_MAX: Duration = Duration::from_secs(5 * 60);
/// The background refresher re-reads the clock at least this often (so a clock that jumps,
/// or a test's manual clock, is noticed).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Aborts the background refresher when the last [`RemoteKeySet`] clone goes away.
#[derive(Debug, Default)]
pub(crate) struct Refresher {
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl RemoteKeySet {
    /// Starts the background refresher if it is not running (idempotent;
    /// [`start`](crate::RemoteKeySetBuilder::start) does this). It fetches when the key set is
    /// due (never fetched, refresh-ahead point reached, or after failures with backoff from 1 s
    /// doubling to 5 min) and stops when the last clone of this key set is dropped.
    pub fn spawn_refresher(&self) -> Result<(), JwksError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JwksError::NoRuntime)?;
        let mut task = lock(&self.refresher.task);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let weak = Arc::downgrade(&self.inner);
        *task = Some(runtime.spawn(refresh_loop(weak)).abort_handle());
        Ok(())
    }
}

impl Inner {
    /// How long until the background refresher should fetch (zero: now). After failures:
    /// a backoff from the last failure, 1 s doubling per consecutive failure up to 5 min.
    fn due_in(&self) -> Duration {
        let now = self.cfg.clock.now();
        let cached = self.cached();
        let state = lock(&self.state);
        if state.consecutive_failures > 0 {
            let doublings = state.consecutive_failures.saturating_sub(1).min(16);
            let backoff = RETRY_MIN.saturating_mul(1 << doublings).min(RETRY_MAX);
            let last = state.last_failure.unwrap_or(now);
            return last.saturating_add(backoff).saturating_duration_since(now);
        }
        cached.map_or(Duration::ZERO, |c| {
            c.refresh_at.saturating_duration_since(now)
        })
    }
}

/// The background refresher: holds only a weak reference, so it never keeps a dropped key set
/// alive (and it is aborted when the last handle goes). It reads the injected clock at least
/// every minute, so a clock that jumps is noticed.
async fn refresh_loop(inner: Weak<Inner>) {
    loop {
        let due_in = match inner.upgrade() {
            Some(inner) => inner.due_in(),
            None => return,
        };
        if !due_in.is_zero() {
            tokio::time::sleep(due_in.min(MAX_SLEEP)).await;
            continue;
        }
        let flight = match inner.upgrade() {
            Some(inner) => inner.join_or_start(Trigger::Scheduled, None),
            None => return,
        };
        match flight {
            // Success and failure are recorded in the state (and `due_in` reads them).
            Flight::Wait(rx) => {
                let _ = wait(rx).await;
            }
            // Not expected inside a runtime; never spin.
            Flight::Known | Flight::Refused | Flight::Failed(_) => {
                tokio::time::sleep(RETRY_MIN).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::JwksSource;

    #[tokio::test]
    async fn dropping_the_last_handle_ends_the_refresher() {
        // Nothing listens on port 9 here: every fetch fails fast, and the refresher retries
        // with backoff for ever, unless it is stopped.
        let remote = RemoteKeySet::builder(JwksSource::url("http://127.0.0.1:9/jwks"))
            .dangerous_allow_http(true)
            .build()
            .unwrap();
        remote.spawn_refresher().unwrap();
        remote.spawn_refresher().unwrap(); // idempotent
        let task = lock(&remote.refresher.task).clone().unwrap();
        let inner = Arc::downgrade(&remote.inner);
        let clone = remote.clone();
        drop(remote);
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "a clone is alive");
        drop(clone);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !task.is_finished() || inner.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "refresher still running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn spawn_refresher_needs_a_runtime() {
        let remote = RemoteKeySet::builder(JwksSource::url("https://idp.example/jwks"))
            .build()
            .unwrap();
        assert!(matches!(
            remote.spawn_refresher(),
            Err(JwksError::NoRuntime)
        ));
    }
}
