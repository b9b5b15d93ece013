//! The grammars of configuration values that the runtime also reads: API key selection
//! expressions, identity sources, origin patterns and trusted proxy blocks. [`crate::config`]
//! parses them at startup to name a bad key; [`crate::auth`] uses the parsed values. (The route
//! selection expression has its own module, [`crate::routing`].)

mod identity_source;
mod key_selection;
pub(crate) mod origin;
pub(crate) mod proxies;

pub(crate) use self::identity_source::IdentitySource;
pub(crate) use self::key_selection::KeySelection;
pub(crate) use self::proxies::TrustedProxies;
