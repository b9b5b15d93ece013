//! JSON Schema (the subset models use) → named types both generators render: objects with their
//! properties become named records, nested objects are hoisted with names derived from their
//! place, `enum`/`const` become literal unions, local `$ref`s (`#/definitions/X`, `#/$defs/X`)
//! become named types. What cannot be expressed (`allOf`, `not`, remote `$ref`s) is any JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::SdkError;
use super::names::pascal;

/// A type expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    /// Any JSON value.
    Json,
    /// A string.
    String,
    /// A number (integer or not).
    Number,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// `null`.
    Null,
    /// One JSON literal (a string, number or boolean).
    Literal(Value),
    /// A list of items.
    Array(Box<Ty>),
    /// An object with any keys whose values have this type.
    Map(Box<Ty>),
    /// Any one of these.
    Union(Vec<Ty>),
    /// A named definition.
    Named(String),
}

/// One property of a record.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) ty: Ty,
    pub(crate) required: bool,
    pub(crate) description: Option<String>,
}

/// A named definition.
#[derive(Debug, Clone)]
pub(crate) enum Def {
    /// An object with known properties.
    Record {
        name: String,
        description: Option<String>,
        fields: Vec<Field>,
    },
    /// A name for another type.
    Alias {
        name: String,
        description: Option<String>,
        ty: Ty,
    },
}

impl Def {
    #[cfg(test)]
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Record { name, .. } | Self::Alias { name, .. } => name,
        }
    }
}

/// Every definition, in an order where a record's field types are defined before it (except
/// through recursive references).
#[derive(Debug, Default)]
pub(crate) struct Defs {
    pub(crate) defs: Vec<Def>,
    taken: BTreeSet<String>,
}

impl Defs {
    /// A fresh name from `wanted` (suffixed with 2, 3, … when taken).
    pub(crate) fn claim(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{wanted}{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// The record named `name`, if it is one.
    pub(crate) fn record(&self, name: &str) -> Option<(&Option<String>, &Vec<Field>)> {
        self.defs.iter().find_map(|def| match def {
            Def::Record {
                name: n,
                description,
                fields,
            } if n == name => Some((description, fields)),
            _ => None,
        })
    }

    /// Adds a record named `name` (already claimed).
    pub(crate) fn push(&mut self, def: Def) {
        self.defs.push(def);
    }
}

/// Converts one model's schema into a named type (`model` is its name) and its definitions.
pub(crate) struct Converter<'a> {
    model: &'a str,
    root: &'a Value,
    defs: &'a mut Defs,
    refs: BTreeMap<String, String>,
}

impl<'a> Converter<'a> {
    /// A converter for the model `model` whose schema is `root`.
    pub(crate) fn new(model: &'a str, root: &'a Value, defs: &'a mut Defs) -> Self {
        Self {
            model,
            root,
            defs,
            refs: BTreeMap::new(),
        }
    }

    /// The model's named type.
    ///
    /// # Errors
    /// [`SdkError::Schema`] for a schema that is not an object or names a missing definition.
    pub(crate) fn convert_model(mut self) -> Result<String, SdkError> {
        let name = self.defs.claim(&pascal(self.model));
        let root = self.root;
        self.named(root, &name)?;
        Ok(name)
    }

    fn error(&self, reason: impl Into<String>) -> SdkError {
        SdkError::Schema {
            model: self.model.to_string(),
            reason: reason.into(),
        }
    }

    /// Defines `name` (claimed) as the type of `schema`.
    fn named(&mut self, schema: &Value, name: &str) -> Result<(), SdkError> {
        let description = description(schema);
        if let Some(fields) = self.record_fields(schema, name)? {
            self.defs.push(Def::Record {
                name: name.to_string(),
                description,
                fields,
            });
        } else {
            let ty = self.ty(schema, name)?;
            self.defs.push(Def::Alias {
                name: name.to_string(),
                description,
                ty,
            });
        }
        Ok(())
    }

    /// The fields of an object schema with `properties`, else `None`.
    fn record_fields(
        &mut self,
        schema: &Value,
        hint: &str,
    ) -> Result<Option<Vec<Field>>, SdkError> {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return Ok(None);
        };
        if !is_object_schema(schema) {
            return Ok(None);
        }
        let required: BTreeSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        for (key, property) in properties {
            let ty = self.ty(property, &format!("{hint}{}", pascal(key)))?;
            fields.push(Field {
                name: key.clone(),
                ty,
                required: required.contains(key.as_str()),
                description: description(property),
            });
        }
        Ok(Some(fields))
    }

    /// The type of `schema`; objects with properties are hoisted under the name `hint`.
    fn ty(&mut self, schema: &Value, hint: &str) -> Result<Ty, SdkError> {
        let Some(map) = schema.as_object() else {
            // `true` (anything) or `false` (nothing): both as any JSON.
            return Ok(Ty::Json);
        };
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            return self.reference(reference);
        }
        if let Some(value) = map.get("const") {
            return Ok(literal(value));
        }
        if let Some(values) = map.get("enum").and_then(Value::as_array) {
            return Ok(union(values.iter().map(literal).collect()));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = map.get(key).and_then(Value::as_array) {
                let mut types = Vec::new();
                for (i, option) in options.iter().enumerate() {
                    types.push(self.ty(option, &format!("{hint}{}", i + 1))?);
                }
                return Ok(union(types));
            }
        }
        match map.get("type") {
            Some(Value::Array(kinds)) => {
                let mut types = Vec::new();
                for kind in kinds.iter().filter_map(Value::as_str) {
                    types.push(self.of_kind(schema, kind, hint)?);
                }
                Ok(union(types))
            }
            Some(Value::String(kind)) => self.of_kind(schema, kind, hint),
            _ if map.contains_key("properties") => self.of_kind(schema, "object", hint),
            _ => Ok(Ty::Json),
        }
    }

    fn of_kind(&mut self, schema: &Value, kind: &str, hint: &str) -> Result<Ty, SdkError> {
        Ok(match kind {
            "string" => Ty::String,
            "number" => Ty::Number,
            "integer" => Ty::Integer,
            "boolean" => Ty::Boolean,
            "null" => Ty::Null,
            "array" => {
                let items = match schema.get("items") {
                    Some(items) if items.is_object() => self.ty(items, &format!("{hint}Item"))?,
                    _ => Ty::Json,
                };
                Ty::Array(Box::new(items))
            }
            "object" => {
                if schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_some()
                {
                    let name = self.defs.claim(hint);
                    let fields = self.record_fields(schema, &name)?.unwrap_or_default();
                    self.defs.push(Def::Record {
                        name: name.clone(),
                        description: description(schema),
                        fields,
                    });
                    Ty::Named(name)
                } else {
                    let values = match schema.get("additionalProperties") {
                        Some(values) if values.is_object() => {
                            self.ty(values, &format!("{hint}Value"))?
                        }
                        _ => Ty::Json,
                    };
                    Ty::Map(Box::new(values))
                }
            }
            other => return Err(self.error(format!("unknown type `{other}`"))),
        })
    }

    fn reference(&mut self, reference: &str) -> Result<Ty, SdkError> {
        if let Some(name) = self.refs.get(reference) {
            return Ok(Ty::Named(name.clone()));
        }
        let path = reference
            .strip_prefix("#/definitions/")
            .map(|rest| ("definitions", rest))
            .or_else(|| {
                reference
                    .strip_prefix("#/$defs/")
                    .map(|rest| ("$defs", rest))
            });
        let Some((section, key)) = path else {
            if reference == "#" {
                return Ok(Ty::Named(pascal(self.model)));
            }
            return Err(self.error(format!(
                "`$ref: {reference}` is not supported (only #/definitions/<name> and #/$defs/<name>)"
            )));
        };
        let root = self.root;
        let Some(target) = root.get(section).and_then(|defs| defs.get(key)) else {
            return Err(self.error(format!("`$ref: {reference}` names no definition")));
        };
        let name = self
            .defs
            .claim(&format!("{}{}", pascal(self.model), pascal(key)));
        // Remembered before the definition is converted, so that it may refer to itself.
        self.refs.insert(reference.to_string(), name.clone());
        self.named(target, &name)?;
        Ok(Ty::Named(name))
    }
}

fn description(schema: &Value) -> Option<String> {
    schema
        .get("description")
        .and_then(Value::as_str)
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|text| !text.is_empty())
}

fn is_object_schema(schema: &Value) -> bool {
    match schema.get("type") {
        None => true,
        Some(Value::String(kind)) => kind == "object",
        Some(_) => false,
    }
}

fn literal(value: &Value) -> Ty {
    match value {
        Value::Null => Ty::Null,
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ty::Literal(value.clone()),
        _ => Ty::Json,
    }
}

/// A union of `types`, flattened, without repeats; one type stands for itself.
pub(crate) fn union(types: Vec<Ty>) -> Ty {
    let mut flat: Vec<Ty> = Vec::new();
    for ty in types {
        let parts = match ty {
            Ty::Union(parts) => parts,
            other => vec![other],
        };
        for part in parts {
            if !flat.contains(&part) {
                flat.push(part);
            }
        }
    }
    if flat.contains(&Ty::Json) {
        return Ty::Json;
    }
    match flat.len() {
        0 => Ty::Json,
        1 => flat.remove(0),
        _ => Ty::Union(flat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_hoisted_and_refs_named() {
        let schema = json!({
            "type": "object",
            "required": ["action", "to"],
            "properties": {
                "action": {"const": "send"},
                "to": {"type": "object", "properties": {"room": {"type": "string"}}},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
                "extra": {"$ref": "#/definitions/Extra"},
                "note": {"type": ["string", "null"]}
            },
            "definitions": {"Extra": {"type": "integer"}}
        });
        let mut defs = Defs::default();
        let name = Converter::new("message", &schema, &mut defs)
            .convert_model()
            .unwrap();
        assert_eq!(name, "Message");
        let names: Vec<&str> = defs.defs.iter().map(Def::name).collect();
        assert_eq!(names, ["MessageExtra", "MessageTo", "Message"]);
        let (_, fields) = defs.record("Message").unwrap();
        let note = fields.iter().find(|f| f.name == "note").unwrap();
        assert_eq!(note.ty, Ty::Union(vec![Ty::String, Ty::Null]));
        assert!(fields.iter().find(|f| f.name == "to").unwrap().required);
    }

    #[test]
    fn remote_refs_are_refused_with_the_model_name() {
        let schema = json!({"$ref": "https://example.com/schema"});
        let mut defs = Defs::default();
        let error = Converter::new("m", &schema, &mut defs)
            .convert_model()
            .unwrap_err();
        assert!(error.to_string().contains("api.models.m"), "{error}");
    }
}
