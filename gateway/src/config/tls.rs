//! `tls:` read and checked: the PEM certificate chains and keys named by `tls.cert_file` and
//! `tls.key_file` and by each `domains[i].cert_file`/`key_file`, paired into certified keys;
//! each failure names its key.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ConfigError, DomainConfig, TlsConfig};

/// The certificates `tls` and `domains` name, read and paired with their keys.
#[derive(Debug)]
pub struct Certificates {
    /// The crypto provider the keys were loaded with (and the server is built with).
    pub provider: Arc<CryptoProvider>,
    /// `tls.cert_file` and `tls.key_file`.
    pub default: Arc<CertifiedKey>,
    /// Each domain with its own certificate: its `name` and the pair.
    pub domains: Vec<(String, Arc<CertifiedKey>)>,
}

/// Reads the certificate chains and keys of `tls` and of each domain that names its own.
///
/// # Errors
/// A [`ConfigError`] naming `tls.cert_file`, `tls.key_file`, `tls` (a pair rustls refuses) or
/// the same keys of a `domains` entry.
pub fn certificates(
    tls: &TlsConfig,
    domains: &[DomainConfig],
) -> Result<Certificates, ConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let default = certified_key(&provider, &tls.cert_file, &tls.key_file, "tls")?;
    let mut pairs = Vec::new();
    for (i, domain) in domains.iter().enumerate() {
        if let (Some(cert), Some(key)) = (&domain.cert_file, &domain.key_file) {
            let pair = certified_key(&provider, cert, key, &format!("domains[{i}]"))?;
            pairs.push((domain.name.clone(), pair));
        }
    }
    Ok(Certificates {
        provider,
        default,
        domains: pairs,
    })
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
