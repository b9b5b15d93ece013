//! `security.trusted_proxies`: the networks whose hosts are trusted to report the client
//! address (CIDR blocks; a bare address is a block of one).

use std::net::IpAddr;

use ipnet::IpNet;

/// An entry of `security.trusted_proxies` that is neither an address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is neither an IP address nor a CIDR block (10.0.0.0/8, 2001:db8::/32)")]
pub(crate) struct InvalidProxyEntry {
    /// The entry as configured.
    pub entry: String,
}

/// The networks whose hosts are trusted to report the client address.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    pub(crate) nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses CIDR blocks; a bare address is a block of one.
    ///
    /// # Errors
    /// The index and the [`InvalidProxyEntry`] of the first bad entry.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, InvalidProxyEntry)> {
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let text = entry.as_ref().trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| match net {
                        // `::ffff:10.0.0.0/104` means the same hosts as `10.0.0.0/8`.
                        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                            Some(v4) if v6.prefix_len() >= 96 => {
                                IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net)
                            }
                            _ => net,
                        },
                        IpNet::V4(_) => net,
                    })
                    .map_err(|_| {
                        (
                            i,
                            InvalidProxyEntry {
                                entry: entry.as_ref().to_string(),
                            },
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets })
    }
}
