//! Runtime values of a render: Java-like null/bool/number/string/list/map with shared (reference)
//! lists and maps as in Velocity, Java `toString` rendering, JSON in and out, and an iterative drop
//! so that a deeply nested value never overflows the stack.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

/// Deepest nesting of lists/maps that rendering, JSON output and equality walk.
pub(crate) const MAX_VALUE_DEPTH: usize = 256;

#[derive(Clone, Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<RefCell<VList>>),
    Map(Rc<RefCell<VMap>>),
    /// `$input`, `$util` and the loop object `$foreach`.
    Builtin(Builtin),
}

#[derive(Clone, Debug)]
pub(crate) enum Builtin {
    Input,
    Util,
    Foreach(Rc<LoopState>),
}

#[derive(Debug)]
pub(crate) struct LoopState {
    pub(crate) index: usize,
    pub(crate) has_next: bool,
}

#[derive(Debug, Default)]
pub(crate) struct VList {
    pub(crate) items: Vec<Value>,
}

/// A map that keeps insertion order (Java's LinkedHashMap, as json-smart and Velocity map literals).
/// Small maps (most JSON objects) are searched linearly; larger ones get a hash index.
#[derive(Debug, Default)]
pub(crate) struct VMap {
    entries: Vec<(Rc<str>, Value)>,
    index: Option<HashMap<Rc<str>, usize>>,
}

/// Entries up to which a map is searched without an index.
const LINEAR_MAX: usize = 12;

impl VMap {
    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| &**k == key),
        }
    }
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }
    pub(crate) fn insert(&mut self, key: Rc<str>, value: Value) -> Option<Value> {
        if let Some(i) = self.position(&key) {
            return Some(std::mem::replace(&mut self.entries[i].1, value));
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key.clone(), self.entries.len());
        } else if self.entries.len() >= LINEAR_MAX {
            let mut ix: HashMap<Rc<str>, usize> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            ix.insert(key.clone(), self.entries.len());
            self.index = Some(ix);
        }
        self.entries.push((key, value));
        None
    }
    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        let (_, v) = self.entries.remove(i);
        if let Some(ix) = &mut self.index {
            ix.remove(key);
            for (k, _) in &self.entries[i..] {
                if let Some(slot) = ix.get_mut(k) {
                    *slot -= 1;
                }
            }
        }
        Some(v)
    }
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(crate) fn entries(&self) -> &[(Rc<str>, Value)] {
        &self.entries
    }
}

fn drain_into(stack: &mut Vec<Value>, v: Value) {
    match v {
        Value::List(rc) => {
            if let Ok(cell) = Rc::try_unwrap(rc) {
                stack.append(&mut cell.into_inner().items);
            }
        }
        Value::Map(rc) => {
            if let Ok(cell) = Rc::try_unwrap(rc) {
                let mut m = cell.into_inner();
                stack.extend(std::mem::take(&mut m.entries).into_iter().map(|(_, v)| v));
            }
        }
        _ => {}
    }
}

impl Drop for VList {
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.items);
        while let Some(v) = stack.pop() {
            drain_into(&mut stack, v);
        }
    }
}

impl Drop for VMap {
    fn drop(&mut self) {
        let mut stack: Vec<Value> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        while let Some(v) = stack.pop() {
            drain_into(&mut stack, v);
        }
    }
}

/// The value nested too deeply to walk (rendering, JSON, equality).
#[derive(Debug)]
pub(crate) struct TooDeep;

impl Value {
    pub(crate) fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }
    pub(crate) fn string(s: String) -> Value {
        Value::Str(Rc::from(s))
    }
    pub(crate) fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(RefCell::new(VList { items })))
    }
    pub(crate) fn map(m: VMap) -> Value {
        Value::Map(Rc::new(RefCell::new(m)))
    }
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Velocity 1.7 truthiness: null and false are false, everything else (even "") is true.
    pub(crate) fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Java's `String.valueOf(obj)` as Velocity renders it; `null` for null.
    pub(crate) fn to_java_string(&self) -> Result<String, TooDeep> {
        let mut out = String::new();
        self.write_java(&mut out, 0)?;
        Ok(out)
    }

    pub(crate) fn write_java(&self, out: &mut String, depth: usize) -> Result<(), TooDeep> {
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep);
        }
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&java_double(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.borrow().items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_java(out, depth + 1)?;
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.borrow().entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    v.write_java(out, depth + 1)?;
                }
                out.push('}');
            }
            Value::Builtin(Builtin::Foreach(s)) => {
                let _ = write!(out, "foreach[index={}]", s.index);
            }
            Value::Builtin(_) => {}
        }
        Ok(())
    }

    /// JSON text of the value (what `$input.json` and `$util.toJson` return).
    pub(crate) fn to_json(&self) -> Result<String, TooDeep> {
        let mut out = String::new();
        self.write_json(&mut out, 0)?;
        Ok(out)
    }

    fn write_json(&self, out: &mut String, depth: usize) -> Result<(), TooDeep> {
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep);
        }
        match self {
            Value::Null | Value::Builtin(_) => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                if f.is_finite() {
                    out.push_str(&java_double(*f));
                } else {
                    out.push_str("null");
                }
            }
            Value::Str(s) => json_quote(out, s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.borrow().items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out, depth + 1)?;
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.borrow().entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_quote(out, k);
                    out.push(':');
                    v.write_json(out, depth + 1)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    /// Java `equals` (numbers compare by value across int/float as Velocity's `==` does).
    pub(crate) fn java_equals(&self, other: &Value, depth: usize) -> Result<bool, TooDeep> {
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep);
        }
        Ok(match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                if Rc::ptr_eq(a, b) {
                    return Ok(true);
                }
                let (a, b) = (a.borrow(), b.borrow());
                if a.items.len() != b.items.len() {
                    return Ok(false);
                }
                for (x, y) in a.items.iter().zip(b.items.iter()) {
                    if !x.java_equals(y, depth + 1)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Map(a), Value::Map(b)) => {
                if Rc::ptr_eq(a, b) {
                    return Ok(true);
                }
                let (a, b) = (a.borrow(), b.borrow());
                if a.len() != b.len() {
                    return Ok(false);
                }
                for (k, v) in &a.entries {
                    match b.get(k) {
                        Some(w) if v.java_equals(w, depth + 1)? => {}
                        _ => return Ok(false),
                    }
                }
                true
            }
            _ => false,
        })
    }

    /// Whether `target` (a list or map) is reachable from `self`: inserting `self` into `target`
    /// would make a cycle. Also refuses values nested deeper than [`MAX_VALUE_DEPTH`].
    pub(crate) fn reaches(&self, target: *const (), depth: usize) -> Result<bool, TooDeep> {
        if depth > MAX_VALUE_DEPTH {
            return Err(TooDeep);
        }
        match self {
            Value::List(l) => {
                if Rc::as_ptr(l) as *const () == target {
                    return Ok(true);
                }
                for v in &l.borrow().items {
                    if v.reaches(target, depth + 1)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Value::Map(m) => {
                if Rc::as_ptr(m) as *const () == target {
                    return Ok(true);
                }
                for (_, v) in &m.borrow().entries {
                    if v.reaches(target, depth + 1)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}

/// JSON string literal, escaped as serde_json does.
pub(crate) fn json_quote(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte and `start` just after one: both are char boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Java's `Double.toString`: `1.0`, `0.001`, `1.0E7`, `1.5E-4`, `NaN`, `Infinity`.
pub(crate) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = f.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust gives the shortest round-trip digits as `d.ddde-5`; Java writes `d.dddE-5`.
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') {
            mant.to_string()
        } else {
            format!("{mant}.0")
        };
        format!("{mant}E{exp}")
    }
}

// ---- JSON in: an order-keeping deserializer straight into `Value`.

struct JsonValue(Value);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor).map(JsonValue)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::str(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::string(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::list(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = VMap::default();
        while let Some((JsonKey(k), JsonValue(v))) = map.next_entry::<JsonKey, JsonValue>()? {
            m.insert(k, v);
        }
        Ok(Value::map(m))
    }
}

/// An object key, made straight into the shared string the map keeps.
struct JsonKey(Rc<str>);

impl<'de> serde::Deserialize<'de> for JsonKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Rc<str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Rc<str>, E> {
                Ok(Rc::from(v))
            }
        }
        d.deserialize_str(V).map(JsonKey)
    }
}

/// Parses JSON text into an order-keeping value (serde_json bounds the nesting at 128).
pub(crate) fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<JsonValue>(text).map(|j| j.0)
}

/// Converts a value back to a `serde_json::Value` (non-finite floats and objects become null).
pub(crate) fn to_json_value(v: &Value, depth: usize) -> Result<serde_json::Value, TooDeep> {
    if depth > MAX_VALUE_DEPTH {
        return Err(TooDeep);
    }
    Ok(match v {
        Value::Null | Value::Builtin(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Str(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(
            l.borrow()
                .items
                .iter()
                .map(|v| to_json_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m.borrow().entries() {
                o.insert(k.to_string(), to_json_value(v, depth + 1)?);
            }
            serde_json::Value::Object(o)
        }
    })
}

/// Converts a caller-supplied JSON value (context, stage variables, params).
pub(crate) fn from_json(v: &serde_json::Value, depth: usize) -> Value {
    if depth > MAX_VALUE_DEPTH {
        return Value::Null;
    }
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => {
            Value::list(a.iter().map(|v| from_json(v, depth + 1)).collect())
        }
        serde_json::Value::Object(o) => {
            let mut m = VMap::default();
            for (k, v) in o {
                m.insert(Rc::from(k.as_str()), from_json(v, depth + 1));
            }
            Value::map(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_index_when_they_grow() {
        let mut m = VMap::default();
        for i in 0..40 {
            m.insert(Rc::from(format!("k{i}")), Value::Int(i));
        }
        assert!(m.index.is_some());
        assert_eq!(
            m.remove("k3").map(|v| v.to_java_string().unwrap()),
            Some("3".into())
        );
        assert_eq!(
            m.get("k39").map(|v| v.to_java_string().unwrap()),
            Some("39".into())
        );
        assert!(m.get("k3").is_none());
        assert_eq!(
            m.insert(Rc::from("k5"), Value::Null)
                .map(|v| v.to_java_string().unwrap()),
            Some("5".into())
        );
        assert_eq!(m.len(), 39);
    }

    #[test]
    fn java_doubles() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(2.5), "2.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(0.001), "0.001");
    }

    #[test]
    fn deep_values_drop_without_recursion() {
        let mut v = Value::list(vec![]);
        for _ in 0..200_000 {
            v = Value::list(vec![v]);
        }
        assert!(v.to_java_string().is_err());
        drop(v);
    }

    #[test]
    fn json_keeps_order() {
        let v = parse_json(r#"{"b":1,"a":[true,null,1.5,"x\"\\\n\u0001é"]}"#).unwrap();
        assert_eq!(
            v.to_json().unwrap(),
            r#"{"b":1,"a":[true,null,1.5,"x\"\\\n\u0001é"]}"#
        );
        assert_eq!(
            v.to_java_string().unwrap(),
            "{b=1, a=[true, null, 1.5, x\"\\\n\u{1}é]}"
        );
    }
}
