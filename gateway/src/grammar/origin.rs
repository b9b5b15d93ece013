//! Origins and `security.allowed_origins` patterns: `scheme://host[:port]` with default ports
//! made explicit, hosts lowercase, `*.` in front of a pattern's host for its subdomains.

/// A parsed origin or pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Parses `scheme://host[:port]` (no path, user info, query or fragment).
pub(crate) fn parse(text: &str, allow_wildcard: bool) -> Option<Origin> {
    let (scheme, rest) = text.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\', ' ']) {
        return None;
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner.split_once(']')?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        (format!("[{addr}]"), after)
    } else {
        match rest.rfind(':') {
            Some(i) => (rest[..i].to_string(), &rest[i..]),
            None => (rest.to_string(), ""),
        }
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => default_port,
        Some(digits) if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        _ => return None,
    };
    let host = host.to_ascii_lowercase();
    let name = if allow_wildcard {
        host.strip_prefix("*.").unwrap_or(&host)
    } else {
        &host
    };
    // A trailing dot is not accepted: browsers never send one, and it would be a look-alike.
    let valid_name = name.starts_with('[') || name.split('.').all(valid_label);
    valid_name.then_some(Origin { scheme, host, port })
}

pub(crate) fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether an entry of `security.allowed_origins` is well formed.
pub(crate) fn valid_entry(text: &str) -> bool {
    parse(text, true).is_some()
}
