//! Route selection: the `$request.body.<path>` expression grammar of Amazon API Gateway and the
//! lookup of a route key with its `$default` fallback.

use std::fmt::Write as _;

use serde_json::Value;

/// A parsed route selection expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectionExpression {
    parts: Vec<Piece<BodyPath>>,
    has_variables: bool,
}

/// One piece of a selection expression: static text or a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<V> {
    /// Static text (`\$` already turned into `$`).
    Literal(String),
    /// A `$name` or `${name}` variable, as the caller's reader parsed it.
    Variable(V),
}

/// A JSON path into a message body (`request.body.a[0]['b']` without its prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyPath(Vec<PathStep>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Why an expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExpressionError {
    /// `${` without a closing `}`.
    #[error("unclosed `${{` at offset {0}")]
    Unclosed(usize),
    /// A variable other than `request.body...`.
    #[error("unsupported variable `{0}`: WebSocket route selection reads `$request.body.<path>`")]
    UnsupportedVariable(String),
    /// A variable this kind of expression does not know (`wants` names the ones it does).
    #[error("unsupported variable `{name}`: {wants}")]
    Unsupported {
        /// The variable.
        name: String,
        /// What the expression reads.
        wants: &'static str,
    },
    /// A malformed JSON path after `request.body`.
    #[error("invalid path in `{0}`")]
    InvalidPath(String),
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '\'' | '"' | '-')
}

impl SelectionExpression {
    /// Parses an expression such as `$request.body.action` or `${request.body.a}/${request.body.b}`.
    ///
    /// # Errors
    /// An [`ExpressionError`] describing the problem.
    pub(crate) fn parse(text: &str) -> Result<Self, ExpressionError> {
        let parts = pieces(text, body_path)?;
        let has_variables = parts.iter().any(|p| matches!(p, Piece::Variable(_)));
        Ok(Self {
            parts,
            has_variables,
        })
    }

    /// Evaluates against a message body. `None` means the body is needed but is not JSON, so the
    /// message goes to `$default`.
    pub(crate) fn evaluate(&self, body: &[u8]) -> Option<String> {
        let json: Option<Value> = if self.has_variables {
            Some(serde_json::from_slice(body).ok()?)
        } else {
            None
        };
        Some(self.render(json.as_ref()))
    }

    /// Evaluates against a body already parsed (request models parse it once for both the
    /// model selection and the schema).
    pub(crate) fn evaluate_json(&self, json: &Value) -> String {
        self.render(Some(json))
    }

    fn render(&self, json: Option<&Value>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Piece::Literal(text) => out.push_str(text),
                Piece::Variable(path) => {
                    if let Some(value) = json.and_then(|j| path.find(j)) {
                        stringify(value, &mut out);
                    }
                }
            }
        }
        out
    }
}

/// Splits `text` into static text and `$name` / `${name}` variables, each read by `variable`;
/// `\$` is a literal `$`.
///
/// # Errors
/// An unclosed `${`, or what `variable` refuses.
pub(crate) fn pieces<V>(
    text: &str,
    mut variable: impl FnMut(&str) -> Result<V, ExpressionError>,
) -> Result<Vec<Piece<V>>, ExpressionError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some((_, '$'))) => {
                chars.next();
                literal.push('$');
            }
            '$' => {
                let name = if matches!(chars.peek(), Some((_, '{'))) {
                    chars.next();
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(ExpressionError::Unclosed(offset));
                    }
                    name
                } else {
                    let mut name = String::new();
                    while let Some((_, c)) = chars.peek() {
                        // Inside an unbraced variable `-` ends the name (as in `$a-$b`).
                        if !is_var_char(*c) || *c == '-' {
                            break;
                        }
                        name.push(*c);
                        chars.next();
                    }
                    name
                };
                if !literal.is_empty() {
                    parts.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Piece::Variable(variable(&name)?));
            }
            other => literal.push(other),
        }
    }
    if !literal.is_empty() {
        parts.push(Piece::Literal(literal));
    }
    Ok(parts)
}

/// Reads `request.body<path>` (the only variable of route selection).
///
/// # Errors
/// Any other variable, or a malformed path.
pub(crate) fn body_path(name: &str) -> Result<BodyPath, ExpressionError> {
    let rest = name
        .strip_prefix("request.body")
        .ok_or_else(|| ExpressionError::UnsupportedVariable(name.to_string()))?;
    let mut steps = Vec::new();
    let mut rest = rest;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(ExpressionError::InvalidPath(name.to_string()));
            }
            steps.push(PathStep::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| ExpressionError::InvalidPath(name.to_string()))?;
            let inner = &after[..end];
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match (quoted, inner.parse::<usize>()) {
                (Some(key), _) => steps.push(PathStep::Key(key.to_string())),
                (None, Ok(index)) => steps.push(PathStep::Index(index)),
                _ => return Err(ExpressionError::InvalidPath(name.to_string())),
            }
            rest = &after[end + 1..];
        } else {
            return Err(ExpressionError::InvalidPath(name.to_string()));
        }
    }
    Ok(BodyPath(steps))
}

impl BodyPath {
    /// The value at this path in `value`, if any.
    pub(crate) fn find<'a>(&self, mut value: &'a Value) -> Option<&'a Value> {
        for step in &self.0 {
            value = match step {
                PathStep::Key(key) => value.as_object()?.get(key)?,
                PathStep::Index(index) => value.as_array()?.get(*index)?,
            };
        }
        Some(value)
    }
}

/// Stringifies as AWS does: strings as they are, arrays as `[a, b]`, null as nothing.
pub(crate) fn stringify(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                stringify(item, out);
            }
            out.push(']');
        }
        Value::Object(_) => out.push_str(&value.to_string()),
    }
}

/// The outcome of route selection for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selected<'a> {
    /// A route key that exists (custom, or `$default` as fallback).
    Route(&'a str),
    /// No route matched and there is no `$default`.
    NoRoute,
}

/// Route keys a message may not select: every key starting with `$` except `$default`
/// (`$connect`, `$disconnect`, the presence routes `$join`/`$leave`, and any future one). Such a
/// message goes to `$default` like any other unmatched key.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with('$') && key != "$default"
}

/// Picks the route for a message: exact match of a key that is not reserved (see
/// [`is_reserved`]), else `$default`, else none.
pub(crate) fn select<'a>(
    expression: &SelectionExpression,
    body: &[u8],
    has_route: impl Fn(&str) -> Option<&'a str>,
) -> Selected<'a> {
    let exact = expression.evaluate(body).and_then(|key| {
        if is_reserved(&key) {
            None
        } else {
            has_route(&key)
        }
    });
    match exact.or_else(|| has_route("$default")) {
        Some(key) => Selected::Route(key),
        None => Selected::NoRoute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"service":"chat","action":"join","data":{"room":"room1234"}}"#;

    fn eval(expr: &str, body: &str) -> Option<String> {
        SelectionExpression::parse(expr)
            .expect("parses")
            .evaluate(body.as_bytes())
    }

    #[test]
    fn documented_table() {
        assert_eq!(eval("$request.body.action", BODY).as_deref(), Some("join"));
        assert_eq!(
            eval("${request.body.action}", BODY).as_deref(),
            Some("join")
        );
        assert_eq!(
            eval("${request.body.service}/${request.body.action}", BODY).as_deref(),
            Some("chat/join")
        );
        assert_eq!(
            eval("${request.body.action}-${request.body.invalidPath}", BODY).as_deref(),
            Some("join-")
        );
        assert_eq!(eval("action", BODY).as_deref(), Some("action"));
        assert_eq!(eval("\\$default", BODY).as_deref(), Some("$default"));
    }

    #[test]
    fn nested_paths_indexes_and_stringification() {
        assert_eq!(
            eval("$request.body.data.room", BODY).as_deref(),
            Some("room1234")
        );
        let body = r#"{"a":[1,"x",true],"n":3.5,"b":false,"o":{"k":1},"z":null}"#;
        assert_eq!(
            eval("$request.body.a", body).as_deref(),
            Some("[1, x, true]")
        );
        assert_eq!(eval("$request.body.a[1]", body).as_deref(), Some("x"));
        assert_eq!(eval("$request.body['n']", body).as_deref(), Some("3.5"));
        assert_eq!(eval("$request.body.b", body).as_deref(), Some("false"));
        assert_eq!(eval("$request.body.o", body).as_deref(), Some(r#"{"k":1}"#));
        assert_eq!(eval("$request.body.z", body).as_deref(), Some(""));
        assert_eq!(eval("$request.body.a[9]", body).as_deref(), Some(""));
    }

    #[test]
    fn unbraced_variables_mix_with_static_text() {
        assert_eq!(
            eval("v1-$request.body.action", BODY).as_deref(),
            Some("v1-join")
        );
        assert_eq!(
            eval("$request.body.service-$request.body.action", BODY).as_deref(),
            Some("chat-join")
        );
    }

    #[test]
    fn non_json_needs_default() {
        assert_eq!(eval("$request.body.action", "hello"), None);
        assert_eq!(eval("$request.body.action", ""), None);
        assert_eq!(eval("static", "not json").as_deref(), Some("static"));
        // JSON that is not an object evaluates to "" (missing path).
        assert_eq!(eval("$request.body.action", "[1,2]").as_deref(), Some(""));
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            SelectionExpression::parse("${request.body.a"),
            Err(ExpressionError::Unclosed(0))
        ));
        assert!(matches!(
            SelectionExpression::parse("$request.header.x"),
            Err(ExpressionError::UnsupportedVariable(_))
        ));
        assert!(SelectionExpression::parse("$request.body..a").is_err());
        assert!(SelectionExpression::parse("$request.body[x]").is_err());
    }

    #[test]
    fn selection_falls_back_to_default_then_forbidden() {
        let routes = ["sendmessage", "$default"];
        let with_default = |k: &str| routes.iter().copied().find(|r| *r == k);
        let without_default = |k: &str| routes[..1].iter().copied().find(|r| *r == k);
        let expr = SelectionExpression::parse("$request.body.action").expect("parses");
        let msg = br#"{"action":"sendmessage"}"#;
        assert_eq!(
            select(&expr, msg, with_default),
            Selected::Route("sendmessage")
        );
        assert_eq!(
            select(&expr, br#"{"action":"other"}"#, with_default),
            Selected::Route("$default")
        );
        assert_eq!(
            select(&expr, b"not json", with_default),
            Selected::Route("$default")
        );
        assert_eq!(
            select(&expr, b"not json", without_default),
            Selected::NoRoute
        );
        assert_eq!(
            select(&expr, br#"{"action":"other"}"#, without_default),
            Selected::NoRoute
        );
        // Lifecycle routes are never selected by a message.
        let lifecycle = ["$connect"];
        let f = |k: &str| lifecycle.iter().copied().find(|r| *r == k);
        assert_eq!(
            select(&expr, br#"{"action":"$connect"}"#, f),
            Selected::NoRoute
        );
        // Reserved keys are never selected by a message: `$default` instead, else no route.
        let reserved = [
            "$connect",
            "$disconnect",
            "$join",
            "$leave",
            "$custom",
            "$default",
        ];
        let with = |k: &str| reserved.iter().copied().find(|r| *r == k);
        let without = |k: &str| reserved[..5].iter().copied().find(|r| *r == k);
        for key in ["$connect", "$disconnect", "$join", "$leave", "$custom", "$"] {
            let msg = format!(r#"{{"action":"{key}"}}"#);
            assert_eq!(
                select(&expr, msg.as_bytes(), with),
                Selected::Route("$default"),
                "{key}"
            );
            assert_eq!(
                select(&expr, msg.as_bytes(), without),
                Selected::NoRoute,
                "{key}"
            );
        }
        assert_eq!(
            select(&expr, br#"{"action":"$default"}"#, with),
            Selected::Route("$default")
        );
        assert!(is_reserved("$join") && is_reserved("$x") && is_reserved("$"));
        assert!(!is_reserved("$default") && !is_reserved("join") && !is_reserved(""));
        // An exact match is exact: case matters.
        assert_eq!(
            select(&expr, br#"{"action":"SendMessage"}"#, without_default),
            Selected::NoRoute
        );
    }
}
