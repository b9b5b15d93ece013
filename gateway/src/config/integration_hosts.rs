//! Where outgoing calls may go (`security.integration_hosts`, `security.allow_metadata_hosts`):
//! the guard against server-side request forgery through stage variables, checked on every
//! integration, `request` authorizer and JWKS URL once its stage variables are substituted, and
//! again on the addresses a host name resolves to when an `http://` integration connects.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use super::{AuthorizerConfig, Config, ConfigError, IntegrationConfig, substitute_stage_variables};

/// Host names of cloud metadata services (they resolve to link-local addresses inside the
/// cloud); refused like the addresses unless `allow_metadata_hosts` is set.
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// One entry of `security.integration_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// An exact host name (ASCII case-insensitive).
    Name(String),
    /// `*.suffix`: any host name with one or more labels before `.suffix`.
    Suffix(String),
    /// An address or a CIDR block.
    Net(IpNet),
}

/// The configured policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostPolicy {
    allowed: Vec<Pattern>,
    allow_metadata: bool,
}

/// Whether `ip` is link-local or a cloud metadata address (IPv4-mapped IPv6 counts as IPv4).
pub(crate) fn is_metadata_address(ip: IpAddr) -> bool {
    const EC2_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => v6 == EC2_V6 || (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(Pattern::Net(net));
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(Pattern::Net(IpNet::from(ip)));
    }
    let name = text.to_ascii_lowercase();
    let (suffix, body) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    let valid = !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "`{text}` is not a host name, `*.suffix`, address or CIDR block"
        ));
    }
    Ok(if suffix {
        Pattern::Suffix(body.to_owned())
    } else {
        Pattern::Name(body.to_owned())
    })
}

impl HostPolicy {
    /// The policy of `security`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the entry of `security.integration_hosts` that cannot be read.
    pub(crate) fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let security = &config.security;
        let allowed = (security.integration_hosts.iter().enumerate())
            .map(|(i, entry)| {
                parse_pattern(entry).map_err(|m| {
                    ConfigError::invalid(format!("security.integration_hosts[{i}]"), m)
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed,
            allow_metadata: security.allow_metadata_hosts,
        })
    }

    /// Checks the host of `uri` (`http://` and `https://` only: `unix:` sockets and Lambda ARNs
    /// have no host to check). Host names are checked as written; their addresses are checked
    /// when an `http://` integration connects ([`HostPolicy::check_address`]).
    ///
    /// # Errors
    /// Why the host is refused.
    pub(crate) fn check_uri(&self, uri: &str) -> Result<(), String> {
        let Ok(url) = reqwest::Url::parse(uri) else {
            return Ok(());
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Ok(());
        }
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) => self.check_name(host),
        }
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !self.allow_metadata && METADATA_NAMES.contains(&name.as_str()) {
            return Err(format!(
                "host `{name}` is a cloud metadata service (security.allow_metadata_hosts is off)"
            ));
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        let listed = self.allowed.iter().any(|p| match p {
            Pattern::Name(exact) => *exact == name,
            Pattern::Suffix(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Pattern::Net(_) => false,
        });
        if listed {
            Ok(())
        } else {
            Err(format!(
                "host `{name}` is not in security.integration_hosts"
            ))
        }
    }

    /// Checks one address an integration is about to connect to (a literal host, or what its
    /// name resolved to).
    ///
    /// # Errors
    /// Why the address is refused.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if !self.allow_metadata && is_metadata_address(ip) {
            return Err(format!(
                "address {ip} is link-local or a cloud metadata address (security.allow_metadata_hosts is off)"
            ));
        }
        if self.allowed.is_empty()
            || self
                .allowed
                .iter()
                .any(|p| matches!(p, Pattern::Net(net) if net.contains(&ip)))
        {
            Ok(())
        } else {
            Err(format!("address {ip} is not in security.integration_hosts"))
        }
    }

    /// Checks an address a host name resolved to: the metadata rule only, since the name itself
    /// was checked against the allow-list.
    ///
    /// # Errors
    /// Why the address is refused.
    pub(crate) fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if !self.allow_metadata && is_metadata_address(ip) {
            return Err(format!(
                "resolves to {ip}, a link-local or cloud metadata address (security.allow_metadata_hosts is off)"
            ));
        }
        Ok(())
    }
}

/// Checks every integration, `request` authorizer and JWKS URL of every stage.
///
/// # Errors
/// A [`ConfigError`] naming the URL's key and the stage.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let policy = HostPolicy::from_config(config)?;
    let api = &config.api;
    for (stage, settings) in &api.stages {
        let check = |key: String, uri: &str| -> Result<(), ConfigError> {
            // A missing stage variable is reported by the integration's own check.
            let Ok(resolved) = substitute_stage_variables(uri, &settings.variables) else {
                return Ok(());
            };
            policy
                .check_uri(&resolved)
                .map_err(|m| ConfigError::invalid(key, format!("stage `{stage}`: {m}")))
        };
        for (route, config) in &api.routes {
            if let IntegrationConfig::AwsProxy { uri, .. }
            | IntegrationConfig::HttpProxy { uri, .. }
            | IntegrationConfig::Http { uri, .. } = &config.integration
            {
                check(format!("api.routes.{route}.integration.uri"), uri)?;
            }
        }
        for (name, authorizer) in &api.authorizers {
            match authorizer {
                AuthorizerConfig::Request(request) => {
                    check(format!("api.authorizers.{name}.uri"), &request.uri)?;
                }
                AuthorizerConfig::Jwt(jwt) => {
                    if let Some(jwks) = &jwt.jwks {
                        check(format!("api.authorizers.{name}.jwks.url"), &jwks.url)?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], allow_metadata: bool) -> HostPolicy {
        HostPolicy {
            allowed: allowed
                .iter()
                .map(|p| parse_pattern(p).expect("a pattern"))
                .collect(),
            allow_metadata,
        }
    }

    #[test]
    fn metadata_addresses_and_names_are_refused_by_default() {
        let open = policy(&[], false);
        for uri in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.170.2/v2/credentials",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://instance-data/latest/",
        ] {
            assert!(open.check_uri(uri).is_err(), "{uri}");
        }
        for uri in [
            "http://127.0.0.1:3000/x",
            "https://api.example.test/",
            "unix:/run/backend.sock",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
        ] {
            assert_eq!(open.check_uri(uri), Ok(()), "{uri}");
        }
        let opted_in = policy(&[], true);
        assert_eq!(opted_in.check_uri("http://169.254.169.254/"), Ok(()));
    }

    #[test]
    fn the_allow_list_matches_names_suffixes_and_blocks() {
        let list = policy(
            &["api.internal", "*.svc.cluster.local", "10.0.0.0/8", "::1"],
            false,
        );
        for uri in [
            "http://API.internal:8080/",
            "http://chat.prod.svc.cluster.local/",
            "http://10.1.2.3/",
            "http://[::1]:9000/",
        ] {
            assert_eq!(list.check_uri(uri), Ok(()), "{uri}");
        }
        for uri in [
            "http://svc.cluster.local/",
            "http://evil-svc.cluster.local/",
            "http://api.internal.evil.test/",
            "http://11.0.0.1/",
            "http://169.254.169.254/",
        ] {
            assert!(list.check_uri(uri).is_err(), "{uri}");
        }
        let listed_metadata = policy(&["169.254.169.254"], false);
        assert!(
            listed_metadata
                .check_uri("http://169.254.169.254/")
                .is_err()
        );
    }

    #[test]
    fn resolved_addresses_are_checked_for_metadata_only() {
        let list = policy(&["api.internal"], false);
        assert_eq!(list.check_address("10.9.9.9".parse().expect("ip")), Ok(()));
        assert!(
            list.check_address("169.254.169.254".parse().expect("ip"))
                .is_err()
        );
        assert!(
            list.check_address("::ffff:169.254.169.254".parse().expect("ip"))
                .is_err()
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["", "*.", "http://x", "a..b", "*"] {
            assert!(parse_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
