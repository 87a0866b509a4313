//! `tokenward_refresh_total{result}`: every issue and rotation counts once, under the result
//! it had. The recorder is set for this test's thread only (a current-thread runtime polls
//! the engine there), so the other tests of the binary do not count into it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokenward_core::{IssuerScope, ManualClock};
use tokenward_refresh::{MemoryRefreshStore, RefreshConfig, RefreshEngine, RotationKind};
use tokenward_revocation::MemoryRevocationStore;

use super::{T0, mint, sub};

#[tokio::test(flavor = "current_thread")]
async fn each_result_counts_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);

    let clock = ManualClock::new(T0);
    let engine = RefreshEngine::with_config(
        Arc::new(MemoryRefreshStore::with_clock(Arc::new(clock.clone()))),
        Arc::new(MemoryRevocationStore::with_clock(Arc::new(clock.clone()))),
        IssuerScope::new("https://auth.example.com"),
        RefreshConfig::new().clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let login = engine.issue(&sub("alice"), mint).await.unwrap();
    let a = login.refresh_token.expose().to_owned();
    // Rotated with a key, replayed with the same key, then grace without one.
    let b = engine.rotate(&a, Some("k1"), mint).await.unwrap();
    assert_eq!(b.kind, RotationKind::Rotated);
    let replay = engine.rotate(&a, Some("k1"), mint).await.unwrap();
    assert_eq!(replay.kind, RotationKind::Replayed);
    let grace = engine.rotate(&a, None, mint).await.unwrap();
    assert_eq!(grace.kind, RotationKind::Grace);
    // After the window the predecessor is reuse (the family is revoked) ...
    clock.advance(Duration::from_secs(31));
    engine.rotate(&a, None, mint).await.unwrap_err();
    // ... so its current token is refused as revoked; garbage is invalid.
    engine
        .rotate(b.refresh_token.expose(), None, mint)
        .await
        .unwrap_err();
    engine.rotate("not-a-token", None, mint).await.unwrap_err();

    let counts: BTreeMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == "tokenward_refresh_total")
        .map(|(k, _, _, v)| {
            let labels: Vec<String> = k
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let DebugValue::Counter(n) = v else {
                panic!("{v:?}")
            };
            (labels.join(","), n)
        })
        .collect();
    let expected: BTreeMap<String, u64> = [
        ("result=issued", 1),
        ("result=rotated", 1),
        ("result=idempotent_replay", 1),
        ("result=grace", 1),
        ("result=reused", 1),
        ("result=revoked", 1),
        ("result=invalid", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counts, expected);
}
