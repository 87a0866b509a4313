//! `ClientIp::resolve` over `Forwarded` and `X-Forwarded-For` values behind trusted proxies.
//!
//! The first byte picks the header and the peer; the rest, split at `0xFF`, are the header
//! values. The result must be the peer, or an address written in the header values; from an
//! untrusted peer it must be the peer; a trusted proxy is returned only when the whole
//! chain (up to the left-most entry) was trusted or an entry could not be followed.
#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tokenward_ratelimit::{ClientIp, ForwardedHeader};

const TRUSTED: [&str; 4] = [
    "10.0.0.0/8",
    "2001:db8:ffff::/48",
    "192.0.2.1",
    "::ffff:172.16.0.0/108",
];
const PEERS: [&str; 8] = [
    "10.0.0.1",
    "10.255.255.255",
    "192.0.2.1",
    "2001:db8:ffff::1",
    "::ffff:10.1.2.3",
    "172.16.0.9",
    "203.0.113.5",
    "2001:db8::5",
];

static RESOLVERS: LazyLock<[ClientIp; 2]> = LazyLock::new(|| {
    [ForwardedHeader::Forwarded, ForwardedHeader::XForwardedFor]
        .map(|h| ClientIp::behind_proxies(h, TRUSTED).expect("valid networks"))
});

/// Every address written in `values`: maximal runs of address characters, and their
/// prefixes that end before a `:` (an address followed by ports).
fn addresses_in(values: &[&str]) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for value in values {
        for run in value.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.')) {
            let prefixes = run.match_indices(':').map(|(at, _)| &run[..at]);
            for candidate in prefixes.chain([run]) {
                if let Ok(ip) = candidate.parse::<IpAddr>() {
                    found.push(ip.to_canonical());
                }
            }
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let values: Vec<&str> = text.split('\u{FFFF}').collect();
    let resolver = &RESOLVERS[usize::from(select & 1)];
    let peer: IpAddr = PEERS[usize::from(select >> 1) % PEERS.len()]
        .parse()
        .expect("peer address");

    let got = resolver.resolve(peer, values.iter().copied());
    let peer = peer.to_canonical();
    assert_eq!(got, got.to_canonical(), "IPv4-mapped address returned");
    if !resolver.is_trusted(peer) {
        assert_eq!(got, peer, "untrusted peer overridden by its own headers");
        return;
    }
    if got != peer {
        assert!(
            addresses_in(&values).contains(&got),
            "{got} is neither the peer nor in {values:?}"
        );
    }
    // Deterministic.
    assert_eq!(resolver.resolve(peer, values.iter().copied()), got);
});
