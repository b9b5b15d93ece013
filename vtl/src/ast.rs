//! The parsed form of a template: nodes (text, references, directives) and expressions. Holds no
//! runtime values, so a parsed template is `Send + Sync` and shared behind an `Arc`.

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Ref(Reference),
    /// `\$a` with an odd run of backslashes: `prefix` backslashes are kept, then the reference
    /// renders as its source text (with one more backslash when it is undefined, as Velocity 1.7).
    EscapedRef {
        prefix: usize,
        reference: Reference,
    },
    Set {
        target: Reference,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    Foreach {
        var: String,
        iterable: Expr,
        body: Vec<Node>,
    },
    Break,
    Stop,
}

#[derive(Debug)]
pub(crate) struct Reference {
    pub(crate) root: String,
    pub(crate) parts: Vec<Part>,
    pub(crate) quiet: bool,
    /// The source text, rendered when the reference is undefined (and not quiet).
    pub(crate) source: String,
}

#[derive(Debug)]
pub(crate) enum Part {
    Prop(String),
    Index(Expr),
    Call(String, Vec<Expr>),
}

#[derive(Debug)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Lit(Literal),
    /// A double-quoted string holding references or directives: rendered each time.
    Interp(Vec<Node>),
    List(Vec<Expr>),
    Range(Box<Expr>, Box<Expr>),
    Map(Vec<(Expr, Expr)>),
    Ref(Box<Reference>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}
