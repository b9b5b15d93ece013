//! TLS for the listeners (`wss://` and `https://`): the acceptor over the certificates that
//! [`crate::config`] read and checked, with a certificate per custom domain chosen by SNI
//! ([`sni`]); HTTP/1.1 by ALPN. A reload reads the files again and swaps the settings in
//! ([`crate::deployment`]). Handshakes run in each connection's own task, bounded by
//! `limits.handshake_timeout`.

pub(crate) mod sni;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, DomainConfig, TlsConfig};

use self::sni::SniResolver;

/// The TLS settings of the listeners, swapped on reload (each handshake loads them once).
pub(crate) type LiveTls = Arc<arc_swap::ArcSwap<rustls::ServerConfig>>;

/// The acceptor of one handshake over the settings in force (swapped by a reload, which reads
/// the certificate files again: handshakes already done keep theirs).
pub(crate) fn acceptor(live: &LiveTls) -> TlsAcceptor {
    TlsAcceptor::from(live.load_full())
}

/// Builds the server settings from `tls.cert_file` and `tls.key_file`, and the certificates of
/// `domains`, reading the files now.
///
/// # Errors
/// A [`ConfigError`] naming the key at fault.
pub(crate) fn server_config(
    config: &TlsConfig,
    domains: &[DomainConfig],
) -> Result<rustls::ServerConfig, ConfigError> {
    let certificates = crate::config::tls_certificates(config, domains)?;
    let mut resolver = SniResolver::new(certificates.default);
    for (name, pair) in certificates.domains {
        resolver.insert(&name, pair);
    }
    let mut server = rustls::ServerConfig::builder_with_provider(certificates.provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Invalid {
            key: "tls".into(),
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}
