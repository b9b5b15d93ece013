//! Identity sources: where a credential is read from the upgrade request.
//!
//! The AWS forms `route.request.header.<name>`, `route.request.querystring.<name>` and
//! `stageVariables.<name>`, plus `route.request.cookie.<name>` and
//! `route.request.subprotocol.<prefix>` (the offered `Sec-WebSocket-Protocol` value that starts
//! with `<prefix>`, prefix removed: browsers cannot set headers on a WebSocket handshake).

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::events::ConnectRequest;
pub(crate) use crate::grammar::IdentitySource;

/// The parts of an upgrade request that identity sources read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    /// Raw headers of the upgrade request.
    pub headers: &'a HeaderMap,
    /// Decoded query and display headers.
    pub connect: &'a ConnectRequest,
    /// Offered subprotocols, in order.
    pub offered_protocols: &'a [String],
    /// The stage's variables.
    pub stage_variables: &'a BTreeMap<String, String>,
}

impl RequestView<'_> {
    /// The value of `source`, or `None` when it is missing or empty.
    pub(crate) fn value(&self, source: &IdentitySource) -> Option<String> {
        let found = match source {
            IdentitySource::Header(name) => {
                // Several values are joined as HTTP does; a credential header rarely repeats.
                let values: Vec<&str> = self
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                values.join(",")
            }
            IdentitySource::Query(name) => self
                .connect
                .query
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())?,
            IdentitySource::Cookie(name) => cookie(self.headers, name)?,
            IdentitySource::Subprotocol(prefix) => self
                .offered_protocols
                .iter()
                .find_map(|p| p.strip_prefix(prefix.as_str()))
                .map(str::to_string)?,
            IdentitySource::StageVariable(name) => self.stage_variables.get(name)?.clone(),
        };
        let trimmed = found.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }
}

/// The value of cookie `name` in the `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn parses_the_forms() {
        assert_eq!(
            IdentitySource::parse("route.request.header.Authorization"),
            Ok(IdentitySource::Header("authorization".into()))
        );
        assert_eq!(
            IdentitySource::parse("$route.request.querystring.token"),
            Ok(IdentitySource::Query("token".into()))
        );
        assert_eq!(
            IdentitySource::parse("route.request.subprotocol.bearer."),
            Ok(IdentitySource::Subprotocol("bearer.".into()))
        );
        assert!(IdentitySource::parse("route.request.header.").is_err());
        assert!(IdentitySource::parse("method.request.header.x").is_err());
    }

    #[test]
    fn reads_values_and_treats_empty_as_missing() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        headers.insert("x-empty", HeaderValue::from_static("  "));
        headers.append("cookie", HeaderValue::from_static("a=1; session=\"s3\""));
        let connect = ConnectRequest {
            query: vec![("token".into(), "t1".into()), ("token".into(), "t2".into())],
            ..Default::default()
        };
        let offered = vec!["chat".to_string(), "bearer.jwt-here".to_string()];
        let vars = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let view = RequestView {
            headers: &headers,
            connect: &connect,
            offered_protocols: &offered,
            stage_variables: &vars,
        };
        let get = |s: &str| view.value(&IdentitySource::parse(s).expect("parses"));
        assert_eq!(
            get("route.request.header.authorization").as_deref(),
            Some("Bearer abc")
        );
        assert_eq!(get("route.request.header.x-empty"), None);
        assert_eq!(get("route.request.header.x-none"), None);
        assert_eq!(
            get("route.request.querystring.token").as_deref(),
            Some("t2")
        );
        assert_eq!(get("route.request.cookie.session").as_deref(), Some("s3"));
        assert_eq!(get("route.request.cookie.nope"), None);
        assert_eq!(
            get("route.request.subprotocol.bearer.").as_deref(),
            Some("jwt-here")
        );
        assert_eq!(get("stageVariables.k").as_deref(), Some("v"));
    }
}
