//! Access log formats: a template compiled once at start into literal text and `$context.*`
//! variables, and the rendering of one line from a [`Record`] into a reused buffer.

use std::fmt::Write as _;

use super::record::Record;

/// A compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    parts: Vec<Part>,
}

/// One piece of a format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Text copied as is.
    Literal(Box<str>),
    /// A `$context.*` variable.
    Var(Var),
}

/// Why a format does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// A `$context.` variable AWS does not document for WebSocket APIs.
    #[error("unknown variable `$context.{0}`")]
    UnknownVariable(String),
    /// The format has no variable at all.
    #[error("the format names no `$context` variable")]
    NoVariable,
    /// The format holds a line break (one record is one line).
    #[error("the format must be one line")]
    LineBreak,
}

/// The `$context` variables AWS documents for WebSocket access logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    ApiId,
    ConnectedAt,
    ConnectionId,
    DomainName,
    EventType,
    ExtendedRequestId,
    RequestId,
    MessageId,
    RouteKey,
    Stage,
    Status,
    RequestTime,
    RequestTimeEpoch,
    SourceIp,
    UserAgent,
    ApiKeyId,
    AccountId,
    Caller,
    User,
    UserArn,
    IntegrationLatency,
    IntegrationStatus,
    IntegrationError,
    ErrorMessage,
    ErrorMessageString,
    ErrorResponseType,
    ValidationErrorString,
    PrincipalId,
    /// `authorizer.<property>`: a key of the authorizer's context.
    AuthorizerProperty(Box<str>),
    /// A documented variable the gateway has no value for (renders `-`), or one it never
    /// renders (`identity.apiKey`: a credential).
    Unset,
}

impl Var {
    /// The variable named `name` (what follows `$context.`).
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "apiId" => Self::ApiId,
            "connectedAt" => Self::ConnectedAt,
            "connectionId" => Self::ConnectionId,
            "domainName" => Self::DomainName,
            "eventType" => Self::EventType,
            "extendedRequestId" => Self::ExtendedRequestId,
            "requestId" => Self::RequestId,
            "messageId" => Self::MessageId,
            "routeKey" => Self::RouteKey,
            "stage" => Self::Stage,
            "status" => Self::Status,
            "requestTime" => Self::RequestTime,
            "requestTimeEpoch" => Self::RequestTimeEpoch,
            "identity.sourceIp" => Self::SourceIp,
            "identity.userAgent" => Self::UserAgent,
            "identity.apiKeyId" => Self::ApiKeyId,
            "identity.accountId" => Self::AccountId,
            "identity.caller" => Self::Caller,
            "identity.user" => Self::User,
            "identity.userArn" => Self::UserArn,
            "integrationLatency" | "integration.latency" => Self::IntegrationLatency,
            "integration.status" | "integration.integrationStatus" => Self::IntegrationStatus,
            "integration.error" => Self::IntegrationError,
            "error.message" => Self::ErrorMessage,
            "error.messageString" => Self::ErrorMessageString,
            "error.responseType" => Self::ErrorResponseType,
            "error.validationErrorString" => Self::ValidationErrorString,
            "authorizer.principalId" => Self::PrincipalId,
            "identity.apiKey"
            | "identity.cognitoAuthenticationProvider"
            | "identity.cognitoAuthenticationType"
            | "identity.cognitoIdentityId"
            | "identity.cognitoIdentityPoolId"
            | "identity.principalOrgId"
            | "integration.requestId"
            | "authorize.error"
            | "authorize.latency"
            | "authorize.status"
            | "authorizer.error"
            | "authorizer.integrationLatency"
            | "authorizer.integrationStatus"
            | "authorizer.latency"
            | "authorizer.requestId"
            | "authorizer.status"
            | "authenticate.error"
            | "authenticate.latency"
            | "authenticate.status"
            | "waf.error"
            | "waf.latency"
            | "waf.status" => Self::Unset,
            _ => match name.strip_prefix("authorizer.") {
                Some(key) if !key.is_empty() && !key.contains('.') => {
                    Self::AuthorizerProperty(key.into())
                }
                _ => return None,
            },
        })
    }
}

const PREFIX: &str = "$context.";

impl Format {
    /// Compiles `template`: `$context.` followed by letters, digits, `_` and inner dots names a
    /// variable; everything else is literal.
    ///
    /// # Errors
    /// An unknown variable (named), a format without variables, or a line break.
    pub(crate) fn compile(template: &str) -> Result<Self, FormatError> {
        if template.contains(['\n', '\r']) {
            return Err(FormatError::LineBreak);
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(at) = rest.find(PREFIX) {
            let after = &rest[at + PREFIX.len()..];
            let mut len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(after.len());
            // A dot ending the name is text (`$context.status.` ends a sentence).
            while len > 0 && after.as_bytes()[len - 1] == b'.' {
                len -= 1;
            }
            let name = &after[..len];
            let var = Var::parse(name).ok_or_else(|| FormatError::UnknownVariable(name.into()))?;
            if at > 0 {
                parts.push(Part::Literal(rest[..at].into()));
            }
            parts.push(Part::Var(var));
            rest = &after[len..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.into()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Var(_))) {
            return Err(FormatError::NoVariable);
        }
        Ok(Self { parts })
    }

    /// Renders `record` into `out` (cleared first), without the line break. Values are escaped
    /// as inside a JSON string (`"`, `\` and control characters), so a JSON template stays
    /// valid and no value can forge a line; a missing value is `-`.
    pub(crate) fn render(&self, record: &Record<'_>, out: &mut String) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => render_var(var, record, out),
            }
        }
    }
}

fn render_var(var: &Var, r: &Record<'_>, out: &mut String) {
    let meta = r.meta;
    let iam = meta.and_then(|m| m.iam.as_deref());
    let text = |out: &mut String, value: Option<&str>| match value {
        Some(value) if !value.is_empty() => escape_into(out, value),
        _ => out.push('-'),
    };
    let number = |out: &mut String, value: Option<u64>| match value {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push('-'),
    };
    match var {
        Var::ApiId => text(out, r.api_id),
        Var::ConnectedAt => number(
            out,
            meta.and_then(|m| u64::try_from(m.connected_at_ms).ok()),
        ),
        Var::ConnectionId => text(out, r.connection_id),
        Var::DomainName => text(out, meta.map(|m| m.domain_name.as_str())),
        Var::EventType => out.push_str(r.event_type.as_str()),
        Var::ExtendedRequestId | Var::RequestId => text(out, Some(r.request_id)),
        Var::MessageId => text(out, r.message_id),
        Var::RouteKey => text(out, r.route_key),
        Var::Stage => text(out, Some(r.stage)),
        Var::Status => number(out, r.status.map(u64::from)),
        Var::RequestTime => match chrono::DateTime::from_timestamp_millis(r.request_time_ms) {
            // CLF's time, as AWS writes `requestTime`: 06/Dec/2026:17:29:32 +0000.
            Some(at) => {
                let _ = write!(out, "{}", at.format("%d/%b/%Y:%H:%M:%S %z"));
            }
            None => out.push('-'),
        },
        Var::RequestTimeEpoch => number(out, u64::try_from(r.request_time_ms).ok()),
        Var::SourceIp => text(out, r.source_ip),
        Var::UserAgent => text(out, r.user_agent),
        Var::ApiKeyId => text(out, meta.and_then(|m| m.api_key_id.as_deref())),
        Var::AccountId => text(out, iam.map(|i| i.account_id.as_str())),
        Var::Caller => text(out, iam.map(|i| i.caller.as_str())),
        Var::User => text(out, iam.map(|i| i.user.as_str())),
        Var::UserArn => text(out, iam.map(|i| i.user_arn.as_str())),
        Var::IntegrationLatency => number(out, r.integration.map(|i| i.latency_ms)),
        Var::IntegrationStatus => number(out, r.integration.and_then(|i| i.status).map(u64::from)),
        Var::IntegrationError => text(out, r.integration.and_then(|i| i.error)),
        Var::ErrorMessage | Var::ErrorMessageString => text(out, r.error_message),
        Var::ErrorResponseType => text(out, r.error_type),
        Var::ValidationErrorString => text(out, r.validation_error),
        Var::PrincipalId => authorizer_value(out, r, "principalId"),
        Var::AuthorizerProperty(key) => authorizer_value(out, r, key),
        Var::Unset => out.push('-'),
    }
}

/// An authorizer context value, stringified as AWS does (`1`, `true`; `-` when absent or null).
fn authorizer_value(out: &mut String, r: &Record<'_>, key: &str) {
    let value = r
        .meta
        .and_then(|m| m.authorizer.as_ref())
        .and_then(|map| map.get(key));
    match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => escape_into(out, s),
        Some(serde_json::Value::Number(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(serde_json::Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(other @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => {
            escape_into(out, &other.to_string());
        }
        _ => out.push('-'),
    }
}

/// Appends `value` escaped as the inside of a JSON string.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::record::{EventType, IntegrationOutcome};

    fn record() -> Record<'static> {
        Record {
            api_id: Some("chat"),
            stage: "prod",
            event_type: EventType::Message,
            connection_id: Some("abc="),
            route_key: Some("sendmessage"),
            request_id: "req1",
            message_id: None,
            request_time_ms: 1_765_000_000_123,
            status: Some(200),
            source_ip: Some("10.0.0.1"),
            user_agent: Some("ua \"quoted\"\n"),
            meta: None,
            integration: Some(IntegrationOutcome {
                latency_ms: 12,
                status: Some(201),
                error: None,
            }),
            error_message: None,
            error_type: None,
            validation_error: None,
        }
    }

    fn render(template: &str) -> String {
        let mut out = String::new();
        Format::compile(template)
            .expect("compiles")
            .render(&record(), &mut out);
        out
    }

    #[test]
    fn variables_and_literals_render() {
        assert_eq!(
            render(
                "$context.requestId $context.routeKey [$context.status] $context.integrationLatency"
            ),
            "req1 sendmessage [200] 12"
        );
        assert_eq!(render("x$context.stage."), "xprod.");
        assert_eq!(
            render("$context.integration.status/$context.integration.error"),
            "201/-"
        );
    }

    #[test]
    fn missing_values_render_as_a_dash_and_values_are_escaped() {
        assert_eq!(render("$context.messageId"), "-");
        assert_eq!(render("$context.authorizer.principalId"), "-");
        assert_eq!(render("$context.identity.apiKey"), "-");
        assert_eq!(render("$context.identity.userAgent"), r#"ua \"quoted\"\n"#);
    }

    #[test]
    fn the_aws_json_and_clf_examples_compile() {
        let json = r#"{ "requestId":"$context.requestId", "ip": "$context.identity.sourceIp", "caller":"$context.identity.caller", "user":"$context.identity.user","requestTime":"$context.requestTime", "eventType":"$context.eventType","routeKey":"$context.routeKey", "status":"$context.status","connectionId":"$context.connectionId" }"#;
        let line = render(json);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["eventType"], "MESSAGE");
        assert_eq!(parsed["requestTime"], "06/Dec/2025:05:46:40 +0000");
        let clf = r#"$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.eventType $context.routeKey $context.connectionId" $context.status $context.requestId"#;
        assert_eq!(
            render(clf),
            r#"10.0.0.1 - - [06/Dec/2025:05:46:40 +0000] "MESSAGE sendmessage abc=" 200 req1"#
        );
    }

    #[test]
    fn unknown_variables_and_bad_formats_are_refused() {
        assert_eq!(
            Format::compile("$context.requestId $context.nope"),
            Err(FormatError::UnknownVariable("nope".into()))
        );
        assert_eq!(
            Format::compile("$context.identity.password"),
            Err(FormatError::UnknownVariable("identity.password".into()))
        );
        assert_eq!(
            Format::compile("$context.authorizer.a.b"),
            Err(FormatError::UnknownVariable("authorizer.a.b".into()))
        );
        assert_eq!(Format::compile("plain"), Err(FormatError::NoVariable));
        assert_eq!(
            Format::compile("$context.status\n"),
            Err(FormatError::LineBreak)
        );
        assert!(Format::compile("$context.authorizer.tenant").is_ok());
    }
}
