//! Identity sources: where a credential is read from the upgrade request.
//!
//! The AWS forms `route.request.header.<name>`, `route.request.querystring.<name>` and
//! `stageVariables.<name>`, plus `route.request.cookie.<name>` and
//! `route.request.subprotocol.<prefix>` (the offered `Sec-WebSocket-Protocol` value that starts
//! with `<prefix>`, prefix removed: browsers cannot set headers on a WebSocket handshake).

/// One parsed identity source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentitySource {
    /// A request header (name lowercase).
    Header(String),
    /// A query-string parameter.
    Query(String),
    /// A cookie.
    Cookie(String),
    /// An offered subprotocol starting with this prefix.
    Subprotocol(String),
    /// A stage variable.
    StageVariable(String),
}

/// Why an identity source expression is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an identity source; use route.request.header.<name>, route.request.querystring.<name>, route.request.cookie.<name>, route.request.subprotocol.<prefix> or stageVariables.<name>"
)]
pub(crate) struct BadIdentitySource(pub String);

impl IdentitySource {
    /// Parses one expression (a leading `$` is tolerated).
    ///
    /// # Errors
    /// [`BadIdentitySource`] for anything else.
    pub(crate) fn parse(text: &str) -> Result<Self, BadIdentitySource> {
        let expr = text.trim().trim_start_matches('$');
        type Make = fn(String) -> IdentitySource;
        let forms: [(&str, Make); 5] = [
            ("route.request.header.", |n| {
                Self::Header(n.to_ascii_lowercase())
            }),
            ("route.request.querystring.", Self::Query),
            ("route.request.cookie.", Self::Cookie),
            ("route.request.subprotocol.", Self::Subprotocol),
            ("stageVariables.", Self::StageVariable),
        ];
        for (prefix, make) in forms {
            if let Some(name) = expr.strip_prefix(prefix)
                && !name.is_empty()
            {
                return Ok(make(name.to_string()));
            }
        }
        Err(BadIdentitySource(text.to_string()))
    }

    /// The query parameter this source reads, if any (for log redaction).
    pub(crate) fn query_name(&self) -> Option<&str> {
        match self {
            Self::Query(name) => Some(name),
            _ => None,
        }
    }
}
