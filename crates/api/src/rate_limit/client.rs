//! Who the client is, for the per-address limit.
//!
//! The client is the TCP peer, unless the peer is a trusted proxy (`RUSHLINE_TRUSTED_PROXIES`):
//! then `X-Forwarded-For` is read from the right (each proxy appends the address it saw) and the
//! client is the first address that is not a trusted proxy. Everything left of it was written by
//! the client or by proxies nobody vouches for, so it is never read: a client cannot pick its own
//! address by prepending one, nor break the reading with garbage there. A malformed entry in the
//! part the trusted proxies wrote means a misconfigured proxy: the peer is used (never a `5xx`).
//! When every listed address is a trusted proxy, the leftmost one is the client.
//!
//! IPv6 clients are limited by their /64: one subscriber line or host usually holds a whole /64,
//! so limiting single addresses would let one client rotate through 2^64 of them.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::{IpNet, Ipv6Net};

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed: CIDRs, or single addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs (`10.0.0.0/8`) or addresses (`192.0.2.1`, taken as
    /// /32 or /128).
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(|item| {
                let item = item.trim();
                IpNet::from_str(item)
                    .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{item:?} is not a CIDR (like 10.0.0.0/8) or an address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `address` is a trusted proxy.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind a connection from `peer` carrying `headers` (see the module doc).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut leftmost = None;
        // Several `X-Forwarded-For` fields form one list, in order: read the last field first.
        let fields: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        for field in fields.into_iter().rev() {
            let Ok(text) = field.to_str() else {
                return peer;
            };
            for hop in text.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
                let Some(address) = parse_hop(hop) else {
                    return peer;
                };
                if !self.trusts(address) {
                    return address;
                }
                leftmost = Some(address);
            }
        }
        leftmost.unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:1234`,
/// `[2001:db8::1]:443`) or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| IpAddr::from_str(h).ok())
        })
        .map(|a| a.to_canonical())
}

/// What the per-address limit counts `client` as: an IPv4 address, or an IPv6 address's /64
/// (`2001:db8:1:2::/64`).
pub fn limited_subject(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match Ipv6Net::new(v6, 64) {
            Ok(net) => net.trunc().to_string(),
            // 64 is a valid IPv6 prefix length; unreachable, but an address is a sound fallback.
            Err(_) => v6.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in xff {
            map.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn proxies_parse_as_cidrs_or_addresses_and_garbage_is_refused() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7,2001:db8::/32").unwrap();
        assert!(proxies.trusts(ip("10.1.2.3")));
        assert!(proxies.trusts(ip("192.0.2.7")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        assert!(proxies.trusts(ip("2001:db8:ffff::1")));
        assert!(proxies.trusts(ip("::ffff:10.0.0.1")), "IPv4-mapped peers");
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/8,", "1.2.3"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("203.0.113.5");
        assert_eq!(proxies.client(peer, &headers(&["198.51.100.1"])), peer);
        assert_eq!(
            TrustedProxies::default().client(peer, &headers(&["1.1.1.1"])),
            peer
        );
    }

    #[test]
    fn a_trusted_peer_gives_the_rightmost_untrusted_address() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        let client = |xff: &[&str]| proxies.client(peer, &headers(xff));
        assert_eq!(
            client(&["6.6.6.6, 198.51.100.1, 10.2.3.4"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(&["6.6.6.6", "198.51.100.1, 10.2.3.4"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(&["garbage, 198.51.100.1"]),
            ip("198.51.100.1"),
            "left of the client is never read"
        );
        assert_eq!(client(&["198.51.100.1:4711"]), ip("198.51.100.1"));
        assert_eq!(client(&["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(
            client(&["10.9.9.9, 10.2.3.4"]),
            ip("10.9.9.9"),
            "all proxies: the leftmost"
        );
        assert_eq!(client(&[]), peer);
        assert_eq!(
            client(&["198.51.100.1, not-an-address"]),
            peer,
            "malformed: the peer"
        );
        assert_eq!(client(&["198.51.100.1, 10.0.0.300"]), peer);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(
            limited_subject(ip("2001:db8:1:2:aaaa::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            limited_subject(ip("2001:db8:1:2:bbbb::9")),
            limited_subject(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(limited_subject(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(limited_subject(ip("192.0.2.1")), "192.0.2.1");
    }
}
