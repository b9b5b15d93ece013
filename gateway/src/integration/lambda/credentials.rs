//! AWS credentials for signing Lambda Invoke requests: the standard chain (environment, shared
//! config and credentials files, web identity, ECS and EC2 metadata) or one shared credentials
//! file, created on first use and cached until shortly before they expire.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use tokio::sync::{Mutex, OnceCell, RwLock};

use crate::config::AwsConfig;

/// Longest a credentials load may take (the AWS SDKs' default).
pub(super) const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Credentials are loaded again this long before they expire (the AWS SDKs' default buffer).
const EXPIRY_BUFFER: Duration = Duration::from_secs(10);
/// How long credentials without an expiry are reused (the AWS SDKs' default).
const NO_EXPIRY_REUSE: Duration = Duration::from_secs(15 * 60);
/// After a failed load, calls within this long fail at once instead of loading again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(1);

/// Why no credentials could be had.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CredentialsError(String);

/// Where credentials come from, plus the cache in front of it.
pub(super) struct Credentialing {
    source: Source,
    provider: OnceCell<SharedCredentialsProvider>,
    cached: RwLock<Option<(Credentials, SystemTime)>>,
    /// Held while loading, so concurrent calls wait for one load; the last failure.
    loading: Mutex<Option<(Instant, CredentialsError)>>,
}

/// The configured source.
#[derive(Debug, Clone)]
enum Source {
    /// The standard chain, with a profile name and a region for STS when given.
    Chain {
        profile: Option<String>,
        region: Option<String>,
    },
    /// One shared credentials file's profile.
    File {
        path: std::path::PathBuf,
        profile: String,
    },
}

impl std::fmt::Debug for Credentialing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentialing")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentialing {
    /// The source `config` names; nothing is read until credentials are first asked for.
    pub(super) fn new(config: &AwsConfig) -> Self {
        let source = match &config.credentials_file {
            Some(path) => Source::File {
                path: path.clone(),
                profile: config.profile.clone().unwrap_or_else(|| "default".into()),
            },
            None => Source::Chain {
                profile: config.profile.clone(),
                region: config.region.clone(),
            },
        };
        Self {
            source,
            provider: OnceCell::new(),
            cached: RwLock::new(None),
            loading: Mutex::new(None),
        }
    }

    /// Which source is used, for logs.
    pub(super) fn describe(&self) -> &'static str {
        match self.source {
            Source::Chain { .. } => "the standard AWS credential chain",
            Source::File { .. } => "aws.credentials_file",
        }
    }

    /// Credentials valid for a while yet: cached ones, or freshly loaded.
    ///
    /// # Errors
    /// When the source has none, fails, or takes longer than [`LOAD_TIMEOUT`].
    pub(super) async fn get(&self) -> Result<Credentials, CredentialsError> {
        if let Some(credentials) = self.fresh().await {
            return Ok(credentials);
        }
        let mut last_failure = self.loading.lock().await;
        if let Some(credentials) = self.fresh().await {
            return Ok(credentials);
        }
        if let Some((at, error)) = last_failure.as_ref()
            && at.elapsed() < FAILURE_BACKOFF
        {
            return Err(error.clone());
        }
        match self.load().await {
            Ok(credentials) => {
                let reuse_until = match credentials.expiry() {
                    Some(expiry) => expiry
                        .checked_sub(EXPIRY_BUFFER)
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    None => SystemTime::now() + NO_EXPIRY_REUSE,
                };
                *self.cached.write().await = Some((credentials.clone(), reuse_until));
                *last_failure = None;
                Ok(credentials)
            }
            Err(error) => {
                *last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// The cached credentials while they may still be used.
    async fn fresh(&self) -> Option<Credentials> {
        let cached = self.cached.read().await;
        cached
            .as_ref()
            .filter(|(_, until)| SystemTime::now() < *until)
            .map(|(credentials, _)| credentials.clone())
    }

    async fn load(&self) -> Result<Credentials, CredentialsError> {
        // Building the chain may itself ask the instance metadata service (for a region), so
        // it is bounded with the load.
        let load = async {
            let provider = self.provider.get_or_init(|| self.build()).await;
            provider.provide_credentials().await
        };
        match tokio::time::timeout(LOAD_TIMEOUT, load).await {
            Ok(Ok(credentials)) => Ok(credentials),
            Ok(Err(error)) => Err(CredentialsError(format!(
                "{} has no usable credentials: {}",
                self.describe(),
                aws_smithy_error_chain(&error)
            ))),
            Err(_) => Err(CredentialsError(format!(
                "{} did not answer within {LOAD_TIMEOUT:?}",
                self.describe()
            ))),
        }
    }

    async fn build(&self) -> SharedCredentialsProvider {
        match &self.source {
            Source::File { path, profile } => {
                let files = EnvConfigFiles::builder()
                    .with_file(EnvConfigFileKind::Credentials, path)
                    .build();
                SharedCredentialsProvider::new(
                    ProfileFileCredentialsProvider::builder()
                        .profile_files(files)
                        .profile_name(profile)
                        .build(),
                )
            }
            Source::Chain { profile, region } => {
                let mut chain = DefaultCredentialsChain::builder();
                if let Some(region) = region {
                    chain = chain.region(aws_config::Region::new(region.clone()));
                }
                if let Some(profile) = profile {
                    chain = chain.profile_name(profile);
                }
                SharedCredentialsProvider::new(chain.build().await)
            }
        }
    }
}

#[cfg(test)]
impl Credentialing {
    /// A cache in front of `provider` (tests).
    fn with_provider(provider: SharedCredentialsProvider) -> Self {
        let credentialing = Self::new(&AwsConfig::default());
        Self {
            provider: OnceCell::new_with(Some(provider)),
            ..credentialing
        }
    }
}

/// An error with its causes, `: `-separated (the provider errors' own text is terse).
fn aws_smithy_error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Shared by every function of a gateway.
pub(super) type SharedCredentialing = Arc<Credentialing>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::provider::error::CredentialsError as ProviderError;
    use aws_credential_types::provider::future;

    use super::*;

    /// Answers credentials expiring `lifetime` from now (or an error), counting its calls.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(match self.lifetime {
                Some(lifetime) => Ok(Credentials::new(
                    "AKID",
                    "secret",
                    Some("token".into()),
                    Some(SystemTime::now() + lifetime),
                    "test",
                )),
                None => Err(ProviderError::not_loaded("nothing here")),
            })
        }
    }

    fn cache(lifetime: Option<Duration>) -> (Credentialing, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = Counting {
            calls: Arc::clone(&calls),
            lifetime,
        };
        (
            Credentialing::with_provider(SharedCredentialsProvider::new(provider)),
            calls,
        )
    }

    #[tokio::test]
    async fn credentials_are_reused_until_shortly_before_they_expire() {
        let (long_lived, calls) = cache(Some(Duration::from_secs(3600)));
        for _ in 0..3 {
            long_lived.get().await.expect("credentials");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Inside the expiry buffer: loaded again on every use.
        let (expiring, calls) = cache(Some(EXPIRY_BUFFER / 2));
        for _ in 0..3 {
            expiring.get().await.expect("credentials");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_load_is_reported_and_not_repeated_at_once() {
        let (none, calls) = cache(None);
        let first = none.get().await.expect_err("no credentials");
        assert!(first.to_string().contains("nothing here"), "{first}");
        let again = none.get().await.expect_err("still none");
        assert_eq!(again.to_string(), first.to_string());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "within the backoff");
    }
}
