//! A route's cache key: its parts in Amazon API Gateway's selection-expression vocabulary, the
//! upgrade request's header and query values a connection keeps for them, and the SHA-256 of
//! stage, route and part values that names an entry (bounded, whatever the parts hold).

use std::io::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::events::{ConnectRequest, ConnectionMeta};
use crate::routing::{BodyPath, body_path};

/// The hash naming one entry.
pub(crate) type KeyHash = [u8; 32];

/// One part of a cache key, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `$request.body<path>`: a value of the message's JSON (the whole body with no path).
    Body(BodyPath),
    /// `$request.header.<name>` of the upgrade request (name lowercased).
    Header(String),
    /// `$request.querystring.<name>` of the upgrade request.
    Query(String),
    /// `$context.connectionId`.
    ConnectionId,
    /// `$context.identity.sourceIp`.
    ClientIp,
    /// `$context.identity.userAgent`.
    UserAgent,
    /// `$context.identity.apiKeyId`.
    ApiKeyId,
    /// `$context.identity.userArn` (IAM callers).
    UserArn,
    /// `$context.authorizer.<key>` (`principalId` or a context key).
    Authorizer(String),
    /// `$stageVariables.<name>`.
    StageVariable(String),
}

const VOCABULARY: &str = "use $request.body[.<path>], $request.header.<name>, $request.querystring.<name>, $context.connectionId, $context.identity.sourceIp, $context.identity.userAgent, $context.identity.apiKeyId, $context.identity.userArn, $context.authorizer.<key> or $stageVariables.<name>";

impl Source {
    /// Parses `$request.body.symbol`, `${request.header.Accept-Language}`, ...
    ///
    /// # Errors
    /// What is wrong, in words.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let name = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
            Some(inner) => inner,
            None => text
                .strip_prefix('$')
                .ok_or_else(|| format!("`{text}` must start with `$`; {VOCABULARY}"))?,
        };
        let named = |prefix: &str| {
            name.strip_prefix(prefix)
                .filter(|rest| !rest.is_empty())
                .map(str::to_string)
        };
        if name.starts_with("request.body") {
            return body_path(name)
                .map(Self::Body)
                .map_err(|e| format!("`{text}`: {e}"));
        }
        if let Some(header) = named("request.header.") {
            if !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(format!("`{text}`: `{header}` is not a header name"));
            }
            return Ok(Self::Header(header.to_ascii_lowercase()));
        }
        if let Some(query) = named("request.querystring.") {
            return Ok(Self::Query(query));
        }
        if let Some(key) = named("context.authorizer.") {
            return Ok(Self::Authorizer(key));
        }
        if let Some(variable) = named("stageVariables.") {
            return Ok(Self::StageVariable(variable));
        }
        match name {
            "context.connectionId" => Ok(Self::ConnectionId),
            "context.identity.sourceIp" => Ok(Self::ClientIp),
            "context.identity.userAgent" => Ok(Self::UserAgent),
            "context.identity.apiKeyId" => Ok(Self::ApiKeyId),
            "context.identity.userArn" => Ok(Self::UserArn),
            _ => Err(format!("unsupported key part `{text}`; {VOCABULARY}")),
        }
    }
}

/// Which upgrade-request values a connection keeps (those some route's cache key names, each
/// once): headers by lowercase name, query parameters by name.
#[derive(Debug, Default)]
pub(crate) struct RequestCaptures {
    wanted: Vec<Captured>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Captured {
    Header(String),
    Query(String),
}

impl RequestCaptures {
    /// The slot of a header or query value, added when new.
    fn slot(&mut self, wanted: Captured) -> usize {
        match self.wanted.iter().position(|w| *w == wanted) {
            Some(slot) => slot,
            None => {
                self.wanted.push(wanted);
                self.wanted.len() - 1
            }
        }
    }

    /// What a new connection keeps of its upgrade request: nothing at all when no cache key
    /// names a header or query parameter; else the first value of each (absent: `None`).
    #[allow(clippy::box_collection)]
    pub(crate) fn capture(&self, request: &ConnectRequest) -> Option<Box<Vec<Option<Box<str>>>>> {
        if self.wanted.is_empty() {
            return None;
        }
        let values = self.wanted.iter().map(|wanted| {
            let found = match wanted {
                Captured::Header(name) => request
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name)),
                Captured::Query(name) => request.query.iter().find(|(k, _)| k == name),
            };
            found.map(|(_, v)| v.as_str().into())
        });
        Some(Box::new(values.collect()))
    }
}

/// A part resolved for one stage.
#[derive(Debug)]
enum Part {
    Body(BodyPath),
    Captured(usize),
    ConnectionId,
    ClientIp,
    UserAgent,
    ApiKeyId,
    UserArn,
    Authorizer(String),
    Constant(Option<Value>),
}

/// The key of one route of one stage.
#[derive(Debug)]
pub(crate) struct KeySpec {
    stage: String,
    route: String,
    /// The parts as configured (the names of the by-key invalidation form).
    names: Vec<String>,
    parts: Vec<Part>,
    needs_body: bool,
}

impl KeySpec {
    /// Resolves `parts` (already validated) for `stage`, whose variables are `variables`;
    /// header and query parts take their slots in `captures`.
    pub(crate) fn new(
        stage: &str,
        route: &str,
        parts: &[String],
        variables: &std::collections::BTreeMap<String, String>,
        captures: &mut RequestCaptures,
    ) -> Result<Self, String> {
        let mut resolved = Vec::with_capacity(parts.len());
        for text in parts {
            resolved.push(match Source::parse(text)? {
                Source::Header(name) => Part::Captured(captures.slot(Captured::Header(name))),
                Source::Query(name) => Part::Captured(captures.slot(Captured::Query(name))),
                Source::Body(path) => Part::Body(path),
                Source::ConnectionId => Part::ConnectionId,
                Source::ClientIp => Part::ClientIp,
                Source::UserAgent => Part::UserAgent,
                Source::ApiKeyId => Part::ApiKeyId,
                Source::UserArn => Part::UserArn,
                Source::Authorizer(key) => Part::Authorizer(key),
                Source::StageVariable(name) => {
                    Part::Constant(variables.get(&name).map(|v| Value::from(v.as_str())))
                }
            });
        }
        Ok(Self {
            stage: stage.to_string(),
            route: route.to_string(),
            names: parts.to_vec(),
            needs_body: resolved.iter().any(|p| matches!(p, Part::Body(_))),
            parts: resolved,
        })
    }

    /// The key of a message: its body (parsed once, only when a part reads it) and its
    /// connection. A missing part is null, a value of its own.
    pub(crate) fn of_message(&self, meta: &ConnectionMeta, raw: &[u8]) -> KeyHash {
        let body: Option<Value> = if self.needs_body {
            serde_json::from_slice(raw).ok()
        } else {
            None
        };
        let captured = meta.cache_request.as_deref();
        let mut hasher = self.start();
        for part in &self.parts {
            let text = |s: Option<&str>| s.map(Value::from);
            let value: Option<Value> = match part {
                Part::Body(path) => {
                    feed(&mut hasher, body.as_ref().and_then(|b| path.find(b)));
                    continue;
                }
                Part::Authorizer(key) => {
                    let found = meta.authorizer.as_ref().and_then(|a| a.get(key));
                    feed(&mut hasher, found);
                    continue;
                }
                Part::Constant(value) => {
                    feed(&mut hasher, value.as_ref());
                    continue;
                }
                Part::Captured(slot) => text(
                    captured
                        .and_then(|c| c.get(*slot))
                        .and_then(Option::as_deref),
                ),
                Part::ConnectionId => text(Some(&meta.connection_id)),
                Part::ClientIp => text(Some(&meta.source_ip)),
                Part::UserAgent => text(meta.user_agent.as_deref()),
                Part::ApiKeyId => text(meta.api_key_id.as_deref()),
                Part::UserArn => text(meta.iam.as_ref().map(|i| i.user_arn.as_str())),
            };
            feed(&mut hasher, value.as_ref());
        }
        hasher.finalize().into()
    }

    /// The key named by an invalidation request: a JSON object from part (as configured) to
    /// value; a part left out is null. Stage variables are the stage's own.
    ///
    /// # Errors
    /// A name that is not one of the key's parts.
    pub(crate) fn of_given(&self, given: &Map<String, Value>) -> Result<KeyHash, String> {
        if let Some(unknown) = given.keys().find(|k| !self.names.contains(k)) {
            return Err(format!(
                "`{unknown}` is not a part of the cache key of route `{}` (its parts: {})",
                self.route,
                serde_json::Value::from(self.names.clone())
            ));
        }
        let mut hasher = self.start();
        for (name, part) in self.names.iter().zip(&self.parts) {
            match part {
                Part::Constant(value) => feed(&mut hasher, value.as_ref()),
                _ => feed(&mut hasher, given.get(name)),
            }
        }
        Ok(hasher.finalize().into())
    }

    fn start(&self) -> Sha256 {
        let mut hasher = Sha256::new();
        for name in [&self.stage, &self.route] {
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
        }
        hasher
    }
}

/// One part into the hash: a null marker, or a tag and the value's JSON text (self-delimiting,
/// and `1` differs from `"1"`).
fn feed(hasher: &mut Sha256, value: Option<&Value>) {
    match value.filter(|v| !v.is_null()) {
        None => hasher.update([0]),
        Some(value) => {
            hasher.update([1]);
            // Writing into a hasher cannot fail.
            let _ = serde_json::to_writer(&mut *hasher, value);
            let _ = hasher.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ConnectionMeta {
        ConnectionMeta::bare("c1")
    }

    fn spec(parts: &[&str], captures: &mut RequestCaptures) -> KeySpec {
        let parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        let variables = [("region".to_string(), "eu".to_string())].into();
        KeySpec::new("prod", "quote", &parts, &variables, captures).expect("valid")
    }

    #[test]
    fn the_vocabulary_parses_and_the_rest_is_refused() {
        assert_eq!(
            Source::parse("$request.header.Accept-Language"),
            Ok(Source::Header("accept-language".into()))
        );
        assert_eq!(
            Source::parse("${request.querystring.region}"),
            Ok(Source::Query("region".into()))
        );
        assert!(matches!(
            Source::parse("$request.body.a[0]"),
            Ok(Source::Body(_))
        ));
        assert_eq!(
            Source::parse("$context.authorizer.principalId"),
            Ok(Source::Authorizer("principalId".into()))
        );
        for bad in [
            "request.body.a",
            "$request.path.x",
            "$request.header.",
            "$request.header.a b",
            "$context.requestId",
            "$request.body.a[x]",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_follow_their_parts_and_missing_is_null() {
        let mut captures = RequestCaptures::default();
        let key = spec(
            &["$request.body.symbol", "$stageVariables.region"],
            &mut captures,
        );
        let m = meta();
        let aapl = key.of_message(&m, br#"{"action":"quote","symbol":"AAPL"}"#);
        assert_eq!(aapl, key.of_message(&m, br#"{"symbol":"AAPL","x":1}"#));
        assert_ne!(aapl, key.of_message(&m, br#"{"symbol":"MSFT"}"#));
        let missing = key.of_message(&m, br#"{"action":"quote"}"#);
        assert_ne!(aapl, missing);
        assert_eq!(missing, key.of_message(&m, b"not json"));
        assert_eq!(missing, key.of_message(&m, br#"{"symbol":null}"#));
        // A number and a string of the same digits differ.
        assert_ne!(
            key.of_message(&m, br#"{"symbol":1}"#),
            key.of_message(&m, br#"{"symbol":"1"}"#)
        );
        let given = |json: &str| {
            let map: Map<String, Value> = serde_json::from_str(json).expect("object");
            key.of_given(&map)
        };
        assert_eq!(given(r#"{"$request.body.symbol":"AAPL"}"#), Ok(aapl));
        assert_eq!(given("{}"), Ok(missing));
        assert!(given(r#"{"$request.body.other":1}"#).is_err());
        assert!(captures.wanted.is_empty());
    }

    #[test]
    fn a_connection_pays_one_pointer_for_its_cache_values() {
        assert_eq!(std::mem::size_of::<Option<Box<Vec<Option<Box<str>>>>>>(), 8);
        println!(
            "ConnectionMeta: {} bytes",
            std::mem::size_of::<ConnectionMeta>()
        );
    }

    #[test]
    fn connections_keep_only_the_named_request_values() {
        let mut captures = RequestCaptures::default();
        let key = spec(
            &[
                "$request.header.Accept-Language",
                "$request.querystring.region",
                "$request.header.accept-language",
            ],
            &mut captures,
        );
        assert_eq!(captures.wanted.len(), 2);
        let request = ConnectRequest {
            headers: vec![
                ("Host".into(), "h".into()),
                ("Accept-Language".into(), "fr".into()),
            ],
            query: vec![("region".into(), "eu".into()), ("other".into(), "x".into())],
            raw_query: None,
        };
        let kept = captures.capture(&request).expect("kept");
        assert_eq!(*kept, vec![Some("fr".into()), Some("eu".into())]);
        let mut m = meta();
        m.cache_request = Some(kept);
        let fr = key.of_message(&m, b"");
        m.cache_request = captures.capture(&ConnectRequest::default());
        assert_ne!(fr, key.of_message(&m, b""));
        assert!(RequestCaptures::default().capture(&request).is_none());
    }
}
