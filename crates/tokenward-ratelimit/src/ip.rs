//! Which client a request comes from: the peer address, or — only behind proxies you
//! configured as trusted — what those proxies say in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`.
//!
//! Forwarding headers are written by the client first and appended to by every proxy, so
//! only the entries added by *your* proxies can be believed. [`ClientIp::resolve`] starts at
//! the peer and walks the header from the **right**: while the address in hand belongs to a
//! trusted proxy, it moves one entry left; the first address that is not a trusted proxy is
//! the client. The left-most entry is never taken on trust (an attacker writes it).
//!
//! - Peer not trusted: the peer, whatever the headers say.
//! - A malformed entry reached by the walk: the peer (the chain cannot be followed).
//! - An `unknown` or obfuscated (`_hidden`) node reached by the walk: the last address known,
//!   i.e. the trusted proxy that received the request from it.
//! - Every entry trusted: the left-most one.
//!
//! Bans key IPv6 clients by network ([`client_network`], /64 by default): one host usually
//! has a whole /64 to rotate through. A *client network* in the wider sense — what the
//! anomaly detectors count per and what a network ban covers — is [`network_of`]: IPv4 /24
//! and IPv6 /48 by default ([`NETWORK_IPV4_PREFIX`], [`NETWORK_IPV6_PREFIX`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `Forwarded` (RFC 7239): `for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
    /// `X-Forwarded-For`: `192.0.2.60, 198.51.100.7`.
    XForwardedFor,
}

impl ForwardedHeader {
    /// The header's name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::Forwarded => "forwarded",
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
        }
    }
}

/// A trusted-proxy entry that is not a CIDR network or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CIDR network or IP address: {0:?}")]
pub struct NetworkError(String);

/// How to find the client address of a request (see the [module docs](self)).
///
/// ```
/// use std::net::IpAddr;
/// use tokenward_ratelimit::{ClientIp, ForwardedHeader};
///
/// let resolver =
///     ClientIp::behind_proxies(ForwardedHeader::XForwardedFor, ["10.0.0.0/8"]).unwrap();
/// let peer: IpAddr = "10.0.0.5".parse().unwrap();
/// // The client claims to be 1.2.3.4; our proxy saw 203.0.113.9.
/// let ip = resolver.resolve(peer, ["1.2.3.4, 203.0.113.9"]);
/// assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    header: Option<ForwardedHeader>,
    trusted: Vec<IpNet>,
}

impl ClientIp {
    /// The peer address, always (no proxies trusted). The default.
    pub fn peer_only() -> Self {
        Self::default()
    }

    /// Trusts `header` from peers within `trusted_proxies` (CIDR networks like `10.0.0.0/8`
    /// or single addresses).
    pub fn behind_proxies<I, S>(
        header: ForwardedHeader,
        trusted_proxies: I,
    ) -> Result<Self, NetworkError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let trusted = trusted_proxies
            .into_iter()
            .map(|s| parse_network(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClientIp {
            header: Some(header),
            trusted,
        })
    }

    /// Trusts `header` from peers within the given networks.
    pub fn with_networks(header: ForwardedHeader, trusted_proxies: Vec<IpNet>) -> Self {
        ClientIp {
            header: Some(header),
            trusted: trusted_proxies.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// The header this resolver reads, if any (pass its values to [`resolve`](Self::resolve)).
    pub fn header(&self) -> Option<ForwardedHeader> {
        self.header
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request from `peer` carrying `header_values` (every value of
    /// the [configured header](Self::header), in the order received; ignored if none is
    /// configured). IPv4-mapped IPv6 addresses come back as IPv4.
    pub fn resolve<'a, I>(&self, peer: IpAddr, header_values: I) -> IpAddr
    where
        I: IntoIterator<Item = &'a str>,
    {
        let peer = peer.to_canonical();
        let Some(header) = self.header else {
            return peer;
        };
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut entries = Vec::new();
        for value in header_values {
            split_list(value, &mut entries);
        }
        let mut current = peer;
        for entry in entries.iter().rev() {
            let node = match header {
                ForwardedHeader::Forwarded => parse_forwarded_element(entry),
                ForwardedHeader::XForwardedFor => parse_xff_entry(entry),
            };
            match node {
                Node::Ip(ip) => {
                    current = ip.to_canonical();
                    if !self.is_trusted(current) {
                        return current;
                    }
                }
                Node::Unknown => return current,
                Node::Malformed => return peer,
            }
        }
        current
    }
}

/// The network a ban is keyed by: an IPv4 address as itself (/32), an IPv6 address
/// truncated to `ipv6_prefix` bits (clamped to 0..=128; 64 is the usual choice).
/// IPv4-mapped IPv6 addresses count as IPv4.
///
/// ```
/// use tokenward_ratelimit::client_network;
/// let ip = "2001:db8:1:2:aaaa::1".parse().unwrap();
/// assert_eq!(client_network(ip, 64).to_string(), "2001:db8:1:2::/64");
/// assert_eq!(client_network("192.0.2.7".parse().unwrap(), 64).to_string(), "192.0.2.7/32");
/// ```
pub fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
        IpAddr::V6(v6) => {
            let net = Ipv6Net::new(v6, ipv6_prefix.min(128)).unwrap_or_else(|_| Ipv6Net::from(v6));
            IpNet::V6(net.trunc())
        }
    }
}

/// The default IPv4 prefix of a client network ([`network_of`]): a /24.
pub const NETWORK_IPV4_PREFIX: u8 = 24;

/// The default IPv6 prefix of a client network ([`network_of`]): a /48, one site.
pub const NETWORK_IPV6_PREFIX: u8 = 48;

/// The client network `ip` belongs to: its IPv4 `/ipv4_prefix` or IPv6 `/ipv6_prefix`
/// (clamped to 32 and 128; an IPv4-mapped IPv6 address counts as IPv4).
///
/// The one definition of "a network" shared by the anomaly detectors (which count replays
/// and forgeries per network) and [`FailureBan::network_key`](crate::FailureBan::network_key)
/// (which bans one); both default to [`NETWORK_IPV4_PREFIX`] and [`NETWORK_IPV6_PREFIX`].
///
/// ```
/// use tokenward_ratelimit::ip::{NETWORK_IPV4_PREFIX, NETWORK_IPV6_PREFIX, network_of};
/// let net = |s: &str| network_of(s.parse().unwrap(), NETWORK_IPV4_PREFIX, NETWORK_IPV6_PREFIX);
/// assert_eq!(net("203.0.113.77").to_string(), "203.0.113.0/24");
/// assert_eq!(net("2001:db8:1:2:3::1").to_string(), "2001:db8:1::/48");
/// ```
pub fn network_of(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpNet {
    let ip = ip.to_canonical();
    let prefix = if ip.is_ipv4() {
        ipv4_prefix.min(32)
    } else {
        ipv6_prefix.min(128)
    };
    // In range by the `min` above, so `new` cannot fail; the address itself otherwise.
    IpNet::new(ip, prefix).map_or_else(|_| IpNet::from(ip), |net| net.trunc())
}

/// `{name}{infix}{net}` — a ban's store key — with `net` as its `Display` writes it
/// (`192.0.2.0/24`, `2001:db8::/48`). Every request builds one or two of these, so an IPv4
/// network (the common case) is written digit by digit rather than through `core::fmt`,
/// which costs about ten times as much; IPv6 keeps `Display` (its `::` compression rules).
pub(crate) fn net_key(name: &str, infix: &str, net: IpNet) -> String {
    let mut out = String::with_capacity(name.len() + infix.len() + 43);
    out.push_str(name);
    out.push_str(infix);
    match net {
        IpNet::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.addr().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
            out.push('/');
            out.push_str(digits.format(v4.prefix_len()));
        }
        IpNet::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
    out
}

fn parse_network(s: &str) -> Result<IpNet, NetworkError> {
    let s = s.trim();
    if let Ok(net) = IpNet::from_str(s) {
        return Ok(net.trunc());
    }
    match IpAddr::from_str(s) {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(NetworkError(s.to_owned())),
    }
}

enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier, or an element without `for=`.
    Unknown,
    Malformed,
}

/// Splits a comma-separated header value into its elements, respecting quoted strings.
fn split_list<'a>(value: &'a str, out: &mut Vec<&'a str>) {
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(value.get(start..i).unwrap_or("").trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or("").trim());
}

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`.
fn parse_node_addr(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || port_ok(after.strip_prefix(':')?)) {
            return None;
        }
        return Ipv6Addr::from_str(addr).ok().map(IpAddr::V6);
    }
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip);
    }
    let (addr, port) = s.rsplit_once(':')?;
    if !port_ok(port) {
        return None;
    }
    Ipv4Addr::from_str(addr).ok().map(IpAddr::V4)
}

fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

fn parse_xff_entry(entry: &str) -> Node {
    match parse_node_addr(entry) {
        Some(ip) => Node::Ip(ip),
        None => Node::Malformed,
    }
}

/// One `Forwarded` element: `;`-separated `name=value` pairs; the `for` node decides.
fn parse_forwarded_element(element: &str) -> Node {
    if element.is_empty() {
        return Node::Malformed;
    }
    let mut node = None;
    for pair in element.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Node::Malformed;
        };
        if !name.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if node.is_some() {
            // `for` twice in one element: ambiguous.
            return Node::Malformed;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(rest) => match rest.strip_suffix('"') {
                Some(inner) if !inner.contains(['"', '\\']) => inner,
                _ => return Node::Malformed,
            },
            None => value,
        };
        node = Some(parse_forwarded_node(value));
    }
    node.unwrap_or(Node::Unknown)
}

/// RFC 7239 node: `unknown`, `_obfuscated`, an IPv4 address (with optional port), or a
/// bracketed IPv6 address (with optional port). Ports may be obfuscated too.
fn parse_forwarded_node(value: &str) -> Node {
    if value.eq_ignore_ascii_case("unknown") || value.starts_with('_') {
        return Node::Unknown;
    }
    // An obfuscated port (`192.0.2.1:_abc`, RFC 7239 §6.3: `_` then 1*(ALPHA / DIGIT / "."
    // / "_" / "-")) does not change the address, and replaces the port: what precedes it is
    // a bare address. (`192.0.2.1:7:_abc` has two ports: malformed; found by fuzzing.)
    if let Some((addr, port)) = value.rsplit_once(":_") {
        let port_ok = !port.is_empty()
            && port
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        let ip = match addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            Some(v6) => Ipv6Addr::from_str(v6).ok().map(IpAddr::V6),
            None => Ipv4Addr::from_str(addr).ok().map(IpAddr::V4),
        };
        return match ip {
            Some(ip) if port_ok => Node::Ip(ip),
            _ => Node::Malformed,
        };
    }
    if value.contains(':') && !value.starts_with('[') {
        // A bare IPv6 address is not valid in `Forwarded` (it must be bracketed and
        // quoted); an IPv4 address with a port is.
        if let Some((addr, port)) = value.rsplit_once(':')
            && port_ok(port)
            && let Ok(v4) = Ipv4Addr::from_str(addr)
        {
            return Node::Ip(IpAddr::V4(v4));
        }
        return Node::Malformed;
    }
    match parse_node_addr(value) {
        Some(ip) => Node::Ip(ip),
        None => Node::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn check(resolver: &ClientIp, peer: &str, headers: &[&str], expected: &str) {
        let got = resolver.resolve(ip(peer), headers.iter().copied());
        assert_eq!(got, ip(expected), "peer {peer}, headers {headers:?}");
    }

    fn xff() -> ClientIp {
        ClientIp::behind_proxies(
            ForwardedHeader::XForwardedFor,
            ["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn fwd() -> ClientIp {
        ClientIp::behind_proxies(
            ForwardedHeader::Forwarded,
            ["10.0.0.0/8", "2001:db8:ffff::/48"],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn peer_only_ignores_headers() {
        let r = ClientIp::peer_only();
        check(&r, "203.0.113.5", &["1.2.3.4"], "203.0.113.5");
        check(&r, "10.0.0.1", &["1.2.3.4"], "10.0.0.1");
        check(&r, "::ffff:203.0.113.5", &[], "203.0.113.5");
    }

    #[test]
    fn x_forwarded_for() {
        let r = xff();
        let cases: &[(&str, &[&str], &str)] = &[
            // Untrusted peer: headers ignored (spoofing from the internet).
            ("203.0.113.5", &["1.2.3.4"], "203.0.113.5"),
            // One trusted proxy: the entry it appended.
            ("10.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            // Spoofed left-most entries are never taken.
            ("10.0.0.1", &["1.2.3.4, 198.51.100.7"], "198.51.100.7"),
            ("10.0.0.1", &["10.9.9.9, 198.51.100.7"], "198.51.100.7"),
            // Two trusted hops.
            (
                "10.0.0.1",
                &["1.2.3.4, 198.51.100.7, 10.0.0.2"],
                "198.51.100.7",
            ),
            // Several header lines form one list, in order.
            (
                "10.0.0.1",
                &["1.2.3.4, 198.51.100.7", "10.0.0.2"],
                "198.51.100.7",
            ),
            // A single trusted address.
            ("192.0.2.1", &["198.51.100.7"], "198.51.100.7"),
            ("192.0.2.2", &["198.51.100.7"], "192.0.2.2"),
            // Every entry trusted: the left-most.
            ("10.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            // No header: the peer.
            ("10.0.0.1", &[], "10.0.0.1"),
            // Malformed entries reached by the walk: the peer.
            ("10.0.0.1", &["garbage"], "10.0.0.1"),
            ("10.0.0.1", &["1.2.3.4, "], "10.0.0.1"),
            ("10.0.0.1", &[""], "10.0.0.1"),
            ("10.0.0.1", &["198.51.100.7, unknown, 10.0.0.2"], "10.0.0.1"),
            // Malformed entries left of the client do not matter (an attacker cannot push
            // the decision back to the proxy's address).
            ("10.0.0.1", &["garbage, 198.51.100.7"], "198.51.100.7"),
            (
                "10.0.0.1",
                &["\"quoted, junk\", 198.51.100.7"],
                "198.51.100.7",
            ),
            // Ports and IPv6.
            ("10.0.0.1", &["198.51.100.7:4711"], "198.51.100.7"),
            ("10.0.0.1", &["2001:db8::1"], "2001:db8::1"),
            ("10.0.0.1", &["[2001:db8::1]:4711"], "2001:db8::1"),
            ("2001:db8:ffff::1", &["198.51.100.7"], "198.51.100.7"),
            ("10.0.0.1", &["::ffff:198.51.100.7"], "198.51.100.7"),
            // An IPv4-mapped trusted peer is trusted.
            ("::ffff:10.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            ("10.0.0.1", &["198.51.100.7:99999999"], "10.0.0.1"),
        ];
        for (peer, headers, expected) in cases {
            check(&r, peer, headers, expected);
        }
    }

    /// Found by the `client_ip` fuzz target (docs/security.md, "Fuzzing"): a node with a
    /// port *and* an obfuscated port was read as an address instead of being malformed.
    #[test]
    fn forwarded_obfuscated_ports() {
        let r = fwd();
        let cases: &[(&str, &[&str], &str)] = &[
            // The fuzzer's input, reduced.
            ("10.0.0.1", &["for=\"198.31.100.1:7:_port\""], "10.0.0.1"),
            ("10.0.0.1", &["for=\"198.51.100.7:_a:_b\""], "10.0.0.1"),
            ("10.0.0.1", &["for=\"198.51.100.7:_\""], "10.0.0.1"),
            ("10.0.0.1", &["for=\"198.51.100.7:_p!rt\""], "10.0.0.1"),
            ("10.0.0.1", &["for=\"[2001:db8::1]:80:_x\""], "10.0.0.1"),
            ("10.0.0.1", &["for=\"2001:db8::1:_x\""], "10.0.0.1"),
            // Well-formed obfuscated ports.
            (
                "10.0.0.1",
                &["for=\"198.51.100.7:_p-1.x_y\""],
                "198.51.100.7",
            ),
            ("10.0.0.1", &["for=\"[2001:db8::1]:_x\""], "2001:db8::1"),
            (
                "10.0.0.1",
                &["for=1.2.3.4, for=\"198.51.100.7:_x\", for=10.0.0.2"],
                "198.51.100.7",
            ),
        ];
        for (peer, headers, expected) in cases {
            check(&r, peer, headers, expected);
        }
    }

    #[test]
    fn forwarded() {
        let r = fwd();
        let cases: &[(&str, &[&str], &str)] = &[
            ("203.0.113.5", &["for=1.2.3.4"], "203.0.113.5"),
            ("10.0.0.1", &["for=198.51.100.7"], "198.51.100.7"),
            (
                "10.0.0.1",
                &["for=198.51.100.7;proto=https;by=10.0.0.1"],
                "198.51.100.7",
            ),
            ("10.0.0.1", &["For=198.51.100.7"], "198.51.100.7"),
            ("10.0.0.1", &["for=\"[2001:db8::1]:4711\""], "2001:db8::1"),
            ("10.0.0.1", &["for=\"[2001:db8::1]\""], "2001:db8::1"),
            ("10.0.0.1", &["for=\"198.51.100.7:4711\""], "198.51.100.7"),
            ("10.0.0.1", &["for=\"198.51.100.7:_port\""], "198.51.100.7"),
            // Spoofed left-most elements.
            (
                "10.0.0.1",
                &["for=1.2.3.4, for=198.51.100.7"],
                "198.51.100.7",
            ),
            (
                "10.0.0.1",
                &["for=1.2.3.4", "for=198.51.100.7;proto=http, for=10.0.0.2"],
                "198.51.100.7",
            ),
            // Quoted commas inside another parameter do not split elements.
            (
                "10.0.0.1",
                &["for=198.51.100.7;host=\"a,b\""],
                "198.51.100.7",
            ),
            // unknown / obfuscated / no `for`: the trusted hop that saw it.
            ("10.0.0.1", &["for=unknown"], "10.0.0.1"),
            (
                "10.0.0.1",
                &["for=1.2.3.4, for=_hidden, for=10.0.0.2"],
                "10.0.0.2",
            ),
            ("10.0.0.1", &["proto=https"], "10.0.0.1"),
            // Malformed: the peer.
            ("10.0.0.1", &["for=2001:db8::1"], "10.0.0.1"),
            ("10.0.0.1", &["for=\"[2001:db8::1]"], "10.0.0.1"),
            ("10.0.0.1", &["for=[2001:db8::1]:x"], "10.0.0.1"),
            ("10.0.0.1", &["for=198.51.100.7;for=1.2.3.4"], "10.0.0.1"),
            ("10.0.0.1", &["198.51.100.7"], "10.0.0.1"),
            (
                "10.0.0.1",
                &["for=1.2.3.4, garbage, for=10.0.0.2"],
                "10.0.0.1",
            ),
            // ... unless left of the client.
            ("10.0.0.1", &["garbage, for=198.51.100.7"], "198.51.100.7"),
            // An X-Forwarded-For style value is not a Forwarded header.
            ("10.0.0.1", &["1.2.3.4"], "10.0.0.1"),
        ];
        for (peer, headers, expected) in cases {
            check(&r, peer, headers, expected);
        }
    }

    #[test]
    fn networks() {
        let cases: &[(&str, u8, &str)] = &[
            ("192.0.2.7", 64, "192.0.2.7/32"),
            ("::ffff:192.0.2.7", 64, "192.0.2.7/32"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 56, "2001:db8:1::/56"),
            (
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
                128,
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd/128",
            ),
            (
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
                200,
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd/128",
            ),
        ];
        for &(addr, prefix, expected) in cases {
            assert_eq!(
                client_network(ip(addr), prefix).to_string(),
                expected,
                "{addr}/{prefix}"
            );
        }
    }

    #[test]
    fn net_keys_write_networks_as_display_does() {
        for s in [
            "0.0.0.0/0",
            "0.0.0.0/32",
            "10.0.0.0/8",
            "192.0.2.0/24",
            "203.0.113.77/32",
            "255.255.255.255/32",
            "::/0",
            "2001:db8::/48",
            "2001:db8:1:2::/64",
            "::ffff:192.0.2.1/128",
        ] {
            let net: IpNet = s.parse().unwrap();
            assert_eq!(net_key("ban", ":ip:", net), format!("ban:ip:{net}"), "{s}");
        }
    }

    #[test]
    fn client_networks_are_prefixes() {
        let net = |s: &str| network_of(ip(s), NETWORK_IPV4_PREFIX, NETWORK_IPV6_PREFIX);
        assert_eq!(net("203.0.113.77").to_string(), "203.0.113.0/24");
        assert_eq!(net("::ffff:203.0.113.77").to_string(), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2:3::1").to_string(), "2001:db8:1::/48");
        assert_eq!(
            network_of(ip("10.1.2.3"), 40, 200).to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            network_of(ip("2001:db8::1"), 24, 200).to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn invalid_trusted_networks() {
        for bad in ["", "10.0.0.0/33", "nope", "10.0.0.0/8/1"] {
            assert!(
                ClientIp::behind_proxies(ForwardedHeader::Forwarded, [bad]).is_err(),
                "{bad:?}"
            );
        }
        let r = ClientIp::behind_proxies(ForwardedHeader::Forwarded, ["10.1.2.3/8", " ::1 "])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.is_trusted(ip("10.200.0.1")));
        assert!(r.is_trusted(ip("::1")));
        assert!(!r.is_trusted(ip("11.0.0.1")));
    }
}
