//! TLS for the listeners (`wss://` and `https://`): the acceptor built from the server
//! configuration that [`crate::config`] read and checked, with a certificate per custom domain
//! chosen by SNI ([`sni`]). Handshakes run in each connection's own task, bounded by
//! `limits.handshake_timeout`.

pub(crate) mod sni;

use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, DomainConfig, TlsConfig};

/// Builds the acceptor from `tls.cert_file` and `tls.key_file`, and the certificates of
/// `domains`.
///
/// # Errors
/// A [`ConfigError`] naming the key at fault.
pub(crate) fn acceptor(
    config: &TlsConfig,
    domains: &[DomainConfig],
) -> Result<TlsAcceptor, ConfigError> {
    crate::config::tls_server_config(config, domains).map(TlsAcceptor::from)
}
