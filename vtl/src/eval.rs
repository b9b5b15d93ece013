//! The evaluator: walks the parsed template against one request, writing into an output bounded
//! in bytes, counting steps (checking the clock every few hundred), bounding each #foreach, and
//! resolving `$input`, `$context`, `$stageVariables`, `$util` and the loop variables.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::ast::{BinOp, Expr, Literal, Node, Part, Reference};
use crate::value::{Builtin, LoopState, TooDeep, VMap, Value, from_json};
use crate::{Input, Limits, RenderError};

/// How often (in steps) the clock is read.
const CLOCK_EVERY: u64 = 256;
/// Longest range literal built as a list (a #foreach over a range does not build it).
const MAX_RANGE: u64 = 1_000_000;
/// Compiled regular expressions kept per render.
pub(crate) const REGEX_CACHE: usize = 32;

pub(crate) enum Flow {
    Normal,
    Break,
    Stop,
}

pub(crate) struct Renderer<'a> {
    pub(crate) input: &'a Input<'a>,
    pub(crate) limits: &'a Limits,
    out: String,
    vars: HashMap<String, Value>,
    loops: Vec<Rc<LoopState>>,
    steps: u64,
    started: Instant,
    /// `$input.path`/`$input.json` parse the body once: `Some(Ok(None))` is an empty body.
    body: Option<Result<Option<Value>, String>>,
    pub(crate) regexes: HashMap<String, regex::Regex>,
    /// `$input.body` as a shared string, made on first use.
    body_text: Option<Rc<str>>,
}

impl From<TooDeep> for RenderError {
    fn from(_: TooDeep) -> Self {
        RenderError::Invalid(format!(
            "a list or map is nested deeper than {} levels",
            crate::value::MAX_VALUE_DEPTH
        ))
    }
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(input: &'a Input<'a>, limits: &'a Limits) -> Self {
        Renderer {
            input,
            limits,
            out: String::new(),
            vars: HashMap::new(),
            loops: Vec::new(),
            steps: 0,
            started: Instant::now(),
            body: None,
            regexes: HashMap::new(),
            body_text: None,
        }
    }

    pub(crate) fn run(mut self, nodes: &[Node]) -> Result<String, RenderError> {
        self.nodes(nodes)?;
        Ok(self.out)
    }

    /// Renders, and also returns `$context` as the template left it, if the template used it.
    pub(crate) fn run_detailed(mut self, nodes: &[Node]) -> Result<crate::Rendered, RenderError> {
        self.nodes(nodes)?;
        let context = match self.vars.get("context") {
            Some(v) => Some(crate::value::to_json_value(v, 0)?),
            None => None,
        };
        Ok(crate::Rendered {
            output: self.out,
            context,
        })
    }

    /// Counts `n` steps against the budget; reads the clock every [`CLOCK_EVERY`] steps.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), RenderError> {
        let before = self.steps;
        self.steps = self.steps.saturating_add(n.max(1));
        if self.steps > self.limits.max_steps {
            return Err(RenderError::StepBudget);
        }
        if before / CLOCK_EVERY != self.steps / CLOCK_EVERY
            && self.started.elapsed() > self.limits.max_duration
        {
            return Err(RenderError::Timeout);
        }
        Ok(())
    }

    /// Charges work proportional to a byte count (one step per KiB) and refuses a string value
    /// larger than the output bound: nothing that large can be rendered anyway.
    pub(crate) fn charge_bytes(&mut self, len: usize) -> Result<(), RenderError> {
        let limit = self.limits.max_output_bytes.max(self.input.body.len());
        if len > limit {
            return Err(RenderError::OutputTooLarge { limit });
        }
        self.charge((len / 1024) as u64)
    }

    fn emit(&mut self, s: &str) -> Result<(), RenderError> {
        if self.out.len().saturating_add(s.len()) > self.limits.max_output_bytes {
            return Err(RenderError::OutputTooLarge {
                limit: self.limits.max_output_bytes,
            });
        }
        self.out.push_str(s);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node]) -> Result<Flow, RenderError> {
        for n in nodes {
            self.charge(1)?;
            match self.node(n)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, n: &Node) -> Result<Flow, RenderError> {
        match n {
            Node::Text(t) => self.emit(t)?,
            Node::Ref(r) => {
                let v = self.reference(r)?;
                if v.is_null() {
                    if !r.quiet && !builtin_root(&r.root) {
                        self.emit(&r.source)?;
                    }
                } else {
                    self.emit_value(&v)?;
                }
            }
            Node::EscapedRef { prefix, reference } => {
                let v = self.reference(reference)?;
                let mut s = "\\".repeat(*prefix);
                if v.is_null() {
                    s.push('\\');
                }
                s.push_str(&reference.source);
                self.emit(&s)?;
            }
            Node::Set { target, value } => self.set(target, value)?,
            Node::If {
                branches,
                otherwise,
            } => {
                for (cond, body) in branches {
                    if self.expr(cond)?.truthy() {
                        return self.nodes(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.nodes(body);
                }
            }
            Node::Foreach {
                var,
                iterable,
                body,
            } => return self.foreach(var, iterable, body),
            Node::Break => return Ok(Flow::Break),
            Node::Stop => return Ok(Flow::Stop),
        }
        Ok(Flow::Normal)
    }

    fn emit_value(&mut self, v: &Value) -> Result<(), RenderError> {
        match v {
            Value::Str(s) => self.emit(s),
            _ => {
                let s = v.to_java_string()?;
                self.charge_bytes(s.len())?;
                self.emit(&s)
            }
        }
    }

    fn set(&mut self, target: &Reference, value: &Expr) -> Result<(), RenderError> {
        let v = self.expr(value)?;
        if v.is_null() {
            // Velocity 1.7: a #set whose right side is null leaves the left side as it was.
            return Ok(());
        }
        let Some((last, init)) = target.parts.split_last() else {
            self.vars.insert(target.root.clone(), v);
            return Ok(());
        };
        let mut cur = self.root(&target.root);
        for p in init {
            if cur.is_null() {
                return Ok(());
            }
            cur = self.part(cur, p)?;
        }
        match (cur, last) {
            (Value::Map(m), Part::Prop(k)) => {
                check_insert(&v, Rc::as_ptr(&m) as *const ())?;
                m.borrow_mut().insert(Rc::from(k.as_str()), v);
            }
            (Value::Map(m), Part::Index(e)) => {
                let k = self.expr(e)?;
                let k = k.to_java_string()?;
                check_insert(&v, Rc::as_ptr(&m) as *const ())?;
                m.borrow_mut().insert(Rc::from(k), v);
            }
            (Value::List(l), Part::Index(e)) => {
                let i = self.expr(e)?;
                check_insert(&v, Rc::as_ptr(&l) as *const ())?;
                let mut l = l.borrow_mut();
                if let Some(i) = list_index(&i, l.items.len()) {
                    l.items[i] = v;
                } else {
                    return Err(RenderError::Invalid(format!(
                        "{}: index out of bounds for a list of size {}",
                        target.source,
                        l.items.len()
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn foreach(&mut self, var: &str, iterable: &Expr, body: &[Node]) -> Result<Flow, RenderError> {
        let items = match iterable {
            // A literal range is walked without building the list.
            Expr::Range(a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                match (as_int(&a), as_int(&b)) {
                    (Some(a), Some(b)) => Items::Range(a, b),
                    _ => Items::List(Vec::new()),
                }
            }
            _ => Items::List(match self.expr(iterable)? {
                Value::List(l) => l.borrow().items.clone(),
                Value::Map(m) => m
                    .borrow()
                    .entries()
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect(),
                _ => Vec::new(),
            }),
        };
        let n = items.len();
        let saved = self.vars.remove(var);
        if n > 0 {
            self.loops.push(Rc::new(LoopState {
                index: 0,
                has_next: n > 1,
            }));
        }
        let mut flow = Flow::Normal;
        let mut i: usize = 0;
        while (i as u64) < n {
            if i >= self.limits.max_loop_iterations {
                // The render fails as a whole; loop state need not be restored.
                return Err(RenderError::TooManyIterations {
                    limit: self.limits.max_loop_iterations,
                });
            }
            self.charge(1)?;
            let item = items.get(i);
            if item.is_null() {
                self.vars.remove(var);
            } else {
                self.vars.insert(var.to_string(), item);
            }
            if let Some(top) = self.loops.last_mut() {
                *top = Rc::new(LoopState {
                    index: i,
                    has_next: (i as u64) + 1 < n,
                });
            }
            i += 1;
            match self.nodes(body)? {
                Flow::Normal => {}
                Flow::Break => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
        }
        if n > 0 {
            self.loops.pop();
        }
        match saved {
            Some(v) => {
                self.vars.insert(var.to_string(), v);
            }
            None => {
                self.vars.remove(var);
            }
        }
        Ok(flow)
    }

    // ---- references

    fn root(&mut self, name: &str) -> Value {
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        match name {
            "input" => Value::Builtin(Builtin::Input),
            "util" => Value::Builtin(Builtin::Util),
            "context" | "stageVariables" => {
                let src = if name == "context" {
                    self.input.context
                } else {
                    self.input.stage_variables
                };
                let v = from_json(src, 0);
                // Converted once per render; later changes (#set($context.x = ..)) stay visible.
                self.vars.insert(name.to_string(), v.clone());
                v
            }
            "foreach" => self
                .loops
                .last()
                .map_or(Value::Null, |s| Value::Builtin(Builtin::Foreach(s.clone()))),
            "velocityCount" => self
                .loops
                .last()
                .map_or(Value::Null, |s| Value::Int(s.index as i64 + 1)),
            "velocityHasNext" => self
                .loops
                .last()
                .map_or(Value::Null, |s| Value::Bool(s.has_next)),
            _ => Value::Null,
        }
    }

    pub(crate) fn reference(&mut self, r: &Reference) -> Result<Value, RenderError> {
        self.charge(1)?;
        let mut cur = self.root(&r.root);
        for p in &r.parts {
            if cur.is_null() {
                return Ok(Value::Null);
            }
            cur = self.part(cur, p)?;
        }
        Ok(cur)
    }

    fn part(&mut self, cur: Value, p: &Part) -> Result<Value, RenderError> {
        self.charge(1)?;
        match p {
            Part::Prop(name) => crate::methods::property(self, &cur, name),
            Part::Index(e) => {
                let i = self.expr(e)?;
                Ok(match &cur {
                    Value::List(l) => {
                        let l = l.borrow();
                        list_index(&i, l.items.len()).map_or(Value::Null, |i| l.items[i].clone())
                    }
                    Value::Map(m) => {
                        let k = i.to_java_string()?;
                        m.borrow().get(&k).cloned().unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                })
            }
            Part::Call(name, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.expr(a)?);
                }
                crate::methods::call(self, cur, name, vals)
            }
        }
    }

    /// `$input.body`.
    pub(crate) fn body_text(&mut self) -> Value {
        let body = self.input.body;
        Value::Str(self.body_text.get_or_insert_with(|| Rc::from(body)).clone())
    }

    /// The body parsed as JSON, once per render; `None` for an empty body.
    pub(crate) fn body_json(&mut self) -> Result<Option<Value>, RenderError> {
        if self.body.is_none() {
            let body = self.input.body;
            self.charge_bytes(0)?;
            self.charge((body.len() / 256) as u64)?;
            let parsed = if body.trim().is_empty() {
                Ok(None)
            } else {
                crate::value::parse_json(body)
                    .map(Some)
                    .map_err(|e| format!("the body is not valid JSON: {e}"))
            };
            self.body = Some(parsed);
        }
        match &self.body {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(e)) => Err(RenderError::Invalid(e.clone())),
            None => Ok(None),
        }
    }

    // ---- expressions

    pub(crate) fn expr(&mut self, e: &Expr) -> Result<Value, RenderError> {
        self.charge(1)?;
        Ok(match e {
            Expr::Lit(l) => match l {
                Literal::Null => Value::Null,
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Int(i) => Value::Int(*i),
                Literal::Float(f) => Value::Float(*f),
                Literal::Str(s) => Value::str(s),
            },
            Expr::Interp(nodes) => Value::string(self.interpolate(nodes)?),
            Expr::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.expr(i)?);
                }
                Value::list(out)
            }
            Expr::Range(a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                match (as_int(&a), as_int(&b)) {
                    (Some(a), Some(b)) => {
                        let len = a.abs_diff(b).saturating_add(1);
                        self.charge(len)?;
                        if len > MAX_RANGE {
                            return Err(RenderError::Invalid(format!(
                                "a range of {len} numbers is longer than {MAX_RANGE}"
                            )));
                        }
                        if a <= b {
                            Value::list((a..=b).map(Value::Int).collect())
                        } else {
                            Value::list((b..=a).rev().map(Value::Int).collect())
                        }
                    }
                    _ => Value::Null,
                }
            }
            Expr::Map(entries) => {
                let mut m = VMap::default();
                for (k, v) in entries {
                    let k = self.expr(k)?.to_java_string()?;
                    let v = self.expr(v)?;
                    m.insert(Rc::from(k), v);
                }
                Value::map(m)
            }
            Expr::Ref(r) => self.reference(r)?,
            Expr::Not(e) => Value::Bool(!self.expr(e)?.truthy()),
            Expr::Neg(e) => match self.expr(e)? {
                Value::Int(i) => i
                    .checked_neg()
                    .map_or(Value::Float(-(i as f64)), Value::Int),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Expr::Bin(op, l, r) => self.binary(*op, l, r)?,
        })
    }

    fn interpolate(&mut self, nodes: &[Node]) -> Result<String, RenderError> {
        let saved = std::mem::take(&mut self.out);
        let r = self.nodes(nodes);
        let s = std::mem::replace(&mut self.out, saved);
        r?;
        Ok(s)
    }

    fn binary(&mut self, op: BinOp, l: &Expr, r: &Expr) -> Result<Value, RenderError> {
        match op {
            BinOp::And => {
                return Ok(Value::Bool(
                    self.expr(l)?.truthy() && self.expr(r)?.truthy(),
                ));
            }
            BinOp::Or => {
                return Ok(Value::Bool(
                    self.expr(l)?.truthy() || self.expr(r)?.truthy(),
                ));
            }
            _ => {}
        }
        let (a, b) = (self.expr(l)?, self.expr(r)?);
        Ok(match op {
            BinOp::Eq => Value::Bool(loose_eq(&a, &b)?),
            BinOp::Ne => Value::Bool(!loose_eq(&a, &b)?),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => match num_cmp(&a, &b) {
                Some(o) => Value::Bool(match op {
                    BinOp::Lt => o.is_lt(),
                    BinOp::Le => o.is_le(),
                    BinOp::Gt => o.is_gt(),
                    _ => o.is_ge(),
                }),
                None => Value::Bool(false),
            },
            BinOp::Add if matches!(a, Value::Str(_)) || matches!(b, Value::Str(_)) => {
                let ls = concat_side(&a, l)?;
                let rs = concat_side(&b, r)?;
                self.charge_bytes(ls.len() + rs.len())?;
                Value::string(ls + &rs)
            }
            _ => arith(op, &a, &b),
        })
    }
}

/// What a #foreach walks: a list's snapshot (as Java would see it), or an integer range.
enum Items {
    List(Vec<Value>),
    Range(i64, i64),
}

impl Items {
    fn len(&self) -> u64 {
        match self {
            Items::List(l) => l.len() as u64,
            Items::Range(a, b) => a.abs_diff(*b).saturating_add(1),
        }
    }
    fn get(&self, i: usize) -> Value {
        match self {
            Items::List(l) => l.get(i).cloned().unwrap_or(Value::Null),
            Items::Range(a, b) => {
                let i = i as i64;
                Value::Int(if a <= b {
                    a.saturating_add(i)
                } else {
                    a.saturating_sub(i)
                })
            }
        }
    }
}

fn builtin_root(name: &str) -> bool {
    matches!(name, "input" | "context" | "stageVariables" | "util")
}

fn check_insert(v: &Value, container: *const ()) -> Result<(), RenderError> {
    if v.reaches(container, 0)? {
        return Err(RenderError::Invalid(
            "a list or map cannot contain itself".into(),
        ));
    }
    Ok(())
}

pub(crate) fn check_insert_into(v: &Value, container: *const ()) -> Result<(), RenderError> {
    check_insert(v, container)
}

/// A list index (negative counts from the end, as Velocity 1.7's `$list[-1]`).
pub(crate) fn list_index(i: &Value, len: usize) -> Option<usize> {
    let i = as_int(i)?;
    let i = if i < 0 {
        i.checked_add(i64::try_from(len).ok()?)?
    } else {
        i
    };
    usize::try_from(i).ok().filter(|&i| i < len)
}

pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn concat_side(v: &Value, e: &Expr) -> Result<String, RenderError> {
    Ok(match (v, e) {
        (Value::Null, Expr::Ref(r)) => r.source.clone(),
        _ => v.to_java_string()?,
    })
}

/// Velocity 1.7 `==`: numbers by value, same kinds by `equals`, otherwise by their strings.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> Result<bool, RenderError> {
    Ok(match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            num_cmp(a, b).is_some_and(|o| o.is_eq())
        }
        (Value::Str(_), Value::Str(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::List(_), Value::List(_))
        | (Value::Map(_), Value::Map(_)) => a.java_equals(b, 0)?,
        _ => a.to_java_string()? == b.to_java_string()?,
    })
}

fn num_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        _ => None,
    }
}

/// Velocity's MathUtils: integer arithmetic stays integral (widening to a float where an i64
/// would overflow), any float makes a float, division or modulo by zero gives null.
fn arith(op: BinOp, a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::Div if y == 0 => return Value::Null,
                BinOp::Div => x.checked_div(y),
                BinOp::Mod if y == 0 => return Value::Null,
                BinOp::Mod => x.checked_rem(y),
                _ => return Value::Null,
            };
            match r {
                Some(v) => Value::Int(v),
                None => float_arith(op, x as f64, y as f64),
            }
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let f = |v: &Value| match v {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => 0.0,
            };
            float_arith(op, f(a), f(b))
        }
        _ => Value::Null,
    }
}

fn float_arith(op: BinOp, x: f64, y: f64) -> Value {
    match op {
        BinOp::Add => Value::Float(x + y),
        BinOp::Sub => Value::Float(x - y),
        BinOp::Mul => Value::Float(x * y),
        BinOp::Div if y == 0.0 => Value::Null,
        BinOp::Div => Value::Float(x / y),
        BinOp::Mod if y == 0.0 => Value::Null,
        BinOp::Mod => Value::Float(x % y),
        _ => Value::Null,
    }
}
