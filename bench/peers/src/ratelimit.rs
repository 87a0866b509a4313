//! The rate-limit row against governor as its users build it: `governor = "0.10"` with its
//! default features (`std`, `dashmap`, `jitter`, `quanta`; the workspace builds it without
//! `jitter`). Methodology of tokenward-bench's `ratelimit` bench, `subject_limit_now` against
//! `governor_keyed`:
//!
//! - tokenward — `SubjectLimit::check_now(&store, &identity)` on a `MemoryRateLimitStore`:
//!   it builds the key `subject:` + the identity (on the stack, no allocation), then takes
//!   the store's synchronous path;
//! - governor — `DefaultKeyedRateLimiter<String>` (`RateLimiter::keyed`), the same key built
//!   as its `check_key(&String)` needs it (one `String` with capacity, two `push_str`), then
//!   `check_key`.
//!
//! The `…/prebuilt_keys` rows compare the stores alone: both sides' keys built beforehand,
//! tokenward's `gcra_now(&key, &charge)` through a `&dyn RateLimitStore` (the Guard's call)
//! against governor's `check_key(&key)`.
//!
//! Both sides' whole answers go through `black_box`. Same quota on both sides (tokenward's
//! `GcraQuota` converted the way its store converts it): `admit` (10⁹/s, burst 10⁶) admits
//! everything, `deny` (1 per hour) denies all but each key's first request. Keys: one hot
//! key, or 10 000 used round-robin (22-character ids, tokenward-bench's `token_id`). Before
//! timing, every key is seen once and both sides must give the scenario's answer.

use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokenward_core::StoreId;
use tokenward_ratelimit::{
    GcraQuota, LimitKey, MemoryRateLimitStore, RateLimitStore, SubjectLimit,
};

use crate::{batch, calibrate, fmt_ns, median};

const MANY: u64 = 10_000;

/// tokenward-bench's `revocation::token_id`: 16 pseudo-random bytes of `n`, base64url.
fn token_id(n: u64) -> String {
    fn splitmix64(n: u64) -> u64 {
        let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut bytes = [0u8; 16];
    let (first, second) = bytes.split_at_mut(8);
    first.copy_from_slice(&splitmix64(n).to_le_bytes());
    second.copy_from_slice(&splitmix64(n ^ 0x5851_f42d_4c95_7f2d).to_le_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn nonzero(n: u32) -> Result<NonZeroU32, String> {
    NonZeroU32::new(n).ok_or_else(|| "zero".into())
}

/// The governor quota of `quota`, built the way tokenward's store builds it.
fn governor_quota(quota: &GcraQuota) -> Result<Quota, String> {
    Ok(Quota::with_period(quota.emission_interval())
        .ok_or("emission interval 0")?
        .allow_burst(nonzero(quota.burst())?))
}

fn key(id: &StoreId<'_>) -> String {
    let id = id.as_str();
    let mut key = String::with_capacity(8 + id.len());
    key.push_str("subject:");
    key.push_str(id);
    key
}

/// Measures one scenario: (tokenward ns, governor ns, per-round ratios). With `prebuilt`,
/// both sides get their keys built beforehand and only the stores are compared: tokenward's
/// `gcra_now(&LimitKey, &charge)` through a `&dyn RateLimitStore` (what the Guard calls)
/// against governor's `check_key(&String)`.
fn scenario(
    quota: GcraQuota,
    keys: u64,
    admitted: bool,
    prebuilt: bool,
    rounds: usize,
    batch_time: Duration,
) -> Result<(f64, f64, Vec<f64>), String> {
    let ids = (0..keys)
        .map(|n| StoreId::new(token_id(n)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = SubjectLimit::new("subject", quota).map_err(|e| e.to_string())?;
    let store = MemoryRateLimitStore::new();
    let dyn_store: &dyn RateLimitStore = &store;
    let charge = limit.charge();
    let limit_keys: Vec<LimitKey<'static>> = ids.iter().map(|id| limit.key(id)).collect();
    let strings: Vec<String> = ids.iter().map(key).collect();
    let governor: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(governor_quota(&quota)?);
    for pass in 0..2 {
        for id in &ids {
            let t = limit
                .check_now(&store, id)
                .ok_or("no synchronous path")?
                .map_err(|e| e.to_string())?
                .allowed;
            let g = governor.check_key(&key(id)).is_ok();
            // The first pass uses up each key's cell in the deny scenario.
            if pass == 1 && (t != admitted || g != admitted) {
                return Err(format!(
                    "ratelimit: tokenward admitted {t}, governor {g}, expected {admitted}"
                ));
            }
        }
    }
    let next = |i: &Cell<usize>| {
        let n = (i.get() + 1) % ids.len();
        i.set(n);
        n
    };
    let (ti, gi) = (Cell::new(0), Cell::new(0));
    let tokenward = || {
        let n = next(&ti);
        if prebuilt {
            black_box(limit_keys.get(n).map(|k| dyn_store.gcra_now(black_box(k), &charge)));
        } else {
            black_box(ids.get(n).map(|id| limit.check_now(&store, black_box(id))));
        }
        true
    };
    let governor = || {
        let n = next(&gi);
        if prebuilt {
            black_box(strings.get(n).map(|k| governor.check_key(black_box(k))));
        } else {
            black_box(ids.get(n).map(|id| governor.check_key(&key(black_box(id)))));
        }
        true
    };
    let fns: [&dyn Fn() -> bool; 2] = [&tokenward, &governor];
    let iters = fns.map(|f| calibrate(f, batch_time));
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..=rounds {
        for k in 0..2 {
            let i = (round + k) % 2;
            if let (Some(f), Some(n), Some(s)) = (fns.get(i), iters.get(i), samples.get_mut(i)) {
                let ns = batch(*f, *n);
                // Round 0 is the warm-up, not kept.
                if round > 0 {
                    s.push(ns);
                }
            }
        }
    }
    let [mut t, mut g] = samples;
    let ratios = t.iter().zip(&g).map(|(t, g)| t / g).collect();
    Ok((median(&mut t), median(&mut g), ratios))
}

/// Prints the table and one `@bench peers-ratelimit` line per scenario (on stderr, as the
/// verification lines).
pub(crate) fn run(rounds: usize, batch_time: Duration) -> Result<(), String> {
    let admit = GcraQuota::new(nonzero(1_000_000_000)?, Duration::from_secs(1))
        .map_err(|e| e.to_string())?
        .with_burst(nonzero(1_000_000)?)
        .map_err(|e| e.to_string())?;
    let deny = GcraQuota::per_hour(nonzero(1)?);
    println!(
        "\nRate limit: tokenward `SubjectLimit::check_now` on `MemoryRateLimitStore` vs governor 0.10 with its default features (`DefaultKeyedRateLimiter<String>`, the same key, in the `String` its `check_key` takes); {rounds} interleaved rounds of {} ms batches, medians; ratio = tokenward / governor per round (median, min–max).\n",
        batch_time.as_millis()
    );
    println!("| scenario | tokenward | governor (default features) | ratio (median, min–max) |");
    println!("|---|---|---|---|");
    for (name, quota, keys, admitted, prebuilt) in [
        ("admit/1_key", admit, 1, true, false),
        ("admit/10k_keys", admit, MANY, true, false),
        ("deny/1_key", deny, 1, false, false),
        ("deny/10k_keys", deny, MANY, false, false),
        ("admit/1_key/prebuilt_keys", admit, 1, true, true),
        ("admit/10k_keys/prebuilt_keys", admit, MANY, true, true),
        ("deny/1_key/prebuilt_keys", deny, 1, false, true),
        ("deny/10k_keys/prebuilt_keys", deny, MANY, false, true),
    ] {
        let (t, g, mut ratios) = scenario(quota, keys, admitted, prebuilt, rounds, batch_time)?;
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(0.0, f64::max);
        let ratio = median(&mut ratios);
        println!(
            "| {name} | {} | {} | {ratio:.2} ({min:.2}–{max:.2}) |",
            fmt_ns(t),
            fmt_ns(g)
        );
        eprintln!(
            "@bench peers-ratelimit scenario={name} tokenward_ns={t:.1} governor_ns={g:.1} ratio={ratio:.3} ratio_min={min:.3} ratio_max={max:.3}"
        );
    }
    Ok(())
}
