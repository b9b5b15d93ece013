//! `api.api_key_selection_expression`: where the API key of a connection is read.

/// Where the API key of a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySelection {
    /// `$request.header.<name>` (name lowercase).
    Header(String),
    /// `$request.querystring.<name>`.
    Query(String),
    /// `$context.authorizer.usageIdentifierKey`.
    UsageIdentifierKey,
}

impl KeySelection {
    /// Parses the expression; `None` when it is not one of the three forms.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text == "$context.authorizer.usageIdentifierKey" {
            return Some(Self::UsageIdentifierKey);
        }
        if let Some(name) = text.strip_prefix("$request.header.")
            && !name.is_empty()
        {
            return http::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(|n| Self::Header(n.as_str().to_string()));
        }
        text.strip_prefix("$request.querystring.")
            .filter(|n| !n.is_empty())
            .map(|n| Self::Query(n.to_string()))
    }

    /// The query parameter read, if any (for log redaction).
    pub(crate) fn query_name(&self) -> Option<&str> {
        match self {
            Self::Query(name) => Some(name),
            _ => None,
        }
    }
}
