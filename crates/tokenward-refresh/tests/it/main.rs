//! The integration tests of tokenward-refresh, in one test binary (one link of the crate's
//! dependencies instead of one per file): the in-memory store's conformance suite, its
//! bounds, token parsing, the audit event, the metrics, and end-to-end rotation with real JWTs.
//!
//! Nothing here needs a process of its own: the audit test captures events with a
//! thread-local subscriber (`tracing::subscriber::set_default` on a current-thread runtime),
//! never a global one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;

use tokenward_core::{StoreId, UnixTime};
use tokenward_refresh::{MintRequest, MintedToken};

mod audit;
mod conformance;
mod memory;
mod metrics;
mod tokens;
mod with_issuer;

/// The time the tests' manual clocks start at.
const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

/// A stand-in minter: `access-<sub>-<family>`, expiring 15 minutes after [`T0`].
fn mint(req: MintRequest<'_>) -> Result<MintedToken, Infallible> {
    let token = format!("access-{}-{}", req.sub.as_str(), req.family_id);
    Ok(MintedToken::new(
        token,
        T0.saturating_add(std::time::Duration::from_secs(900)),
    ))
}

/// A subject (the tests' are valid).
fn sub(s: &str) -> StoreId<'_> {
    StoreId::new(s).expect("a valid subject")
}
