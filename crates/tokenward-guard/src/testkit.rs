//! One table of HTTP cases that every framework adapter must pass (feature `testkit`).
//!
//! The adapters (`tokenward-axum`, `tokenward-actix`, and yours) start a real server with
//! [`Fixture::guard`] on an ephemeral port, mount three routes, send every [`Case`] with a
//! real HTTP client and hand the response to [`check`]:
//!
//! - `GET /me` — authentication required; 200 with the JSON body `{"sub": <sub>}`;
//! - `GET /admin` — authentication required plus [`Requirements`] scope `admin`; 200 `{"sub": <sub>}`;
//! - `GET /ops` — authentication required plus [`Fixture::ops`] (role `ops`); 200 `{"sub": <sub>}`;
//! - `GET /optional` — optional authentication; 200 `{"sub": <sub or null>}`;
//! - `GET /own-ratelimit` — authentication required; the handler sets its own `RateLimit`
//!   field to [`HANDLER_RATELIMIT`] and answers 200 `{"sub": <sub>}`: the adapter must keep
//!   it (the Guard's fields are added only where the response has none).
//!
//! Each case sends its own `X-Forwarded-For` address (the fixture trusts loopback as a
//! proxy), so bans and failures recorded by one case never leak into another. Case headers
//! may repeat a name (two `Authorization` headers): send each one, do not replace.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tokenward_guard::testkit::{self, Fixture};
//! let fixture = Fixture::new().await;
//! let cases = testkit::cases(&fixture).await;
//! assert!(cases.len() > 20);
//! // A server would answer the first case (no token) like this:
//! let missing = &cases[0];
//! let headers = vec![
//!     ("www-authenticate".to_owned(), "Bearer".to_owned()),
//!     ("content-type".to_owned(), "application/json".to_owned()),
//!     ("cache-control".to_owned(), "no-store".to_owned()),
//! ];
//! let body = r#"{"error":"missing_token","error_description":"a bearer token is required"}"#;
//! testkit::check(missing, 401, &headers, body).unwrap();
//! # }
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, RejectionClass, TokenIssuer, ValidationPolicy, Validator,
};
use tokenward_core::{Clock, ManualClock, StoreId, SystemClock, UnixTime};
use tokenward_ratelimit::{ClientIp, ForwardedHeader, GcraQuota, SubjectLimit};
use tokenward_revocation::{MemoryRevocationStore, RevocationStore};

use crate::{Denial, Guard, GuardStores, Requirements};

mod failing;
mod grants;

use failing::FailingFor;

/// The issuer of the fixture's tokens.
pub const ISSUER: &str = "https://issuer.testkit.example";
/// The audience the fixture's Guard serves.
pub const AUDIENCE: &str = "testkit-api";
/// Tokens of this subject make the revocation store fail (a store outage).
pub const STORE_DOWN_SUBJECT: &str = "store-down";
/// The fixture's subject limit: requests per minute (= burst).
pub const SUBJECT_LIMIT: u32 = 30;
/// The `RateLimit` value the `/own-ratelimit` handler sets itself.
pub const HANDLER_RATELIMIT: &str = "\"handler\";r=7;t=1";

/// A Guard with in-memory stores, an issuer and its keys, ready for the table.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The Guard to mount (subject limit [`SUBJECT_LIMIT`]/min, default ban, loopback trusted
    /// as a proxy with `X-Forwarded-For`, revocation store failing for
    /// [`STORE_DOWN_SUBJECT`]).
    pub guard: Guard,
    /// Its stores.
    pub stores: GuardStores,
    /// Issues tokens the Guard accepts.
    pub issuer: TokenIssuer,
    /// The keys.
    pub keys: KeySet,
    /// The requirements of `/admin` (scope `admin`).
    pub admin: Requirements,
    /// The requirements of `/ops` (role `ops`, read from `roles`: the fixture has no
    /// profile).
    pub ops: Requirements,
}

/// `id` of the fixture's issuer, as the Guard looks it up in the stores.
fn scoped(id: &str) -> StoreId<'static> {
    tokenward_core::IssuerScope::new(ISSUER)
        .id(id)
        .expect("a valid id")
}

impl Fixture {
    /// A fresh fixture (its own keys and stores), its stores in memory: the Guard decides
    /// every request it can without waiting ([`Guard::authenticate_now`]).
    pub async fn new() -> Fixture {
        Fixture::build(true)
    }

    /// A fresh fixture whose revocation store answers only asynchronously, as a network
    /// store does: every request with a valid token is decided by
    /// [`Guard::authenticate_after`], from where [`Guard::authenticate_now`] stopped. Run
    /// the table against both to cover both halves of the pipeline.
    pub async fn awaiting_stores() -> Fixture {
        Fixture::build(false)
    }

    fn build(answers_now: bool) -> Fixture {
        let keys = KeySet::single(
            Key::hmac("testkit-1", Algorithm::HS256, &[0x5a; 32]).expect("hmac key"),
        );
        let memory = GuardStores::memory();
        let stores = GuardStores::new(
            Arc::new(FailingFor {
                inner: MemoryRevocationStore::new(),
                sub: scoped(STORE_DOWN_SUBJECT),
                answers_now,
            }),
            memory.ratelimit.clone(),
            memory.refresh.clone(),
        );
        let policy = ValidationPolicy::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .build()
            .expect("policy");
        let guard = Guard::builder(Validator::new(policy, keys.clone()), stores.clone())
            .subject_limit(
                SubjectLimit::new(
                    "subject",
                    GcraQuota::per_minute(NonZeroU32::new(SUBJECT_LIMIT).expect("limit")),
                )
                .expect("limit"),
            )
            .client_ip(
                ClientIp::behind_proxies(ForwardedHeader::XForwardedFor, ["127.0.0.0/8", "::1"])
                    .expect("networks"),
            )
            .build()
            .expect("guard");
        let issuer = TokenIssuer::builder(keys.clone(), ISSUER)
            .audience(AUDIENCE)
            .build()
            .expect("issuer");
        Fixture {
            guard,
            stores,
            issuer,
            keys,
            admin: Requirements::new().scope("admin"),
            ops: Requirements::new().role("ops"),
        }
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.issuer
            .issue(&AccessToken::new(sub))
            .expect("issue")
            .token
    }

    fn issue(&self, req: &AccessToken) -> tokenward_claims::IssuedToken {
        self.issuer.issue(req).expect("issue")
    }
}

/// What a response must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expect {
    /// The status code.
    pub status: u16,
    /// The JSON body's `error` (for refusals).
    pub error: Option<&'static str>,
    /// The `WWW-Authenticate` value: exactly `Bearer`, or a prefix of it otherwise.
    pub www_authenticate: Option<String>,
    /// `Retry-After` must be present (whole seconds ≥ 1).
    pub retry_after: bool,
    /// `RateLimit` and `RateLimit-Policy` must be present.
    pub ratelimit: bool,
    /// The exact `RateLimit` value, when it matters (the handler's own).
    pub ratelimit_value: Option<&'static str>,
    /// For 200: the `sub` of the JSON body (`None` = JSON null).
    pub sub: Option<Option<String>>,
}

impl Expect {
    fn ok(sub: &str) -> Expect {
        Expect {
            status: 200,
            error: None,
            www_authenticate: None,
            retry_after: false,
            ratelimit: false,
            ratelimit_value: None,
            sub: Some(Some(sub.to_owned())),
        }
    }

    fn denial(d: &Denial) -> Expect {
        let www = d
            .headers()
            .into_iter()
            .find(|(n, _)| *n == "www-authenticate")
            .map(|(_, v)| v);
        Expect {
            status: d.status(),
            error: Some(d.error()),
            www_authenticate: www,
            retry_after: matches!(
                d,
                Denial::RateLimited { .. } | Denial::Banned { .. } | Denial::Unavailable { .. }
            ),
            ratelimit: matches!(d, Denial::RateLimited { .. } | Denial::Banned { .. }),
            ratelimit_value: None,
            sub: None,
        }
    }

    fn invalid_request() -> Expect {
        Expect {
            www_authenticate: Some("Bearer error=\"invalid_request\"".to_owned()),
            ..Expect::denial(&Denial::InvalidRequest { reason: "" })
        }
    }

    fn invalid(class: RejectionClass) -> Expect {
        Expect::denial(&Denial::InvalidToken { class })
    }

    fn invalid_any() -> Expect {
        Expect {
            www_authenticate: Some("Bearer error=\"invalid_token\"".to_owned()),
            ..Expect::invalid(RejectionClass::Signature)
        }
    }
}

/// One request and what must come back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Case {
    /// A short name for failure messages.
    pub name: &'static str,
    /// `GET`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Headers to send, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The expected response.
    pub expect: Expect,
}

fn case(
    name: &'static str,
    path: &str,
    ip: u8,
    auth: &[&str],
    extra: &[(&str, &str)],
    expect: Expect,
) -> Case {
    let mut headers = vec![("x-forwarded-for".to_owned(), format!("203.0.113.{ip}"))];
    headers.extend(
        auth.iter()
            .map(|a| ("authorization".to_owned(), (*a).to_owned())),
    );
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    Case {
        name,
        method: "GET",
        path: path.to_owned(),
        headers,
        expect,
    }
}

/// The table. Prepares the fixture's stores for the cases that need state (revocations, an
/// exhausted limit, a ban), so call it once per fixture, right before sending the cases.
pub async fn cases(f: &Fixture) -> Vec<Case> {
    let now = SystemClock.now();
    let bearer = |t: &str| format!("Bearer {t}");

    // Tokens.
    let valid = f.token("alice");
    let admin = f
        .issue(&AccessToken::new("root").scope("admin").scope("read"))
        .token;
    let expired = {
        let past = ManualClock::new(now.saturating_sub(Duration::from_secs(3600)));
        TokenIssuer::builder(f.keys.clone(), ISSUER)
            .audience(AUDIENCE)
            .clock(Arc::new(past))
            .build()
            .expect("issuer")
            .issue(&AccessToken::new("alice"))
            .expect("issue")
            .token
    };
    let other_aud = TokenIssuer::builder(f.keys.clone(), ISSUER)
        .audience("another-api")
        .build()
        .expect("issuer")
        .issue(&AccessToken::new("alice"))
        .expect("issue")
        .token;
    let foreign_key = {
        let keys = KeySet::single(
            Key::hmac("testkit-1", Algorithm::HS256, &[0x11; 32]).expect("hmac key"),
        );
        TokenIssuer::builder(keys, ISSUER)
            .audience(AUDIENCE)
            .build()
            .expect("issuer")
            .issue(&AccessToken::new("alice"))
            .expect("issue")
            .token
    };
    let swapped_payload = {
        let a: Vec<&str> = valid.split('.').collect();
        let b = f.token("mallory");
        let b: Vec<&str> = b.split('.').collect();
        format!("{}.{}.{}", a[0], b[1], a[2])
    };
    let alg_none = {
        let parts: Vec<&str> = valid.split('.').collect();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        format!("{header}.{}.", parts[1])
    };
    let oversize = format!(
        "{}.{}.{}",
        "a".repeat(4000),
        "b".repeat(4000),
        "c".repeat(1000)
    );

    // State.
    let revoked_jti = f.issue(&AccessToken::new("carol"));
    let exp = UnixTime::from_secs(revoked_jti.claims.exp.expect("exp"));
    f.stores
        .revocation
        .revoke_token(
            &scoped(revoked_jti.claims.jti.as_deref().expect("jti")),
            exp,
        )
        .await
        .expect("revoke");
    let revoked_sid = f.issue(&AccessToken::new("dave").sid("testkit-session"));
    f.stores
        .revocation
        .revoke_session(&scoped("testkit-session"), exp)
        .await
        .expect("revoke");
    let signed_out = f.token("erin");
    f.stores
        .revocation
        .revoke_subject(
            &scoped("erin"),
            now.saturating_add(Duration::from_secs(1)),
            exp,
        )
        .await
        .expect("revoke");
    let limited = f.token("frank");
    let probe_ip = "198.51.100.1".parse().expect("ip");
    for _ in 0..SUBJECT_LIMIT {
        let creds = crate::Credentials::Bearer(&limited);
        let _ = f
            .guard
            .authenticate(&crate::AuthRequest::new("GET", "/me", probe_ip, creds))
            .await;
    }
    let banned_ip = "203.0.113.250".parse().expect("ip");
    let ban_quota = f.guard.failure_ban().expect("ban").quota().maxretry();
    for _ in 0..ban_quota {
        let req = crate::AuthRequest::new("POST", "/login", banned_ip, crate::Credentials::Absent);
        f.guard.record_failure(&req, "testkit").await;
    }
    let down = f.token(STORE_DOWN_SUBJECT);

    let limited_denial = Denial::RateLimited {
        decision: tokenward_ratelimit::Decision::denied(1, Duration::ZERO, Duration::ZERO),
        policy: String::new(),
        ratelimit: String::new(),
    };
    let banned_denial = Denial::Banned {
        decision: tokenward_ratelimit::Decision::denied(1, Duration::ZERO, Duration::ZERO),
        policy: String::new(),
        ratelimit: String::new(),
    };
    let unavailable = Denial::Unavailable {
        check: crate::Check::Revocation,
        retry_after: Duration::from_secs(1),
    };
    let revoked = Denial::Revoked {
        by: tokenward_revocation::RevokedBy::Token,
    };

    let mut table = vec![
        case(
            "no token",
            "/me",
            1,
            &[],
            &[],
            Expect::denial(&Denial::MissingToken),
        ),
        case(
            "valid token",
            "/me",
            2,
            &[&bearer(&valid)],
            &[],
            Expect::ok("alice"),
        ),
        case(
            "scheme is case-insensitive",
            "/me",
            3,
            &[&format!("bEaReR {valid}")],
            &[],
            Expect::ok("alice"),
        ),
        case(
            "another scheme is no bearer token",
            "/me",
            4,
            &["Basic YWxpY2U6cGFzc3dvcmQ="],
            &[],
            Expect::denial(&Denial::MissingToken),
        ),
        case(
            "token in the query string is never read",
            &format!("/me?access_token={valid}"),
            5,
            &[],
            &[],
            Expect::denial(&Denial::MissingToken),
        ),
        case(
            "token in a cookie is not read without the opt-in",
            "/me",
            6,
            &[],
            &[("cookie", &format!("access_token={valid}"))],
            Expect::denial(&Denial::MissingToken),
        ),
        case(
            "two Authorization headers",
            "/me",
            7,
            &[&bearer(&valid), &bearer(&valid)],
            &[],
            Expect::invalid_request(),
        ),
        case(
            "not b64token",
            "/me",
            8,
            &["Bearer abc,def"],
            &[],
            Expect::invalid_request(),
        ),
        case(
            "expired",
            "/me",
            9,
            &[&bearer(&expired)],
            &[],
            Expect::invalid(RejectionClass::Expired),
        ),
        case(
            "wrong audience",
            "/me",
            10,
            &[&bearer(&other_aud)],
            &[],
            Expect::invalid(RejectionClass::Audience),
        ),
        case(
            "signed by another key",
            "/me",
            11,
            &[&bearer(&foreign_key)],
            &[],
            Expect::invalid(RejectionClass::Signature),
        ),
        case(
            "payload swapped",
            "/me",
            12,
            &[&bearer(&swapped_payload)],
            &[],
            Expect::invalid(RejectionClass::Signature),
        ),
        case(
            "alg none",
            "/me",
            13,
            &[&bearer(&alg_none)],
            &[],
            Expect::invalid_any(),
        ),
        case(
            "oversize token",
            "/me",
            14,
            &[&bearer(&oversize)],
            &[],
            Expect::invalid(RejectionClass::Malformed),
        ),
        case(
            "garbage token",
            "/me",
            15,
            &["Bearer not.a.jwt"],
            &[],
            Expect::invalid(RejectionClass::Malformed),
        ),
        case(
            "revoked token",
            "/me",
            16,
            &[&bearer(&revoked_jti.token)],
            &[],
            Expect::denial(&revoked),
        ),
        case(
            "revoked session",
            "/me",
            17,
            &[&bearer(&revoked_sid.token)],
            &[],
            Expect::denial(&revoked),
        ),
        case(
            "signed out everywhere",
            "/me",
            18,
            &[&bearer(&signed_out)],
            &[],
            Expect::denial(&revoked),
        ),
        case(
            "subject limit exhausted",
            "/me",
            19,
            &[&bearer(&limited)],
            &[],
            Expect::denial(&limited_denial),
        ),
        case(
            "banned client",
            "/me",
            250,
            &[&bearer(&valid)],
            &[],
            Expect::denial(&banned_denial),
        ),
        case(
            "store down, fail closed",
            "/me",
            21,
            &[&bearer(&down)],
            &[],
            Expect::denial(&unavailable),
        ),
        case(
            "admin route without the scope",
            "/admin",
            22,
            &[&bearer(&valid)],
            &[],
            Expect::denial(&Denial::InsufficientScope {
                required: "admin".to_owned(),
            }),
        ),
        case(
            "admin route with the scope",
            "/admin",
            23,
            &[&bearer(&admin)],
            &[],
            Expect::ok("root"),
        ),
        case(
            "admin route without a token",
            "/admin",
            24,
            &[],
            &[],
            Expect::denial(&Denial::MissingToken),
        ),
        case(
            "optional auth without a token",
            "/optional",
            25,
            &[],
            &[],
            Expect {
                sub: Some(None),
                ..Expect::ok("")
            },
        ),
        case(
            "optional auth with a token",
            "/optional",
            26,
            &[&bearer(&valid)],
            &[],
            Expect::ok("alice"),
        ),
        case(
            "a handler's own RateLimit field is kept",
            "/own-ratelimit",
            28,
            &[&bearer(&valid)],
            &[],
            Expect {
                ratelimit: true,
                ratelimit_value: Some(HANDLER_RATELIMIT),
                ..Expect::ok("alice")
            },
        ),
        case(
            "optional auth with an invalid token",
            "/optional",
            27,
            &[&bearer(&expired)],
            &[],
            Expect::invalid(RejectionClass::Expired),
        ),
    ];
    table.extend(grants::cases(f));
    table
}

/// Checks one response against its case. Header names are compared case-insensitively.
pub fn check(
    case: &Case,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), String> {
    let fail = |what: String| Err(format!("case {:?}: {what}\nbody: {body}", case.name));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let e = &case.expect;
    if status != e.status {
        return fail(format!("status {status}, expected {}", e.status));
    }
    // The response never echoes a token the request carried, wherever it was.
    for (_, value) in &case.headers {
        for secret in value
            .split([' ', '=', ';', '?', '&'])
            .filter(|s| s.len() > 16)
        {
            if body.contains(secret) || headers.iter().any(|(_, v)| v.contains(secret)) {
                return fail("the response echoes the request's token".to_owned());
            }
        }
    }
    if case.path.contains("access_token=") {
        let token = case.path.split("access_token=").nth(1).unwrap_or_default();
        if body.contains(token) {
            return fail("the response echoes the query-string token".to_owned());
        }
    }
    let json: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(err) => return fail(format!("body is not JSON: {err}")),
    };
    if let Some(sub) = &e.sub {
        let got = json.get("sub").cloned().unwrap_or(serde_json::Value::Null);
        let want = sub.as_ref().map_or(serde_json::Value::Null, |s| {
            serde_json::Value::String(s.clone())
        });
        if got != want {
            return fail(format!("sub {got}, expected {want}"));
        }
    }
    if let Some(error) = e.error {
        if json.get("error").and_then(|v| v.as_str()) != Some(error) {
            return fail(format!("error {:?}, expected {error:?}", json.get("error")));
        }
        if json
            .get("error_description")
            .and_then(|v| v.as_str())
            .is_none()
        {
            return fail("no error_description".to_owned());
        }
        if !header("content-type").is_some_and(|v| v.starts_with("application/json")) {
            return fail(format!("content-type {:?}", header("content-type")));
        }
        if header("cache-control") != Some("no-store") {
            return fail(format!("cache-control {:?}", header("cache-control")));
        }
    }
    match (&e.www_authenticate, header("www-authenticate")) {
        (None, None) => {}
        (Some(want), Some(got)) if want == "Bearer" && got == "Bearer" => {}
        (Some(want), Some(got)) if want != "Bearer" && got.starts_with(want.as_str()) => {}
        (want, got) => return fail(format!("www-authenticate {got:?}, expected {want:?}")),
    }
    if e.retry_after {
        let ok = header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1);
        if !ok {
            return fail(format!("retry-after {:?}", header("retry-after")));
        }
    }
    if e.ratelimit && (header("ratelimit").is_none() || header("ratelimit-policy").is_none()) {
        return fail("RateLimit / RateLimit-Policy missing".to_owned());
    }
    if let Some(want) = e.ratelimit_value {
        let got: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("ratelimit"))
            .map(|(_, v)| v.as_str())
            .collect();
        if got != [want] {
            return fail(format!("RateLimit {got:?}, expected exactly [{want:?}]"));
        }
    }
    Ok(())
}
