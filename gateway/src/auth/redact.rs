//! Redaction of credentials in request targets before they reach a log line: browsers cannot
//! set headers on a WebSocket handshake, so tokens and keys often travel in the query string.

use std::collections::HashSet;

use http::Uri;

/// Query parameters always redacted (compared case-insensitively).
const BUILT_IN: [&str; 17] = [
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "jwt",
    "auth",
    "authorization",
    "bearer",
    "api_key",
    "apikey",
    "x-api-key",
    "key",
    "password",
    "secret",
    "signature",
    "x-amz-signature",
    "x-amz-security-token",
];

/// The replacement value.
pub(crate) const REDACTED: &str = "REDACTED";

/// Redacts the configured and built-in parameters.
#[derive(Debug, Clone)]
pub(crate) struct QueryRedactor {
    names: HashSet<String>,
}

impl QueryRedactor {
    /// The built-in list plus `extra` (identity sources, the API key parameter, configuration).
    pub(crate) fn new(extra: &[String]) -> Self {
        let names = BUILT_IN
            .iter()
            .map(|s| (*s).to_string())
            .chain(extra.iter().map(|s| s.to_ascii_lowercase()))
            .collect();
        Self { names }
    }

    /// `path?query` with the values of sensitive parameters replaced; the query is re-encoded, so
    /// no control characters reach the log.
    pub(crate) fn redact(&self, uri: &Uri) -> String {
        let path = uri.path();
        let Some(query) = uri.query() else {
            return path.to_string();
        };
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if self.names.contains(&name.to_ascii_lowercase()) {
                out.append_pair(&name, REDACTED);
            } else {
                out.append_pair(&name, &value);
            }
        }
        format!("{path}?{}", out.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_are_replaced() {
        let r = QueryRedactor::new(&["Ticket".to_string()]);
        let uri: Uri = "/prod?room=lobby&token=SECRET1&ticket=SECRET2&API_KEY=SECRET3"
            .parse()
            .expect("uri");
        let out = r.redact(&uri);
        assert_eq!(
            out,
            "/prod?room=lobby&token=REDACTED&ticket=REDACTED&API_KEY=REDACTED"
        );
        let plain: Uri = "/prod".parse().expect("uri");
        assert_eq!(r.redact(&plain), "/prod");
        let odd: Uri = "/prod?x=%0Aa%1B".parse().expect("uri");
        assert_eq!(r.redact(&odd), "/prod?x=%0Aa%1B");
    }
}
