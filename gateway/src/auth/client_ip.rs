//! The client's address behind load balancers: `security.trusted_proxies` and `X-Forwarded-For`.
//!
//! The "peer" is the TCP peer, or the source address of a PROXY protocol header on listeners
//! that take one. When the peer is not a trusted proxy, it is the client and forwarding headers
//! are ignored. When it is trusted, `X-Forwarded-For` is walked from the right (every header
//! line, in order, as one comma-separated list):
//!
//! - a well-formed address that is itself trusted is a hop: the walk moves past it;
//! - the first well-formed address that is not trusted is the client;
//! - an entry that is not an address (`unknown`, an obfuscated name, an empty item, a value
//!   that is not visible ASCII) stops the walk: the client is the last address reached, the
//!   trusted hop to its right, or the peer when it is the rightmost entry;
//! - when every entry is a trusted hop, the client is the leftmost one; with no header at all,
//!   the peer.
//!
//! Entries may be `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, or carry a port (`1.2.3.4:5678`,
//! `[2001:db8::1]:5678`). IPv4-mapped IPv6 addresses count as IPv4 everywhere.
//!
//! This relies on every trusted proxy appending the address of its own peer to the header (as
//! load balancers and `proxy_add_x_forwarded_for` do), so only the part to the left of the
//! first untrusted hop can be made up by a client.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

pub(crate) use crate::grammar::TrustedProxies;

/// `X-Forwarded-For`.
pub(crate) const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Where a client address was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The peer itself: untrusted, or trusted with no `X-Forwarded-For`.
    Peer,
    /// `X-Forwarded-For`, walked to an untrusted address or through every entry.
    Forwarded,
    /// `X-Forwarded-For`, where a malformed entry stopped the walk before an untrusted address
    /// was found.
    CutShort,
}

/// A resolved client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr {
    /// The client (IPv4-mapped IPv6 as IPv4).
    pub ip: IpAddr,
    /// How it was found.
    pub source: Source,
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, by the rule in the module docs.
    pub(crate) fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return ClientAddr {
                ip: peer,
                source: Source::Peer,
            };
        }
        let mut values = headers.get_all(X_FORWARDED_FOR).iter().peekable();
        if values.peek().is_none() {
            return ClientAddr {
                ip: peer,
                source: Source::Peer,
            };
        }
        // Header lines right to left, each line's items right to left; a line that is not
        // visible ASCII is one malformed entry.
        let entries = values.rev().flat_map(|value| {
            let text = value.to_str().ok();
            let items = text.into_iter().flat_map(|t| t.rsplit(',').map(Some));
            items.chain(text.is_none().then_some(None))
        });
        walk(peer, entries, |ip| self.contains(ip))
    }
}

/// Walks `entries` (right to left) from `peer`, which is trusted.
fn walk<'a>(
    peer: IpAddr,
    entries: impl Iterator<Item = Option<&'a str>>,
    trusted: impl Fn(IpAddr) -> bool,
) -> ClientAddr {
    let mut reached = peer;
    for entry in entries {
        let Some(ip) = entry.and_then(parse_entry) else {
            return ClientAddr {
                ip: reached,
                source: Source::CutShort,
            };
        };
        if !trusted(ip) {
            return ClientAddr {
                ip,
                source: Source::Forwarded,
            };
        }
        reached = ip;
    }
    ClientAddr {
        ip: reached,
        source: Source::Forwarded,
    }
}

/// One `X-Forwarded-For` item as an address (any port dropped), canonical.
fn parse_entry(item: &str) -> Option<IpAddr> {
    let item = item.trim_matches([' ', '\t']);
    let ip = item
        .parse::<IpAddr>()
        .ok()
        .or_else(|| item.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            item.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::proxies::InvalidProxyEntry;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).expect("valid")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn resolve(trusted: &TrustedProxies, peer: &str, xff: &[&str]) -> ClientAddr {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append(X_FORWARDED_FOR, value.parse().expect("value"));
        }
        trusted.resolve(ip(peer), &headers)
    }

    fn forwarded(text: &str) -> ClientAddr {
        ClientAddr {
            ip: ip(text),
            source: Source::Forwarded,
        }
    }

    #[test]
    fn entries_parse_as_blocks_or_single_addresses() {
        let t = proxies(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "2001:db8::/32",
            "::1",
            "::ffff:172.16.0.0/108",
        ]);
        assert!(t.contains(ip("10.9.8.7")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("172.16.5.5")));
        // An IPv4-mapped peer is the IPv4 address.
        assert!(t.contains(ip("::ffff:10.1.1.1")));
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/8", "10.0.0.0/33"]).err(),
            Some((
                1,
                InvalidProxyEntry {
                    entry: "10.0.0.0/33".into()
                }
            ))
        );
        assert!(TrustedProxies::parse(&["localhost"]).is_err());
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let t = proxies(&["10.0.0.0/8"]);
        let got = resolve(&t, "203.0.113.5", &["198.51.100.1"]);
        assert_eq!(
            got,
            ClientAddr {
                ip: ip("203.0.113.5"),
                source: Source::Peer
            }
        );
        // Nothing trusted at all: the same.
        let got = resolve(&TrustedProxies::default(), "127.0.0.1", &["198.51.100.1"]);
        assert_eq!(got.ip, ip("127.0.0.1"));
    }

    #[test]
    fn trusted_peer_without_the_header_is_the_client() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "10.0.0.1", &[]),
            ClientAddr {
                ip: ip("10.0.0.1"),
                source: Source::Peer
            }
        );
    }

    #[test]
    fn rightmost_untrusted_address_wins() {
        let t = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
        // A made-up leftmost entry does not matter: the first untrusted from the right does.
        assert_eq!(
            resolve(&t, "10.0.0.1", &["1.1.1.1, 198.51.100.7"]),
            forwarded("198.51.100.7")
        );
        // Trusted hops are skipped, across header lines too.
        assert_eq!(
            resolve(
                &t,
                "10.0.0.1",
                &["6.6.6.6, 198.51.100.7, 10.1.1.1", "10.2.2.2"]
            ),
            forwarded("198.51.100.7")
        );
        assert_eq!(
            resolve(&t, "10.0.0.1", &["2001:db8::9, 2001:0db9::1 , 10.3.3.3"]),
            forwarded("2001:db9::1")
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "10.0.0.1", &["198.51.100.7:4711"]),
            forwarded("198.51.100.7")
        );
        assert_eq!(
            resolve(&t, "10.0.0.1", &["[2001:db9::1]:443"]),
            forwarded("2001:db9::1")
        );
        assert_eq!(
            resolve(&t, "10.0.0.1", &["[2001:db9::1]"]),
            forwarded("2001:db9::1")
        );
        assert_eq!(
            resolve(&t, "::ffff:10.0.0.1", &["10.4.4.4, ::ffff:198.51.100.7"]),
            forwarded("198.51.100.7")
        );
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&t, "10.0.0.1", &["10.9.9.9, 10.8.8.8"]),
            forwarded("10.9.9.9")
        );
    }

    #[test]
    fn malformed_entries_stop_the_walk_at_the_last_address_reached() {
        let t = proxies(&["10.0.0.0/8"]);
        let cut = |text: &str| ClientAddr {
            ip: ip(text),
            source: Source::CutShort,
        };
        // Rightmost entry malformed: the peer.
        for bad in [
            "unknown",
            "",
            " ",
            "_hidden",
            "1.2.3",
            "198.51.100.7:port",
            "[::1",
        ] {
            assert_eq!(
                resolve(&t, "10.0.0.1", &[&format!("198.51.100.7, {bad}")]),
                cut("10.0.0.1"),
                "{bad:?}"
            );
        }
        // Behind a trusted hop: that hop.
        assert_eq!(
            resolve(&t, "10.0.0.1", &["198.51.100.7, unknown, 10.5.5.5"]),
            cut("10.5.5.5")
        );
        // Left of the client, garbage is never reached.
        assert_eq!(
            resolve(&t, "10.0.0.1", &["unknown, 198.51.100.7"]),
            forwarded("198.51.100.7")
        );
    }

    #[test]
    fn a_line_that_is_not_text_is_one_malformed_entry() {
        let t = proxies(&["10.0.0.0/8"]);
        let mut headers = HeaderMap::new();
        headers.append(X_FORWARDED_FOR, "198.51.100.7".parse().expect("value"));
        headers.append(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"10.6.6.6\xff").expect("opaque"),
        );
        assert_eq!(
            t.resolve(ip("10.0.0.1"), &headers),
            ClientAddr {
                ip: ip("10.0.0.1"),
                source: Source::CutShort
            }
        );
    }
}
