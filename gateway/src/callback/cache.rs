//! Response-cache invalidation on the callback API (also under `%40`), behind the same body
//! limit, authentication, stage check and throttling as `@connections`; the IAM action of a
//! SigV4 caller is `execute-api:InvalidateCache`:
//!
//! | request | answer |
//! |---|---|
//! | `DELETE /{stage}/@cache` | 204: every cached route of the stage dropped |
//! | `DELETE /{stage}/@cache/{route}` | 204: the route's entries dropped |
//! | `DELETE /{stage}/@cache/{route}?key={json}` (or the JSON as the body) | 204: one entry dropped |
//!
//! The by-key form names the entry by its key parts as configured, e.g.
//! `{"$request.body.symbol":"AAPL"}`; a part left out is null, as a missing part of a message.
//! A route that does not cache answers 404 `NotFoundException`; Redis failing, 503 (retry).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::delete;
use http::StatusCode;
use serde_json::{Map, Value};

use super::{Api, admit_for, answer};
use crate::cache::{InvalidateError, Scope};
use crate::error::CallbackError;
use crate::iam::INVALIDATE_CACHE;

/// The cache routes, merged into the callback router.
pub(super) fn router() -> Router<Arc<Api>> {
    let mut router = Router::new();
    for at in ["@", "%40"] {
        router = router
            .route(&format!("/{{stage}}/{at}cache"), delete(stage_wide))
            .route(
                &format!("/{{stage}}/{at}cache/{{route}}"),
                delete(one_route),
            );
    }
    router
}

async fn stage_wide(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let result = async {
        admit_for(&api, peer, &stage, request, INVALIDATE_CACHE).await?;
        invalidate(&api, &stage, Scope::Stage).await
    };
    answer(&method, result.await)
}

async fn one_route(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, route)): Path<(String, String)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let result = async {
        let (parts, body) = admit_for(&api, peer, &stage, request, INVALIDATE_CACHE).await?;
        match given_key(parts.uri.query(), &body)? {
            Some(given) => invalidate(&api, &stage, Scope::Key(&route, &given)).await,
            None => invalidate(&api, &stage, Scope::Route(&route)).await,
        }
    };
    answer(&method, result.await)
}

/// The key parts of the by-key form: `?key=` or the body, a JSON object.
fn given_key(
    query: Option<&str>,
    body: &[u8],
) -> Result<Option<Map<String, Value>>, CallbackError> {
    let from_query = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "key")
        .map(|(_, value)| value.into_owned());
    let text: &[u8] = match (&from_query, body.is_empty()) {
        (Some(_), false) => {
            return Err(CallbackError::BadRequest(
                "give the key either as ?key= or as the body, not both".into(),
            ));
        }
        (Some(query), true) => query.as_bytes(),
        (None, false) => body,
        (None, true) => return Ok(None),
    };
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(parts)) => Ok(Some(parts)),
        _ => Err(CallbackError::BadRequest(
            "the key must be a JSON object of key parts, e.g. {\"$request.body.symbol\":\"AAPL\"}"
                .into(),
        )),
    }
}

async fn invalidate(api: &Api, stage: &str, scope: Scope<'_>) -> Result<Response, CallbackError> {
    if !api.shared.serves(stage) {
        return Err(CallbackError::UnknownStage);
    }
    let live = api.shared.definition_for(stage, false);
    let routes = live.stage(stage).ok_or(CallbackError::UnknownStage)?;
    let Some(cache) = routes.cache.all() else {
        return Err(CallbackError::NotFound(
            "response caching is not configured (no `cache:` section)".into(),
        ));
    };
    match cache.invalidate(stage, scope).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(error @ InvalidateError::NoSuchRoute { .. }) => {
            Err(CallbackError::NotFound(error.to_string()))
        }
        Err(InvalidateError::BadKey(message)) => Err(CallbackError::BadRequest(message)),
        Err(InvalidateError::Unavailable(_)) => Err(CallbackError::Unavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_the_query_or_the_body() {
        let symbol = r#"{"$request.body.symbol":"AAPL"}"#;
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("key", symbol)
            .finish();
        let from_query = given_key(Some(&encoded), b"")
            .expect("valid")
            .expect("a key");
        assert_eq!(from_query["$request.body.symbol"], "AAPL");
        let from_body = given_key(None, symbol.as_bytes()).expect("valid");
        assert_eq!(from_body, Some(from_query));
        assert_eq!(given_key(None, b"").expect("valid"), None);
        assert!(given_key(Some(&encoded), symbol.as_bytes()).is_err());
        assert!(given_key(None, b"[1]").is_err());
        assert!(given_key(Some("key=nope"), b"").is_err());
    }
}
