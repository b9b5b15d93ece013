//! The `Origin` allow-list against Cross-Site WebSocket Hijacking: browsers send `Origin` on
//! every WebSocket handshake and there is no CORS preflight, so the gateway checks it itself.
//!
//! Matching is exact on scheme, host and port (default ports made explicit; hosts compared
//! case-insensitively, as origins are lowercase). `*.example.com` matches one or more whole
//! labels in front of `example.com`, never `example.com` itself. `null` never matches. Requests
//! without `Origin` (non-browser clients) pass only when `allow_missing_origin` is set.

use http::HeaderMap;

use crate::grammar::origin::{Origin, parse, valid_label};

/// The configured allow-list.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    allowed: Vec<Origin>,
    allow_missing: bool,
}

impl OriginPolicy {
    /// Builds the policy; `None` when an entry does not parse (validation names it first).
    pub(crate) fn new(allowed: &[String], allow_missing: bool) -> Option<Self> {
        let allowed = allowed
            .iter()
            .map(|text| parse(text, true))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            allowed,
            allow_missing,
        })
    }

    /// Whether the request's `Origin` is allowed.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(http::header::ORIGIN).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            // No Origin at all, or several (never sent by browsers).
            return headers.get(http::header::ORIGIN).is_none() && self.allow_missing;
        };
        let Some(origin) = value.to_str().ok().and_then(|v| parse(v, false)) else {
            return false;
        };
        self.allowed.iter().any(|pattern| matches(pattern, &origin))
    }
}

fn matches(pattern: &Origin, origin: &Origin) -> bool {
    if pattern.scheme != origin.scheme || pattern.port != origin.port {
        return false;
    }
    match pattern.host.strip_prefix('*') {
        // `suffix` is `.example.com`: something made of whole labels must come before it.
        Some(suffix) => origin
            .host
            .strip_suffix(suffix)
            .is_some_and(|front| front.split('.').all(valid_label)),
        None => pattern.host == origin.host,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn policy(allow_missing: bool) -> OriginPolicy {
        OriginPolicy::new(
            &[
                "https://app.example.test".to_string(),
                "https://*.tenants.example.test".to_string(),
                "http://localhost:3000".to_string(),
            ],
            allow_missing,
        )
        .expect("valid")
    }

    fn with_origin(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ORIGIN, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn exact_matches_pass() {
        let p = policy(false);
        for ok in [
            "https://app.example.test",
            "https://app.example.test:443",
            "HTTPS://APP.example.test",
            "https://a.tenants.example.test",
            "https://a.b.tenants.example.test",
            "http://localhost:3000",
        ] {
            assert!(p.allows(&with_origin(ok)), "{ok}");
        }
    }

    #[test]
    fn look_alikes_fail() {
        let p = policy(true);
        for bad in [
            "https://app.example.test.evil.test",
            "https://evilapp.example.test",
            "http://app.example.test",
            "https://app.example.test:444",
            "null",
            "https://app.example.test.",
            "https://xn--pp-example-test.evil",
            "https://tenants.example.test",
            "https://.tenants.example.test",
            "https://evil.test/.tenants.example.test",
            "https://user@app.example.test",
            "https://app.example.test/path",
            "http://localhost",
            "",
        ] {
            assert!(!p.allows(&with_origin(bad)), "{bad}");
        }
        let mut two = with_origin("https://app.example.test");
        two.append(
            http::header::ORIGIN,
            HeaderValue::from_static("https://app.example.test"),
        );
        assert!(!p.allows(&two));
    }

    #[test]
    fn missing_origin_follows_the_setting() {
        assert!(policy(true).allows(&HeaderMap::new()));
        assert!(!policy(false).allows(&HeaderMap::new()));
    }

    #[test]
    fn entries_are_validated() {
        assert!(crate::grammar::origin::valid_entry("https://a.b"));
        assert!(crate::grammar::origin::valid_entry("http://[::1]:8080"));
        assert!(!crate::grammar::origin::valid_entry("https://a.b/"));
        assert!(!crate::grammar::origin::valid_entry("ftp://a.b"));
        assert!(!crate::grammar::origin::valid_entry("https://a.*.b"));
        assert!(!crate::grammar::origin::valid_entry("*"));
    }
}
