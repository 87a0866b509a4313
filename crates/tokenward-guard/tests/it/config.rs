//! The Guard's configuration: defaults, errors naming their field, serde errors, and the
//! Guard a configuration builds. (Issuers and key sources: `issuers.rs`.)

use std::num::NonZeroU32;
use std::time::Duration;

use tokenward_core::FailurePolicy;
use tokenward_guard::{GuardConfig, GuardStores};
use tokenward_ratelimit::GcraQuota;

use crate::common::keys;
fn parse(toml: &str) -> Result<GuardConfig, String> {
    toml::from_str::<GuardConfig>(toml).map_err(|e| e.to_string())
}

const BASE: &str = "[validation]\nissuers = [\"iss\"]\naudiences = [\"aud\"]\n";

#[test]
fn defaults_are_closed_and_complete() {
    let c = parse(BASE).unwrap();
    c.validate().unwrap();
    assert_eq!(c.failure_policy, FailurePolicy::Closed);
    assert!(c.subject_limit.enabled && c.ban.enabled);
    assert_eq!(c, GuardConfig::new("iss", "aud"));
}

#[test]
fn bad_values_name_their_field() {
    let cases = [
        ("[subject_limit]\nrequests = 0", "subject_limit.requests"),
        ("[subject_limit]\nperiod = \"0s\"", "subject_limit.period"),
        ("[subject_limit]\nburst = 0", "subject_limit.burst"),
        (
            "[subject_limit]\nname = \"has space\"",
            "subject_limit.name",
        ),
        ("[ban]\nmaxretry = 0", "ban.maxretry"),
        ("[ban]\nbantime = \"0s\"", "ban.bantime"),
        ("[ban]\nipv6_prefix = 129", "ban.ipv6_prefix"),
        ("[ban]\nnetwork_ipv4_prefix = 33", "ban.network_ipv4_prefix"),
        ("[ban]\nnetwork_ipv4_prefix = 7", "ban.network_ipv4_prefix"),
        (
            "[ban]\nnetwork_ipv6_prefix = 129",
            "ban.network_ipv6_prefix",
        ),
        (
            "[client_ip]\nheader = \"forwarded\"",
            "client_ip.trusted_proxies",
        ),
        (
            "[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\"]",
            "client_ip.header",
        ),
        (
            "[client_ip]\nheader = \"x-forwarded-for\"\ntrusted_proxies = [\"nope\"]",
            "client_ip.trusted_proxies",
        ),
        ("[token]\ncookie = \"a;b\"", "token.cookie"),
        ("outage_retry_after = \"0s\"", "outage_retry_after"),
        ("outage_retry_after = \"2h\"", "outage_retry_after"),
    ];
    for (extra, field) in cases {
        let c = parse(&format!("{extra}\n{BASE}")).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, field, "{extra}: {e}");
        assert!(e.to_string().contains(field));
    }
    let e = parse("[validation]\nissuers = []\naudiences = [\"a\"]")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "validation.issuers");
    let e = parse("[validation]\nissuers = [\"i\"]\naudiences = [\"a\"]\nleeway = \"10m\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("leeway"), "{e}");
}

#[test]
fn serde_errors_name_the_field() {
    let e = parse(&format!("{BASE}[ban]\nmaxretries = 5")).unwrap_err();
    assert!(e.contains("maxretries"), "{e}");
    let e = parse(&format!("{BASE}[ban]\nfindtime = \"soon\"")).unwrap_err();
    assert!(e.contains("findtime"), "{e}");
    let e = parse(&format!("failure_policy = \"sometimes\"\n{BASE}")).unwrap_err();
    assert!(
        e.contains("failure_policy") && e.contains("sometimes"),
        "{e}"
    );
    // `[validation]` may be left out (with `[[issuers]]`), but then names no issuer.
    let e = parse("[subject_limit]\nrequests = 3")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "validation.issuers", "{e}");
}

#[test]
fn config_builds_the_guard_it_describes() {
    let c = parse(&format!(
        "failure_policy = \"dangerous_open\"\n{BASE}[subject_limit]\nrequests = 10\nperiod = \"1s\"\nburst = 2\n[ban]\nenabled = false\n[client_ip]\nheader = \"forwarded\"\ntrusted_proxies = [\"10.0.0.0/8\"]"
    ))
    .unwrap();
    let guard = c
        .guard_builder(keys(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let limit = guard.subject_limit().unwrap();
    assert_eq!(
        *limit.quota(),
        GcraQuota::new(NonZeroU32::new(10).unwrap(), Duration::from_secs(1))
            .and_then(|q| q.with_burst(NonZeroU32::new(2).unwrap()))
            .unwrap()
    );
    assert_eq!(limit.on_store_failure(), FailurePolicy::DangerousOpen);
    assert!(guard.failure_ban().is_none());
    assert_eq!(
        guard.client_ip().header(),
        Some(tokenward_ratelimit::ForwardedHeader::Forwarded)
    );
}

#[test]
fn redis_backend_without_the_feature_is_a_startup_error() {
    let c = parse(&format!("{BASE}[stores]\nbackend = \"redis\"")).unwrap();
    if cfg!(feature = "redis") {
        // With the feature, the connection must be configured too (never a silent default).
        assert_eq!(c.validate().unwrap_err().field, "stores.redis");
    } else {
        assert_eq!(c.validate().unwrap_err().field, "stores.backend");
    }
}

#[test]
fn guard_debug_shows_its_policies() {
    let guard = GuardConfig::new("iss", "aud")
        .guard_builder(keys(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let debug = format!("{guard:?}");
    for part in ["backend: \"memory\"", "subject_limit", "auth-ban", "Closed"] {
        assert!(debug.contains(part), "{part} missing: {debug}");
    }
}

#[test]
fn the_ban_config_sets_the_network_prefixes() {
    // The defaults: a /24 and a /48, as the anomaly detectors count networks.
    let guard = parse(BASE)
        .unwrap()
        .guard_builder(keys(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let ban = guard.failure_ban().unwrap();
    assert_eq!(ban.network_prefix_lens(), (24, 48));
    // Set in the file: the ban's network key follows.
    let c = parse(&format!(
        "{BASE}[ban]\nnetwork_ipv4_prefix = 16\nnetwork_ipv6_prefix = 56"
    ))
    .unwrap();
    let ban = c.failure_ban().unwrap().unwrap();
    assert_eq!(ban.network_prefix_lens(), (16, 56));
    assert_eq!(
        ban.network_key("203.0.113.77".parse().unwrap()).as_str(),
        "auth-ban:net:203.0.0.0/16"
    );
    assert_eq!(
        ban.network_key("2001:db8:1:2ff::1".parse().unwrap())
            .as_str(),
        "auth-ban:net:2001:db8:1:200::/56"
    );
}
