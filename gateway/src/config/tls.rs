//! `tls:` read and checked: the PEM certificate chain and key named by `tls.cert_file` and
//! `tls.key_file`, paired into a rustls server configuration; each failure names its key.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ConfigError, TlsConfig};

/// The rustls server configuration for `tls` (HTTP/1.1 by ALPN).
///
/// # Errors
/// A [`ConfigError`] naming `tls.cert_file`, `tls.key_file` or `tls` (a pair rustls refuses).
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let cert_path = tls.cert_file.display();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| {
            ConfigError::invalid(
                "tls.cert_file",
                format!("cannot read a PEM certificate chain from {cert_path}: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(ConfigError::invalid(
            "tls.cert_file",
            format!("cannot read a PEM certificate chain from {cert_path}: no certificate found"),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        ConfigError::invalid(
            "tls.key_file",
            format!(
                "cannot read a PEM private key from {}: {e}",
                tls.key_file.display()
            ),
        )
    })?;
    let rejected = |e: rustls::Error| {
        ConfigError::invalid(
            "tls",
            format!("the certificate and key cannot be used together: {e}"),
        )
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rejected)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
