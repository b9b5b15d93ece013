//! API keys on `$connect`: where the key is read (`api.api_key_selection_expression`) and the
//! known keys, held only as SHA-256 digests and compared in constant time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Authorized;
use super::build::{EnvLookup, SecurityError};
use super::identity::RequestView;
use crate::config::ApiKeyConfig;
pub(crate) use crate::grammar::KeySelection;

impl KeySelection {
    /// The presented key, if any (empty counts as none).
    pub(crate) fn select(
        &self,
        view: &RequestView<'_>,
        authorized: Option<&Authorized>,
    ) -> Option<String> {
        let value = match self {
            Self::Header(name) => view.headers.get(name.as_str())?.to_str().ok()?.to_string(),
            Self::Query(name) => view
                .connect
                .query
                .iter()
                .rev()
                .find(|(k, _)| k == name)?
                .1
                .clone(),
            Self::UsageIdentifierKey => authorized?.usage_identifier_key.clone()?,
        };
        (!value.is_empty()).then_some(value)
    }
}

/// One known key.
pub(crate) struct KnownKey {
    /// `identity.apiKeyId`.
    pub id: String,
    /// Its usage plan.
    pub usage_plan: String,
    digest: [u8; 32],
}

impl fmt::Debug for KnownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownKey")
            .field("id", &self.id)
            .field("usage_plan", &self.usage_plan)
            .finish_non_exhaustive()
    }
}

/// The configured keys.
#[derive(Debug, Default)]
pub(crate) struct ApiKeys {
    keys: Vec<KnownKey>,
}

/// SHA-256 of a key value.
pub(crate) fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl ApiKeys {
    /// Resolves `api_keys` (reading `value_env` through `env`).
    ///
    /// # Errors
    /// A [`SecurityError`] naming the entry.
    pub(crate) fn build(
        configs: &[ApiKeyConfig],
        env: EnvLookup<'_>,
    ) -> Result<Self, SecurityError> {
        let mut keys = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let at = format!("api_keys[{i}]");
            let digest = match (&config.value_sha256, &config.value_env) {
                (Some(hex_digest), None) => {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(hex_digest.trim(), &mut out).map_err(|_| {
                        SecurityError::BadKey {
                            key: format!("{at}.value_sha256"),
                            problem: "must be 64 hex digits",
                        }
                    })?;
                    out
                }
                (None, Some(var)) => {
                    let value = env(var).ok_or_else(|| SecurityError::MissingEnv {
                        key: format!("{at}.value_env"),
                        var: var.clone(),
                    })?;
                    if !(20..=128).contains(&value.len())
                        || !value.chars().all(|c| c.is_ascii_alphanumeric())
                    {
                        return Err(SecurityError::BadKey {
                            key: format!("{at}.value_env"),
                            problem: "an API key is 20 to 128 letters and digits",
                        });
                    }
                    digest(&value)
                }
                _ => return Err(SecurityError::Invalid { key: at }),
            };
            keys.push(KnownKey {
                id: config.id.clone(),
                usage_plan: config.usage_plan.clone(),
                digest,
            });
        }
        Ok(Self { keys })
    }

    /// The key whose value is `presented`. Every key is compared, in constant time.
    pub(crate) fn lookup(&self, presented: &str) -> Option<&KnownKey> {
        let wanted = digest(presented);
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&wanted)) {
                found = Some(key);
            }
        }
        found
    }

    /// The usage plan of key `id`.
    pub(crate) fn usage_plan(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.usage_plan.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghij0123456789KEY";

    fn config(value_sha256: Option<String>, value_env: Option<&str>) -> ApiKeyConfig {
        ApiKeyConfig {
            id: "k1".into(),
            value_sha256,
            value_env: value_env.map(str::to_string),
            usage_plan: "gold".into(),
        }
    }

    #[test]
    fn keys_from_digest_and_env_are_found() {
        let env = |name: &str| (name == "KEY_VAR").then(|| KEY.to_string());
        let keys = ApiKeys::build(
            &[
                config(Some(hex::encode(digest("other-key-0000000000000"))), None),
                ApiKeyConfig {
                    id: "k2".into(),
                    ..config(None, Some("KEY_VAR"))
                },
            ],
            &env,
        )
        .expect("builds");
        assert_eq!(keys.lookup(KEY).map(|k| k.id.as_str()), Some("k2"));
        assert!(keys.lookup("abcdefghij0123456789KEZ").is_none());
        assert_eq!(keys.usage_plan("k2"), Some("gold"));
        assert!(!format!("{keys:?}").contains(&hex::encode(digest(KEY))));
    }

    #[test]
    fn bad_entries_name_the_key() {
        let none = |_: &str| None;
        let e = ApiKeys::build(&[config(None, Some("NOPE"))], &none).expect_err("missing env");
        assert!(e.to_string().contains("api_keys[0].value_env"), "{e}");
        let e = ApiKeys::build(&[config(Some("xyz".into()), None)], &none).expect_err("bad hex");
        assert!(e.to_string().contains("api_keys[0].value_sha256"), "{e}");
        let short = |_: &str| Some("short".to_string());
        assert!(ApiKeys::build(&[config(None, Some("V"))], &short).is_err());
    }

    #[test]
    fn selection_expressions() {
        assert_eq!(
            KeySelection::parse("$request.header.X-Api-Key"),
            Some(KeySelection::Header("x-api-key".into()))
        );
        assert_eq!(
            KeySelection::parse("$request.querystring.key"),
            Some(KeySelection::Query("key".into()))
        );
        assert_eq!(
            KeySelection::parse("$context.authorizer.usageIdentifierKey"),
            Some(KeySelection::UsageIdentifierKey)
        );
        assert_eq!(KeySelection::parse("$request.body.key"), None);
        assert_eq!(KeySelection::parse("$request.header."), None);
    }
}
