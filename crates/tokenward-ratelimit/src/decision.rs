//! Building [`Decision`]s and rendering them as HTTP header field values.
//!
//! Header values follow the structured-field syntax (RFC 9651) of
//! draft-ietf-httpapi-ratelimit-headers (draft 10):
//!
//! - `RateLimit-Policy: "subject";q=300;w=60` — a list of policies, each an sf-string name
//!   with the quota `q` and the window `w` in seconds;
//! - `RateLimit: "subject";r=0;t=17` — the named policy's remaining quota `r` and the
//!   seconds `t` until it resets.
//!
//! Durations become whole seconds, rounded **up** (a client that waits the advertised
//! time must not be refused again), and `Retry-After` is at least 1 on a denial.

use std::time::Duration;

use crate::quota::{BanQuota, GcraQuota};
use crate::store::Decision;

impl Decision {
    /// An admitted request: `remaining` more are admissible now; everything is replenished
    /// after `reset`.
    pub fn allowed(limit: u32, remaining: u32, reset: Duration) -> Self {
        Decision {
            allowed: true,
            limit,
            remaining,
            reset,
            retry_after: None,
        }
    }

    /// A refused request: retry after `retry_after` (raised to 1 ns if zero, so a denial
    /// always carries a positive wait); everything is replenished after `reset` (at least
    /// `retry_after`).
    pub fn denied(limit: u32, reset: Duration, retry_after: Duration) -> Self {
        let retry_after = retry_after.max(Duration::from_nanos(1));
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset: reset.max(retry_after),
            retry_after: Some(retry_after),
        }
    }

    /// `Retry-After` in whole seconds, rounded up and at least 1; `None` when allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        if self.allowed {
            return None;
        }
        Some(ceil_secs(self.retry_after.unwrap_or(self.reset)).max(1))
    }

    /// The `Retry-After` header value (delay-seconds); `None` when allowed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenward_ratelimit::Decision;
    ///
    /// let d = Decision::denied(300, Duration::from_secs(60), Duration::from_millis(16_200));
    /// assert_eq!(d.retry_after_header().as_deref(), Some("17"));
    /// ```
    pub fn retry_after_header(&self) -> Option<String> {
        self.retry_after_secs().map(|s| s.to_string())
    }

    /// The `RateLimit` header value for this decision under the policy `policy_name`:
    /// `"{name}";r={remaining};t={reset, seconds rounded up}`.
    ///
    /// `policy_name` must be a policy name (letters, digits, `-`, `_`, `.`); other
    /// characters are escaped as sf-string requires (`\"`, `\\`) or, outside printable
    /// ASCII, replaced by `?`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenward_ratelimit::Decision;
    ///
    /// let d = Decision::allowed(300, 299, Duration::from_millis(200));
    /// assert_eq!(d.ratelimit_header("subject"), "\"subject\";r=299;t=1");
    /// ```
    pub fn ratelimit_header(&self, policy_name: &str) -> String {
        // Built without the formatting machinery, in one allocation of exactly its length:
        // this runs on every authenticated request, and a string whose capacity is its length
        // becomes an HTTP header value without another allocation (`bytes` needs one for a
        // `Vec` with spare capacity).
        let (mut remaining, mut reset) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (remaining, reset) = (
            remaining.format(u64::from(self.remaining)),
            reset.format(ceil_secs(self.reset)),
        );
        let len = sf_string_len(policy_name) + 3 + remaining.len() + 3 + reset.len();
        let mut out = String::with_capacity(len);
        push_sf_string(&mut out, policy_name);
        out.push_str(";r=");
        out.push_str(remaining);
        out.push_str(";t=");
        out.push_str(reset);
        debug_assert_eq!(out.len(), out.capacity(), "the length was computed exactly");
        out
    }
}

/// The `RateLimit-Policy` item for a GCRA quota: `"{name}";q={limit};w={period, seconds
/// rounded up}`. Several policies go into one header joined by `, `.
///
/// ```
/// use std::num::NonZeroU32;
/// use tokenward_ratelimit::{GcraQuota, ratelimit_policy_header};
/// let quota = GcraQuota::per_minute(NonZeroU32::new(300).unwrap());
/// assert_eq!(
///     ratelimit_policy_header("subject", &quota),
///     "\"subject\";q=300;w=60"
/// );
/// ```
pub fn ratelimit_policy_header(policy_name: &str, quota: &GcraQuota) -> String {
    format!(
        "{};q={};w={}",
        sf_string(policy_name),
        quota.limit(),
        ceil_secs(quota.period()).max(1)
    )
}

/// The `RateLimit-Policy` item for a failure ban: `q` is `maxretry`, `w` the `findtime`.
pub fn ban_policy_header(policy_name: &str, quota: &BanQuota) -> String {
    format!(
        "{};q={};w={}",
        sf_string(policy_name),
        quota.maxretry(),
        ceil_secs(quota.findtime()).max(1)
    )
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// An RFC 9651 sf-string: quoted, `"` and `\` escaped, non-printable-ASCII replaced.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_sf_string(&mut out, s);
    out
}

/// The length of [`sf_string`]`(s)`: what [`push_sf_string`] appends.
fn sf_string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| if matches!(c, '"' | '\\') { 2 } else { 1 })
        .sum::<usize>()
}

/// Appends [`sf_string`]`(s)` to `out`.
fn push_sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    fn nz(n: u32) -> std::num::NonZeroU32 {
        std::num::NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        let cases: &[(Duration, &str)] = &[
            (Duration::from_nanos(1), "1"),
            (ms(1), "1"),
            (ms(999), "1"),
            (ms(1000), "1"),
            (ms(1001), "2"),
            (ms(16_200), "17"),
            (Duration::from_secs(300), "300"),
        ];
        for &(wait, expected) in cases {
            let d = Decision::denied(5, wait, wait);
            assert_eq!(
                d.retry_after_header().as_deref(),
                Some(expected),
                "{wait:?}"
            );
        }
        // Zero is raised to the minimum.
        let d = Decision::denied(5, Duration::ZERO, Duration::ZERO);
        assert_eq!(d.retry_after_header().as_deref(), Some("1"));
        assert_eq!(Decision::allowed(5, 4, ms(10)).retry_after_header(), None);
    }

    #[test]
    fn ratelimit_header() {
        let cases: &[(Decision, &str, &str)] = &[
            (
                Decision::denied(300, ms(16_200), ms(16_200)),
                "subject",
                "\"subject\";r=0;t=17",
            ),
            (
                Decision::allowed(300, 299, ms(200)),
                "subject",
                "\"subject\";r=299;t=1",
            ),
            (
                Decision::allowed(300, 300, Duration::ZERO),
                "subject",
                "\"subject\";r=300;t=0",
            ),
            (
                Decision::allowed(5, 4, Duration::from_secs(60)),
                "auth-ban",
                "\"auth-ban\";r=4;t=60",
            ),
            (
                Decision::allowed(u32::MAX, u32::MAX, Duration::MAX),
                "subject",
                "\"subject\";r=4294967295;t=18446744073709551615",
            ),
            (
                Decision::allowed(1, 0, ms(1)),
                "we\"ird\\é",
                "\"we\\\"ird\\\\?\";r=0;t=1",
            ),
        ];
        for (d, name, expected) in cases {
            let header = d.ratelimit_header(name);
            assert_eq!(header, *expected);
            assert_eq!(
                header.capacity(),
                header.len(),
                "{name:?}: allocated exactly"
            );
        }
    }

    #[test]
    fn policy_headers() {
        assert_eq!(
            ratelimit_policy_header("subject", &GcraQuota::per_minute(nz(300))),
            "\"subject\";q=300;w=60"
        );
        assert_eq!(
            ratelimit_policy_header(
                "burst",
                &GcraQuota::new(nz(10), ms(1500))
                    .and_then(|q| q.with_burst(nz(3)))
                    .unwrap()
            ),
            "\"burst\";q=10;w=2"
        );
        assert_eq!(
            ratelimit_policy_header("tiny", &GcraQuota::new(nz(10), ms(100)).unwrap()),
            "\"tiny\";q=10;w=1"
        );
        assert_eq!(
            ban_policy_header("auth-ban", &BanQuota::fail2ban_default()),
            "\"auth-ban\";q=5;w=60"
        );
    }

    #[test]
    fn denied_reset_is_at_least_retry_after() {
        let d = Decision::denied(3, ms(10), ms(500));
        assert_eq!(d.reset, ms(500));
        assert_eq!(d.remaining, 0);
        assert!(!d.allowed);
    }
}
