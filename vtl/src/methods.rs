//! Properties and methods of values: the Java `String`, `List`, `Map` and number methods API
//! Gateway templates use, `$input.*`, and the `$foreach` loop object. Indices count Unicode
//! characters (Java counts UTF-16 units; they differ only outside the Basic Multilingual Plane).

use std::rc::Rc;

use crate::RenderError;
use crate::eval::{Renderer, as_int, check_insert_into, loose_eq};
use crate::value::{Builtin, VMap, Value};

fn invalid(msg: impl Into<String>) -> RenderError {
    RenderError::Invalid(msg.into())
}

/// `$v.name` without parentheses: a map key, or a Java bean getter (`getName()`/`isName()`).
pub(crate) fn property(r: &mut Renderer<'_>, v: &Value, name: &str) -> Result<Value, RenderError> {
    match v {
        Value::Map(m) => Ok(m.borrow().get(name).cloned().unwrap_or(Value::Null)),
        Value::Builtin(Builtin::Input) if name == "body" => Ok(r.body_text()),
        Value::Builtin(Builtin::Foreach(_)) | Value::Str(_) | Value::List(_) => {
            let getter = match name {
                "empty" => "isEmpty",
                "index" => "getIndex",
                "count" => "getCount",
                "first" => "isFirst",
                "last" => "isLast",
                "hasNext" => "hasNext",
                "class" | "bytes" => return Ok(Value::Null),
                _ => return Ok(Value::Null),
            };
            call(r, v.clone(), getter, Vec::new())
        }
        _ => Ok(Value::Null),
    }
}

pub(crate) fn call(
    r: &mut Renderer<'_>,
    target: Value,
    name: &str,
    args: Vec<Value>,
) -> Result<Value, RenderError> {
    match &target {
        Value::Builtin(Builtin::Input) => input_method(r, name, &args),
        Value::Builtin(Builtin::Util) => crate::util::call(r, name, &args),
        Value::Builtin(Builtin::Foreach(s)) => Ok(match name {
            "hasNext" => Value::Bool(s.has_next),
            "getIndex" | "index" => Value::Int(s.index as i64),
            "getCount" | "count" => Value::Int(s.index as i64 + 1),
            "isFirst" | "first" => Value::Bool(s.index == 0),
            "isLast" | "last" => Value::Bool(!s.has_next),
            _ => Value::Null,
        }),
        Value::Str(s) => string_method(r, s, name, &args),
        Value::List(_) => list_method(r, &target, name, args),
        Value::Map(_) => map_method(r, &target, name, args),
        Value::Int(_) | Value::Float(_) => Ok(number_method(&target, name, &args)),
        Value::Bool(b) => Ok(match name {
            "toString" => Value::str(if *b { "true" } else { "false" }),
            "booleanValue" => Value::Bool(*b),
            "equals" => Value::Bool(
                args.first()
                    .is_some_and(|a| matches!(a, Value::Bool(x) if x == b)),
            ),
            _ => Value::Null,
        }),
        Value::Null => Ok(Value::Null),
    }
}

fn arg_str(args: &[Value], i: usize) -> Option<&str> {
    args.get(i).and_then(Value::as_str)
}

fn input_method(r: &mut Renderer<'_>, name: &str, args: &[Value]) -> Result<Value, RenderError> {
    match name {
        "getBody" => Ok(r.body_text()),
        "json" | "path" => {
            let path = match args.first() {
                None => "$".to_string(),
                Some(Value::Str(s)) => s.to_string(),
                Some(Value::Null) => return Ok(Value::Null),
                Some(other) => other.to_java_string()?,
            };
            let path = crate::jsonpath::parse(&path)
                .map_err(|e| invalid(format!("$input.{name}('{path}'): {e}")))?;
            let body = r.body_json()?;
            let found = match &body {
                Some(b) => crate::jsonpath::eval(&path, b, r)?,
                None => None,
            };
            if name == "path" {
                return Ok(found.unwrap_or(Value::Null));
            }
            let text = match found {
                Some(v) => v.to_json()?,
                // A path that matches nothing gives an empty JSON string.
                None => "\"\"".to_string(),
            };
            r.charge_bytes(text.len())?;
            Ok(Value::string(text))
        }
        "params" => {
            let params = crate::value::from_json(r.input.params, 0);
            let get = |k: &str| match &params {
                Value::Map(m) => m.borrow().get(k).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            match args.first() {
                None => {
                    // API Gateway's order: path, querystring, header.
                    let mut m = VMap::default();
                    for k in ["path", "querystring", "header"] {
                        let v = get(k);
                        let v = if v.is_null() {
                            Value::map(VMap::default())
                        } else {
                            v
                        };
                        m.insert(Rc::from(k), v);
                    }
                    Ok(Value::map(m))
                }
                Some(key) => {
                    let key = key.to_java_string()?;
                    for k in ["path", "querystring", "header"] {
                        if let Value::Map(m) = get(k) {
                            let m = m.borrow();
                            let hit = m.get(&key).cloned().or_else(|| {
                                (k == "header")
                                    .then(|| {
                                        m.entries()
                                            .iter()
                                            .find(|(n, _)| n.eq_ignore_ascii_case(&key))
                                            .map(|(_, v)| v.clone())
                                    })
                                    .flatten()
                            });
                            if let Some(v) = hit {
                                return Ok(match v {
                                    Value::Str(_) => v,
                                    other => Value::string(other.to_java_string()?),
                                });
                            }
                        }
                    }
                    // A missing parameter is the empty string, not null.
                    Ok(Value::str(""))
                }
            }
        }
        _ => Ok(Value::Null),
    }
}

fn chars_len(s: &str) -> usize {
    s.chars().count()
}

/// Substring by character positions `[a, b)`; `None` when out of range (Java throws).
fn char_slice(s: &str, a: usize, b: usize) -> Option<&str> {
    if a > b {
        return None;
    }
    let mut it = s
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()));
    let start = it.nth(a)?;
    let end = if b == a { start } else { it.nth(b - a - 1)? };
    s.get(start..end)
}

/// Character index of a byte offset.
fn char_pos(s: &str, byte: usize) -> i64 {
    s.get(..byte).map_or(-1, |p| p.chars().count() as i64)
}

fn byte_pos(s: &str, chars: usize) -> Option<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .nth(chars)
}

fn usize_arg(args: &[Value], i: usize) -> Option<usize> {
    args.get(i)
        .and_then(as_int)
        .and_then(|v| usize::try_from(v).ok())
}

fn string_method(
    r: &mut Renderer<'_>,
    s: &Rc<str>,
    name: &str,
    args: &[Value],
) -> Result<Value, RenderError> {
    let s: &str = s;
    r.charge((s.len() / 1024) as u64)?;
    let out_of_range = |what: &str| {
        invalid(format!(
            "String.{what}: index out of range for \"{}\"",
            truncate(s)
        ))
    };
    Ok(match (name, args.len()) {
        ("length", 0) => Value::Int(chars_len(s) as i64),
        ("isEmpty", 0) => Value::Bool(s.is_empty()),
        ("toString", 0) => Value::str(s),
        ("trim", 0) => Value::str(s.trim_matches(|c: char| c <= ' ')),
        ("toLowerCase", 0) => Value::string(s.to_lowercase()),
        ("toUpperCase", 0) => Value::string(s.to_uppercase()),
        ("substring", 1) => {
            let a = usize_arg(args, 0).ok_or_else(|| out_of_range("substring"))?;
            let start = byte_pos(s, a).ok_or_else(|| out_of_range("substring"))?;
            Value::str(s.get(start..).unwrap_or(""))
        }
        ("substring", 2) => {
            let (a, b) = (usize_arg(args, 0), usize_arg(args, 1));
            match (a, b) {
                (Some(a), Some(b)) => {
                    Value::str(char_slice(s, a, b).ok_or_else(|| out_of_range("substring"))?)
                }
                _ => return Err(out_of_range("substring")),
            }
        }
        ("charAt", 1) => {
            let c = usize_arg(args, 0)
                .and_then(|i| s.chars().nth(i))
                .ok_or_else(|| out_of_range("charAt"))?;
            Value::string(c.to_string())
        }
        ("indexOf", 1 | 2) | ("lastIndexOf", 1 | 2) => {
            let Some(needle) = args.first().map(Value::to_java_string).transpose()? else {
                return Ok(Value::Null);
            };
            let from = args.get(1).and_then(as_int);
            if name == "indexOf" {
                let from = byte_pos(s, from.unwrap_or(0).max(0) as usize).unwrap_or(s.len());
                match s.get(from..).and_then(|t| t.find(&needle)) {
                    Some(i) => Value::Int(char_pos(s, from + i)),
                    None => Value::Int(-1),
                }
            } else {
                let hay = match from {
                    Some(f) if f < 0 => return Ok(Value::Int(-1)),
                    Some(f) => {
                        let end = byte_pos(s, f as usize).unwrap_or(s.len());
                        // A match may start at `from`, so it may run past it.
                        let end = (end + needle.len()).min(s.len());
                        let mut e = end;
                        while !s.is_char_boundary(e) {
                            e += 1;
                        }
                        s.get(..e).unwrap_or(s)
                    }
                    None => s,
                };
                match hay.rfind(&needle) {
                    Some(i) => Value::Int(char_pos(s, i)),
                    None => Value::Int(-1),
                }
            }
        }
        ("contains", 1) => Value::Bool(s.contains(&*args[0].to_java_string()?)),
        ("startsWith", 1) => Value::Bool(arg_str(args, 0).is_some_and(|p| s.starts_with(p))),
        ("endsWith", 1) => Value::Bool(arg_str(args, 0).is_some_and(|p| s.ends_with(p))),
        ("equals", 1) => Value::Bool(arg_str(args, 0) == Some(s)),
        ("equalsIgnoreCase", 1) => Value::Bool(arg_str(args, 0).is_some_and(|p| {
            p.chars().count() == s.chars().count()
                && p.chars()
                    .zip(s.chars())
                    .all(|(a, b)| a == b || a.to_lowercase().eq(b.to_lowercase()))
        })),
        ("concat", 1) => {
            let t = args[0]
                .as_str()
                .ok_or_else(|| invalid("String.concat needs a string"))?;
            r.charge_bytes(s.len() + t.len())?;
            Value::string(format!("{s}{t}"))
        }
        ("replace", 2) => {
            let (a, b) = (args[0].to_java_string()?, args[1].to_java_string()?);
            if a.is_empty() {
                // Java inserts the replacement between every character.
                let n = chars_len(s) + 1;
                r.charge_bytes(s.len().saturating_add(n.saturating_mul(b.len())))?;
                let mut out = String::with_capacity(s.len() + n * b.len());
                out.push_str(&b);
                for c in s.chars() {
                    out.push(c);
                    out.push_str(&b);
                }
                Value::string(out)
            } else {
                let n = s.matches(&a).count();
                r.charge_bytes(s.len().saturating_add(n.saturating_mul(b.len())))?;
                Value::string(s.replace(&a, &b))
            }
        }
        ("replaceAll", 2) | ("replaceFirst", 2) => {
            let (Some(pat), Some(rep)) = (arg_str(args, 0), arg_str(args, 1)) else {
                return Ok(Value::Null);
            };
            let re = crate::util::regex(r, pat)?;
            let rep = java_replacement(rep);
            let out = if name == "replaceAll" {
                let n = re.find_iter(s).count();
                r.charge(n as u64)?;
                r.charge_bytes(s.len().saturating_add(n.saturating_mul(rep.len() + 16)))?;
                re.replace_all(s, rep.as_str()).into_owned()
            } else {
                re.replace(s, rep.as_str()).into_owned()
            };
            r.charge_bytes(out.len())?;
            Value::string(out)
        }
        ("matches", 1) => {
            let Some(pat) = arg_str(args, 0) else {
                return Ok(Value::Null);
            };
            let re = crate::util::regex(r, &format!("^(?:{pat})$"))?;
            Value::Bool(re.is_match(s))
        }
        ("split", 1 | 2) => {
            let Some(pat) = arg_str(args, 0) else {
                return Ok(Value::Null);
            };
            let limit = args.get(1).and_then(as_int).unwrap_or(0);
            let parts = java_split(r, s, pat, limit)?;
            r.charge(parts.len() as u64)?;
            Value::list(parts.into_iter().map(Value::str).collect())
        }
        ("hashCode", 0) => {
            let mut h: i32 = 0;
            for u in s.encode_utf16() {
                h = h.wrapping_mul(31).wrapping_add(i32::from(u));
            }
            Value::Int(i64::from(h))
        }
        _ => Value::Null,
    })
}

fn truncate(s: &str) -> String {
    let t: String = s.chars().take(40).collect();
    if t.len() < s.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// Java's replacement syntax (`$1`, `\$`) in the regex crate's (`${1}`, `$$`).
fn java_replacement(rep: &str) -> String {
    let mut out = String::with_capacity(rep.len());
    let mut it = rep.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('$') => out.push_str("$$"),
                Some(n) => out.push(n),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = it.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    it.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str("${");
                    out.push_str(&digits);
                    out.push('}');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Java's `String.split(regex, limit)`: with limit 0 trailing empty strings are dropped; a
/// zero-width match at the start yields no leading empty string.
fn java_split<'s>(
    r: &mut Renderer<'_>,
    s: &'s str,
    pat: &str,
    limit: i64,
) -> Result<Vec<&'s str>, RenderError> {
    let re = crate::util::regex(r, pat)?;
    let mut parts = Vec::new();
    let mut last = 0;
    for m in re.find_iter(s) {
        if limit > 0 && parts.len() as i64 >= limit - 1 {
            break;
        }
        if m.end() == 0 {
            continue;
        }
        if m.start() == m.end() && m.start() == last && m.start() == 0 {
            continue;
        }
        parts.push(s.get(last..m.start()).unwrap_or(""));
        last = m.end();
    }
    parts.push(s.get(last..).unwrap_or(""));
    if limit == 0 {
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() == 1 && parts[0].is_empty() && !s.is_empty() {
            parts.clear();
        }
    }
    Ok(parts)
}

fn list_method(
    r: &mut Renderer<'_>,
    target: &Value,
    name: &str,
    args: Vec<Value>,
) -> Result<Value, RenderError> {
    let Value::List(l) = target else {
        return Ok(Value::Null);
    };
    let len = l.borrow().items.len();
    r.charge((len / 64) as u64)?;
    Ok(match (name, args.len()) {
        ("size", 0) => Value::Int(len as i64),
        ("isEmpty", 0) => Value::Bool(len == 0),
        ("get", 1) => {
            let i = list_index_strict(&args[0], len)
                .ok_or_else(|| invalid(format!("List.get: index out of bounds for size {len}")))?;
            l.borrow().items[i].clone()
        }
        ("contains", 1) => {
            let l = l.borrow();
            let mut found = false;
            for v in &l.items {
                if v.java_equals(&args[0], 0)? {
                    found = true;
                    break;
                }
            }
            Value::Bool(found)
        }
        ("indexOf", 1) => {
            let l = l.borrow();
            let mut at = -1;
            for (i, v) in l.items.iter().enumerate() {
                if v.java_equals(&args[0], 0)? {
                    at = i as i64;
                    break;
                }
            }
            Value::Int(at)
        }
        ("add", 1) => {
            let mut args = args;
            let v = args.pop().unwrap_or(Value::Null);
            check_insert_into(&v, Rc::as_ptr(l) as *const ())?;
            l.borrow_mut().items.push(v);
            Value::Bool(true)
        }
        ("add", 2) => {
            let i = usize_arg(&args, 0)
                .filter(|&i| i <= len)
                .ok_or_else(|| invalid("List.add: index out of bounds"))?;
            let v = args[1].clone();
            check_insert_into(&v, Rc::as_ptr(l) as *const ())?;
            l.borrow_mut().items.insert(i, v);
            // void method: Velocity renders the reference as its source text; templates call it
            // from #set or with $! in practice.
            Value::Null
        }
        ("set", 2) => {
            let i = list_index_strict(&args[0], len)
                .ok_or_else(|| invalid("List.set: index out of bounds"))?;
            let v = args[1].clone();
            check_insert_into(&v, Rc::as_ptr(l) as *const ())?;
            std::mem::replace(&mut l.borrow_mut().items[i], v)
        }
        ("remove", 1) => match &args[0] {
            Value::Int(_) => {
                let i = list_index_strict(&args[0], len)
                    .ok_or_else(|| invalid("List.remove: index out of bounds"))?;
                l.borrow_mut().items.remove(i)
            }
            other => {
                // Find with a shared borrow (`other` may be this very list), then remove.
                let mut at = None;
                for (i, v) in l.borrow().items.iter().enumerate() {
                    if v.java_equals(other, 0)? {
                        at = Some(i);
                        break;
                    }
                }
                if let Some(i) = at {
                    l.borrow_mut().items.remove(i);
                }
                Value::Bool(at.is_some())
            }
        },
        ("addAll", 1) => {
            let Value::List(src) = &args[0] else {
                return Ok(Value::Bool(false));
            };
            check_insert_into(&args[0], Rc::as_ptr(l) as *const ())?;
            let extra = src.borrow().items.clone();
            r.charge(extra.len() as u64)?;
            l.borrow_mut().items.extend(extra);
            Value::Bool(true)
        }
        ("clear", 0) => {
            l.borrow_mut().items.clear();
            Value::Null
        }
        ("toString", 0) => {
            let text = target.to_java_string()?;
            r.charge_bytes(text.len())?;
            Value::string(text)
        }
        ("equals", 1) => Value::Bool(target.java_equals(&args[0], 0)?),
        _ => Value::Null,
    })
}

fn list_index_strict(i: &Value, len: usize) -> Option<usize> {
    as_int(i)
        .and_then(|i| usize::try_from(i).ok())
        .filter(|&i| i < len)
}

fn map_key(v: &Value) -> Result<String, RenderError> {
    Ok(v.to_java_string()?)
}

fn map_method(
    r: &mut Renderer<'_>,
    target: &Value,
    name: &str,
    args: Vec<Value>,
) -> Result<Value, RenderError> {
    let Value::Map(m) = target else {
        return Ok(Value::Null);
    };
    let len = m.borrow().len();
    r.charge((len / 64) as u64)?;
    Ok(match (name, args.len()) {
        ("get", 1) => m
            .borrow()
            .get(&map_key(&args[0])?)
            .cloned()
            .unwrap_or(Value::Null),
        ("getOrDefault", 2) => m
            .borrow()
            .get(&map_key(&args[0])?)
            .cloned()
            .unwrap_or_else(|| args[1].clone()),
        ("put", 2) => {
            let k = map_key(&args[0])?;
            let v = args[1].clone();
            check_insert_into(&v, Rc::as_ptr(m) as *const ())?;
            m.borrow_mut().insert(Rc::from(k), v).unwrap_or(Value::Null)
        }
        ("putAll", 1) => {
            let Value::Map(src) = &args[0] else {
                return Ok(Value::Null);
            };
            check_insert_into(&args[0], Rc::as_ptr(m) as *const ())?;
            let entries: Vec<_> = src.borrow().entries().to_vec();
            r.charge(entries.len() as u64)?;
            let mut m = m.borrow_mut();
            for (k, v) in entries {
                m.insert(k, v);
            }
            Value::Null
        }
        ("containsKey", 1) => Value::Bool(m.borrow().get(&map_key(&args[0])?).is_some()),
        ("containsValue", 1) => {
            let m = m.borrow();
            let mut found = false;
            for (_, v) in m.entries() {
                if loose_eq(v, &args[0])? && v.java_equals(&args[0], 0)? {
                    found = true;
                    break;
                }
            }
            Value::Bool(found)
        }
        ("remove", 1) => m
            .borrow_mut()
            .remove(&map_key(&args[0])?)
            .unwrap_or(Value::Null),
        ("size", 0) => Value::Int(len as i64),
        ("isEmpty", 0) => Value::Bool(len == 0),
        ("keySet", 0) => {
            r.charge(len as u64)?;
            Value::list(
                m.borrow()
                    .entries()
                    .iter()
                    .map(|(k, _)| Value::Str(k.clone()))
                    .collect(),
            )
        }
        ("values", 0) => {
            r.charge(len as u64)?;
            Value::list(
                m.borrow()
                    .entries()
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect(),
            )
        }
        ("entrySet", 0) => {
            r.charge(len as u64)?;
            let entries = m
                .borrow()
                .entries()
                .iter()
                .map(|(k, v)| {
                    let mut e = VMap::default();
                    e.insert(Rc::from("key"), Value::Str(k.clone()));
                    e.insert(Rc::from("value"), v.clone());
                    Value::map(e)
                })
                .collect();
            Value::list(entries)
        }
        ("toString", 0) => {
            let text = target.to_java_string()?;
            r.charge_bytes(text.len())?;
            Value::string(text)
        }
        ("equals", 1) => Value::Bool(target.java_equals(&args[0], 0)?),
        // Bean getters on entries and other maps: `$e.getKey()`, `$e.getValue()`.
        (getter, 0) if getter.len() > 3 && getter.starts_with("get") => {
            let rest = &getter[3..];
            let mut key = String::with_capacity(rest.len());
            let mut cs = rest.chars();
            if let Some(c) = cs.next() {
                key.extend(c.to_lowercase());
            }
            key.extend(cs);
            m.borrow().get(&key).cloned().unwrap_or(Value::Null)
        }
        _ => Value::Null,
    })
}

fn number_method(v: &Value, name: &str, args: &[Value]) -> Value {
    let f = match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => return Value::Null,
    };
    match name {
        "toString" => Value::string(v.to_java_string().unwrap_or_default()),
        "intValue" | "longValue" => match v {
            Value::Int(i) if name == "longValue" => Value::Int(*i),
            Value::Int(i) => Value::Int(i64::from(*i as i32)),
            _ if name == "intValue" => Value::Int(i64::from(f as i32)),
            _ => Value::Int(f as i64),
        },
        "doubleValue" | "floatValue" => Value::Float(f),
        "equals" => Value::Bool(args.first().is_some_and(|a| match (v, a) {
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            _ => false,
        })),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_by_chars() {
        assert_eq!(char_slice("héllo", 1, 3), Some("él"));
        assert_eq!(char_slice("héllo", 5, 5), Some(""));
        assert_eq!(char_slice("héllo", 4, 6), None);
        assert_eq!(char_slice("héllo", 3, 2), None);
    }

    #[test]
    fn replacement_syntax() {
        assert_eq!(java_replacement("<$1>"), "<${1}>");
        assert_eq!(java_replacement("\\$x"), "$$x");
    }
}
