//! The API as the management API holds it between deployments: apigatewayv2 resources in the
//! service's own JSON shapes (camelCase, as the SDKs send and read them), the snapshot they
//! were seeded from, and the generic create/read/update/delete every resource kind shares.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::error::ManagementError;

/// Resources of one kind by id.
pub(super) type Collection = BTreeMap<String, Json>;

/// One resource kind: its name in messages, its id field, the fields a caller may set and
/// those a create must carry.
#[derive(Debug)]
pub(super) struct Kind {
    /// As the service names it in messages (`Route`).
    pub what: &'static str,
    /// The id field (`routeId`; `stageName` for stages).
    pub id: &'static str,
    /// Fields a create or update may carry (camelCase).
    pub fields: &'static [&'static str],
    /// Fields a create must carry.
    pub required: &'static [&'static str],
}

pub(super) const ROUTE: Kind = Kind {
    what: "Route",
    id: "routeId",
    fields: &[
        "apiKeyRequired",
        "authorizationScopes",
        "authorizationType",
        "authorizerId",
        "modelSelectionExpression",
        "operationName",
        "requestModels",
        "requestParameters",
        "routeKey",
        "routeResponseSelectionExpression",
        "target",
    ],
    required: &["routeKey"],
};

pub(super) const ROUTE_RESPONSE: Kind = Kind {
    what: "RouteResponse",
    id: "routeResponseId",
    fields: &[
        "modelSelectionExpression",
        "responseModels",
        "responseParameters",
        "routeResponseKey",
    ],
    required: &["routeResponseKey"],
};

pub(super) const INTEGRATION: Kind = Kind {
    what: "Integration",
    id: "integrationId",
    fields: &[
        "connectionId",
        "connectionType",
        "contentHandlingStrategy",
        "credentialsArn",
        "description",
        "integrationMethod",
        "integrationSubtype",
        "integrationType",
        "integrationUri",
        "passthroughBehavior",
        "payloadFormatVersion",
        "requestParameters",
        "requestTemplates",
        "responseParameters",
        "templateSelectionExpression",
        "timeoutInMillis",
        "tlsConfig",
    ],
    required: &["integrationType"],
};

pub(super) const INTEGRATION_RESPONSE: Kind = Kind {
    what: "IntegrationResponse",
    id: "integrationResponseId",
    fields: &[
        "contentHandlingStrategy",
        "integrationResponseKey",
        "responseParameters",
        "responseTemplates",
        "templateSelectionExpression",
    ],
    required: &["integrationResponseKey"],
};

pub(super) const MODEL: Kind = Kind {
    what: "Model",
    id: "modelId",
    fields: &["contentType", "description", "name", "schema"],
    required: &["name", "schema"],
};

pub(super) const AUTHORIZER: Kind = Kind {
    what: "Authorizer",
    id: "authorizerId",
    fields: &[
        "authorizerCredentialsArn",
        "authorizerPayloadFormatVersion",
        "authorizerResultTtlInSeconds",
        "authorizerType",
        "authorizerUri",
        "enableSimpleResponses",
        "identitySource",
        "identityValidationExpression",
        "jwtConfiguration",
        "name",
    ],
    required: &["authorizerType", "identitySource", "name"],
};

pub(super) const STAGE: Kind = Kind {
    what: "Stage",
    id: "stageName",
    fields: &["deploymentId", "description", "stageName", "stageVariables"],
    required: &["stageName"],
};

/// The API's resources, as the management API shows and changes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Resources {
    /// The API itself (`apiId`, `name`, `routeSelectionExpression`, …).
    pub api: Json,
    pub routes: Collection,
    /// By route id.
    pub route_responses: BTreeMap<String, Collection>,
    pub integrations: Collection,
    /// By integration id.
    pub integration_responses: BTreeMap<String, Collection>,
    pub models: Collection,
    pub authorizers: Collection,
    /// By stage name.
    pub stages: Collection,
}

/// What the resources were seeded from: the definition in force at the time, as written
/// (`{api, throttling}`), and the resources as seeded, so that a deployment can tell which
/// resources a caller changed.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    /// The deployment the definition came from.
    pub deployment: String,
    /// Its definition as stored (`api`, `throttling`; wsgate's keys, unmasked).
    pub live: Json,
    /// The resources as seeded from it.
    pub resources: Resources,
    /// Route key → route id, integration id, as seeded.
    pub routes: BTreeMap<String, String>,
}

/// The management API's whole state.
#[derive(Debug, Clone)]
pub(super) struct Draft {
    pub resources: Resources,
    pub seed: Seed,
    /// Deployments made through the management API from this draft (so that the draft is not
    /// seeded again when the stages serve one of them).
    pub deployed: Vec<String>,
}

impl Draft {
    /// True when a caller changed a resource since the seed.
    pub(super) fn edited(&self) -> bool {
        self.resources != self.seed.resources
    }
}

/// A new resource id: 7 lowercase letters and digits, as the service's.
pub(super) fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..7)
        .map(|_| char::from(ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()]))
        .collect()
}

/// The id of a seeded resource: the same on every node and after every restart for the
/// same `kind` and `name`.
pub(super) fn stable_id(kind: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::digest(format!("{kind}\u{0}{name}").as_bytes());
    digest
        .iter()
        .take(7)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// The fields of `body` that `kind` accepts, or a 400 naming the first it does not.
pub(super) fn fields_of(kind: &Kind, body: &Json) -> Result<Map<String, Json>, ManagementError> {
    let Some(object) = body.as_object() else {
        return Err(ManagementError::BadRequest(
            "Invalid request body: a JSON object is expected".into(),
        ));
    };
    let mut out = Map::new();
    for (key, value) in object {
        if !kind.fields.contains(&key.as_str()) {
            return Err(ManagementError::BadRequest(format!(
                "Invalid request body: {} has no field `{key}` that wsgate sets",
                kind.what
            )));
        }
        if !value.is_null() {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

/// Most resources of one kind (routes of the API, responses of a route, …): the draft is
/// bounded whatever the callers send.
pub(super) const MAX_RESOURCES: usize = 1000;

/// A 400 when `collection` holds [`MAX_RESOURCES`] already.
pub(super) fn room(kind: &Kind, collection: &Collection) -> Result<(), ManagementError> {
    if collection.len() >= MAX_RESOURCES {
        return Err(ManagementError::BadRequest(format!(
            "at most {MAX_RESOURCES} resources of kind {} per API",
            kind.what
        )));
    }
    Ok(())
}

/// A new resource of `kind` from `body`, under `id`.
pub(super) fn create(kind: &Kind, body: &Json, id: &str) -> Result<Json, ManagementError> {
    let mut fields = fields_of(kind, body)?;
    for required in kind.required {
        if !fields.contains_key(*required) {
            return Err(ManagementError::BadRequest(format!(
                "{} needs `{required}`",
                kind.what
            )));
        }
    }
    fields.insert(kind.id.into(), json!(id));
    Ok(Json::Object(fields))
}

/// `resource` with the fields of `body` set (a PATCH: fields absent stay as they are).
pub(super) fn update(kind: &Kind, resource: &Json, body: &Json) -> Result<Json, ManagementError> {
    let fields = fields_of(kind, body)?;
    let mut out = resource.as_object().cloned().unwrap_or_default();
    for (key, value) in fields {
        if key == kind.id && out.get(&key) != Some(&value) {
            return Err(ManagementError::BadRequest(format!(
                "{}: `{key}` cannot be changed",
                kind.what
            )));
        }
        out.insert(key, value);
    }
    Ok(Json::Object(out))
}

/// The resource `id` of `kind`, or a 404 as the service words it.
pub(super) fn get<'a>(
    kind: &Kind,
    collection: &'a Collection,
    id: &str,
) -> Result<&'a Json, ManagementError> {
    collection.get(id).ok_or_else(|| not_found(kind, id))
}

/// The 404 of a missing resource.
pub(super) fn not_found(kind: &Kind, id: &str) -> ManagementError {
    ManagementError::NotFound(format!("Invalid {} identifier specified {id}", kind.what))
}

/// One page of `items` (`maxResults`, `nextToken` as the service pages: the token is the
/// offset of the next item).
pub(super) fn page(
    items: Vec<Json>,
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<Json, ManagementError> {
    let bad = |what: &str| ManagementError::BadRequest(format!("Invalid {what}"));
    let start = match next_token {
        Some(token) => token.parse::<usize>().map_err(|_| bad("nextToken"))?,
        None => 0,
    };
    let size = match max_results {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| bad("maxResults: 1 to 500"))?,
        None => 500,
    };
    let end = start.saturating_add(size).min(items.len());
    let mut out = json!({ "items": items.get(start..end).unwrap_or_default() });
    if end < items.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_are_seven_characters_and_repeat() {
        let a = stable_id("route", "sendmessage");
        assert_eq!(a.len(), 7);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_eq!(a, stable_id("route", "sendmessage"));
        assert_ne!(a, stable_id("integration", "sendmessage"));
        assert_eq!(new_id().len(), 7);
    }

    #[test]
    fn unknown_and_missing_fields_are_refused_and_updates_keep_the_rest() {
        let created = create(&ROUTE, &json!({"routeKey": "a", "target": "t"}), "r1").expect("ok");
        assert_eq!(created["routeId"], "r1");
        assert!(matches!(
            create(&ROUTE, &json!({"target": "t"}), "r2"),
            Err(ManagementError::BadRequest(m)) if m.contains("routeKey")
        ));
        assert!(matches!(
            create(&ROUTE, &json!({"routeKey": "a", "nope": 1}), "r3"),
            Err(ManagementError::BadRequest(m)) if m.contains("nope")
        ));
        let updated = update(&ROUTE, &created, &json!({"target": "u"})).expect("ok");
        assert_eq!(updated["routeKey"], "a");
        assert_eq!(updated["target"], "u");
        assert!(update(&ROUTE, &created, &json!({"routeId": "x"})).is_err());
    }

    #[test]
    fn a_full_collection_takes_no_more() {
        let mut full = Collection::new();
        assert!(room(&ROUTE, &full).is_ok());
        for i in 0..MAX_RESOURCES {
            full.insert(i.to_string(), json!({}));
        }
        assert!(matches!(
            room(&ROUTE, &full),
            Err(ManagementError::BadRequest(_))
        ));
    }

    #[test]
    fn pages_carry_a_token_until_the_last() {
        let items: Vec<Json> = (0..5).map(|i| json!(i)).collect();
        let first = page(items.clone(), Some("2"), None).expect("page");
        assert_eq!(first["items"], json!([0, 1]));
        assert_eq!(first["nextToken"], "2");
        let last = page(items.clone(), Some("4"), Some("2")).expect("page");
        assert_eq!(last["items"], json!([2, 3, 4]));
        assert!(last.get("nextToken").is_none());
        assert!(page(items.clone(), Some("0"), None).is_err());
        assert!(page(items, None, Some("x")).is_err());
    }
}
