//! What the generators need of a configuration, read once: the API's name and stages, the body
//! field the route selection expression reads, each message route with its request and reply
//! types, and where credentials go on the upgrade request (API key, `$connect` authorizer).

use serde_json::Value;

use super::SdkError;
use super::names::{camel, kebab, pascal, snake};
use super::schema::{Converter, Def, Defs, Field, Ty, union};
use crate::config::{AuthorizerConfig, Config, DEFAULT_MODEL_KEY};

/// Where a credential goes on the upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A header (sent by Node.js / Python clients only; browsers cannot).
    Header(String),
    /// A query-string parameter.
    Query(String),
    /// An offered subprotocol `<prefix><token>` (beside a plain one the gateway selects).
    Subprotocol(String),
    /// A cookie the client must set itself (documented, not placed).
    Cookie(String),
}

/// The `$connect` authorizer's token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) authorizer: String,
    pub(crate) placement: Placement,
    /// `Authorization: Bearer <token>` (JWT authorizers read the scheme off).
    pub(crate) bearer: bool,
}

/// The request body of a route's messages.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The route key (`$default` for the default route).
    pub(crate) key: String,
    /// The method name in TypeScript / Python.
    pub(crate) ts_method: String,
    pub(crate) py_method: String,
    /// Two-way (`route_response: true`).
    pub(crate) two_way: bool,
    /// The body type the method takes (without the route field on custom routes).
    pub(crate) params: Ty,
    /// Whether an empty body is a valid argument (no required fields).
    pub(crate) params_optional: bool,
    /// The reply's type (two-way routes).
    pub(crate) reply: Ty,
    /// The request models' names (for documentation).
    pub(crate) models: Vec<String>,
    /// An acknowledged route (`ack:`): the fields of its message id path.
    pub(crate) ack: Option<Vec<String>>,
}

/// The API as the generators see it.
#[derive(Debug)]
pub(crate) struct Api {
    /// `api.name`.
    pub(crate) name: String,
    /// The generated class (`ChatClient`, `ChatBackend`).
    pub(crate) class: String,
    /// Package names.
    pub(crate) npm_name: String,
    pub(crate) py_name: String,
    /// Stages, sorted; the first is the default.
    pub(crate) stages: Vec<String>,
    /// The body field of the route key.
    pub(crate) route_field: String,
    /// The body field of the correlation id.
    pub(crate) correlation_field: String,
    /// Message routes: custom keys sorted, then `$default` if configured.
    pub(crate) routes: Vec<Route>,
    /// Where an API key goes, if the API reads one from the request.
    pub(crate) api_key: Option<Placement>,
    /// The `$connect` authorizer's token.
    pub(crate) token: Option<Token>,
    /// Every named type.
    pub(crate) defs: Defs,
}

/// Names a generated client's members use already (a route with one of these names gets the
/// suffix `Route`).
const TS_TAKEN: &[&str] = &[
    "connect",
    "close",
    "send",
    "request",
    "on",
    "connected",
    "constructor",
    "sendAcked",
    "unacknowledged",
    "positions",
];
/// Names the Python runtimes define or import (models must not take them).
const PY_RESERVED: &[&str] = &[
    "Handlers",
    "Reconnect",
    "Mapping",
    "Sequence",
    "Callable",
    "Literal",
    "NotRequired",
    "TypeAlias",
    "TypedDict",
    "Union",
    "ClientConnection",
    "ConnectionClosed",
    "InvalidHandshake",
    "InvalidStatus",
    "Subprotocol",
    "Bearer",
    "SigV4",
    "Identity",
    "AWSRequest",
    "SigV4Auth",
];
const PY_TAKEN: &[&str] = &[
    "connect",
    "close",
    "send",
    "request",
    "on",
    "connected",
    "positions",
    "send_acked",
    "unacknowledged",
];

impl Api {
    /// Reads `config` (model schema files are read from the working directory, as the gateway
    /// reads them).
    ///
    /// # Errors
    /// [`SdkError`] naming the key that cannot be turned into a client.
    pub(crate) fn read(
        config: &Config,
        correlation_field: &str,
        suffix: &str,
    ) -> Result<Self, SdkError> {
        let api = &config.api;
        let route_field = route_field(&api.route_selection_expression)?;
        if correlation_field.is_empty() || correlation_field == route_field {
            return Err(SdkError::Option(format!(
                "--correlation-field must be a body field other than `{route_field}`"
            )));
        }
        let mut defs = Defs::default();
        let base = pascal(&api.name);
        for reserved in super::typescript::RESERVED.iter().chain(PY_RESERVED) {
            defs.claim(reserved);
        }
        for suffix in ["Client", "ClientOptions", "Backend", "BackendOptions"] {
            defs.claim(&format!("{base}{suffix}"));
        }
        let mut model_types = std::collections::BTreeMap::new();
        for (name, model) in &api.models {
            let mut schema = match (&model.schema, &model.schema_file) {
                (Some(schema), _) => schema.clone(),
                (None, Some(path)) => read_schema(name, path)?,
                (None, None) => Value::Bool(true),
            };
            // The model's own description documents its type when the schema has none.
            if let (Some(text), Some(object)) = (&model.description, schema.as_object_mut()) {
                object
                    .entry("description")
                    .or_insert_with(|| Value::String(text.clone()));
            }
            let type_name = Converter::new(name, &schema, &mut defs).convert_model()?;
            model_types.insert(name.clone(), (type_name, schema));
        }
        let mut keys: Vec<&String> = api.routes.keys().filter(|k| !k.starts_with('$')).collect();
        keys.sort();
        if api.routes.contains_key("$default") {
            keys.push(
                api.routes
                    .keys()
                    .find(|k| *k == "$default")
                    .expect("present"),
            );
        }
        let mut routes = Vec::new();
        for key in keys {
            let route = &api.routes[key];
            let custom = key != "$default";
            let (ts_method, py_method) = if custom {
                let (ts, py) = (camel(key), snake(key));
                (
                    if TS_TAKEN.contains(&ts.as_str()) {
                        format!("{ts}Route")
                    } else {
                        ts
                    },
                    if PY_TAKEN.contains(&py.as_str()) {
                        format!("{py}_route")
                    } else {
                        py
                    },
                )
            } else {
                ("sendDefault".to_string(), "send_default".to_string())
            };
            let mut dedup: Vec<String> = route.request_models.values().cloned().collect();
            dedup.sort();
            dedup.dedup();
            let (params, params_optional) = if dedup.len() == 1 && custom {
                let (type_name, _) = &model_types[&dedup[0]];
                let mut omit = vec![route_field.as_str()];
                if route.route_response {
                    omit.push(correlation_field);
                }
                params_type(&mut defs, key, type_name, &omit)
            } else if dedup.is_empty() {
                (Ty::Map(Box::new(Ty::Json)), true)
            } else {
                let types = dedup
                    .iter()
                    .map(|m| Ty::Named(model_types[m].0.clone()))
                    .collect();
                (union(types), false)
            };
            if route.route_response && custom {
                check_correlation(key, &dedup, &model_types, correlation_field)?;
            }
            let reply = match route.response_models.get(DEFAULT_MODEL_KEY) {
                Some(model) => Ty::Named(model_types[model].0.clone()),
                None => Ty::Json,
            };
            routes.push(Route {
                key: key.clone(),
                ts_method,
                py_method,
                two_way: route.route_response,
                params,
                params_optional,
                reply,
                models: dedup,
                ack: match &route.ack {
                    Some(ack) => {
                        Some(crate::config::id_path_fields(&ack.id).map_err(|m| {
                            SdkError::Option(format!("api.routes.{key}.ack.id: {m}"))
                        })?)
                    }
                    None => None,
                },
            });
        }
        let api_key = api_key_placement(&api.api_key_selection_expression);
        let token = token(config)?;
        Ok(Self {
            name: api.name.clone(),
            class: format!("{base}{}", pascal(suffix)),
            npm_name: format!("{}-{}", kebab(&api.name), kebab(suffix)),
            py_name: format!("{}_{}", snake(&api.name), snake(suffix)),
            stages: api.stages.keys().cloned().collect(),
            route_field,
            correlation_field: correlation_field.to_string(),
            routes,
            api_key,
            token,
            defs,
        })
    }

    /// The default stage (the first by name).
    pub(crate) fn default_stage(&self) -> &str {
        self.stages.first().map(String::as_str).unwrap_or("prod")
    }
}

/// `$request.body.<field>` → `field`.
fn route_field(expression: &str) -> Result<String, SdkError> {
    let field = expression.trim().strip_prefix("$request.body.");
    match field {
        Some(field)
            if !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(field.to_string())
        }
        _ => Err(SdkError::Unsupported {
            key: "api.route_selection_expression".into(),
            reason: format!(
                "`{expression}`: generated clients need the form $request.body.<field> to set the route key"
            ),
        }),
    }
}

fn read_schema(name: &str, path: &std::path::Path) -> Result<Value, SdkError> {
    let text = std::fs::read_to_string(path).map_err(|e| SdkError::Unsupported {
        key: format!("api.models.{name}.schema_file"),
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| SdkError::Unsupported {
        key: format!("api.models.{name}.schema_file"),
        reason: format!("{} is not JSON: {e}", path.display()),
    })
}

/// The type a custom route's method takes: the model's record without the route field and the
/// correlation field (named
/// `<Route>Params`), or the model's type as is when it is not a record.
fn params_type(defs: &mut Defs, key: &str, type_name: &str, omit: &[&str]) -> (Ty, bool) {
    let Some((description, fields)) = defs.record(type_name) else {
        return (Ty::Named(type_name.to_string()), false);
    };
    let description = description.clone();
    let fields: Vec<Field> = fields
        .iter()
        .filter(|f| !omit.contains(&f.name.as_str()))
        .cloned()
        .collect();
    let optional = fields.iter().all(|f| !f.required);
    let name = defs.claim(&format!("{}Params", pascal(key)));
    defs.push(Def::Record {
        name: name.clone(),
        description,
        fields,
    });
    (Ty::Named(name), optional)
}

/// A two-way route's models must let the correlation field through.
fn check_correlation(
    key: &str,
    models: &[String],
    model_types: &std::collections::BTreeMap<String, (String, Value)>,
    field: &str,
) -> Result<(), SdkError> {
    for model in models {
        let schema = &model_types[model].1;
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        let declared = schema
            .get("properties")
            .and_then(|p| p.get(field))
            .is_some();
        if closed && !declared {
            return Err(SdkError::Unsupported {
                key: format!("api.models.{model}"),
                reason: format!(
                    "route {key} is two-way and its model forbids the correlation field `{field}` (additionalProperties: false); declare it as a string property"
                ),
            });
        }
    }
    Ok(())
}

fn api_key_placement(expression: &str) -> Option<Placement> {
    let expression = expression.trim();
    if let Some(name) = expression.strip_prefix("$request.header.") {
        Some(Placement::Header(name.to_string()))
    } else {
        expression
            .strip_prefix("$request.querystring.")
            .map(|name| Placement::Query(name.to_string()))
    }
}

fn token(config: &Config) -> Result<Option<Token>, SdkError> {
    let Some(connect) = config.api.routes.get("$connect") else {
        return Ok(None);
    };
    let Some(name) = &connect.authorizer else {
        return Ok(None);
    };
    let (sources, jwt) = match config.api.authorizers.get(name) {
        Some(AuthorizerConfig::Jwt(jwt)) => (&jwt.identity_sources, true),
        Some(AuthorizerConfig::Request(request)) => (&request.identity_sources, false),
        None => return Ok(None),
    };
    for source in sources {
        let expr = source.trim().trim_start_matches('$');
        let placement = if let Some(n) = expr.strip_prefix("route.request.header.") {
            Placement::Header(n.to_string())
        } else if let Some(n) = expr.strip_prefix("route.request.querystring.") {
            Placement::Query(n.to_string())
        } else if let Some(n) = expr.strip_prefix("route.request.subprotocol.") {
            Placement::Subprotocol(n.to_string())
        } else if let Some(n) = expr.strip_prefix("route.request.cookie.") {
            Placement::Cookie(n.to_string())
        } else {
            continue;
        };
        let bearer = jwt
            && matches!(&placement, Placement::Header(h) if h.eq_ignore_ascii_case("authorization"));
        return Ok(Some(Token {
            authorizer: name.clone(),
            placement,
            bearer,
        }));
    }
    Ok(None)
}
