//! Template selection expressions of non-proxy integrations: `${request.body.<path>}` on the
//! request side; on the response side also `${integration.response.statuscode}`,
//! `${integration.response.header.<name>}` and `${integration.response.multivalueheader.<name>}`;
//! static text anywhere (`\$default`).

use serde_json::Value;

use crate::routing::{BodyPath, ExpressionError, Piece, body_path, pieces, stringify};

/// Which expression: a request template's or a response template's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `Integration.TemplateSelectionExpression`.
    Request,
    /// `IntegrationResponse.TemplateSelectionExpression`.
    Response,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Body(BodyPath),
    Status,
    Header(String),
    MultiHeader(String),
}

/// A parsed template selection expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expression {
    parts: Vec<Piece<Var>>,
    reads_body: bool,
}

/// What an expression is evaluated against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    /// The client's message (`request.body`).
    pub body: &'a [u8],
    /// The integration's status (response side).
    pub status: Option<u16>,
    /// The integration's answer headers, names lowercase (response side).
    pub headers: &'a [(String, String)],
}

impl Expression {
    /// Parses `text` for `side`. `$default` alone (unescaped, as people write it) is the static
    /// key `$default`, as `\$default` is.
    ///
    /// # Errors
    /// An unclosed `${`, a malformed path, or a variable `side` does not read.
    pub(crate) fn parse(text: &str, side: Side) -> Result<Self, ExpressionError> {
        if text == "$default" {
            return Ok(Self {
                parts: vec![Piece::Literal(text.to_string())],
                reads_body: false,
            });
        }
        let parts = pieces(text, |name| variable(name, side))?;
        let reads_body = (parts.iter()).any(|p| matches!(p, Piece::Variable(Var::Body(_))));
        Ok(Self { parts, reads_body })
    }

    /// The selection key. A body that is not JSON reads as nothing, so the key usually falls to
    /// `$default`.
    pub(crate) fn evaluate(&self, subject: &Subject<'_>) -> String {
        let json: Option<Value> = if self.reads_body {
            serde_json::from_slice(subject.body).ok()
        } else {
            None
        };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Piece::Literal(text) => out.push_str(text),
                Piece::Variable(Var::Body(path)) => {
                    if let Some(value) = json.as_ref().and_then(|j| path.find(j)) {
                        stringify(value, &mut out);
                    }
                }
                Piece::Variable(Var::Status) => {
                    if let Some(status) = subject.status {
                        out.push_str(&status.to_string());
                    }
                }
                Piece::Variable(Var::Header(name)) => {
                    if let Some((_, v)) = subject.headers.iter().find(|(k, _)| k == name) {
                        out.push_str(v);
                    }
                }
                Piece::Variable(Var::MultiHeader(name)) => {
                    let values: Vec<&str> = (subject.headers.iter())
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                        .collect();
                    out.push_str(&values.join(","));
                }
            }
        }
        out
    }
}

fn variable(name: &str, side: Side) -> Result<Var, ExpressionError> {
    if name.starts_with("request.body") {
        return body_path(name).map(Var::Body);
    }
    if side == Side::Response {
        let lower = name.to_ascii_lowercase();
        if lower == "integration.response.statuscode" {
            return Ok(Var::Status);
        }
        if let Some(header) = lower.strip_prefix("integration.response.header.") {
            return Ok(Var::Header(header.to_string()));
        }
        if let Some(header) = lower.strip_prefix("integration.response.multivalueheader.") {
            return Ok(Var::MultiHeader(header.to_string()));
        }
    }
    Err(ExpressionError::Unsupported {
        name: name.to_string(),
        wants: match side {
            Side::Request => {
                "a request template selection expression reads `${request.body.<path>}` or static text"
            }
            Side::Response => {
                "a response template selection expression reads `${request.body.<path>}`, `${integration.response.statuscode}`, `${integration.response.header.<name>}`, `${integration.response.multivalueheader.<name>}` or static text"
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(body: &'a str, headers: &'a [(String, String)]) -> Subject<'a> {
        Subject {
            body: body.as_bytes(),
            status: Some(404),
            headers,
        }
    }

    #[test]
    fn static_and_escaped_defaults() {
        for text in ["$default", "\\$default"] {
            let e = Expression::parse(text, Side::Request).expect("parses");
            assert_eq!(e.evaluate(&subject("{}", &[])), "$default");
        }
    }

    #[test]
    fn request_side_reads_the_body_only() {
        let e = Expression::parse("${request.body.action}", Side::Request).expect("parses");
        assert_eq!(e.evaluate(&subject(r#"{"action":"join"}"#, &[])), "join");
        assert_eq!(e.evaluate(&subject("not json", &[])), "");
        let err = Expression::parse("${integration.response.statuscode}", Side::Request)
            .expect_err("request side");
        assert!(
            err.to_string().contains("request template selection"),
            "{err}"
        );
    }

    #[test]
    fn response_side_reads_status_and_headers() {
        let headers = vec![
            ("x-kind".to_string(), "a".to_string()),
            ("x-kind".to_string(), "b".to_string()),
        ];
        let s = subject("{}", &headers);
        let status = Expression::parse("${integration.response.statuscode}", Side::Response)
            .expect("parses");
        assert_eq!(status.evaluate(&s), "404");
        let header = Expression::parse("${integration.response.header.X-Kind}", Side::Response)
            .expect("parses");
        assert_eq!(header.evaluate(&s), "a");
        let multi = Expression::parse(
            "k-${integration.response.multivalueheader.x-kind}",
            Side::Response,
        )
        .expect("parses");
        assert_eq!(multi.evaluate(&s), "k-a,b");
    }
}
