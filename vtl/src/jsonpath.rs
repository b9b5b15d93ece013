//! The JSONPath subset API Gateway's `$input.path`/`$input.json` accept: `$`, `.key`, `['key']`,
//! `["key"]`, `[n]` (negative from the end), `[*]`/`.*` and `..key`. A definite path gives one
//! value or nothing; a path with a wildcard or deep scan gives the list of matches (Jayway's rule).

use crate::RenderError;
use crate::eval::Renderer;
use crate::value::Value;

#[derive(Debug, PartialEq)]
pub(crate) enum Seg {
    Key(String),
    Index(i64),
    Wild,
    Deep(Box<Seg>),
}

pub(crate) struct Path {
    segs: Vec<Seg>,
    definite: bool,
}

pub(crate) fn parse(path: &str) -> Result<Path, String> {
    let chars: Vec<char> = path.trim().chars().collect();
    let mut i = 0;
    match chars.first() {
        Some('$') => i = 1,
        Some('@') => return Err("relative paths (@) are not supported".into()),
        None => return Err("empty path".into()),
        // Jayway reads `a.b` as `$.a.b`.
        Some('[') => {}
        Some(_) => {
            let mut p = String::from("$.");
            p.extend(chars.iter());
            return parse(&p);
        }
    }
    let mut segs = Vec::new();
    while i < chars.len() {
        let (seg, next) = match chars[i] {
            '.' if chars.get(i + 1) == Some(&'.') => {
                let (inner, next) = if chars.get(i + 2) == Some(&'[') {
                    bracket(&chars, i + 2)?
                } else {
                    dotted(&chars, i + 2)?
                };
                (Seg::Deep(Box::new(inner)), next)
            }
            '.' => dotted(&chars, i + 1)?,
            '[' => bracket(&chars, i)?,
            c => return Err(format!("unexpected `{c}` at position {i}")),
        };
        segs.push(seg);
        i = next;
    }
    let definite = !segs.iter().any(|s| matches!(s, Seg::Wild | Seg::Deep(_)));
    Ok(Path { segs, definite })
}

fn dotted(chars: &[char], mut i: usize) -> Result<(Seg, usize), String> {
    if chars.get(i) == Some(&'*') {
        return Ok((Seg::Wild, i + 1));
    }
    let start = i;
    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
        i += 1;
    }
    if i == start {
        return Err(format!("empty property name at position {start}"));
    }
    Ok((Seg::Key(chars[start..i].iter().collect()), i))
}

fn bracket(chars: &[char], i: usize) -> Result<(Seg, usize), String> {
    let mut j = i + 1;
    while chars.get(j) == Some(&' ') {
        j += 1;
    }
    let seg = match chars.get(j) {
        Some('*') => {
            j += 1;
            Seg::Wild
        }
        Some(&q @ ('\'' | '"')) => {
            let start = j + 1;
            j = start;
            let mut key = String::new();
            loop {
                match chars.get(j) {
                    None => return Err("unterminated quoted name".into()),
                    Some('\\') if chars.get(j + 1) == Some(&q) => {
                        key.push(q);
                        j += 2;
                    }
                    Some(&c) if c == q => {
                        j += 1;
                        break;
                    }
                    Some(&c) => {
                        key.push(c);
                        j += 1;
                    }
                }
            }
            Seg::Key(key)
        }
        Some(c) if c.is_ascii_digit() || *c == '-' => {
            let start = j;
            j += 1;
            while chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
                j += 1;
            }
            let n: String = chars[start..j].iter().collect();
            Seg::Index(n.parse().map_err(|_| format!("bad index {n}"))?)
        }
        Some('?') => return Err("filter expressions [?(...)] are not supported".into()),
        _ => return Err(format!("unexpected bracket content at position {j}")),
    };
    while chars.get(j) == Some(&' ') {
        j += 1;
    }
    if chars.get(j) != Some(&']') {
        return Err(format!(
            "expected ] at position {j} (slices and unions are not supported)"
        ));
    }
    Ok((seg, j + 1))
}

fn step(v: &Value, seg: &Seg, out: &mut Vec<Value>) {
    match (seg, v) {
        (Seg::Key(k), Value::Map(m)) => {
            if let Some(x) = m.borrow().get(k) {
                out.push(x.clone());
            }
        }
        (Seg::Index(i), Value::List(l)) => {
            let l = l.borrow();
            let len = l.items.len() as i64;
            let i = if *i < 0 { i + len } else { *i };
            if (0..len).contains(&i) {
                out.push(l.items[i as usize].clone());
            }
        }
        (Seg::Wild, Value::Map(m)) => {
            out.extend(m.borrow().entries().iter().map(|(_, v)| v.clone()))
        }
        (Seg::Wild, Value::List(l)) => out.extend(l.borrow().items.iter().cloned()),
        _ => {}
    }
}

pub(crate) fn eval(
    path: &Path,
    root: &Value,
    r: &mut Renderer<'_>,
) -> Result<Option<Value>, RenderError> {
    let mut cur = vec![root.clone()];
    for seg in &path.segs {
        let mut next = Vec::new();
        for v in &cur {
            match seg {
                Seg::Deep(inner) => {
                    // Every node below (and including) `v`, in document order.
                    let mut stack = vec![v.clone()];
                    while let Some(n) = stack.pop() {
                        r.charge(1)?;
                        step(&n, inner, &mut next);
                        let mut children = Vec::new();
                        step(&n, &Seg::Wild, &mut children);
                        stack.extend(children.into_iter().rev());
                    }
                }
                _ => step(v, seg, &mut next),
            }
        }
        r.charge(next.len() as u64)?;
        cur = next;
    }
    if path.definite {
        Ok(cur.into_iter().next())
    } else {
        Ok(Some(Value::list(cur)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let p = parse("$.a['b c'][0][*]..d.*").unwrap();
        assert_eq!(
            p.segs,
            vec![
                Seg::Key("a".into()),
                Seg::Key("b c".into()),
                Seg::Index(0),
                Seg::Wild,
                Seg::Deep(Box::new(Seg::Key("d".into()))),
                Seg::Wild
            ]
        );
        assert!(!p.definite);
        assert!(parse("$").unwrap().definite);
        assert!(parse("$[?(@.a)]").is_err());
        assert!(parse("$.").is_err());
    }
}
