//! Template parser: text, references, comments and directives, with Velocity 1.7's gobbling of
//! whitespace around directive lines, and the expression grammar inside directives and method
//! arguments. Recursion is bounded by [`MAX_DEPTH`]; errors carry a line and column.

use crate::ParseError;
use crate::ast::{BinOp, Expr, Literal, Node, Part, Reference};

/// Deepest nesting of blocks, parentheses, literals and interpolated strings the parser accepts.
pub(crate) const MAX_DEPTH: usize = 100;

pub(crate) fn parse_template(source: &str) -> Result<Vec<Node>, ParseError> {
    let mut p = Parser {
        s: source.chars().collect(),
        pos: 0,
        depth: 0,
        text_start: 0,
    };
    let r = match p.block() {
        Ok((nodes, Term::Eof)) => Ok(nodes),
        Ok((_, Term::End(at))) => Err(p.error_at(at, "#end without a matching #if or #foreach")),
        Ok((_, Term::Else(at))) => Err(p.error_at(at, "#else without a matching #if")),
        Ok((_, Term::ElseIf(at, _))) => Err(p.error_at(at, "#elseif without a matching #if")),
        Err(e) => Err(e),
    };
    r.map_err(|e| p.locate(e))
}

/// A parse error at a character position, located (line, column) only when reported.
pub(crate) struct PErr {
    at: usize,
    message: String,
}

enum Term {
    Eof,
    End(usize),
    Else(usize),
    ElseIf(usize, Expr),
}

struct Parser {
    s: Vec<char>,
    pos: usize,
    depth: usize,
    /// Where, in the text being gathered, Velocity's current text token starts (after a
    /// comment, a raw block or backslashes): `#set` takes the blanks before it only if they are
    /// the whole token.
    text_start: usize,
}

const DIRECTIVES: &[&str] = &[
    "set", "if", "elseif", "else", "end", "foreach", "break", "stop",
];
const UNSUPPORTED: &[&str] = &["macro", "define", "parse", "include", "evaluate"];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }
    fn starts_with(&self, i: usize, lit: &str) -> bool {
        (i..).zip(lit.chars()).all(|(j, c)| self.at(j) == Some(c))
    }

    fn error_at(&self, at: usize, msg: impl Into<String>) -> PErr {
        PErr {
            at,
            message: msg.into(),
        }
    }

    /// Line and column (1-based, in characters) of a position; computed only for the error
    /// that is reported, as parsing may try and drop many.
    fn locate(&self, err: PErr) -> ParseError {
        let (mut line, mut column) = (1, 1);
        let mut i = 0;
        while i < err.at.min(self.s.len()) {
            match self.s[i] {
                '\n' => {
                    line += 1;
                    column = 1;
                }
                '\r' if self.at(i + 1) != Some('\n') => {
                    line += 1;
                    column = 1;
                }
                '\r' => {}
                _ => column += 1,
            }
            i += 1;
        }
        ParseError {
            line,
            column,
            message: err.message,
        }
    }

    fn enter(&mut self) -> Result<(), PErr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn flush(&mut self, nodes: &mut Vec<Node>, buf: &mut String) {
        if !buf.is_empty() {
            nodes.push(Node::Text(std::mem::take(buf)));
        }
        self.text_start = 0;
    }

    /// Velocity 1.7's `#set` token takes the spaces and tabs before it when they begin a text
    /// token: at the start of a block or template, or after a reference, a directive (such as
    /// the newline-eating `#if(..)` line above it) or a comment. After other text on the same
    /// or an earlier line they stay.
    fn gobble_indent(&self, buf: &mut String) {
        let token = buf.get(self.text_start..).unwrap_or_default();
        if token.chars().all(|c| c == ' ' || c == '\t') {
            let keep = buf.len() - token.len();
            buf.truncate(keep);
        }
    }

    // ---- template level

    fn block(&mut self) -> Result<(Vec<Node>, Term), PErr> {
        self.enter()?;
        let r = self.block_inner();
        self.leave();
        r
    }

    fn block_inner(&mut self) -> Result<(Vec<Node>, Term), PErr> {
        let mut nodes = Vec::new();
        let mut buf = String::new();
        // Text of `buf` that starts a line (or follows a node): `#set` takes the line's indentation.
        while let Some(c) = self.peek() {
            match c {
                '\\' => self.backslashes(&mut nodes, &mut buf)?,
                '$' => match self.reference(self.pos)? {
                    Some((r, end)) => {
                        self.flush(&mut nodes, &mut buf);
                        nodes.push(Node::Ref(r));
                        self.pos = end;
                    }
                    None => {
                        buf.push('$');
                        self.pos += 1;
                    }
                },
                '#' => {
                    if let Some(term) = self.hash(&mut nodes, &mut buf)? {
                        self.flush(&mut nodes, &mut buf);
                        return Ok((nodes, term));
                    }
                }
                _ => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
        self.flush(&mut nodes, &mut buf);
        Ok((nodes, Term::Eof))
    }

    fn backslashes(&mut self, nodes: &mut Vec<Node>, buf: &mut String) -> Result<(), PErr> {
        let start = self.pos;
        let mut end = start;
        while self.at(end) == Some('\\') {
            end += 1;
        }
        let n = end - start;
        match self.at(end) {
            Some('$') => {
                if let Some((r, after)) = self.reference(end)? {
                    buf.extend(std::iter::repeat_n('\\', n / 2));
                    self.flush(nodes, buf);
                    if n % 2 == 1 {
                        nodes.push(Node::EscapedRef {
                            prefix: 0,
                            reference: r,
                        });
                    } else {
                        nodes.push(Node::Ref(r));
                    }
                    self.pos = after;
                    return Ok(());
                }
            }
            Some('#') if self.directive_word(end).is_some() => {
                buf.extend(std::iter::repeat_n('\\', n / 2));
                if n % 2 == 1 {
                    buf.push('#');
                    self.pos = end + 1;
                } else {
                    self.pos = end;
                }
                self.text_start = buf.len();
                return Ok(());
            }
            _ => {}
        }
        buf.extend(std::iter::repeat_n('\\', n));
        self.pos = end;
        self.text_start = buf.len();
        Ok(())
    }

    /// The directive name at `i` (a `#`), braced or not, and the index after it.
    fn directive_word(&self, i: usize) -> Option<(String, usize)> {
        let braced = self.at(i + 1) == Some('{');
        let mut j = i + 1 + usize::from(braced);
        let start = j;
        while self.at(j).is_some_and(|c| c.is_ascii_alphabetic()) {
            j += 1;
        }
        let word: String = self.s[start..j].iter().collect();
        if braced {
            if self.at(j) != Some('}') {
                return None;
            }
            j += 1;
        } else if self.at(j).is_some_and(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        if DIRECTIVES.contains(&word.as_str()) || UNSUPPORTED.contains(&word.as_str()) {
            Some((word, j))
        } else {
            None
        }
    }

    /// At a `#`: comments, raw blocks and directives. Returns a terminator for the enclosing block.
    fn hash(&mut self, nodes: &mut Vec<Node>, buf: &mut String) -> Result<Option<Term>, PErr> {
        let at = self.pos;
        if self.starts_with(at, "##") {
            // Line comment: through the end of the line, newline included.
            let mut j = at + 2;
            while let Some(c) = self.at(j) {
                j += 1;
                if c == '\n' {
                    break;
                }
                if c == '\r' {
                    if self.at(j) == Some('\n') {
                        j += 1;
                    }
                    break;
                }
            }
            self.pos = j;
            self.text_start = buf.len();
            return Ok(None);
        }
        if self.starts_with(at, "#*") {
            let mut j = at + 2;
            loop {
                if j >= self.s.len() {
                    return Err(self.error_at(at, "unterminated block comment #* ... *#"));
                }
                if self.starts_with(j, "*#") {
                    self.pos = j + 2;
                    self.text_start = buf.len();
                    return Ok(None);
                }
                j += 1;
            }
        }
        if self.starts_with(at, "#[[") {
            let mut j = at + 3;
            loop {
                if j >= self.s.len() {
                    return Err(self.error_at(at, "unterminated raw block #[[ ... ]]#"));
                }
                if self.starts_with(j, "]]#") {
                    buf.extend(self.s[at + 3..j].iter());
                    self.pos = j + 3;
                    self.text_start = buf.len();
                    return Ok(None);
                }
                j += 1;
            }
        }
        let Some((word, after)) = self.directive_word(at) else {
            buf.push('#');
            self.pos += 1;
            return Ok(None);
        };
        if UNSUPPORTED.contains(&word.as_str()) {
            return Err(self.error_at(at, format!("#{word} is not supported in mapping templates")));
        }
        // Velocity 1.7 reads `#set` and `#foreach` without a `(` as plain text.
        let paren_follows = |ws: &[char]| {
            let mut j = after;
            while self.at(j).is_some_and(|c| ws.contains(&c)) {
                j += 1;
            }
            self.at(j) == Some('(')
        };
        let not_directive = match word.as_str() {
            "set" => !paren_follows(&[' ']),
            "foreach" => !paren_follows(&[' ', '\t', '\n', '\r']),
            _ => false,
        };
        if not_directive {
            buf.push('#');
            self.pos = at + 1;
            return Ok(None);
        }
        self.pos = after;
        match word.as_str() {
            "set" => {
                self.gobble_indent(buf);
                self.flush(nodes, buf);
                self.open_paren("#set")?;
                self.skip_ws();
                let target_at = self.pos;
                let target = match self.reference(self.pos)? {
                    Some((r, end)) => {
                        self.pos = end;
                        r
                    }
                    None => {
                        return Err(
                            self.error_at(target_at, "#set needs a reference ($name) before =")
                        );
                    }
                };
                self.skip_ws();
                if self.peek() != Some('=') {
                    return Err(self.error_at(self.pos, "expected = in #set"));
                }
                self.pos += 1;
                let value = self.expr()?;
                self.close_paren("#set")?;
                self.gobble_newline();
                nodes.push(Node::Set { target, value });
                Ok(None)
            }
            "if" => {
                self.flush(nodes, buf);
                self.open_paren("#if")?;
                let mut cond = self.expr()?;
                self.close_paren("#if")?;
                self.gobble_newline();
                let mut branches = Vec::new();
                loop {
                    let (body, term) = self.block()?;
                    branches.push((cond, body));
                    match term {
                        Term::ElseIf(_, c) => cond = c,
                        Term::Else(_) => {
                            let (body, term) = self.block()?;
                            match term {
                                Term::End(_) => {
                                    nodes.push(Node::If {
                                        branches,
                                        otherwise: Some(body),
                                    });
                                    return Ok(None);
                                }
                                Term::Eof => return Err(self.error_at(at, "#if without #end")),
                                Term::Else(p) => return Err(self.error_at(p, "#else after #else")),
                                Term::ElseIf(p, _) => {
                                    return Err(self.error_at(p, "#elseif after #else"));
                                }
                            }
                        }
                        Term::End(_) => {
                            nodes.push(Node::If {
                                branches,
                                otherwise: None,
                            });
                            return Ok(None);
                        }
                        Term::Eof => return Err(self.error_at(at, "#if without #end")),
                    }
                }
            }
            "elseif" => {
                self.open_paren("#elseif")?;
                let cond = self.expr()?;
                self.close_paren("#elseif")?;
                self.gobble_newline();
                Ok(Some(Term::ElseIf(at, cond)))
            }
            "else" => {
                self.gobble_newline();
                Ok(Some(Term::Else(at)))
            }
            "end" => {
                self.gobble_newline();
                Ok(Some(Term::End(at)))
            }
            "foreach" => {
                self.flush(nodes, buf);
                self.open_paren("#foreach")?;
                self.skip_ws();
                let var_at = self.pos;
                let var = match self.reference(self.pos)? {
                    Some((r, end)) if r.parts.is_empty() => {
                        self.pos = end;
                        r.root
                    }
                    _ => {
                        return Err(
                            self.error_at(var_at, "#foreach needs a variable: #foreach($x in ...)")
                        );
                    }
                };
                self.skip_ws();
                if !self.starts_with(self.pos, "in")
                    || self.at(self.pos + 2).is_some_and(ident_char)
                {
                    return Err(self.error_at(self.pos, "expected `in` in #foreach"));
                }
                self.pos += 2;
                let iterable = self.expr()?;
                self.close_paren("#foreach")?;
                self.gobble_newline();
                let (body, term) = self.block()?;
                match term {
                    Term::End(_) => {}
                    Term::Eof => return Err(self.error_at(at, "#foreach without #end")),
                    Term::Else(p) => {
                        return Err(self.error_at(p, "#else inside #foreach without #if"));
                    }
                    Term::ElseIf(p, _) => {
                        return Err(self.error_at(p, "#elseif inside #foreach without #if"));
                    }
                }
                nodes.push(Node::Foreach {
                    var,
                    iterable,
                    body,
                });
                Ok(None)
            }
            "break" | "stop" => {
                self.flush(nodes, buf);
                // Velocity accepts `#break($foreach)`; the scope argument is ignored here.
                // Only the `)` of a directive eats the newline after it.
                let save = self.pos;
                self.skip_ws();
                if self.peek() == Some('(') {
                    self.pos += 1;
                    let _ = self.expr_opt()?;
                    self.close_paren(if word == "break" { "#break" } else { "#stop" })?;
                    self.gobble_newline();
                } else {
                    self.pos = save;
                }
                nodes.push(if word == "break" {
                    Node::Break
                } else {
                    Node::Stop
                });
                Ok(None)
            }
            _ => {
                buf.push('#');
                self.pos = at + 1;
                Ok(None)
            }
        }
    }

    fn open_paren(&mut self, what: &str) -> Result<(), PErr> {
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error_at(self.pos, format!("expected ( after {what}")));
        }
        self.pos += 1;
        Ok(())
    }
    fn close_paren(&mut self, what: &str) -> Result<(), PErr> {
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(self.error_at(self.pos, format!("expected ) to close {what}")));
        }
        self.pos += 1;
        Ok(())
    }

    /// Velocity 1.7: a directive followed by spaces/tabs and a newline eats them.
    fn gobble_newline(&mut self) {
        let mut j = self.pos;
        while matches!(self.at(j), Some(' ' | '\t')) {
            j += 1;
        }
        match self.at(j) {
            Some('\n') => self.pos = j + 1,
            Some('\r') => {
                self.pos = if self.at(j + 1) == Some('\n') {
                    j + 2
                } else {
                    j + 1
                }
            }
            _ => {}
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    // ---- references

    /// Parses a reference starting at `i` (a `$`); `None` when it is not one (the `$` is text).
    fn reference(&mut self, i: usize) -> Result<Option<(Reference, usize)>, PErr> {
        let mut j = i + 1;
        let quiet = self.at(j) == Some('!');
        if quiet {
            j += 1;
        }
        let braced = self.at(j) == Some('{');
        if braced {
            j += 1;
        }
        if !self.at(j).is_some_and(ident_start) {
            return Ok(None);
        }
        let (root, mut j) = self.ident(j);
        let mut parts = Vec::new();
        loop {
            match self.at(j) {
                // Velocity: a property or method name after `.` starts with a letter.
                Some('.') if self.at(j + 1).is_some_and(|c| c.is_ascii_alphabetic()) => {
                    let (name, k) = self.ident(j + 1);
                    if self.at(k) == Some('(') {
                        let save = self.pos;
                        self.pos = k + 1;
                        self.enter()?;
                        let args = self.args(')');
                        self.leave();
                        let args = args?;
                        j = self.pos;
                        self.pos = save;
                        parts.push(Part::Call(name, args));
                    } else {
                        parts.push(Part::Prop(name));
                        j = k;
                    }
                }
                Some('[') => {
                    let save = self.pos;
                    self.pos = j + 1;
                    self.enter()?;
                    let idx = self.expr();
                    self.leave();
                    match idx {
                        Ok(e) => {
                            self.skip_ws();
                            if self.peek() == Some(']') {
                                j = self.pos + 1;
                                self.pos = save;
                                parts.push(Part::Index(e));
                                continue;
                            }
                            self.pos = save;
                            break;
                        }
                        Err(e) if e.message.starts_with("nesting deeper") => return Err(e),
                        Err(_) => {
                            self.pos = save;
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        if braced {
            if self.at(j) != Some('}') {
                return Ok(None);
            }
            j += 1;
        }
        let source: String = self.s[i..j].iter().collect();
        Ok(Some((
            Reference {
                root,
                parts,
                quiet,
                source,
            },
            j,
        )))
    }

    fn ident(&self, mut j: usize) -> (String, usize) {
        let start = j;
        while self.at(j).is_some_and(ident_char) {
            j += 1;
        }
        (self.s[start..j].iter().collect(), j)
    }

    /// Comma-separated expressions up to `close` (consumed).
    fn args(&mut self, close: char) -> Result<Vec<Expr>, PErr> {
        let mut out = Vec::new();
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return Err(self.error_at(self.pos, format!("expected , or {close}"))),
            }
        }
    }

    // ---- expressions

    fn expr_opt(&mut self) -> Result<Option<Expr>, PErr> {
        self.skip_ws();
        if self.peek() == Some(')') {
            return Ok(None);
        }
        self.expr().map(Some)
    }

    fn expr(&mut self) -> Result<Expr, PErr> {
        self.enter()?;
        let r = self.or();
        self.leave();
        r
    }

    /// Matches an operator (symbol or word) after whitespace; words need a boundary.
    fn op(&mut self, syms: &[&str], words: &[&str]) -> bool {
        self.skip_ws();
        for s in syms {
            if self.starts_with(self.pos, s) {
                // `=` must not be read as `==`'s prefix elsewhere; `<` vs `<=` handled by order.
                self.pos += s.chars().count();
                return true;
            }
        }
        for w in words {
            let n = w.chars().count();
            if self.starts_with(self.pos, w) && !self.at(self.pos + n).is_some_and(ident_char) {
                self.pos += n;
                return true;
            }
        }
        false
    }

    fn or(&mut self) -> Result<Expr, PErr> {
        let mut l = self.and()?;
        while self.op(&["||"], &["or"]) {
            let r = self.and()?;
            l = Expr::Bin(BinOp::Or, Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, PErr> {
        let mut l = self.eq()?;
        while self.op(&["&&"], &["and"]) {
            let r = self.eq()?;
            l = Expr::Bin(BinOp::And, Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn eq(&mut self) -> Result<Expr, PErr> {
        let mut l = self.rel()?;
        loop {
            let op = if self.op(&["=="], &["eq"]) {
                BinOp::Eq
            } else if self.op(&["!="], &["ne"]) {
                BinOp::Ne
            } else {
                return Ok(l);
            };
            let r = self.rel()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn rel(&mut self) -> Result<Expr, PErr> {
        let mut l = self.add()?;
        loop {
            let op = if self.op(&["<="], &["le"]) {
                BinOp::Le
            } else if self.op(&[">="], &["ge"]) {
                BinOp::Ge
            } else if self.op(&["<"], &["lt"]) {
                BinOp::Lt
            } else if self.op(&[">"], &["gt"]) {
                BinOp::Gt
            } else {
                return Ok(l);
            };
            let r = self.add()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn add(&mut self) -> Result<Expr, PErr> {
        let mut l = self.mul()?;
        loop {
            self.skip_ws();
            let op = match self.peek() {
                Some('+') => BinOp::Add,
                // `..` of a range is not a minus; `-` is.
                Some('-') => BinOp::Sub,
                _ => return Ok(l),
            };
            self.pos += 1;
            let r = self.mul()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn mul(&mut self) -> Result<Expr, PErr> {
        let mut l = self.unary()?;
        loop {
            self.skip_ws();
            let op = match self.peek() {
                Some('*') => BinOp::Mul,
                Some('/') => BinOp::Div,
                Some('%') => BinOp::Mod,
                _ => return Ok(l),
            };
            self.pos += 1;
            let r = self.unary()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn unary(&mut self) -> Result<Expr, PErr> {
        self.skip_ws();
        if self.peek() == Some('!') && self.at(self.pos + 1) != Some('=') {
            self.pos += 1;
            self.enter()?;
            let e = self.unary();
            self.leave();
            return Ok(Expr::Not(Box::new(e?)));
        }
        if self.starts_with(self.pos, "not") && !self.at(self.pos + 3).is_some_and(ident_char) {
            self.pos += 3;
            self.enter()?;
            let e = self.unary();
            self.leave();
            return Ok(Expr::Not(Box::new(e?)));
        }
        if self.peek() == Some('-') {
            self.pos += 1;
            self.enter()?;
            let e = self.unary();
            self.leave();
            return Ok(match e? {
                Expr::Lit(Literal::Int(i)) => Expr::Lit(Literal::Int(i.wrapping_neg())),
                Expr::Lit(Literal::Float(f)) => Expr::Lit(Literal::Float(-f)),
                e => Expr::Neg(Box::new(e)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, PErr> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            None => Err(self.error_at(at, "expected an expression, found the end of the template")),
            Some('$') => match self.reference(at)? {
                Some((r, end)) => {
                    self.pos = end;
                    Ok(Expr::Ref(Box::new(r)))
                }
                None => Err(self.error_at(at, "expected a reference after $")),
            },
            Some('(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.error_at(self.pos, "expected )"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some('[') => {
                self.pos += 1;
                self.enter()?;
                let r = self.list();
                self.leave();
                r
            }
            Some('{') => {
                self.pos += 1;
                self.enter()?;
                let r = self.map_lit();
                self.leave();
                r
            }
            Some('\'') => self.single_quoted(),
            Some('"') => self.double_quoted(),
            Some(c) if c.is_ascii_digit() => self.number(),
            Some(c) if ident_start(c) => {
                let (w, end) = self.ident(at);
                let lit = match w.as_str() {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    "null" => Literal::Null,
                    _ => {
                        return Err(
                            self.error_at(at, format!("unexpected word `{w}` in expression"))
                        );
                    }
                };
                self.pos = end;
                Ok(Expr::Lit(lit))
            }
            Some(c) => Err(self.error_at(at, format!("unexpected `{c}` in expression"))),
        }
    }

    fn list(&mut self) -> Result<Expr, PErr> {
        self.skip_ws();
        if self.peek() == Some(']') {
            self.pos += 1;
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.expr()?;
        self.skip_ws();
        if self.starts_with(self.pos, "..") {
            self.pos += 2;
            let last = self.expr()?;
            self.skip_ws();
            if self.peek() != Some(']') {
                return Err(self.error_at(self.pos, "expected ] to close the range"));
            }
            self.pos += 1;
            return Ok(Expr::Range(Box::new(first), Box::new(last)));
        }
        let mut items = vec![first];
        loop {
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    items.push(self.expr()?);
                }
                Some(']') => {
                    self.pos += 1;
                    return Ok(Expr::List(items));
                }
                _ => return Err(self.error_at(self.pos, "expected , or ] in list")),
            }
        }
    }

    fn map_lit(&mut self) -> Result<Expr, PErr> {
        let mut entries = Vec::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.pos += 1;
            return Ok(Expr::Map(entries));
        }
        loop {
            let k = self.expr()?;
            self.skip_ws();
            if self.peek() != Some(':') {
                return Err(self.error_at(self.pos, "expected : in map"));
            }
            self.pos += 1;
            let v = self.expr()?;
            entries.push((k, v));
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(Expr::Map(entries));
                }
                _ => return Err(self.error_at(self.pos, "expected , or } in map")),
            }
        }
    }

    fn number(&mut self) -> Result<Expr, PErr> {
        let at = self.pos;
        let mut j = at;
        while self.at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        let is_float =
            self.at(j) == Some('.') && self.at(j + 1).is_some_and(|c| c.is_ascii_digit());
        let mut is_float = is_float;
        if is_float {
            j += 1;
            while self.at(j).is_some_and(|c| c.is_ascii_digit()) {
                j += 1;
            }
        }
        // An exponent: `1e3`, `2.5E-2`.
        if matches!(self.at(j), Some('e' | 'E')) {
            let k = j + 1 + usize::from(matches!(self.at(j + 1), Some('+' | '-')));
            if self.at(k).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                j = k;
                while self.at(j).is_some_and(|c| c.is_ascii_digit()) {
                    j += 1;
                }
            }
        }
        let text: String = self.s[at..j].iter().collect();
        self.pos = j;
        if is_float {
            return text
                .parse::<f64>()
                .map(|f| Expr::Lit(Literal::Float(f)))
                .map_err(|_| self.error_at(at, "bad number"));
        }
        Ok(Expr::Lit(match text.parse::<i64>() {
            Ok(i) => Literal::Int(i),
            Err(_) => Literal::Float(text.parse::<f64>().unwrap_or(f64::INFINITY)),
        }))
    }

    fn single_quoted(&mut self) -> Result<Expr, PErr> {
        let at = self.pos;
        let mut j = at + 1;
        let mut out = String::new();
        loop {
            match self.at(j) {
                None => return Err(self.error_at(at, "unterminated string literal")),
                Some('\'') if self.at(j + 1) == Some('\'') => {
                    out.push('\'');
                    j += 2;
                }
                Some('\'') => break,
                Some(c) => {
                    out.push(c);
                    j += 1;
                }
            }
        }
        self.pos = j + 1;
        Ok(Expr::Lit(Literal::Str(out)))
    }

    fn double_quoted(&mut self) -> Result<Expr, PErr> {
        let at = self.pos;
        let mut j = at + 1;
        let mut out = String::new();
        loop {
            match self.at(j) {
                None => return Err(self.error_at(at, "unterminated string literal")),
                Some('"') if self.at(j + 1) == Some('"') => {
                    out.push('"');
                    j += 2;
                }
                Some('"') => break,
                Some('\\') if self.at(j + 1) == Some('u') => {
                    let hex: String = (j + 2..j + 6).filter_map(|k| self.at(k)).collect();
                    match u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 4)
                        .and_then(char::from_u32)
                    {
                        Some(c) => {
                            out.push(c);
                            j += 6;
                        }
                        None => {
                            out.push('\\');
                            j += 1;
                        }
                    }
                }
                Some('\\') if self.at(j + 1) == Some('"') => {
                    out.push_str("\\\"");
                    j += 2;
                }
                Some(c) => {
                    out.push(c);
                    j += 1;
                }
            }
        }
        self.pos = j + 1;
        if !out.contains(['$', '#']) {
            return Ok(Expr::Lit(Literal::Str(out)));
        }
        let mut inner = Parser {
            s: out.chars().collect(),
            pos: 0,
            depth: self.depth,
            text_start: 0,
        };
        let (nodes, term) = match inner.block() {
            Ok(r) => r,
            Err(e) => {
                return Err(self.error_at(at, format!("in string literal: {}", e.message)));
            }
        };
        if !matches!(term, Term::Eof) {
            return Err(self.error_at(at, "in string literal: unbalanced #end/#else"));
        }
        match nodes.as_slice() {
            [] => Ok(Expr::Lit(Literal::Str(String::new()))),
            [Node::Text(t)] => Ok(Expr::Lit(Literal::Str(t.clone()))),
            _ => Ok(Expr::Interp(nodes)),
        }
    }
}
