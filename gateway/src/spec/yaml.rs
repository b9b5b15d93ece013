//! A YAML reader for CloudFormation templates: every node keeps the line it starts on, and the
//! short-form intrinsic tags (`!Ref`, `!Sub`, `!GetAtt`, `!Join`, ...) become their long forms
//! (`{Ref: ...}`, `{Fn::Sub: ...}`), as CloudFormation reads them. Built on the event parser
//! serde-saphyr uses (`granit_parser`), which reports tags and positions.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Tag};

/// One node of the template and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    /// The node's value.
    pub(super) value: Value,
    /// Line of the node in the template.
    pub(super) line: usize,
}

/// A node's value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (any case).
    Bool(bool),
    /// A number; kept as written.
    Number(serde_json::Number),
    /// Any other scalar.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order written (keys are scalars).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value under `key` of a mapping.
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The mapping's entries (empty for other nodes).
    pub(super) fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The scalar text of a string node.
    pub(super) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The node as JSON, intrinsic functions left as their long-form mappings.
    pub(super) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// Why a template could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub(super) struct YamlError {
    /// Line of the fault.
    pub(super) line: usize,
    /// What is wrong.
    pub(super) message: String,
}

/// The short-form tags CloudFormation knows, by the name after `!`.
const SHORT_FORMS: [&str; 17] = [
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "ToJsonString",
];

/// Reads the first document of `text`.
///
/// # Errors
/// A [`YamlError`] with the line of a syntax error, an unknown tag or a non-scalar key.
pub(super) fn parse(text: &str) -> Result<Node, YamlError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        line: 1,
    };
    loop {
        match reader.next()? {
            Some((Event::StreamStart | Event::DocumentStart(..), _)) => {}
            Some((Event::StreamEnd, _)) | None => {
                return Ok(Node {
                    value: Value::Null,
                    line: reader.line,
                });
            }
            Some((event, line)) => return reader.node(event, line),
        }
    }
}

struct Reader<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    line: usize,
}

impl<'a> Reader<'a> {
    /// The next event that carries data (comments and anchor metadata skipped).
    fn next(&mut self) -> Result<Option<(Event<'a>, usize)>, YamlError> {
        loop {
            match self.parser.next_event() {
                None => return Ok(None),
                Some(Err(error)) => {
                    return Err(YamlError {
                        line: error.marker().line(),
                        message: error.info().to_string(),
                    });
                }
                Some(Ok((event, span))) => {
                    self.line = span.start.line();
                    match event {
                        Event::Anchor(..) => {}
                        #[allow(unreachable_patterns)]
                        Event::Scalar(..)
                        | Event::SequenceStart(..)
                        | Event::SequenceEnd
                        | Event::MappingStart(..)
                        | Event::MappingEnd
                        | Event::Alias(..)
                        | Event::UnresolvedAlias(..)
                        | Event::StreamStart
                        | Event::StreamEnd
                        | Event::DocumentStart(..)
                        | Event::DocumentEnd => return Ok(Some((event, self.line))),
                        _ => {}
                    }
                }
            }
        }
    }

    fn expect_next(&mut self) -> Result<(Event<'a>, usize), YamlError> {
        self.next()?.ok_or_else(|| YamlError {
            line: self.line,
            message: "unexpected end of the document".into(),
        })
    }

    fn node(&mut self, event: Event<'a>, line: usize) -> Result<Node, YamlError> {
        let (node, anchor, tag) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = if tag.is_some() || style != ScalarStyle::Plain {
                    Value::String(text.into_owned())
                } else {
                    plain(&text)
                };
                (Node { value, line }, anchor, tag.map(|t| t.into_owned()))
            }
            Event::SequenceStart(_, anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    match self.expect_next()? {
                        (Event::SequenceEnd, _) => break,
                        (event, line) => items.push(self.node(event, line)?),
                    }
                }
                let value = Value::Seq(items);
                (Node { value, line }, anchor, tag.map(|t| t.into_owned()))
            }
            Event::MappingStart(_, anchor, tag) => {
                let mut entries: Vec<(String, Node)> = Vec::new();
                loop {
                    let (key, key_line) = match self.expect_next()? {
                        (Event::MappingEnd, _) => break,
                        (event, line) => (self.node(event, line)?, line),
                    };
                    let key = match key.value {
                        Value::String(s) => s,
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Null => "null".into(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(YamlError {
                                line: key_line,
                                message: "mapping keys must be scalars".into(),
                            });
                        }
                    };
                    let (event, line) = self.expect_next()?;
                    // A value is placed on its key's line (a block value starts below it).
                    let mut value = self.node(event, line)?;
                    value.line = key_line;
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(YamlError {
                            line: key_line,
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    entries.push((key, value));
                }
                let value = Value::Map(entries);
                (Node { value, line }, anchor, tag.map(|t| t.into_owned()))
            }
            Event::Alias(id) => {
                return self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    line,
                    message: "alias to an unknown anchor".into(),
                });
            }
            Event::UnresolvedAlias(name) => {
                return Err(YamlError {
                    line,
                    message: format!("alias *{name} has no anchor"),
                });
            }
            _ => {
                return Err(YamlError {
                    line,
                    message: "unexpected YAML event".into(),
                });
            }
        };
        let node = match tag {
            Some(tag) => tagged(&tag, node)?,
            None => node,
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// A tagged node: CloudFormation's short forms become their long forms; the core tags
/// (`!!str`, `!!int`, ...) keep the node.
fn tagged(tag: &Tag, node: Node) -> Result<Node, YamlError> {
    let line = node.line;
    if tag.handle() == "tag:yaml.org,2002:" {
        return Ok(node);
    }
    let name = tag.suffix();
    let key = match name {
        "Ref" => "Ref".to_string(),
        "Condition" => "Condition".to_string(),
        _ if tag.handle() == "!" && SHORT_FORMS.contains(&name) => format!("Fn::{name}"),
        _ => {
            return Err(YamlError {
                line,
                message: format!("unknown tag !{name}"),
            });
        }
    };
    Ok(Node {
        value: Value::Map(vec![(key, node)]),
        line,
    })
}

/// A plain scalar as the YAML core schema resolves it (CloudFormation also reads `True`).
fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if numeric
        && let Ok(number) = serde_json::from_str::<serde_json::Number>(text.trim_start_matches('+'))
    {
        return Value::Number(number);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_become_long_forms_with_lines() {
        let doc =
            parse("a: !Ref B\nc:\n  - !GetAtt D.Arn\n  - !Join ['/', [x, !Ref E]]\nn: 5\ns: '5'\n")
                .expect("parses");
        assert_eq!(
            doc.get("a").expect("a").to_json(),
            serde_json::json!({"Ref": "B"})
        );
        let c = doc.get("c").expect("c");
        // A value is on its key's line; sequence items on their own.
        assert_eq!(c.line, 2);
        let Value::Seq(items) = &c.value else {
            panic!("a sequence")
        };
        assert_eq!(items[1].line, 4);
        assert_eq!(
            c.to_json(),
            serde_json::json!([{"Fn::GetAtt": "D.Arn"}, {"Fn::Join": ["/", ["x", {"Ref": "E"}]]}])
        );
        assert_eq!(doc.get("n").expect("n").to_json(), serde_json::json!(5));
        assert_eq!(doc.get("s").expect("s").to_json(), serde_json::json!("5"));
    }

    #[test]
    fn unknown_tags_and_bad_yaml_name_their_line() {
        let error = parse("a: 1\nb: !Nope x\n").expect_err("unknown tag");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("!Nope"), "{error}");
        let error = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert!(error.line >= 1, "{error}");
    }
}
