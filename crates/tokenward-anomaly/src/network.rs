//! Client networks: the unit the detectors count in — [`network_of`], the one definition
//! shared with the failure ban's network key
//! ([`FailureBan::network_key`](tokenward_ratelimit::FailureBan::network_key)) — and the
//! pluggable [`NetworkInfo`] lookup (ASN, country) for the new-network detector.

use std::net::IpAddr;

pub use tokenward_ratelimit::network_of;

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
