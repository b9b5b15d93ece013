//! `tls:` read and checked: the PEM certificate chain and key named by `tls.cert_file` and
//! `tls.key_file` (and by each `domains[i].cert_file`/`key_file`), paired into certified keys
//! and a rustls server configuration that picks one by SNI; each failure names its key.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ConfigError, DomainConfig, TlsConfig};
use crate::tls::sni::SniResolver;

/// The rustls server configuration for `tls` (HTTP/1.1 by ALPN): each domain with its own
/// certificate is served it by SNI, every other name the default one.
///
/// # Errors
/// A [`ConfigError`] naming `tls.cert_file`, `tls.key_file`, `tls` (a pair rustls refuses) or
/// the same keys of a `domains` entry.
pub fn server_config(
    tls: &TlsConfig,
    domains: &[DomainConfig],
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let default = certified_key(&provider, &tls.cert_file, &tls.key_file, "tls")?;
    let mut resolver = SniResolver::new(default);
    for (i, domain) in domains.iter().enumerate() {
        if let (Some(cert), Some(key)) = (&domain.cert_file, &domain.key_file) {
            let pair = certified_key(&provider, cert, key, &format!("domains[{i}]"))?;
            resolver.insert(&domain.name, pair);
        }
    }
    let rejected = |e: rustls::Error| ConfigError::invalid("tls", e.to_string());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// The chain in `cert_file` paired with the key in `key_file`; errors name `{at}.cert_file`,
/// `{at}.key_file`, or `{at}` when the two do not belong together.
fn certified_key(
    provider: &CryptoProvider,
    cert_file: &Path,
    key_file: &Path,
    at: &str,
) -> Result<Arc<CertifiedKey>, ConfigError> {
    let cert_path = cert_file.display();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| {
            ConfigError::invalid(
                format!("{at}.cert_file"),
                format!("cannot read a PEM certificate chain from {cert_path}: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(ConfigError::invalid(
            format!("{at}.cert_file"),
            format!("cannot read a PEM certificate chain from {cert_path}: no certificate found"),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        ConfigError::invalid(
            format!("{at}.key_file"),
            format!(
                "cannot read a PEM private key from {}: {e}",
                key_file.display()
            ),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| {
            ConfigError::invalid(
                at,
                format!("the certificate and key cannot be used together: {e}"),
            )
        })
}
