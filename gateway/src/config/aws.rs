//! `aws:` section: how Lambda functions named by ARN are reached (an endpoint override for
//! emulators and tests, the signing region) and where their credentials come from (the standard
//! AWS chain by default).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `aws:` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Send Lambda Invoke requests here instead of `https://lambda.{region}.amazonaws.com`
    /// (`http://` or `https://`, no path, query or credentials), e.g. a local emulator; also the
    /// default endpoint of `type: aws` integrations.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Region the requests are signed for; default: the region in each function's ARN. Also the
    /// default region of `type: aws` integrations.
    #[serde(default)]
    pub region: Option<String>,
    /// Profile of the shared config and credentials files the standard chain reads (default:
    /// `AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Take credentials only from this shared credentials file (the `profile`, else `default`)
    /// instead of the standard chain.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

impl AwsConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint_url {
            check_endpoint(url).map_err(|m| ConfigError::invalid("aws.endpoint_url", m))?;
        }
        if let Some(region) = &self.region {
            let valid = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(ConfigError::invalid(
                    "aws.region",
                    "must be a region name such as `us-east-1`",
                ));
            }
        }
        if self.profile.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::invalid("aws.profile", "must not be empty"));
        }
        if let Some(path) = &self.credentials_file
            && !path.is_file()
        {
            return Err(ConfigError::invalid(
                "aws.credentials_file",
                format!("`{}` is not a readable file", path.display()),
            ));
        }
        Ok(())
    }
}

/// An endpoint URL: `http://` or `https://` with a host, nothing after the authority but `/`.
pub(super) fn check_endpoint(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{url}` must be an http:// or https:// URL with a host"
        ));
    }
    if parsed.path() != "/"
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(format!(
            "`{url}` must have no path, query, fragment or credentials"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(check_endpoint("http://127.0.0.1:9001").is_ok());
        assert!(check_endpoint("https://lambda.example.com/").is_ok());
        for bad in [
            "127.0.0.1:9001",
            "ftp://h",
            "http://h/path",
            "http://h?x=1",
            "http://u:p@h",
            "not a url",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let config = AwsConfig {
            region: Some("US East".into()),
            ..AwsConfig::default()
        };
        assert!(
            matches!(config.validate(), Err(ConfigError::Invalid { key, .. }) if key == "aws.region")
        );
        let config = AwsConfig {
            credentials_file: Some("/nonexistent/credentials".into()),
            ..AwsConfig::default()
        };
        assert!(
            matches!(config.validate(), Err(ConfigError::Invalid { key, .. }) if key == "aws.credentials_file")
        );
    }
}
