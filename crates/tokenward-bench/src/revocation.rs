//! What the revocation benchmarks share: realistic ids and a population of revocations.
//! (Latency percentiles: [`latency`](crate::latency); the benchmark Redis:
//! [`harness`](crate::harness).)
//!
//! ```
//! use tokenward_bench::revocation::{Population, token_id};
//!
//! // A jti as tokenward issues it: 16 random bytes, base64url without padding.
//! assert_eq!(token_id(7).len(), 22);
//! let population = Population::new(100_000);
//! assert_eq!(population.tokens + population.sessions + population.subjects, 100_000);
//! ```

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokenward_core::{InvalidId, StoreError, StoreId, TokenRef, UnixTime};
use tokenward_revocation::RevocationStore;

/// The start of the benchmarks' manual clocks (2023-11-14T22:13:20Z).
pub const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

/// The lifetime of the benchmark access tokens (15 minutes), hence how long a token
/// revocation lasts.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How long a session (refresh-token family) revocation lasts: the family's absolute expiry.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Ids numbered from here on are never revoked by a [`Population`]: the "active" ones.
const ACTIVE_BASE: u64 = 1 << 40;

/// The 22-character `jti` number `n`: 16 pseudo-random bytes in base64url without padding,
/// the shape of the `jti`s tokenward issues. Deterministic, and distinct for distinct `n` (the
/// first 8 bytes are a bijection of `n`).
pub fn token_id(n: u64) -> String {
    let mut bytes = [0u8; 16];
    let (first, second) = bytes.split_at_mut(8);
    first.copy_from_slice(&splitmix64(n).to_le_bytes());
    second.copy_from_slice(&splitmix64(n ^ 0x5851_f42d_4c95_7f2d).to_le_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The session (`sid`) number `n`: a refresh-family id, `fam_` + a 22-character id.
pub fn session_id(n: u64) -> String {
    format!("fam_{}", token_id(n ^ 0x2545_f491_4f6c_dd1d))
}

/// The subject (`sub`) number `n`.
pub fn subject_id(n: u64) -> String {
    format!("user-{n:08}")
}

/// SplitMix64's output function: a bijection of `u64` with good mixing.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A mix of live revocations, as a deployment holds them: 80 % single tokens, 15 % sessions,
/// 5 % subjects ("sign out everywhere").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Population {
    /// Revoked `jti`s: [`token_id`]`(0..tokens)`.
    pub tokens: usize,
    /// Revoked sessions: [`session_id`]`(0..sessions)`.
    pub sessions: usize,
    /// Revoked subjects: [`subject_id`]`(0..subjects)`, cutoff [`T0`].
    pub subjects: usize,
}

/// The ids of one token, owned; [`TokenIds::token_ref`] borrows them for a `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds {
    /// `jti`.
    pub jti: String,
    /// `sid`.
    pub sid: String,
    /// `sub`.
    pub sub: String,
    /// `iat`.
    pub iat: UnixTime,
}

impl TokenIds {
    /// The token as a store sees it, expiring [`TOKEN_LIFETIME`] after `iat` (an error only
    /// for ids no store accepts, which the population never makes).
    pub fn token_ref(&self) -> Result<TokenRef<'_>, InvalidId> {
        TokenRef::from_parts(
            Some(&self.jti),
            Some(&self.sid),
            Some(&self.sub),
            Some(self.iat),
            self.iat.saturating_add(TOKEN_LIFETIME),
        )
    }
}

impl Population {
    /// `total` revocations split 80 / 15 / 5 between tokens, sessions and subjects.
    pub fn new(total: usize) -> Self {
        let tokens = total / 10 * 8;
        let sessions = total / 20 * 3;
        Population {
            tokens,
            sessions,
            subjects: total - tokens - sessions,
        }
    }

    /// The number of revocations.
    pub fn total(&self) -> usize {
        self.tokens + self.sessions + self.subjects
    }

    /// Revokes the whole population into `store` at time `now` (one call per entry): tokens
    /// until `now` + [`TOKEN_LIFETIME`], sessions until `now` + [`SESSION_LIFETIME`], subjects
    /// with cutoff `now` until `now` + [`TOKEN_LIFETIME`].
    pub async fn revoke_into<S: RevocationStore + ?Sized>(
        &self,
        store: &S,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let token_until = now.saturating_add(TOKEN_LIFETIME);
        for n in 0..self.tokens as u64 {
            store
                .revoke_token(&StoreId::new(token_id(n))?, token_until)
                .await?;
        }
        let session_until = now.saturating_add(SESSION_LIFETIME);
        for n in 0..self.sessions as u64 {
            store
                .revoke_session(&StoreId::new(session_id(n))?, session_until)
                .await?;
        }
        for n in 0..self.subjects as u64 {
            store
                .revoke_subject(&StoreId::new(subject_id(n))?, now, token_until)
                .await?;
        }
        Ok(())
    }

    /// Active token number `n`, issued at `iat`: no rule revokes it (its `jti`, `sid` and
    /// `sub` are all outside the population), so a `check` misses on all three rules.
    pub fn active_token(&self, n: u64, iat: UnixTime) -> TokenIds {
        let n = ACTIVE_BASE + n;
        TokenIds {
            jti: token_id(n),
            sid: session_id(n),
            sub: subject_id(n),
            iat,
        }
    }

    /// An active token whose own `jti` is revoked (the `n`-th revoked one, modulo the
    /// population); its session and subject are not.
    pub fn revoked_token(&self, n: u64, iat: UnixTime) -> TokenIds {
        TokenIds {
            jti: token_id(n % self.tokens.max(1) as u64),
            ..self.active_token(n, iat)
        }
    }

    /// A token of a revoked subject issued before the cutoff (`iat` < [`T0`]); its `jti` and
    /// session are not revoked, so a `check` looks up all three rules and the last one
    /// matches.
    pub fn subject_revoked_token(&self, n: u64) -> TokenIds {
        TokenIds {
            sub: subject_id(n % self.subjects.max(1) as u64),
            ..self.active_token(n, T0.saturating_sub(Duration::from_secs(60)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use tokenward_core::ManualClock;
    use tokenward_revocation::{MemoryRevocationStore, RevocationStatus, RevokedBy};

    use super::*;

    #[test]
    fn ids_look_like_tokenwards_and_are_distinct() {
        let ids: HashSet<String> = (0..20_000).map(token_id).collect();
        assert_eq!(ids.len(), 20_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 22, "{id}");
            assert_eq!(URL_SAFE_NO_PAD.decode(id).unwrap().len(), 16, "{id}");
        }
        assert_eq!(token_id(42), token_id(42), "deterministic");
        assert_ne!(session_id(1), session_id(2));
        assert!(session_id(1).starts_with("fam_"));
        assert_eq!(subject_id(12), "user-00000012");
    }

    #[test]
    fn population_split() {
        for (total, split) in [
            (100_000, (80_000, 15_000, 5_000)),
            (10_000, (8_000, 1_500, 500)),
            (7, (0, 0, 7)),
            (0, (0, 0, 0)),
        ] {
            let p = Population::new(total);
            assert_eq!((p.tokens, p.sessions, p.subjects), split, "{total}");
            assert_eq!(p.total(), total);
        }
    }

    /// The three kinds of benchmark token get the answers the benchmarks claim they do.
    #[test]
    fn tokens_have_the_status_the_benchmarks_assume() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(T0);
            let store = MemoryRevocationStore::with_clock(Arc::new(clock.clone()));
            let p = Population::new(1_000);
            p.revoke_into(&store, T0).await.unwrap();
            assert_eq!(store.len(), 1_000);
            for n in [0, 1, 799, 800, 5_000] {
                let check =
                    async |ids: TokenIds| store.check(&ids.token_ref().unwrap()).await.unwrap();
                assert_eq!(check(p.active_token(n, T0)).await, RevocationStatus::Active);
                assert_eq!(
                    check(p.revoked_token(n, T0)).await,
                    RevocationStatus::Revoked(RevokedBy::Token)
                );
                assert_eq!(
                    check(p.subject_revoked_token(n)).await,
                    RevocationStatus::Revoked(RevokedBy::Subject { before: T0 })
                );
            }
            // Revoked sessions are in the store too (an active token carrying one is revoked).
            let mut with_session = p.active_token(3, T0);
            with_session.sid = session_id(3);
            assert_eq!(
                store
                    .check(&with_session.token_ref().unwrap())
                    .await
                    .unwrap(),
                RevocationStatus::Revoked(RevokedBy::Session)
            );
            // Everything lasts at least the token lifetime, then the token entries go.
            clock.advance(TOKEN_LIFETIME);
            assert_eq!(store.len(), p.sessions);
        });
    }
}
