//! Reading one resource's properties: strings, JSON, maps, function references, and the notes
//! for what is left unread or cannot be evaluated.

use serde_json::{Map, Value as Json};

use super::eval::{EvalError, FUNCTION_TYPES, scalar_text};
use super::{Importer, Props};
use crate::spec::Note;

impl Importer<'_> {
    /// Notes that required property `key` is missing, so the `what` is not imported.
    pub(super) fn missing(&mut self, props: &Props<'_>, key: &str, what: &str) {
        self.note(
            props.line_of(key),
            props.at(key),
            format!("missing ({what} not imported)"),
        );
    }

    pub(super) fn note(&mut self, line: usize, at: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note::new(Some(line), at, message));
    }

    pub(super) fn failed(&mut self, at: String, error: EvalError) {
        self.notes.push(Note::new(
            Some(error.line),
            at,
            format!("{} (left out)", error.message),
        ));
    }

    pub(super) fn string(&mut self, props: &mut Props<'_>, key: &'static str) -> Option<String> {
        let node = props.get(key)?;
        match self.ev.eval_string(node) {
            Ok((text, _)) => Some(text),
            Err(error) => {
                self.failed(props.at(key), error);
                None
            }
        }
    }

    pub(super) fn json(&mut self, props: &mut Props<'_>, key: &'static str) -> Option<Json> {
        let node = props.get(key)?;
        match self.ev.eval(node) {
            Ok(evaluated) => Some(evaluated.value),
            Err(error) => {
                self.failed(props.at(key), error);
                None
            }
        }
    }

    pub(super) fn string_map(
        &mut self,
        props: &mut Props<'_>,
        key: &'static str,
    ) -> Map<String, Json> {
        let Some(value) = self.json(props, key) else {
            return Map::new();
        };
        let line = props.get(key).map_or(props.line, |n| n.line);
        match value {
            Json::Object(entries) => entries
                .into_iter()
                .filter_map(|(k, v)| match scalar_text(&v) {
                    Some(text) => Some((k, Json::String(text))),
                    None => {
                        self.note(line, props.at(key), format!("{k}: not a string (left out)"));
                        None
                    }
                })
                .collect(),
            _ => {
                self.note(line, props.at(key), "expected a map (left out)");
                Map::new()
            }
        }
    }

    /// Reports the properties nobody read, then forgets them.
    pub(super) fn leftovers(&mut self, props: Props<'_>, why: &str) {
        let Some(node) = props.node else { return };
        for (key, value) in node.entries() {
            if !props.read.contains(key.as_str()) {
                self.note(value.line, props.at(key), why.to_string());
            }
        }
    }

    /// Whether the resource's `ApiId` is the imported API (reported when not).
    pub(super) fn belongs(&mut self, props: &mut Props<'_>) -> bool {
        let line = props.line;
        match self.string(props, "ApiId") {
            Some(api) if api == self.api_id => true,
            Some(other) => {
                self.note(
                    line,
                    format!("Resources.{}", props.id),
                    format!("belongs to API {other}, not {} (not imported)", self.api_id),
                );
                false
            }
            None => {
                self.note(
                    line,
                    format!("Resources.{}", props.id),
                    "has no ApiId (not imported)",
                );
                false
            }
        }
    }

    /// The URI of a Lambda-calling property: the `--functions` entry of the function it names,
    /// else the resolved value (an API Gateway or Lambda ARN wsgate invokes by ARN).
    pub(super) fn function_uri(
        &mut self,
        props: &mut Props<'_>,
        key: &'static str,
    ) -> Option<String> {
        let node = props.get(key)?;
        let (uri, refs) = match self.ev.eval_string(node) {
            Ok(found) => found,
            Err(error) => {
                self.failed(props.at(key), error);
                return None;
            }
        };
        let functions: Vec<&String> = refs
            .iter()
            .filter(|r| {
                self.ev
                    .resource_type(r)
                    .is_some_and(|t| FUNCTION_TYPES.contains(&t))
            })
            .collect();
        let [function] = functions.as_slice() else {
            return Some(uri);
        };
        let name = self.ev.function_name(function);
        let mapped = (self.options.functions.get(function.as_str()))
            .or_else(|| self.options.functions.get(&name))
            .cloned();
        let given = mapped.is_some();
        let uri = mapped.unwrap_or(uri);
        self.used_functions
            .insert((*function).clone(), (uri.clone(), given));
        Some(uri)
    }
}
