//! Where an `http://` or `unix:` integration URI points: the backend's address (the key of its
//! connection pool), the request target, and the `host` and credentials headers it implies.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

/// Longest socket path a `sockaddr_un` holds (108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A backend's address, and the key of its connection pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Address {
    /// A host name or IP literal (IPv6 without brackets) and a port; a name is resolved when a
    /// connection is opened.
    Tcp {
        /// Host name or IP literal.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix domain socket on this host.
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What a URI this client serves resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Where to connect.
    pub address: Address,
    /// The origin-form request target (`/path?query`).
    pub path_and_query: String,
    /// The `host` header's value.
    pub host: String,
    /// `Basic …` from credentials in the URI (`http://user:pass@host/`), as reqwest sends them.
    pub authorization: Option<String>,
    /// An `http://` URL whose path and query are this target's, to append a query to (the URI
    /// itself for `http://`).
    base: String,
}

/// Why a `unix:` URI is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UriError {
    /// No `:` between the socket path and the HTTP path.
    #[error("expected `unix:<socket path>:<http path>`, e.g. `unix:/run/app.sock:/invoke`")]
    Shape,
    /// The socket path is relative.
    #[error("the socket path `{0}` must be absolute")]
    Relative(String),
    /// The socket path does not fit a `sockaddr_un`.
    #[error("the socket path is {0} bytes; at most {MAX_SOCKET_PATH} fit")]
    TooLong(usize),
    /// The HTTP path is not a valid origin-form target.
    #[error("the HTTP path `{0}` must start with `/` and be a valid URL path")]
    Path(String),
    /// An `http://` URL that cannot be parsed (or has no host).
    #[error("`{0}` is not a valid http:// URL")]
    Url(String),
}

impl Target {
    /// The target of an `http://` URI or a `unix:` URI; `Ok(None)` for any other scheme (those
    /// go to the general client).
    ///
    /// # Errors
    /// A `unix:` or `http://` URI that is malformed.
    pub(crate) fn parse(uri: &str) -> Result<Option<Self>, UriError> {
        if let Some(rest) = uri.strip_prefix("unix:") {
            return parse_unix(rest).map(Some);
        }
        let is_http = uri
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        if !is_http {
            return Ok(None);
        }
        let url = reqwest::Url::parse(uri).map_err(|_| UriError::Url(uri.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| UriError::Url(uri.to_string()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Some(Self {
            address: Address::Tcp {
                host: bare_host.to_string(),
                port,
            },
            path_and_query: origin_form(&url),
            host: host_header,
            authorization: basic_auth(&url),
            base: uri.to_string(),
        }))
    }

    /// The request target with `query` appended (`?` or `&`), normalised as the URI itself is.
    ///
    /// # Errors
    /// When the joined URL is not valid.
    pub(crate) fn with_query(&self, query: &str) -> Result<String, UriError> {
        let joiner = if self.base.contains('?') { '&' } else { '?' };
        let joined = format!("{}{joiner}{query}", self.base);
        let url = reqwest::Url::parse(&joined).map_err(|_| UriError::Url(joined.clone()))?;
        Ok(origin_form(&url))
    }
}

/// `unix:` URIs: `<absolute socket path>:<http path and query>`.
fn parse_unix(rest: &str) -> Result<Target, UriError> {
    let (socket, path) = rest.split_once(':').ok_or(UriError::Shape)?;
    if socket.is_empty() {
        return Err(UriError::Shape);
    }
    if !socket.starts_with('/') {
        return Err(UriError::Relative(socket.to_string()));
    }
    if socket.len() > MAX_SOCKET_PATH {
        return Err(UriError::TooLong(socket.len()));
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(UriError::Path(path.to_string()));
    }
    let base = format!("http://localhost{path}");
    let url = reqwest::Url::parse(&base).map_err(|_| UriError::Path(path.to_string()))?;
    Ok(Target {
        address: Address::Unix(PathBuf::from(socket)),
        path_and_query: origin_form(&url),
        host: "localhost".to_string(),
        authorization: None,
        base,
    })
}

/// `/path?query` of `url` (the fragment is never sent).
fn origin_form(url: &reqwest::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

/// The `authorization` value reqwest derives from credentials in a URL.
fn basic_auth(url: &reqwest::Url) -> Option<String> {
    let username = percent_decode_str(url.username()).decode_utf8().ok()?;
    let password = match url.password() {
        Some(p) => Some(percent_decode_str(p).decode_utf8().ok()?),
        None => None,
    };
    if username.is_empty() && password.is_none() {
        return None;
    }
    let pair = format!("{username}:{}", password.as_deref().unwrap_or(""));
    Some(format!("Basic {}", STANDARD.encode(pair)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_targets() {
        let t = Target::parse("http://127.0.0.1:9000/a/b?x=1#frag")
            .expect("valid")
            .expect("ours");
        assert_eq!(
            t.address,
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 9000
            }
        );
        assert_eq!(t.path_and_query, "/a/b?x=1");
        assert_eq!(t.host, "127.0.0.1:9000");
        assert_eq!(t.authorization, None);
        // Appended after the fragment, a query is part of it, as with the general client.
        assert_eq!(t.with_query("q=2").expect("joins"), "/a/b?x=1");
        let t = Target::parse("http://h/a?x=1")
            .expect("valid")
            .expect("ours");
        assert_eq!(t.with_query("q=2").expect("joins"), "/a?x=1&q=2");

        let t = Target::parse("http://[::1]:80")
            .expect("valid")
            .expect("ours");
        assert_eq!(
            t.address,
            Address::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        assert_eq!(t.address.to_string(), "[::1]:80");
        assert_eq!(t.path_and_query, "/");
        assert_eq!(t.host, "[::1]");
        assert_eq!(t.with_query("a b").expect("joins"), "/?a%20b");

        let t = Target::parse("http://us%20er:p%40ss@backend/x")
            .expect("valid")
            .expect("ours");
        assert_eq!(
            t.authorization.as_deref(),
            Some(format!("Basic {}", STANDARD.encode("us er:p@ss")).as_str())
        );
        assert!(
            Target::parse("https://example.com/")
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn unix_targets() {
        let t = Target::parse("unix:/run/app.sock:/invoke?x=1")
            .expect("valid")
            .expect("ours");
        assert_eq!(t.address, Address::Unix(PathBuf::from("/run/app.sock")));
        assert_eq!(t.path_and_query, "/invoke?x=1");
        assert_eq!(t.host, "localhost");
        assert_eq!(t.with_query("y=2").expect("joins"), "/invoke?x=1&y=2");
        assert_eq!(t.address.to_string(), "unix:/run/app.sock");

        for (uri, expected) in [
            ("unix:/run/app.sock", UriError::Shape),
            ("unix::/x", UriError::Shape),
            (
                "unix:run/app.sock:/x",
                UriError::Relative("run/app.sock".into()),
            ),
            ("unix:/run/app.sock:x", UriError::Path("x".into())),
            ("unix:/run/app.sock://x", UriError::Path("//x".into())),
        ] {
            assert_eq!(Target::parse(uri), Err(expected), "{uri}");
        }
        let long = format!("unix:/{}:/x", "a".repeat(MAX_SOCKET_PATH));
        assert_eq!(
            Target::parse(&long),
            Err(UriError::TooLong(MAX_SOCKET_PATH + 1))
        );
    }
}
