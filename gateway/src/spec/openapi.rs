//! `wsgate export openapi`: the gateway's HTTP APIs as an OpenAPI 3.1 document: the callback
//! API (`@connections`, as Amazon API Gateway's management API), groups and broadcast
//! (`@groups`, `@broadcast`, memberships and listings, docs/groups.md), response-cache
//! invalidation (`@cache`) and the admin page's JSON API (`/@admin/api/...`), with the AWS error
//! shapes, the statuses each answers and the security of `callback.auth`.

use serde_json::{Map, Value as Json, json};

use crate::config::{CallbackAuthConfig, Config};

/// Errors of the callback API: status → (`x-amzn-ErrorType`, when).
const ERRORS: [(&str, &str, &str); 7] = [
    (
        "400",
        "BadRequestException",
        "An invalid close code or reason, group name, page size, page token or cache key.",
    ),
    (
        "403",
        "ForbiddenException",
        "Authentication failed (SigV4: the AWS error names), the key's IAM policy denies the call (AccessDeniedException), or the stage is unknown.",
    ),
    (
        "404",
        "NotFoundException",
        "The route does not cache (or there is no cache: section).",
    ),
    (
        "410",
        "GoneException",
        "No such connection: unknown, closed, or (GET and DELETE) still in $connect.",
    ),
    (
        "413",
        "PayloadTooLargeException",
        "The body is over limits.max_message_bytes.",
    ),
    (
        "429",
        "LimitExceededException",
        "The connection's outbound queue is full, it is in groups.max_groups_per_connection groups, or too many group posts are in flight (retry).",
    ),
    (
        "503",
        "ServiceUnavailableException",
        "The connection's node or Redis could not be reached in time (retrying is safe).",
    ),
];

/// The OpenAPI 3.1 document of `config`'s callback, groups, cache and admin APIs.
pub fn openapi(config: &Config) -> Json {
    let stages: Vec<&String> = config.api.stages.keys().collect();
    let mut paths = Map::new();
    let connection = "/{stage}/@connections/{connectionId}";
    paths.insert(connection.into(), json!({
        "parameters": [param_ref("stage"), param_ref("connectionId")],
        "post": op("PostToConnection", "callback", "Sends the body to the connection: one text frame when it is valid UTF-8, else one binary frame. Answered once the message is queued; while $connect still runs it is held and delivered after the upgrade.",
            Some(any_body(true)), ok_empty("200", "Queued for the connection."), &["403", "410", "413", "429", "503"]),
        "get": op("GetConnection", "callback", "The connection's times, client identity and (beyond AWS) what its authorizer established.",
            None, ok_json("200", "The connection.", schema_ref("Connection")), &["403", "410", "503"]),
        "delete": {
            "operationId": "DeleteConnection",
            "tags": ["callback"],
            "summary": "Closes the connection (close 1000, or the code and reason given); $disconnect runs.",
            "parameters": [
                {"name": "code", "in": "query", "required": false, "description": "Close code (beyond AWS): 1000 or 3000 to 4999.", "schema": {"type": "integer", "default": 1000}},
                {"name": "reason", "in": "query", "required": false, "description": "Close reason, at most 123 bytes.", "schema": {"type": "string"}},
            ],
            "responses": responses(ok_empty("204", "Closed."), &["400", "403", "410", "503"]),
        },
    }));
    paths.insert(format!("{connection}/groups/{{group}}"), json!({
        "parameters": [param_ref("stage"), param_ref("connectionId"), param_ref("group")],
        "put": op("JoinGroup", "groups", "Makes the connection a member of the group (joining twice is harmless).",
            None, ok_empty("204", "A member."), &["400", "403", "410", "429", "503"]),
        "delete": op("LeaveGroup", "groups", "Removes the connection from the group.",
            None, ok_empty("204", "Not a member (any more)."), &["400", "403", "410", "503"]),
    }));
    paths.insert(format!("{connection}/groups"), json!({
        "parameters": [param_ref("stage"), param_ref("connectionId")],
        "get": op("ListConnectionGroups", "groups", "The groups the connection is in.",
            None, ok_json("200", "Its groups.", json!({"type": "object", "required": ["groups"], "properties": {"groups": {"type": "array", "items": {"type": "string"}}}})), &["403", "410", "503"]),
    }));
    paths.insert("/{stage}/@connections".into(), json!({
        "parameters": [param_ref("stage")],
        "get": with_params(op("ListConnections", "groups", "The stage's connections across the cluster, a page at a time.",
            None, ok_json("200", "A page of connection ids.", schema_ref("ConnectionPage")), &["400", "403", "503"]), &["maxResults", "nextToken"]),
    }));
    paths.insert("/{stage}/@groups/{group}".into(), json!({
        "parameters": [param_ref("stage"), param_ref("group")],
        "post": with_params(op("PostToGroup", "groups", "Sends the body to every member of the group on every node, once each.",
            Some(any_body(true)), ok_json("200", "What this node queued and how many other nodes were reached.", schema_ref("PostResult")), &["400", "403", "413", "429"]), &["exclude"]),
        "get": with_params(op("GetGroup", "groups", "The group's cluster-wide member count and a page of its members.",
            None, ok_json("200", "The group.", schema_ref("GroupPage")), &["400", "403", "503"]), &["maxResults", "nextToken"]),
    }));
    paths.insert("/{stage}/@broadcast".into(), json!({
        "parameters": [param_ref("stage")],
        "post": with_params(op("Broadcast", "groups", "Sends the body to every connection of the stage.",
            Some(any_body(true)), ok_json("200", "What this node queued and how many other nodes were reached.", schema_ref("PostResult")), &["403", "413", "429"]), &["exclude"]),
    }));
    paths.insert("/{stage}/@cache".into(), json!({
        "parameters": [param_ref("stage")],
        "delete": op("InvalidateStageCache", "cache", "Drops every cached answer of the stage's routes.",
            None, ok_empty("204", "Invalidated."), &["403", "404", "503"]),
    }));
    paths.insert("/{stage}/@cache/{route}".into(), json!({
        "parameters": [param_ref("stage"), {"name": "route", "in": "path", "required": true, "description": "A route key with a cache.", "schema": {"type": "string"}}],
        "delete": {
            "operationId": "InvalidateRouteCache",
            "tags": ["cache"],
            "summary": "Drops the route's cached answers: all of them, or the one entry named by its key parts (in `key` or as the body).",
            "parameters": [{"name": "key", "in": "query", "required": false, "description": "A JSON object of the route's key parts, e.g. {\"$request.body.symbol\":\"AAPL\"}.", "schema": {"type": "string"}}],
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": {"type": ["string", "null"]}}}}},
            "responses": responses(ok_empty("204", "Invalidated."), &["400", "403", "404", "503"]),
        },
    }));
    let admin_header = json!({"name": "x-wsgate-admin", "in": "header", "required": true, "description": "Must be 1: a cross-site page cannot add it without a CORS preflight, which is never granted.", "schema": {"type": "string", "const": "1"}});
    paths.insert("/@admin/api/overview".into(), json!({
        "get": with_header(op("AdminOverview", "admin", "This node, its connections, rates, latency, charts, groups, cluster and recent errors.",
            None, ok_json("200", "The overview.", schema_ref("Overview")), &["403"]), &admin_header),
    }));
    paths.insert("/@admin/api/config".into(), json!({
        "get": with_header(op("AdminConfig", "admin", "The configuration in force as YAML, secrets redacted.",
            None, json!({"200": {"description": "The configuration.", "content": {"text/plain": {"schema": {"type": "string"}}}}}), &["403"]), &admin_header),
    }));
    paths.insert("/@admin/api/connections/{stage}/{connectionId}".into(), json!({
        "parameters": [param_ref("stage"), param_ref("connectionId")],
        "post": with_header(op("AdminPostToConnection", "admin", "Sends the body to the connection, as PostToConnection.",
            Some(any_body(true)), ok_empty("200", "Queued."), &["403", "410", "413", "429", "503"]), &admin_header),
        "delete": with_header(with_params(op("AdminDisconnect", "admin", "Closes the connection, as DeleteConnection.",
            None, ok_empty("204", "Closed."), &["400", "403", "410", "503"]), &["code", "reason"]), &admin_header),
    }));
    paths.insert("/@admin/api/groups/{stage}/{group}".into(), json!({
        "parameters": [param_ref("stage"), param_ref("group")],
        "post": with_header(op("AdminPostToGroup", "admin", "Sends the body to the group, as PostToGroup.",
            Some(any_body(true)), ok_json("200", "As PostToGroup.", schema_ref("PostResult")), &["400", "403", "413", "429"]), &admin_header),
    }));

    let mut document = Map::new();
    document.insert("openapi".into(), json!("3.1.0"));
    let mut info = json!({
        "title": format!("{} callback, groups and admin API", config.api.name),
        "version": config.api.version.clone().unwrap_or_else(|| "0.0.0".into()),
        "description": "The HTTP APIs of the wsgate gateway: the callback API (wire-compatible with Amazon API Gateway's management API), groups and broadcast, cache invalidation, and the admin page's JSON API. Every answer carries a fresh x-amzn-RequestId; errors carry x-amzn-ErrorType and a JSON {\"message\"}.",
    });
    if let Some(description) = &config.api.description {
        info["summary"] = json!(description);
    }
    document.insert("info".into(), info);
    document.insert("servers".into(), Json::Array(servers(config)));
    document.insert("tags".into(), json!([
        {"name": "callback", "description": "Amazon API Gateway's @connections management API."},
        {"name": "groups", "description": "Groups, broadcast and listings (beyond AWS)."},
        {"name": "cache", "description": "Response-cache invalidation (beyond AWS)."},
        {"name": "admin", "description": "The admin page's JSON API."},
    ]));
    document.insert("paths".into(), Json::Object(paths));
    let mut components = json!({
        "parameters": parameters(&stages),
        "schemas": schemas(),
        "responses": error_responses(),
        "headers": {"RequestId": {"description": "A fresh UUID for every answer.", "schema": {"type": "string", "format": "uuid"}}},
    });
    if let Some((scheme, security)) = security(config) {
        components["securitySchemes"] = json!({ "callback": scheme });
        document.insert("security".into(), json!([{ "callback": security }]));
    }
    document.insert("components".into(), components);
    Json::Object(document)
}

fn servers(config: &Config) -> Vec<Json> {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut out = Vec::new();
    if config.callback.on_main_listener {
        let host = config
            .api
            .domain_name
            .clone()
            .unwrap_or_else(|| config.listen.to_string());
        out.push(json!({"url": format!("{scheme}://{host}"), "description": "The main listener."}));
    }
    if let Some(listen) = config.callback.listen {
        out.push(json!({"url": format!("{scheme}://{listen}"), "description": "The callback listener (callback.listen)."}));
    }
    out
}

fn security(config: &Config) -> Option<(Json, Vec<String>)> {
    match &config.callback.auth {
        Some(CallbackAuthConfig::Bearer { .. }) => Some((
            json!({"type": "http", "scheme": "bearer", "description": "One of callback.auth.tokens."}),
            Vec::new(),
        )),
        Some(CallbackAuthConfig::Sigv4 { region, .. }) => Some((
            json!({"type": "apiKey", "name": "Authorization", "in": "header", "description": format!("AWS Signature Version 4, service execute-api, region {region}, as the AWS SDKs sign.")}),
            Vec::new(),
        )),
        Some(CallbackAuthConfig::None) | None => None,
    }
}

fn param_ref(name: &str) -> Json {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn schema_ref(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn parameters(stages: &[&String]) -> Json {
    let page = json!({"type": "integer", "minimum": 1});
    json!({
        "stage": {"name": "stage", "in": "path", "required": true, "description": "A stage of api.stages.", "schema": {"type": "string", "enum": stages}},
        "connectionId": {"name": "connectionId", "in": "path", "required": true, "description": "A connection id (requestContext.connectionId).", "schema": {"type": "string"}},
        "group": {"name": "group", "in": "path", "required": true, "description": "A group name (up to groups.max_name_bytes).", "schema": {"type": "string"}},
        "maxResults": {"name": "maxResults", "in": "query", "required": false, "description": "Page size (up to groups.max_page_size; default 100).", "schema": page},
        "nextToken": {"name": "nextToken", "in": "query", "required": false, "description": "The previous page's nextToken.", "schema": {"type": "string"}},
        "exclude": {"name": "exclude", "in": "query", "required": false, "description": "A connection id left out (the sender).", "schema": {"type": "string"}},
        "code": {"name": "code", "in": "query", "required": false, "description": "Close code: 1000 or 3000 to 4999.", "schema": {"type": "integer", "default": 1000}},
        "reason": {"name": "reason", "in": "query", "required": false, "description": "Close reason, at most 123 bytes.", "schema": {"type": "string"}},
    })
}

fn schemas() -> Json {
    let ids = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "Error": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}},
        "Connection": {
            "type": "object",
            "required": ["connectedAt", "identity", "lastActiveAt"],
            "properties": {
                "connectedAt": {"type": "string", "format": "date-time"},
                "lastActiveAt": {"type": "string", "format": "date-time"},
                "identity": {"type": "object", "required": ["sourceIp", "userAgent"], "properties": {"sourceIp": {"type": "string"}, "userAgent": {"type": "string"}}},
                "authorizer": {"type": "object", "description": "What the connection's authorizer established (beyond AWS)."},
            },
        },
        "PostResult": {
            "type": "object",
            "required": ["deliveredLocal", "droppedLocal", "published", "remoteNodes"],
            "properties": {
                "deliveredLocal": {"type": "integer", "description": "Members on the answering node whose queue took the message."},
                "droppedLocal": {"type": "integer", "description": "Members on that node whose queue was full (slow-member policy)."},
                "published": {"type": "boolean", "description": "Handed to Redis for the other nodes."},
                "remoteNodes": {"type": "integer", "description": "Other nodes that received it."},
            },
        },
        "GroupPage": {
            "type": "object",
            "required": ["group", "memberCount", "members"],
            "properties": {"group": {"type": "string"}, "memberCount": {"type": "integer"}, "members": ids, "nextToken": {"type": "string"}},
        },
        "ConnectionPage": {
            "type": "object",
            "required": ["connectionCount", "connections"],
            "properties": {"connectionCount": {"type": "integer"}, "connections": ids, "nextToken": {"type": "string"}},
        },
        "Overview": {
            "type": "object",
            "required": ["node", "connections", "routes", "totals", "rates", "latency", "series", "groups", "cluster", "recentErrors"],
            "properties": {
                "node": {"type": "object", "properties": {"id": {"type": "string"}, "apiId": {"type": "string"}, "version": {"type": "string"}, "uptimeSeconds": {"type": "integer"}, "draining": {"type": "boolean"}, "store": {"type": "string", "enum": ["memory", "redis"]}}},
                "connections": {"type": "object", "properties": {"node": {"type": "integer"}, "limit": {"type": "integer"}, "stages": {"type": "array", "items": {"type": "object"}}, "newest": {"type": "array", "items": {"type": "object"}}}},
                "routes": {"type": "array", "items": {"type": "object", "properties": {"stage": {"type": "string"}, "route": {"type": "string"}, "integration": {"type": "string"}, "calls": {"type": "integer"}, "integrationErrors": {"type": "integer"}, "executionErrors": {"type": "integer"}}}},
                "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
                "rates": {"type": "object"},
                "latency": {"type": "object"},
                "series": {"type": "array"},
                "groups": {"type": "object", "properties": {"count": {"type": "integer"}, "memberships": {"type": "integer"}, "largest": {"type": "array", "items": {"type": "object"}}}},
                "cluster": {"type": ["object", "null"]},
                "recentErrors": {"type": "array", "items": {"type": "object"}},
            },
        },
    })
}

fn error_responses() -> Json {
    let mut out = Map::new();
    for (status, kind, when) in ERRORS {
        out.insert(kind.into(), json!({
            "description": format!("{status} {kind}: {when}"),
            "headers": {
                "x-amzn-ErrorType": {"description": "The AWS error name.", "schema": {"type": "string", "const": kind}},
                "x-amzn-RequestId": {"$ref": "#/components/headers/RequestId"},
            },
            "content": {"application/json": {"schema": schema_ref("Error")}},
        }));
    }
    Json::Object(out)
}

fn any_body(required: bool) -> Json {
    json!({
        "required": required,
        "description": "Any body, any or no Content-Type, up to limits.max_message_bytes.",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    })
}

fn ok_empty(status: &str, description: &str) -> Json {
    json!({ status: {"description": description, "headers": {"x-amzn-RequestId": {"$ref": "#/components/headers/RequestId"}}} })
}

fn ok_json(status: &str, description: &str, schema: Json) -> Json {
    json!({ status: {
        "description": description,
        "headers": {"x-amzn-RequestId": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": {"schema": schema}},
    } })
}

fn responses(ok: Json, errors: &[&str]) -> Json {
    let mut out = ok.as_object().cloned().unwrap_or_default();
    for status in errors {
        if let Some((_, kind, _)) = ERRORS.iter().find(|(s, _, _)| s == status) {
            out.insert(
                (*status).to_string(),
                json!({"$ref": format!("#/components/responses/{kind}")}),
            );
        }
    }
    Json::Object(out)
}

fn op(id: &str, tag: &str, summary: &str, body: Option<Json>, ok: Json, errors: &[&str]) -> Json {
    let mut operation = json!({
        "operationId": id,
        "tags": [tag],
        "summary": summary,
        "responses": responses(ok, errors),
    });
    if let Some(body) = body {
        operation["requestBody"] = body;
    }
    operation
}

fn with_params(mut operation: Json, names: &[&str]) -> Json {
    let list: Vec<Json> = names.iter().map(|n| param_ref(n)).collect();
    operation["parameters"] = Json::Array(list);
    operation
}

fn with_header(mut operation: Json, header: &Json) -> Json {
    let list = operation
        .as_object_mut()
        .expect("operations are objects")
        .entry("parameters")
        .or_insert_with(|| json!([]));
    if let Some(items) = list.as_array_mut() {
        items.push(header.clone());
    }
    operation
}
