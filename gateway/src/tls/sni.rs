//! The certificate a TLS handshake is answered with, chosen by the client's SNI name: the
//! certificate of the custom domain of that exact name, else of the wildcard domain covering
//! its first label (`*.example.com` for `a.example.com`, not `a.b.example.com`), else the
//! default `tls.cert_file` (also without SNI).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Picks a certificate by SNI.
#[derive(Debug)]
pub(crate) struct SniResolver {
    /// Lowercase exact names.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Lowercase names after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// Serves `default` to every name until others are inserted.
    pub(crate) fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Serves `key` to `name` (`host.example.com` or `*.example.com`).
    pub(crate) fn insert(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(parent) => self.wildcard.insert(parent.to_owned(), key),
            None => self.exact.insert(name, key),
        };
    }

    /// The certificate for SNI `name`.
    fn choose(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key;
        }
        name.split_once('.')
            .filter(|(label, _)| !label.is_empty())
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.choose(client_hello.server_name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
        let der = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("key");
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        Arc::new(
            CertifiedKey::from_der(vec![cert.cert.der().clone()], der, &provider).expect("pair"),
        )
    }

    #[test]
    fn exact_then_one_label_wildcard_then_default() {
        let (default, chat, wild) = (key("default"), key("chat.example.com"), key("example.com"));
        let mut resolver = SniResolver::new(Arc::clone(&default));
        resolver.insert("Chat.Example.com", Arc::clone(&chat));
        resolver.insert("*.example.com", Arc::clone(&wild));
        let pick = |name| Arc::as_ptr(resolver.choose(name));
        assert_eq!(pick(Some("chat.example.com")), Arc::as_ptr(&chat));
        assert_eq!(pick(Some("CHAT.example.com.")), Arc::as_ptr(&chat));
        assert_eq!(pick(Some("a.example.com")), Arc::as_ptr(&wild));
        assert_eq!(pick(Some("a.b.example.com")), Arc::as_ptr(&default));
        assert_eq!(pick(Some("example.com")), Arc::as_ptr(&default));
        assert_eq!(pick(Some("other.test")), Arc::as_ptr(&default));
        assert_eq!(pick(None), Arc::as_ptr(&default));
    }
}
