//! The Lambda REQUEST authorizer input for `$connect`: the CONNECT event's headers, query and
//! `requestContext`, plus `type`, `methodArn` and `stageVariables`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    ConnectRequest, ConnectionMeta, EventKind, Multi, RequestContext, Single, request_context,
    single_and_multi,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizerEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    method_arn: &'a str,
    headers: Single<'a>,
    multi_value_headers: Multi<'a>,
    query_string_parameters: Single<'a>,
    multi_value_query_string_parameters: Multi<'a>,
    stage_variables: &'a BTreeMap<String, String>,
    request_context: RequestContext<'a>,
}

/// Headers the REQUEST authorizer input has and the CONNECT event has not, with AWS's spelling
/// and values (the DG sample input in
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html>).
const AUTHORIZER_HEADERS: [(&str, &str); 3] = [
    ("Connection", "upgrade"),
    ("content-length", "0"),
    ("Upgrade", "websocket"),
];

/// Serialises the REQUEST authorizer event for the pending connection `meta`.
pub(crate) fn authorizer_event(
    meta: &ConnectionMeta,
    request_id: &str,
    request: &ConnectRequest,
    stage_variables: &BTreeMap<String, String>,
    method_arn: &str,
) -> Vec<u8> {
    // The CONNECT event's headers, and the three AWS's own hop adds to the authorizer's input.
    let mut all = request.headers.clone();
    all.retain(|(k, _)| {
        !AUTHORIZER_HEADERS
            .iter()
            .any(|(a, _)| k.eq_ignore_ascii_case(a))
    });
    all.extend(AUTHORIZER_HEADERS.map(|(k, v)| (k.to_string(), v.to_string())));
    let (headers, multi_value_headers) = single_and_multi(&all);
    let (query, multi_query) = single_and_multi(&request.query);
    let event = AuthorizerEvent {
        kind: "REQUEST",
        method_arn,
        headers,
        multi_value_headers,
        query_string_parameters: query,
        multi_value_query_string_parameters: multi_query,
        stage_variables,
        request_context: request_context(
            meta,
            "$connect",
            request_id,
            &EventKind::Connect(request),
        ),
    };
    // Borrowed structs with string keys always serialise.
    serde_json::to_vec(&event).unwrap_or_default()
}
