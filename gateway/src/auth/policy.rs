//! Reading a REQUEST authorizer's answer: the IAM-policy form
//! (`principalId`, `policyDocument`, `context`, `usageIdentifierKey`) or the simple form
//! (`isAuthorized`, `context`), and the Lambda error `Unauthorized`. Anything else fails closed.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AuthError, Authorized, CallError};
use crate::config::PolicyDocument;
use crate::iam::policy::{Decision as PolicyDecision, Policy};

/// A cacheable outcome.
#[derive(Debug, Clone)]
pub(super) enum Decision {
    /// Connect, with this context.
    Allow(Authorized),
    /// 403.
    Deny,
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::AuthorizerFailed(CallError::Malformed(what))
}

/// The outcome of a function error (`{"errorMessage": ...}`): `Unauthorized` means 401, as
/// with AWS; anything else is a failure.
pub(super) fn function_error(body: &[u8]) -> AuthError {
    let message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("errorMessage")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match message.as_deref() {
        Some("Unauthorized") => AuthError::Unauthorized,
        _ => AuthError::AuthorizerFailed(CallError::FunctionError),
    }
}

/// Interprets an answer for `method_arn`.
///
/// # Errors
/// [`AuthError::Unauthorized`] or [`AuthError::AuthorizerFailed`].
pub(super) fn parse(body: &[u8], method_arn: &str) -> Result<Decision, AuthError> {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(malformed("the result is not a JSON object"));
    };
    if answer.contains_key("errorMessage") && !answer.contains_key("principalId") {
        return Err(function_error(body));
    }
    let mut context = scalar_context(answer.get("context"))?;
    if let Some(allowed) = answer.get("isAuthorized") {
        let Value::Bool(allowed) = allowed else {
            return Err(malformed("isAuthorized is not a boolean"));
        };
        if !allowed {
            return Ok(Decision::Deny);
        }
        if let Some(principal) = answer.get("principalId").and_then(scalar_text) {
            context.insert("principalId".into(), Value::String(principal));
        }
        return Ok(Decision::Allow(Authorized {
            context,
            usage_identifier_key: None,
        }));
    }
    let principal = answer
        .get("principalId")
        .and_then(scalar_text)
        .ok_or_else(|| malformed("principalId is missing"))?;
    let document = answer
        .get("policyDocument")
        .ok_or_else(|| malformed("policyDocument is missing"))?;
    if !allows(document, method_arn)? {
        return Ok(Decision::Deny);
    }
    let usage_identifier_key = match answer.get("usageIdentifierKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err(malformed("usageIdentifierKey is not a string")),
    };
    context.insert("principalId".into(), Value::String(principal));
    Ok(Decision::Allow(Authorized {
        context,
        usage_identifier_key,
    }))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `context` values must be strings, numbers or booleans; a `null` is passed on as `null` (AWS
/// passes it through too).
fn scalar_context(context: Option<&Value>) -> Result<Map<String, Value>, AuthError> {
    match context {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            if map.values().all(|v| {
                matches!(
                    v,
                    Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
                )
            }) {
                Ok(map.clone())
            } else {
                Err(malformed(
                    "context values must be strings, numbers or booleans",
                ))
            }
        }
        Some(_) => Err(malformed("context is not an object")),
    }
}

/// Evaluates the policy for `execute-api:Invoke` on `method_arn` as IAM does (see
/// [`crate::iam::policy`]): an explicit Deny wins, then an Allow; nothing covering it denies.
/// `NotAction` and `NotResource` are evaluated; a `Condition` cannot be, so a conditional Allow
/// does not allow and a conditional Deny denies. `Effect` is read without regard to case, as
/// authorizers write `allow` too.
fn allows(document: &Value, method_arn: &str) -> Result<bool, AuthError> {
    let mut document = PolicyDocument::deserialize(document)
        .map_err(|_| malformed("policyDocument is not an IAM policy document"))?;
    for statement in document.statement.as_mut_slice() {
        for canonical in ["Allow", "Deny"] {
            if statement.effect.eq_ignore_ascii_case(canonical) {
                statement.effect = canonical.to_string();
            }
        }
    }
    let complete = document.statement.as_slice().iter().all(|s| {
        s.action.is_some() != s.not_action.is_some()
            && s.resource.is_some() != s.not_resource.is_some()
    });
    if !complete {
        return Err(malformed(
            "a policy statement needs one of Action/NotAction and one of Resource/NotResource",
        ));
    }
    Ok(Policy::new(&document).evaluate("execute-api:Invoke", method_arn) == PolicyDecision::Allow)
}

#[cfg(test)]
mod tests;

/// Turns numbers and booleans into their text (`123` → `"123"`, `true` → `"true"`), as AWS
/// delivers authorizer context values to Lambda proxy integrations; strings and `null` stay.
pub(super) fn stringify_context(context: &mut Map<String, Value>) {
    for value in context.values_mut() {
        match value {
            Value::Number(n) => *value = Value::String(n.to_string()),
            Value::Bool(b) => *value = Value::String(b.to_string()),
            _ => {}
        }
    }
}
