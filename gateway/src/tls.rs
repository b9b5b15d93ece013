//! TLS for the listeners (`wss://` and `https://`): the acceptor built from the server
//! configuration that [`crate::config`] read and checked. Handshakes run in each connection's
//! own task, bounded by `limits.handshake_timeout`.

use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, TlsConfig};

/// Builds the acceptor from `tls.cert_file` and `tls.key_file`.
///
/// # Errors
/// A [`ConfigError`] naming the key at fault.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ConfigError> {
    crate::config::tls_server_config(config).map(TlsAcceptor::from)
}
