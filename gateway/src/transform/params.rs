//! Request parameters (`RequestParameters`): headers and query-string parameters of an
//! integration request, taken from the connection's context, the stage's variables, the
//! message body, the upgrade request (`$connect` only) or static text.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::routing::{BodyPath, body_path, stringify};

/// Where a parameter goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Header(String),
    Query(String),
}

/// Where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// `'text'`, or a stage variable resolved when the stage was built.
    Static(String),
    /// Unresolved `stageVariables.<name>` (resolved by [`Parameters::for_stage`]).
    StageVariable(String),
    /// `context.<var>`: a path in `$context`.
    Context(Vec<String>),
    /// `route.request.body.<path>`.
    Body(BodyPath),
    /// `route.request.header.<name>` (`multi`: every value, comma-joined).
    Header { name: String, multi: bool },
    /// `route.request.querystring.<name>`.
    Query { name: String, multi: bool },
}

/// One `integration.request.*` = source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameter {
    target: Target,
    source: Source,
}

impl Parameter {
    /// Parses one mapping; `connect` allows the upgrade request's headers and query string.
    ///
    /// # Errors
    /// What is wrong with the target or the source, in words.
    pub(crate) fn parse(target: &str, source: &str, connect: bool) -> Result<Self, String> {
        let target = if let Some(name) = target.strip_prefix("integration.request.header.") {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            Target::Header(name.to_string())
        } else if let Some(name) = target.strip_prefix("integration.request.querystring.") {
            if name.is_empty() {
                return Err("the query-string parameter needs a name".into());
            }
            Target::Query(name.to_string())
        } else {
            return Err(
                "targets are `integration.request.header.<name>` or `integration.request.querystring.<name>`"
                    .into(),
            );
        };
        let source = parse_source(source, connect)?;
        if let (Target::Header(_), Source::Static(value)) = (&target, &source)
            && http::HeaderValue::from_str(value).is_err()
        {
            return Err("the static value cannot be a header value".into());
        }
        Ok(Self { target, source })
    }
}

fn parse_source(source: &str, connect: bool) -> Result<Source, String> {
    if let Some(text) = source.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Ok(Source::Static(text.to_string()));
    }
    if let Some(name) = source.strip_prefix("stageVariables.") {
        return Ok(Source::StageVariable(name.to_string()));
    }
    if let Some(path) = source.strip_prefix("context.") {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!("`{source}`: an empty context variable"));
        }
        return Ok(Source::Context(
            path.split('.').map(str::to_string).collect(),
        ));
    }
    if let Some(rest) = source.strip_prefix("route.request.body") {
        let path = rest.strip_prefix('.').map_or(rest.to_string(), |r| {
            // A JSONPath written with its `$.` root, as AWS's examples do.
            r.strip_prefix("$.").unwrap_or(r).to_string()
        });
        let dotted = if path.is_empty() || path.starts_with('[') {
            format!("request.body{path}")
        } else {
            format!("request.body.{path}")
        };
        return body_path(&dotted)
            .map(Source::Body)
            .map_err(|e| format!("`{source}`: {e}"));
    }
    let upgrade = [
        ("route.request.header.", false, true),
        ("route.request.multivalueheader.", true, true),
        ("route.request.querystring.", false, false),
        ("route.request.multivaluequerystring.", true, false),
    ];
    for (prefix, multi, header) in upgrade {
        if let Some(name) = source.strip_prefix(prefix) {
            if !connect {
                return Err(format!(
                    "`{source}`: the upgrade request's headers and query string exist on `$connect` only"
                ));
            }
            let name = name.to_string();
            return Ok(if header {
                Source::Header { name, multi }
            } else {
                Source::Query { name, multi }
            });
        }
    }
    Err(format!(
        "`{source}`: sources are `context.<var>`, `stageVariables.<name>`, `route.request.body.<path>`, `route.request.header.<name>`, `route.request.querystring.<name>` (and their `multivalue` forms) or `'static'`"
    ))
}

/// What parameters are taken from, for one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sources<'a> {
    /// The message (empty on `$connect` and `$disconnect`).
    pub body: &'a [u8],
    /// The upgrade request's headers (`$connect`).
    pub headers: &'a [(String, String)],
    /// The upgrade request's query parameters, decoded (`$connect`).
    pub query: &'a [(String, String)],
}

/// The mapped values of one call.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Mapped {
    /// Headers to send (values checked as header values).
    pub headers: Vec<(String, String)>,
    /// Query parameters to append, encoded (`a=b&c=d`).
    pub query: String,
}

/// An integration's request parameters for one stage.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parameters {
    list: Vec<Parameter>,
    reads_body: bool,
    reads_context: bool,
}

impl Parameters {
    /// Compiles `map` for a stage with `variables`. Config validation has parsed every entry;
    /// `connect` is whether the route is `$connect`.
    ///
    /// # Errors
    /// A mapping that does not parse, or a stage variable the stage does not define.
    pub(crate) fn for_stage(
        map: &BTreeMap<String, String>,
        variables: &BTreeMap<String, String>,
        connect: bool,
    ) -> Result<Self, String> {
        let mut list = Vec::with_capacity(map.len());
        for (target, source) in map {
            let mut parameter = Parameter::parse(target, source, connect)?;
            if let Source::StageVariable(name) = &parameter.source {
                let value = variables
                    .get(name)
                    .ok_or_else(|| format!("missing stage variable `{name}`"))?;
                parameter.source = Source::Static(value.clone());
            }
            list.push(parameter);
        }
        let reads_body = list.iter().any(|p| matches!(p.source, Source::Body(_)));
        let reads_context = list.iter().any(|p| matches!(p.source, Source::Context(_)));
        Ok(Self {
            list,
            reads_body,
            reads_context,
        })
    }

    /// True when nothing is mapped.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// True when some value comes from `$context` (the caller then builds it).
    pub(crate) fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// The values for one call. A source with no value (a missing header, a body path that is
    /// not there, a header value with control characters) leaves its parameter out, as AWS does.
    pub(crate) fn map(&self, sources: &Sources<'_>, context: Option<&Value>) -> Mapped {
        let json: Option<Value> = if self.reads_body {
            serde_json::from_slice(sources.body).ok()
        } else {
            None
        };
        let mut mapped = Mapped::default();
        let mut query = form_urlencoded::Serializer::new(String::new());
        for parameter in &self.list {
            let Some(value) = value_of(&parameter.source, sources, json.as_ref(), context) else {
                continue;
            };
            match &parameter.target {
                Target::Header(name) => {
                    if http::HeaderValue::from_str(&value).is_ok() {
                        mapped.headers.push((name.clone(), value));
                    } else {
                        tracing::warn!(header = %name, "request parameter: a value that cannot be sent as a header was left out");
                    }
                }
                Target::Query(name) => {
                    query.append_pair(name, &value);
                }
            }
        }
        mapped.query = query.finish();
        mapped
    }
}

fn value_of(
    source: &Source,
    sources: &Sources<'_>,
    json: Option<&Value>,
    context: Option<&Value>,
) -> Option<String> {
    let pick = |pairs: &[(String, String)], name: &str, multi: bool, fold: bool| {
        let matches = |k: &String| {
            if fold {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        };
        let mut values = pairs
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(_, v)| v.as_str());
        if multi {
            let all: Vec<&str> = values.collect();
            (!all.is_empty()).then(|| all.join(","))
        } else {
            // As the single-value maps of the event: the last value wins.
            values.next_back().map(str::to_string)
        }
    };
    match source {
        Source::Static(text) => Some(text.clone()),
        Source::StageVariable(_) => None,
        Source::Context(path) => {
            let mut value = context?;
            for step in path {
                value = value.as_object()?.get(step)?;
            }
            text_of(value)
        }
        Source::Body(path) => path.find(json?).and_then(text_of),
        Source::Header { name, multi } => pick(sources.headers, name, *multi, true),
        Source::Query { name, multi } => pick(sources.query, name, *multi, false),
    }
}

fn text_of(value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let mut out = String::new();
    stringify(value, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(pairs: &[(&str, &str)], connect: bool) -> Result<Parameters, String> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let vars = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        Parameters::for_stage(&map, &vars, connect)
    }

    #[test]
    fn every_source_kind_maps() {
        let params = compile(
            &[
                (
                    "integration.request.header.connectionId",
                    "context.connectionId",
                ),
                (
                    "integration.request.header.x-ip",
                    "context.identity.sourceIp",
                ),
                (
                    "integration.request.header.x-region",
                    "stageVariables.region",
                ),
                ("integration.request.header.x-fixed", "'yes'"),
                (
                    "integration.request.querystring.room",
                    "route.request.body.data.room",
                ),
                (
                    "integration.request.querystring.token",
                    "route.request.querystring.token",
                ),
                (
                    "integration.request.header.x-agent",
                    "route.request.header.User-Agent",
                ),
                (
                    "integration.request.header.x-all",
                    "route.request.multivalueheader.x-a",
                ),
            ],
            true,
        )
        .expect("compiles");
        let headers = vec![
            ("user-agent".to_string(), "ua/1".to_string()),
            ("X-A".to_string(), "1".to_string()),
            ("x-a".to_string(), "2".to_string()),
        ];
        let query = vec![("token".to_string(), "a b&c".to_string())];
        let context =
            serde_json::json!({"connectionId": "c1", "identity": {"sourceIp": "10.0.0.1"}});
        let mapped = params.map(
            &Sources {
                body: br#"{"data":{"room":"r1"}}"#,
                headers: &headers,
                query: &query,
            },
            Some(&context),
        );
        assert_eq!(mapped.query, "room=r1&token=a+b%26c");
        let get = |n: &str| {
            (mapped.headers.iter())
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("connectionId"), Some("c1"));
        assert_eq!(get("x-ip"), Some("10.0.0.1"));
        assert_eq!(get("x-region"), Some("eu"));
        assert_eq!(get("x-fixed"), Some("yes"));
        assert_eq!(get("x-agent"), Some("ua/1"));
        assert_eq!(get("x-all"), Some("1,2"));
    }

    #[test]
    fn missing_values_and_bad_header_values_are_left_out() {
        let params = compile(
            &[
                (
                    "integration.request.header.x-a",
                    "route.request.body.missing",
                ),
                ("integration.request.header.x-b", "route.request.body.text"),
            ],
            false,
        )
        .expect("compiles");
        let mapped = params.map(
            &Sources {
                body: br#"{"text":"a\r\nx-evil: 1"}"#,
                headers: &[],
                query: &[],
            },
            None,
        );
        assert!(mapped.headers.is_empty(), "{mapped:?}");
    }

    #[test]
    fn refusals_say_why() {
        let err = compile(
            &[("integration.request.header.x", "route.request.header.a")],
            false,
        )
        .expect_err("not on messages");
        assert!(err.contains("$connect"), "{err}");
        let err = compile(&[("integration.request.path.x", "'a'")], false).expect_err("target");
        assert!(err.contains("targets are"), "{err}");
        let err = compile(
            &[("integration.request.header.x", "stageVariables.nope")],
            false,
        )
        .expect_err("variable");
        assert!(err.contains("nope"), "{err}");
        let err =
            compile(&[("integration.request.header.x", "body.a")], false).expect_err("source");
        assert!(err.contains("sources are"), "{err}");
    }
}
