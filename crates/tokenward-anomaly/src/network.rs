//! Client networks: the unit the detectors count in, and the pluggable [`NetworkInfo`]
//! lookup (ASN, country) for the new-network detector.

use std::net::IpAddr;

use ipnet::IpNet;

/// What a [`NetworkInfo`] lookup knows about an address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkDetails {
    /// The autonomous system number announcing the address.
    pub asn: Option<u32>,
    /// The country, as an ISO 3166-1 alpha-2 code.
    pub country: Option<String>,
}

impl NetworkDetails {
    /// Details with an ASN and a country.
    pub fn new(asn: Option<u32>, country: Option<String>) -> Self {
        NetworkDetails { asn, country }
    }
}

/// A lookup of ASN and country for client addresses, from a database you supply (MaxMind
/// GeoLite2, ipinfo, your provider's ranges); tokenward ships none.
///
/// With a lookup, the new-network detector knows a subject's networks by ASN (falling back
/// to the network prefix where the lookup has no ASN), so a phone moving between cells of
/// one carrier is not "new", and every anomaly carries the details. Called on the detector's
/// worker, not on the request path — but once per new (subject, network) pair, so keep it an
/// in-memory lookup.
pub trait NetworkInfo: Send + Sync + 'static {
    /// What is known about `ip` (`None`: nothing).
    fn lookup(&self, ip: IpAddr) -> Option<NetworkDetails>;
}

/// The network `ip` belongs to: its IPv4 `/v4` or IPv6 `/v6` prefix (an IPv4-mapped IPv6
/// address counts as IPv4).
pub fn client_network(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let ip = ip.to_canonical();
    let prefix = if ip.is_ipv4() {
        v4.min(32)
    } else {
        v6.min(128)
    };
    // In range by the `min` above, so `new` cannot fail; the address itself otherwise.
    IpNet::new(ip, prefix).map_or_else(|_| IpNet::from(ip), |net| net.trunc())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn networks_are_prefixes() {
        let net = |s: &str| client_network(s.parse().unwrap(), 24, 48).to_string();
        assert_eq!(net("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(net("::ffff:203.0.113.77"), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2:3::1"), "2001:db8:1::/48");
        assert_eq!(
            client_network("10.1.2.3".parse().unwrap(), 40, 200).to_string(),
            "10.1.2.3/32"
        );
    }
}
