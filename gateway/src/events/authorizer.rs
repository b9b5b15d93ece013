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

/// Serialises the REQUEST authorizer event for the pending connection `meta`.
pub fn authorizer_event(
    meta: &ConnectionMeta,
    request_id: &str,
    request: &ConnectRequest,
    stage_variables: &BTreeMap<String, String>,
    method_arn: &str,
) -> Vec<u8> {
    let (headers, multi_value_headers) = single_and_multi(&request.headers);
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
